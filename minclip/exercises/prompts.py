"""Checks for notebooks/04_zero_shot_and_prompts.ipynb: prompt ensembling, zero-shot prediction, top-k accuracy.

Shapes: B images, K classes, E the shared embedding dim.
"""
import torch
import torch.nn.functional as F

from ..config import CLIPConfig
from ..model import CLIP
from ..tokenizer import CLIPTokenizer
from ..zeroshot import zeroshot_classifier
from .core import ExerciseError, call, exercise, expect_close, hint, expect_nearest, passed

CLASSNAMES = ["red circle", "blue square", "green star", "yellow heart", "purple cross"]
TEMPLATES = ["a {}.", "a photo of a {}.", "a sketch of the {}.", "an image of a small {}."]


def _random_clip():
    """A tiny CLIP with random weights and a tokenizer trained on the prompts: a stand-in that builds in a second."""
    tokenizer = CLIPTokenizer.train([t.format(c) for c in CLASSNAMES for t in TEMPLATES], vocab_size=128)
    config = CLIPConfig.from_dict(dict(embed_dim=16, tokenizer="shapeworld",
                                       vision=dict(image_size=16, patch_size=8, width=32, layers=1, heads=2),
                                       text=dict(vocab_size=tokenizer.vocab_size, context_length=16, width=32,
                                                 layers=1, heads=2)))
    with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's global RNG as it was
        torch.manual_seed(0)
        return CLIP(config).eval(), tokenizer


def _unnormalised_mean(model, tokenizer, classnames, templates):
    """The common mistake: average the raw text embeddings, normalise only the mean. (E, K)"""
    with torch.no_grad():
        tokens = tokenizer([t.format(c) for c in classnames for t in templates], context_length=model.context_length)
        raw = model.encode_text(tokens, normalize=False).view(len(classnames), len(templates), -1)  # (K, T, E)
    return F.normalize(raw.mean(dim=1), dim=-1).T  # (E, K)


@exercise
def check_prompt_ensemble(fn) -> None:
    """fn(model, tokenizer, classnames, templates) -> (E, K): CLIP §3.1.4's prompt ensemble, as zeroshot_classifier."""
    model, tokenizer = _random_clip()
    for classnames, templates in [(CLASSNAMES, TEMPLATES), (CLASSNAMES[:2], TEMPLATES[1:2]), (CLASSNAMES[::-1],
                                                                                                 TEMPLATES[::2])]:
        want = zeroshot_classifier(model, tokenizer, classnames, templates)  # (E, K)
        got = call(fn, model, tokenizer, list(classnames), list(templates), name="prompt_ensemble")
        got = torch.as_tensor(got).detach().float()
        K = len(classnames)
        if got.shape == (K, want.shape[0]) and K != want.shape[0]:
            raise ExerciseError(f"prompt_ensemble returned ({K}, E); return the classifier as (E, K), one column "
                                f"per class, so that image_embeds @ classifier gives (B, K) logits")
        if got.shape == want.shape:
            wrong = _unnormalised_mean(model, tokenizer, classnames, templates)
            if torch.allclose(got, wrong, atol=1e-4) and not torch.allclose(want, wrong, atol=1e-4):
                raise ExerciseError("prompt_ensemble averaged the raw text embeddings: normalise each template's "
                                    "embedding first (encode_text(..., normalize=True)), so that every prompt gets "
                                    "an equal vote whatever its length")
            norms = got.norm(dim=0)
            if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
                raise ExerciseError(f"the columns of your classifier have lengths {norms.tolist()[:3]}...: "
                                    f"renormalise each class's mean embedding to length 1")
        expect_close(got, want, f"prompt_ensemble for {K} classes × {len(templates)} templates",
                     hint("a class's zero-shot weight is the average direction of all its prompts' embeddings.",
                          "Normalise each prompt's embedding before averaging and the average after it, so every "
                          "template counts the same and the weight is a unit vector.",
                          "for each class: normalize(mean(normalize(encode(t.format(name)) for t in templates))); "
                          "the K weights as the columns of an (E, K) matrix"), atol=1e-4, rtol=1e-3)
    passed("prompt_ensemble", "the same weights as minclip.zeroshot.zeroshot_classifier")


@exercise
def check_zeroshot_predict(fn) -> None:
    """fn(image_embeds (B, E), class_embeds (K, E)) -> (B,) long: the class of highest cosine similarity per image.
    Neither input is normalised."""
    for seed, (B, K, E) in enumerate([(6, 4, 8), (10, 7, 3), (1, 2, 16)]):
        g = torch.Generator().manual_seed(seed)
        images = torch.randn(B, E, generator=g)
        classes = torch.randn(K, E, generator=g) * torch.linspace(0.2, 5.0, K)[:, None]  # lengths differ a lot
        got = call(fn, images.clone(), classes.clone(), name="zeroshot_predict")
        expect_nearest(got, images, classes, name="zeroshot_predict", per="image", over="class")
    passed("zeroshot_predict")


def _topk_over_images(logits, labels, k):
    """The usual mistake: topk over dim=0 (the k best images of each class), then compared with the labels."""
    top = logits.topk(k, dim=0).indices  # (k, K)
    try:
        return (top == labels[:, None]).any(dim=1).float().mean().item()
    except RuntimeError:  # (k, K) and (B, 1) broadcast only when k = 1 or k = B
        return None


@exercise
def check_topk_accuracy(fn) -> None:
    """fn(logits (B, K), labels (B,), k) -> float: the fraction of rows whose label is among their k largest logits."""
    for seed, (B, K, k) in enumerate([(20, 10, 1), (20, 10, 5), (7, 3, 2), (50, 64, 10), (5, 4, 4)]):
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(B, K, generator=g)
        labels = torch.randint(0, K, (B,), generator=g)
        want = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean().item()
        shapes = (f"logits is (B, K) = {(B, K)} and labels (B,) = ({B},); the top k of each row, over dim=1 (the "
                  f"classes), is (B, k) = {(B, k)}; compare it with labels[:, None], (B, 1), and average the B hits")
        got = call(fn, logits.clone(), labels.clone(), k, name="topk_accuracy", expected=shapes)
        if isinstance(got, torch.Tensor) and got.numel() != 1:
            raise ExerciseError(f"topk_accuracy returned a tensor of shape {tuple(got.shape)}, not one number: "
                                f"{shapes}")
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"topk_accuracy should return one number, got {type(got).__name__}") from None
        if abs(got - want * B) < 1e-6 and B > 1 and want > 0:
            raise ExerciseError("topk_accuracy returned a count of hits; divide by the number of images")
        if abs(got - 100 * want) < 1e-4 and want > 0:
            raise ExerciseError("topk_accuracy returned a percentage; return the fraction of hits, in [0, 1]")
        wrong = _topk_over_images(logits, labels, k)
        if wrong is not None and abs(got - wrong) < 1e-6 < abs(got - want):
            raise ExerciseError(f"topk_accuracy with k={k}: this is the top k over dim=0, the images of each class; "
                                f"logits is (B, K) = {(B, K)}, so each image's top k classes are over dim=1")
        expect_close(torch.tensor(got), torch.tensor(want), f"topk_accuracy with k={k} of K={K}",
                     hint("an image is a top-k hit when its true class is among the k classes it scores highest.",
                          "Take the k largest logits of each row (the classes are dim=1), see whether the label is "
                          "among them, and average the hits over the B images.",
                          "(logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean()"), atol=1e-6)
    passed("topk_accuracy")
