"""Checks for notebooks/08_pretrained_openai_clip: checkpoint key conversion, CLIP's input normalisation, EOT pooling.

Each check runs the student's function on hidden seeded cases and compares it with minclip's own code:
minclip/pretrained.py (from_open_clip), minclip/data/transforms.py (clip_preprocess) and
minclip/encoders/text.py (TextTransformer.forward).
"""
import torch

from minclip.config import CLIPConfig
from minclip.data.transforms import clip_preprocess
from minclip.encoders.text import TextTransformer
from minclip.model import CLIP
from minclip.pretrained import OPENAI_EXTRA_KEYS, to_open_clip

from .core import ExerciseError, call, exercise, expect_close, hint, passed


def _tiny_clip(seed: int) -> CLIP:
    """A tiny CLIP with seeded random weights; the global RNG is restored afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return CLIP(CLIPConfig.preset("tiny"))


@exercise
def check_convert_state_dict(fn) -> None:
    """fn(open_clip_state_dict) -> a state dict with minclip's key names, as minclip.pretrained.from_open_clip."""
    model = _tiny_clip(seed=0)
    want = model.state_dict()
    given = to_open_clip(model)  # open_clip's (= OpenAI's) names
    given.update({k: torch.tensor(v) for k, v in zip(OPENAI_EXTRA_KEYS, (32, 32, 512))})  # as OpenAI's .pt files
    got = call(fn, dict(given), name="convert_state_dict")
    if not isinstance(got, dict):
        raise ExerciseError(f"convert_state_dict should return a dict, got {type(got).__name__}")
    extra = sorted(set(got) & set(OPENAI_EXTRA_KEYS))
    if extra:
        raise ExerciseError(f"the converted dict still holds {extra}: OpenAI's checkpoints carry this metadata beside "
                            "the weights; it is no parameter of the model, so drop it")
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or unexpected:
        raise ExerciseError(f"keys differ from minclip's: missing {missing[:3]}, unexpected {unexpected[:3]}. "
                            "Only the text tower's keys change: they gain the prefix 'text.' (see TEXT_KEYS in "
                            "minclip/pretrained.py); 'visual.*' and 'logit_scale' stay as they are")
    for key, value in want.items():
        if not torch.equal(torch.as_tensor(got[key]), value):
            raise ExerciseError(f"{key} holds different values: rename the keys, keep every tensor as it is")
    CLIP(CLIPConfig.preset("tiny")).load_state_dict(got)  # strict: the model accepts it
    passed("convert_state_dict", f"{len(got)} tensors, loadable into minclip.CLIP")


@exercise
def check_clip_normalize(fn) -> None:
    """fn(uint8 images (B, 3, H, W)) -> float (B, 3, H, W) scaled to [0, 1] then normalised with CLIP_MEAN/STD."""
    g = torch.Generator().manual_seed(0)
    for B, S in ((4, 32), (2, 224), (1, 8)):
        images = torch.randint(0, 256, (B, 3, S, S), dtype=torch.uint8, generator=g)
        shapes = (f"images are (B, 3, H, W) = {(B, 3, S, S)}; CLIP_MEAN and CLIP_STD hold one number per channel, "
                  f"shape (3,), which broadcasts against the last dim (W), not the channels: view them as (3, 1, 1)")
        got = call(fn, images, name="clip_normalize", expected=shapes)
        if not isinstance(got, torch.Tensor) or not got.is_floating_point():
            raise ExerciseError(f"clip_normalize should return a float tensor, got "
                                f"{getattr(got, 'dtype', type(got).__name__)}: uint8 cannot hold fractions; convert "
                                f"to float and bring 0..255 to 0..1 first")
        if got.shape != images.shape:
            raise ExerciseError(f"clip_normalize returned shape {tuple(got.shape)}, expected {tuple(images.shape)}: "
                                f"{shapes}")
        expect_close(got, clip_preprocess(S)(images), f"clip_normalize on {B} images of {S}x{S}", hint(
            "the weights expect exactly the pixels CLIP was trained on: values in [0, 1], then standardised per "
            "channel with the statistics of CLIP's training set.",
            "Divide by 255 first, then subtract each channel's mean and divide by its standard deviation; the "
            "channel is dim 1 of (B, 3, H, W).",
            "(images.float() / 255 − mean.view(3, 1, 1)) / std.view(3, 1, 1)"))
    passed("clip_normalize", "equal to minclip.data.clip_preprocess")


@exercise
def check_eot_pool(fn) -> None:
    """fn(x (B, L, D), tokens (B, L)) -> (B, D): each caption's state at its EOT token (the largest id)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 4, generator=g)
    tokens = torch.tensor([[510, 7, 9, 511, 0, 0], [510, 511, 0, 0, 0, 0], [510, 3, 4, 5, 6, 511]])
    got = call(fn, x, tokens, name="eot_pool")
    expect_close(got, x[torch.arange(3), torch.tensor([3, 1, 5])], "eot_pool on a toy batch",
                 "take row tokens[b].argmax() of x[b] for every b: x[torch.arange(B), tokens.argmax(-1)]; the padding "
                 "after EOT (0s) and the last position are not the caption's state")
    # Through minclip's text tower: the pooled states, projected, must be what TextTransformer.forward returns.
    with torch.random.fork_rng():
        torch.manual_seed(1)
        tower = TextTransformer(vocab_size=64, context_length=12, width=16, layers=2, heads=2, embed_dim=8).eval()
    lengths = torch.tensor([3, 12, 5, 7])
    tokens = torch.randint(1, 62, (4, 12), generator=g)
    tokens[:, 0] = 62  # SOT
    tokens[torch.arange(4), lengths - 1] = 63  # EOT, the largest id
    tokens[torch.arange(12) >= lengths[:, None]] = 0  # padding
    with torch.no_grad():
        states = tower.ln_final(tower.transformer(tower.token_embedding(tokens) + tower.positional_embedding,
                                                  causal=True))  # (B, L, D)
        got = call(fn, states, tokens, name="eot_pool")
        expect_close(torch.as_tensor(got) @ tower.text_projection, tower(tokens),
                     "eot_pool inside minclip's text tower", "pool at the EOT position, not at the last position")
    passed("eot_pool", "matches minclip.encoders.text.TextTransformer")
