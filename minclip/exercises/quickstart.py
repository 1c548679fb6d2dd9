"""Checks for notebooks/00_quickstart.ipynb: cosine similarities, zero-shot probabilities, text-to-image retrieval.

Shapes: B images, M captions, K classes, E the shared embedding dim.
"""
import torch
import torch.nn.functional as F

from .core import ExerciseError, call, exercise, expect_close, hint, expect_nearest, passed


def _randn(seed: int, *shape) -> torch.Tensor:
    """Unnormalised on purpose (norms between ~1 and ~10): a function that forgets to normalise gets caught."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    return x * torch.empty(shape[0], 1).uniform_(0.3, 3.0, generator=g)


@exercise
def check_cosine_similarity(fn) -> None:
    """fn(a (B, E), b (M, E)) -> (B, M): the cosine similarity of every row of a with every row of b."""
    for seed, (B, M, E) in enumerate([(4, 4, 8), (5, 3, 16), (1, 6, 2)]):
        a, b = _randn(seed, B, E), _randn(100 + seed, M, E)
        want = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T  # (B, M)
        got = call(fn, a.clone(), b.clone(), name="cosine_similarity")
        if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, a @ b.T, atol=1e-4):
            raise ExerciseError("cosine_similarity returned the plain dot products a @ b.T: divide every row by its "
                                "length first (F.normalize(x, dim=1)), so that only the angle counts")
        expect_close(got, want, f"cosine_similarity of a {(B, E)} and a {(M, E)} input",
                     hint("a cosine similarity is the dot product of two unit vectors.",
                          "Scale each row of both inputs to length 1, then take every row of a against every row of "
                          "b: the result is (B, M).",
                          "F.normalize(a, dim=1) @ F.normalize(b, dim=1).T"))
    passed("cosine_similarity", "the same numbers as F.normalize(a) @ F.normalize(b).T")


@exercise
def check_zeroshot_probs(fn) -> None:
    """fn(image_embeds (B, E), classifier (E, K), logit_scale) -> (B, K) class probabilities, rows summing to 1."""
    for seed, (B, K, E, s) in enumerate([(3, 5, 8, 100.0), (4, 2, 16, 14.3), (1, 7, 4, 1.0)]):
        images = F.normalize(_randn(seed, B, E), dim=1)
        classifier = F.normalize(_randn(50 + seed, K, E), dim=1).T  # (E, K), as zeroshot_classifier returns it
        want = (s * images @ classifier).softmax(dim=1)  # (B, K)
        got = call(fn, images.clone(), classifier.clone(), s, name="zeroshot_probs")
        if isinstance(got, torch.Tensor) and got.shape == want.shape:
            if torch.allclose(got, (s * images @ classifier).softmax(dim=0), atol=1e-5) and B > 1:
                raise ExerciseError("zeroshot_probs normalised over the images (dim=0); each image needs a "
                                    "distribution over the K classes: softmax over dim=1")
            if torch.allclose(got, (images @ classifier).softmax(dim=1), atol=1e-5) and s != 1.0:
                raise ExerciseError("zeroshot_probs ignored logit_scale: multiply the cosines by it before the "
                                    "softmax, or every probability comes out nearly uniform")
        expect_close(got, want, f"zeroshot_probs with B={B}, K={K}, logit_scale={s}",
                     hint("zero-shot turns each image's similarities with the K class embeddings into a "
                          "probability distribution over the classes.",
                          "Scale the similarities by logit_scale (the learned 1/temperature) and normalise over the "
                          "classes, the last dim.",
                          "(logit_scale * image_embeds @ classifier).softmax(dim=-1), (B, K)"))
    passed("zeroshot_probs")


@exercise
def check_retrieval(fn) -> None:
    """fn(image_embeds (B, E), text_embeds (M, E)) -> (M,) long: for each caption, the index of its most similar
    image by cosine similarity (text-to-image retrieval, top 1)."""
    for seed, (B, M, E) in enumerate([(6, 4, 8), (3, 3, 2), (8, 1, 16)]):
        images, texts = _randn(seed, B, E), _randn(200 + seed, M, E)
        got = call(fn, images.clone(), texts.clone(), name="retrieval")
        expect_nearest(got, texts, images, name="retrieval", per="caption", over="image")
    passed("retrieval")
