"""OpenAI's zero-shot prompt templates (CLIP §3.1.4), as data: "{}" marks the class name.

Averaging the embeddings of many templates ("prompt ensembling") added 3.5% on ImageNet over one template (§3.1.4).
The lists come from OpenAI's CLIP repository (data/prompts.md, notebooks/Prompt_Engineering_for_ImageNet.ipynb;
MIT license, Copyright (c) 2021 OpenAI). The 80 ImageNet templates are copied from open_clip's `zero_shot_metadata.py`
(a test checks the copy); open_clip is only a development dependency, so minclip keeps its own copy. The class names
are in prompts.py.
"""
from minclip.data.prompts import EUROSAT_CLASSNAMES, MNIST_CLASSNAMES  # noqa: F401 (older code imports them from here)

CIFAR_TEMPLATES = [  # the 18 templates for CIFAR-10 and CIFAR-100
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.",
    "a photo of the {}.", "a blurry photo of the {}.", "a black and white photo of the {}.",
    "a low contrast photo of the {}.", "a high contrast photo of the {}.", "a bad photo of the {}.",
    "a good photo of the {}.", "a photo of the small {}.", "a photo of the big {}.",
]

IMAGENET_TEMPLATES = [  # the 80 templates for ImageNet
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.",
    "graffiti of a {}.", "a bad photo of the {}.", "a cropped photo of the {}.",
    "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.",
    "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.",
    "the plastic {}.", "a photo of the cool {}.", "a close-up photo of a {}.",
    "a black and white photo of the {}.", "a painting of the {}.", "a painting of a {}.",
    "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.",
    "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.",
    "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.",
    "a sketch of a {}.", "a doodle of the {}.", "a origami {}.",
    "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.",
    "a photo of a nice {}.", "a photo of a weird {}.", "a blurry photo of a {}.",
    "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.",
    "a jpeg corrupted photo of the {}.", "a good photo of a {}.", "a plushie {}.",
    "a photo of the nice {}.", "a photo of the small {}.", "a photo of the weird {}.",
    "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.",
    "a dark photo of a {}.", "itap of a {}.", "graffiti of the {}.",
    "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
]

STL10_TEMPLATES = ["a photo of a {}.", "a photo of the {}."]
SUN397_TEMPLATES = STL10_TEMPLATES  # OpenAI uses the same two for SUN397
MNIST_TEMPLATES = ['a photo of the number: "{}".']  # also for SVHN, for which OpenAI gives none
EUROSAT_TEMPLATES = ["a centered satellite photo of {}.", "a centered satellite photo of a {}.",
                     "a centered satellite photo of the {}."]
PETS_TEMPLATES = ["a photo of a {}, a type of pet."]
FOOD101_TEMPLATES = ["a photo of {}, a type of food."]
FLOWERS_TEMPLATES = ["a photo of a {}, a type of flower."]
AIRCRAFT_TEMPLATES = ["a photo of a {}, a type of aircraft.", "a photo of the {}, a type of aircraft."]
CARS_TEMPLATES = ["a photo of a {}.", "a photo of the {}.", "a photo of my {}.", "i love my {}!",
                  "a photo of my dirty {}.", "a photo of my clean {}.", "a photo of my new {}.",
                  "a photo of my old {}."]
DTD_TEMPLATES = ["a photo of a {} texture.", "a photo of a {} pattern.", "a photo of a {} thing.",
                 "a photo of a {} object.", "a photo of the {} texture.", "a photo of the {} pattern.",
                 "a photo of the {} thing.", "a photo of the {} object."]
CALTECH101_TEMPLATES = [
    "a photo of a {}.", "a painting of a {}.", "a plastic {}.", "a sculpture of a {}.", "a sketch of a {}.",
    "a tattoo of a {}.", "a toy {}.", "a rendition of a {}.", "a embroidered {}.", "a cartoon {}.",
    "a {} in a video game.", "a plushie {}.", "a origami {}.", "art of a {}.", "graffiti of a {}.",
    "a drawing of a {}.", "a doodle of a {}.", "a photo of the {}.", "a painting of the {}.", "the plastic {}.",
    "a sculpture of the {}.", "a sketch of the {}.", "a tattoo of the {}.", "the toy {}.", "a rendition of the {}.",
    "the embroidered {}.", "the cartoon {}.", "the {} in a video game.", "the plushie {}.", "the origami {}.",
    "art of the {}.", "graffiti of the {}.", "a drawing of the {}.", "a doodle of the {}.",
]
FER2013_TEMPLATES = ["a photo of a {} looking face.", "a photo of a face showing the emotion: {}.",
                     "a photo of a face looking {}.", "a face that looks {}.", "they look {}.",
                     "look at how {} they are."]
GTSRB_TEMPLATES = ['a zoomed in photo of a "{}" traffic sign.', 'a centered photo of a "{}" traffic sign.',
                   'a close up photo of a "{}" traffic sign.']
COUNTRY211_TEMPLATES = ["a photo i took in {}.", "a photo i took while visiting {}.",
                        "a photo from my home country of {}.", "a photo from my visit to {}.",
                        "a photo showing the country of {}."]
PCAM_TEMPLATES = ["this is a photo of {}"]
CLEVR_COUNTS_TEMPLATES = ["a photo of {} objects."]
RENDERED_SST2_TEMPLATES = ["a {} review of a movie."]
