"""Checks for notebooks/09_binding_and_hard_negatives: a swap negative, the benchmark's two-direction score, and
NegCLIP's loss. The references are minclip's own: minclip.binding (its swap of colour words) and
minclip.loss.negclip_loss."""
import torch
import torch.nn.functional as F

from minclip.data.render import COLORS
from minclip.loss import clip_loss, negclip_loss

from .core import ExerciseError, call, exercise, expect_close, hint, passed

SWAP_CASES = [  # caption -> its first two different colour words exchanged; unchanged if it has fewer than two
    ("a red circle and a blue square", "a blue circle and a red square"),
    ("a photo of a green star, a pink heart and a cyan cross.",
     "a photo of a pink star, a green heart and a cyan cross."),
    ("a small yellow triangle left of a purple diamond.", "a small purple triangle left of a yellow diamond."),
    ("a red circle and a red square", "a red circle and a red square"),
    ("a red circle, a red square and a brown star", "a brown circle, a red square and a red star"),
    ("two blue hearts", "two blue hearts"),
    ("a sketch of a square and a circle", "a sketch of a square and a circle"),
    ("a brown cross, a cyan semicircle and a brown heart", "a cyan cross, a brown semicircle and a brown heart"),
]


@exercise
def check_swap_colors(fn) -> None:
    """fn(caption) -> the caption with its first two different colour words exchanged (others kept)."""
    for caption, want in SWAP_CASES:
        got = call(fn, caption, name="swap_colors")
        if not isinstance(got, str):
            raise ExerciseError(f"swap_colors should return a string, got {type(got).__name__}")
        if got == want:
            continue
        colours = [w for w in caption.replace(",", "").replace(".", "").split() if w in COLORS]
        if sorted(got.split()) != sorted(caption.split()):
            why = "keep every word (and its punctuation): a swap only reorders the caption's own words"
        elif len(set(colours)) < 2:
            why = (f"this caption names {len(set(colours))} different colour(s), {colours}: there is nothing to "
                   "swap, so return it unchanged (a 'negative' equal to the caption teaches nothing)")
        else:
            why = (f"its colour words are {colours}: exchange the first one with the first *different* one after "
                   "it, leave the rest in place")
        raise ExerciseError(f"swap_colors({caption!r}) gave {got!r}, expected {want!r}: {why}")
    passed("swap_colors", "the same words, the colours bound to the other objects")


@exercise
def check_binding_accuracy(fn) -> None:
    """fn(s_aa, s_ab, s_ba, s_bb) -> (text, image): s_xy (n,) is the score of image x with caption y; text is how
    often an image's own caption wins, image how often a caption's own image wins; a tie counts one half."""
    g = torch.Generator().manual_seed(0)
    for n in (7, 40):
        s = torch.randint(0, 4, (4, n), generator=g).double()  # small integers: many ties
        aa, ab, ba, bb = s
        wins = lambda x, y: ((x > y).double() + 0.5 * (x == y).double())  # noqa: E731
        want = (torch.cat([wins(aa, ab), wins(bb, ba)]).mean(), torch.cat([wins(aa, ba), wins(bb, ab)]).mean())
        got = call(fn, aa, ab, ba, bb, name="binding_accuracy")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseError(f"binding_accuracy should return (text, image), got {got!r}")
        text, image = (torch.as_tensor(float(v), dtype=torch.float64) for v in got)
        strict = (torch.cat([(aa > ab), (bb > ba)]).double().mean(), torch.cat([(aa > ba), (bb > ab)]).double().mean())
        if torch.isclose(text, strict[0]) and not torch.isclose(text, want[0]):
            raise ExerciseError("ties counted as losses: a model that gives both captions the same score (a "
                                "bag-of-words model on a swap) is guessing, which is right half the time: count 0.5")
        if torch.isclose(text, want[1]) and torch.isclose(image, want[0]) and not torch.isclose(text, want[0]):
            raise ExerciseError("text and image are exchanged: `text` compares the two captions for one image "
                                "(s_aa vs s_ab, s_bb vs s_ba); `image` the two images for one caption (s_aa vs s_ba)")
        expect_close(text, want[0], f"text with n={n}", "each image x: its own caption's score s_xx against the "
                     "other caption's s_xy, for both images of every item (2n comparisons)", atol=1e-9)
        expect_close(image, want[1], f"image with n={n}", "each caption y: its own image's score s_yy against the "
                     "other image's s_xy, for both captions of every item (2n comparisons)", atol=1e-9)
    passed("binding_accuracy", "both directions, ties as coin flips, as minclip.binding.binding_scores")


@exercise
def check_negclip_loss(fn) -> None:
    """fn(image_embeds (B, E), text_embeds (B, E), negative_embeds (B, E), logit_scale) -> scalar: NegCLIP."""
    for seed, (B, E, s) in enumerate([(3, 4, 5.0), (8, 16, 20.0)]):
        g = torch.Generator().manual_seed(100 + seed)
        unit = lambda: F.normalize(torch.randn(B, E, generator=g, dtype=torch.float64), dim=1)  # noqa: E731
        images, texts, negatives = unit(), unit(), unit()
        scale = torch.tensor(s, dtype=torch.float64)
        got = call(fn, images, texts, negatives, scale, name="negclip_loss")
        got = torch.as_tensor(got, dtype=torch.float64)
        if got.numel() != 1:
            raise ExerciseError(f"negclip_loss should return one number, got shape {tuple(got.shape)}")
        got = got.reshape(())
        want = negclip_loss(images, texts, negatives, scale)
        labels = torch.arange(B)
        both = (F.cross_entropy(s * images @ torch.cat([texts, negatives]).T, labels)
                + F.cross_entropy(s * torch.cat([texts, negatives]) @ images.T, torch.cat([labels, labels]))) / 2
        if torch.isclose(got, clip_loss(images, texts, scale)) and not torch.isclose(got, want):
            raise ExerciseError("this is clip_loss: the negatives never enter. Each image should choose among all "
                                "2B texts, its caption and every hard negative: cat([texts, negatives]) (2B, E)")
        if torch.isclose(got, both):
            raise ExerciseError("the negatives were also made queries of the caption-to-image direction, each told "
                                "to find image i; but a negative caption describes no image. Keep the text-to-image "
                                "half over the B true captions only")
        expect_close(got, want, f"negclip_loss with B={B}, E={E}, scale={s}",
                     hint("the hard negatives are extra wrong captions: they compete in the image→text direction "
                          "only, since no image belongs to them.",
                          "Each image chooses among the B true captions and the B negatives (B × 2B logits); each "
                          "caption still chooses among the B images; average the two cross-entropies.",
                          "(CE(s · images @ cat([texts, negatives]).T, arange(B)) + CE(s · texts @ images.T, "
                          "arange(B))) / 2"), atol=1e-9, rtol=1e-9)
    passed("negclip_loss", "equal to minclip.loss.negclip_loss")
