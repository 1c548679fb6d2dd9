"""Real datasets, through the same interfaces as ShapeWorld: images as uint8 (3, H, W) tensors, with class names and
zero-shot templates, or with captions.

- `load_rgb(path)`: any image file as the upright 8-bit RGB picture a viewer shows (16-bit, EXIF-rotated,
  palette, transparent and CMYK files included).
- `load_classification(name, ...)`: one of the evaluation sets of CLIP §3.1 and Table 9 that torchvision provides
  (`DATASETS`: 20 of the paper's 27, plus SVHN), with OpenAI's class names and prompt templates. `MISSING` names the
  other 7 and why. Nothing is downloaded unless you pass download=True.
Image-caption pairs (a CSV and an image folder, or webdataset shards) are in captions.py and shards.py.
"""
import importlib.util
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torchvision
from PIL import Image, ImageOps
from torchvision.transforms import v2

from minclip.data import prompts, templates
from minclip.io import data_dir


# ---- decoding one image file ----------------------------------------------------------------------------------

def load_rgb(path, size: int = 0) -> Image.Image:
    """The image file at `path` as 8-bit RGB, upright, as an image viewer shows it.

    size: if > 0, a JPEG may be decoded at a reduced scale (1/2, 1/4, 1/8) whose sides stay >= size: much faster.
    Raises PIL's own errors for a file that is not an image, is truncated, or is a decompression bomb (more than
    PIL.Image.MAX_IMAGE_PIXELS pixels, which PIL only warns about up to twice that limit; here both are errors).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            if size:
                image.draft("RGB", (size, size))
            # cameras store "turn this 90°" in the EXIF Orientation tag rather than in the pixels; this also loads
            image = ImageOps.exif_transpose(image)
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (1, L, P, I;16, I, LA, PA, RGBA, CMYK, YCbCr, ...) -> RGB."""
    if image.mode.startswith("I"):
        # 16-bit gray ("I;16", or "I" in older PIL): keep the high byte; convert("RGB") would clip all of 256..65535
        # to white. 16-bit RGB(A) PNGs need nothing: PIL already keeps their high bytes.
        image = Image.fromarray((np.asarray(image).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # a fully transparent pixel's colour is arbitrary (often black): show the image over white, as viewers do
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return image.convert("RGB")  # CMYK: PIL's (255 - C)(255 - K) / 255, ignoring any ICC profile


class ClassificationData(NamedTuple):
    dataset: torch.utils.data.Dataset  # item: (image uint8 (3, H, W), or transform(image); label int)
    classnames: list  # label k is classnames[k]
    templates: list


class _Spec(NamedTuple):
    make: object  # (root: str, split: one of `splits`, download: bool, transform) -> torchvision dataset
    classnames: list  # OpenAI's (prompts.py), in the order of torchvision's label ids
    templates: list  # OpenAI's (templates.py)
    size: str  # download size, for the error message
    paper: str  # the dataset's name in the CLIP paper (Table 9)
    splits: tuple = ("train", "test")  # the splits load_classification accepts; "val" only where the dataset has one
    metric: str = "accuracy"  # or "mean_per_class_recall": the mean over classes of each class's accuracy
    needs: tuple = ()  # modules torchvision needs to read the files (not minclip dependencies)
    by_hand: str = ""  # for datasets torchvision cannot download: where to get the files and where to put them


tv = torchvision.datasets
ALL_SPLITS = ("train", "val", "test")
PER_CLASS = "mean_per_class_recall"  # CLIP Table 9 reports it for Pets, Caltech-101, Flowers and Aircraft
# In the order of CLIP's Table 9, then SVHN (not in the paper; a second digits set beside MNIST).
DATASETS = {
    "food101": _Spec(lambda root, split, dl, tf: tv.Food101(root, split, tf, download=dl),
                     prompts.FOOD101_CLASSNAMES, templates.FOOD101_TEMPLATES, size="5 GB", paper="Food-101"),
    "cifar10": _Spec(lambda root, split, dl, tf: tv.CIFAR10(root, split == "train", tf, download=dl),
                     prompts.CIFAR10_CLASSNAMES, templates.CIFAR_TEMPLATES, size="163 MB", paper="CIFAR-10"),
    "cifar100": _Spec(lambda root, split, dl, tf: tv.CIFAR100(root, split == "train", tf, download=dl),
                      prompts.CIFAR100_CLASSNAMES, templates.CIFAR_TEMPLATES, size="161 MB", paper="CIFAR-100"),
    "sun397": _Spec(lambda root, split, dl, tf: _sun397(root, split, dl, tf),
                    prompts.SUN397_CLASSNAMES, templates.SUN397_TEMPLATES, size="37 GB", paper="SUN397"),
    "cars": _Spec(lambda root, split, dl, tf: tv.StanfordCars(root, split, tf),
                  prompts.CARS_CLASSNAMES, templates.CARS_TEMPLATES, size="1.9 GB", paper="Stanford Cars",
                  needs=("scipy",),
                  by_hand="its original site is gone; get a copy (e.g. on Kaggle) of cars_train/, cars_test/, "
                          "devkit/ (with cars_meta.mat and cars_train_annos.mat) and cars_test_annos_withlabels.mat, "
                          "and put them in {root}/stanford_cars/"),
    "aircraft": _Spec(lambda root, split, dl, tf: tv.FGVCAircraft(root, split, transform=tf, download=dl),
                      prompts.AIRCRAFT_CLASSNAMES, templates.AIRCRAFT_TEMPLATES, size="2.8 GB",
                      paper="FGVC Aircraft", splits=ALL_SPLITS, metric=PER_CLASS),
    "dtd": _Spec(lambda root, split, dl, tf: tv.DTD(root, split, transform=tf, download=dl),  # partition 1 of 10
                 prompts.DTD_CLASSNAMES, templates.DTD_TEMPLATES, size="625 MB", paper="Describable Textures",
                 splits=ALL_SPLITS),
    "pets": _Spec(lambda root, split, dl, tf: tv.OxfordIIITPet(root, "trainval" if split == "train" else "test",
                                                               transform=tf, download=dl),
                  prompts.PETS_CLASSNAMES, templates.PETS_TEMPLATES, size="800 MB", paper="Oxford-IIIT Pets",
                  metric=PER_CLASS),
    "caltech101": _Spec(lambda root, split, dl, tf: _caltech101(root, split, dl, tf),
                        prompts.CALTECH101_CLASSNAMES, templates.CALTECH101_TEMPLATES, size="137 MB",
                        paper="Caltech-101", metric=PER_CLASS, needs=("scipy",)),
    "flowers": _Spec(lambda root, split, dl, tf: tv.Flowers102(root, split, tf, download=dl),
                     prompts.FLOWERS_CLASSNAMES, templates.FLOWERS_TEMPLATES, size="330 MB",
                     paper="Oxford Flowers 102", splits=ALL_SPLITS, metric=PER_CLASS, needs=("scipy",)),
    "mnist": _Spec(lambda root, split, dl, tf: tv.MNIST(root, split == "train", tf, download=dl),
                   prompts.MNIST_CLASSNAMES, templates.MNIST_TEMPLATES, size="12 MB", paper="MNIST"),
    "fer2013": _Spec(lambda root, split, dl, tf: _fer2013(root, split, tf),
                     prompts.FER2013_CLASSNAMES, templates.FER2013_TEMPLATES, size="290 MB",
                     paper="Facial Emotion Recognition 2013",
                     by_hand="download fer2013.csv (or icml_face_data.csv) from the Kaggle challenge "
                             "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-"
                             "recognition-challenge and put it in {root}/fer2013/"),
    "stl10": _Spec(lambda root, split, dl, tf: tv.STL10(root, split, transform=tf, download=dl),
                   prompts.STL10_CLASSNAMES, templates.STL10_TEMPLATES, size="2.5 GB", paper="STL-10"),
    "eurosat": _Spec(lambda root, split, dl, tf: _eurosat(root, split, dl, tf),
                     prompts.EUROSAT_CLASSNAMES, templates.EUROSAT_TEMPLATES, size="94 MB", paper="EuroSAT"),
    "gtsrb": _Spec(lambda root, split, dl, tf: tv.GTSRB(root, split, tf, download=dl),
                   prompts.GTSRB_CLASSNAMES, templates.GTSRB_TEMPLATES, size="270 MB", paper="GTSRB"),
    "country211": _Spec(lambda root, split, dl, tf: tv.Country211(root, "valid" if split == "val" else split, tf,
                                                                  download=dl),
                        prompts.COUNTRY211_CLASSNAMES, templates.COUNTRY211_TEMPLATES, size="11 GB",
                        paper="Country211", splits=ALL_SPLITS),
    "pcam": _Spec(lambda root, split, dl, tf: tv.PCAM(root, split, tf, download=dl),
                  prompts.PCAM_CLASSNAMES, templates.PCAM_TEMPLATES, size="7.5 GB", paper="PatchCamelyon",
                  splits=ALL_SPLITS, needs=("h5py",)),
    "clevr_counts": _Spec(lambda root, split, dl, tf: _clevr_counts(root, split, dl, tf),
                          prompts.CLEVR_COUNTS_CLASSNAMES, templates.CLEVR_COUNTS_TEMPLATES, size="18 GB",
                          paper="CLEVR Counts", splits=ALL_SPLITS),
    "rendered_sst2": _Spec(lambda root, split, dl, tf: tv.RenderedSST2(root, split, tf, download=dl),
                           prompts.RENDERED_SST2_CLASSNAMES, templates.RENDERED_SST2_TEMPLATES, size="131 MB",
                           paper="Rendered SST2", splits=ALL_SPLITS),
    "imagenet": _Spec(lambda root, split, dl, tf: _imagenet(root, split, tf),
                      prompts.IMAGENET_CLASSNAMES, templates.IMAGENET_TEMPLATES, size="6.4 GB (val), 138 GB (train)",
                      paper="ImageNet", needs=("scipy",),
                      by_hand="download it by hand from https://image-net.org/download.php (free for non-commercial "
                              "research once you sign up and accept its terms): put ILSVRC2012_devkit_t12.tar.gz and "
                              "ILSVRC2012_img_val.tar (and ILSVRC2012_img_train.tar for split='train') in "
                              "{root}/imagenet/; torchvision unpacks them there on first use"),
    "svhn": _Spec(lambda root, split, dl, tf: tv.SVHN(str(Path(root) / "svhn"), split, tf, download=dl),
                  prompts.MNIST_CLASSNAMES, templates.MNIST_TEMPLATES, size="246 MB", paper="SVHN",
                  needs=("scipy",)),
}

# The paper's datasets that torchvision does not provide: named, with the reason, never faked.
MISSING = {
    "birdsnap": "not in torchvision (and many of its images are only Flickr URLs, now partly dead)",
    "voc2007": "torchvision's VOC is detection and segmentation, not the paper's 20-class multi-label "
               "classification scored by 11-point mAP",
    "resisc45": "not in torchvision",
    "kitti_distance": "torchvision's Kitti is the detection set; the paper's 4 closest-vehicle-distance classes are "
                      "derived from it (as VTAB does) and not provided",
    "ucf101": "video: the paper classifies frames, and torchvision's UCF101 needs video decoding and annotation "
              "files (out of scope)",
    "kinetics700": "video: the paper classifies frames, and torchvision's Kinetics needs video decoding and "
                   "annotation files (out of scope)",
    "hateful_memes": "not in torchvision",
}
PAPER_NAMES = {name: spec.paper for name, spec in DATASETS.items()} | {
    "birdsnap": "Birdsnap", "voc2007": "Pascal VOC 2007 Classification", "resisc45": "RESISC45",
    "kitti_distance": "KITTI Distance", "ucf101": "UCF101", "kinetics700": "Kinetics700",
    "hateful_memes": "Hateful Memes"}


def paper_name(name: str) -> str:
    """The CLIP paper's name for a key of DATASETS or MISSING: paper_name("pets") == "Oxford-IIIT Pets"."""
    if name not in PAPER_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(PAPER_NAMES)}")
    return PAPER_NAMES[name]


def load_classification(name: str, root=None, split: str = "test", download: bool = False,
                        transform=None) -> ClassificationData:
    """A torchvision classification dataset with OpenAI's class names and templates.

    name: one of DATASETS (a name in MISSING raises ValueError with the reason). root: where the data lives
    (default: data_dir()). split: one of DATASETS[name].splits. download: let torchvision download the files
    (ImageNet, Stanford Cars and FER2013 must be fetched by hand; the error says where from and where to put them).
    Items are (image, label): the image as uint8 (3, H, W) RGB (gray images repeated), then `transform` if given
    (e.g. `clip_preprocess(224)`); label k means classnames[k].
    """
    if name in MISSING:
        raise ValueError(f"{name} ({PAPER_NAMES[name]}) is not available in minclip: {MISSING[name]}")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    spec = DATASETS[name]
    if split not in spec.splits:
        raise ValueError(f"{name} has no split {split!r}; its splits are {spec.splits}")
    absent = [module for module in spec.needs if importlib.util.find_spec(module) is None]
    if absent:
        raise ImportError(f"torchvision needs {' and '.join(absent)} to read {name}: pip install {' '.join(absent)}")
    root = Path(root) if root is not None else data_dir()
    to_uint8 = v2.Compose([v2.PILToTensor(), v2.RGB()] + ([transform] if transform is not None else []))
    try:
        dataset = spec.make(str(root), split, download, to_uint8)
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        if download and not spec.by_hand:
            raise
        how = (f"torchvision cannot download it: {spec.by_hand.format(root=root)}" if spec.by_hand else
               f"Pass download=True to download it there ({spec.size}).")
        raise FileNotFoundError(f"{name} was not found under {root} (torchvision: {error}). {how}") from error
    return ClassificationData(dataset, list(spec.classnames), list(spec.templates))


def _seeded_split(full, split: str, held_out: str, percent: int) -> torch.utils.data.Subset:
    """For a dataset that ships as one set: a fixed, seeded `percent`% of it as split `held_out`, the rest as "train".

    The permutation depends only on len(full), so every run holds out the same items if `full` lists them in the
    same order.
    """
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    n_held_out = len(full) * percent // 100
    return torch.utils.data.Subset(full, (order[:n_held_out] if split == held_out else order[n_held_out:]).tolist())


def _eurosat(root: str, split: str, download: bool, transform) -> torch.utils.data.Subset:
    """EuroSAT ships as one set; like other zero-shot benchmarks, hold out a fixed, seeded 20% as the test split."""
    full = tv.EuroSAT(root, transform=transform, download=download)
    full.loader = load_rgb  # torchvision's loader ignores EXIF rotation (set here: older torchvision has no argument)
    return _seeded_split(full, split, "test", 20)


def _sun397(root: str, split: str, download: bool, transform) -> torch.utils.data.Subset:
    """SUN397 ships as one set (its official train/test partitions are a separate download that torchvision does not
    read): hold out a fixed, seeded 20% as the test split. Not the paper's split."""
    full = tv.SUN397(root, transform=transform, download=download)
    # torchvision lists the images in file-system order, which differs between machines; sort them, to fix the split
    order = sorted(range(len(full)), key=lambda i: full._image_files[i])
    full._image_files, full._labels = [full._image_files[i] for i in order], [full._labels[i] for i in order]
    return _seeded_split(full, split, "test", 20)


def _caltech101(root: str, split: str, download: bool, transform) -> torch.utils.data.Subset:
    """Caltech-101 ships as one set: hold out a fixed, seeded 20% as the test split (the paper, like VTAB, trains on
    30 images a class instead). torchvision leaves out the BACKGROUND_Google clutter folder, the paper's 102nd class."""
    return _seeded_split(tv.Caltech101(root, transform=transform, download=download), split, "test", 20)


def _fer2013(root: str, split: str, transform) -> tv.FER2013:
    """FER2013 (48 x 48 gray faces, 7 emotions) from Kaggle's CSV files; torchvision cannot download them."""
    data = tv.FER2013(root, split, transform)
    folder = Path(root) / "fer2013"
    if split == "test" and not any((folder / file).is_file() for file in ("fer2013.csv", "icml_face_data.csv")):
        raise FileNotFoundError(f"{folder / 'test.csv'} has no labels; put fer2013.csv or icml_face_data.csv from "
                                f"the Kaggle challenge in {folder} (its test split is PublicTest + PrivateTest)")
    return data


def _clevr_counts(root: str, split: str, download: bool, transform) -> torch.utils.data.Dataset:
    """CLEVR Counts (VTAB's clevr count_all): how many objects a rendered scene holds, 3 to 10, as label 0 to 7.

    CLEVR's own test split has no labels, so, as VTAB does, minclip's test split is CLEVR's validation split (15k
    images), and minclip's val split is a fixed, seeded 10% of CLEVR's training split (70k), the rest being "train".
    """
    if split == "test":
        return tv.CLEVRClassification(root, "val", transform, _count_to_label, download)
    full = tv.CLEVRClassification(root, "train", transform, _count_to_label, download)
    return _seeded_split(full, split, "val", 10)


def _count_to_label(n_objects: int) -> int:
    return n_objects - 3  # a function, not a lambda, so that DataLoader workers can pickle the dataset


def _imagenet(root: str, split: str, transform) -> tv.ImageNet:
    """ImageNet-1k from the archives in root/imagenet/. As in the paper, the test split is the 50k validation set."""
    return tv.ImageNet(str(Path(root) / "imagenet"), "val" if split == "test" else "train", transform=transform)
