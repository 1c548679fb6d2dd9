"""Model configuration: one dataclass per tower, one for the whole CLIP, and named presets.

Every layer reads its sizes from these dataclasses; nothing else decides a shape. The OpenAI presets
("vit-b-32", "vit-b-16", "rn50") match open_clip's "*-quickgelu" architectures exactly, so released weights load
into them (see minclip/pretrained.py). The small presets are for ShapeWorld on a laptop CPU.
"""
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional, Tuple, Union


@dataclass
class VisionConfig:
    kind: str = "vit"                 # "vit" (VisionTransformer), "resnet" (ModifiedResNet) or "timm" (any timm backbone)
    image_size: int = 224             # input images are (B, 3, image_size, image_size)
    patch_size: int = 32              # ViT: each P x P patch becomes one token
    width: int = 768                  # ViT: token width D; ResNet: channels of the stem (stage widths are 1, 2, 4, 8 x)
    layers: Union[int, Tuple[int, ...]] = 12  # ViT: number of blocks; ResNet: bottleneck blocks per stage
    heads: int = 12                   # attention heads H (ResNet: heads of the attention pool)
    mlp_ratio: float = 4.0            # MLP hidden width = mlp_ratio * width
    patch_dropout: float = 0.0        # FLIP (Li et al. 2023): fraction of patch tokens dropped while training
    timm_name: str = ""               # kind == "timm": the timm model name, e.g. "resnet18"


@dataclass
class TextConfig:
    vocab_size: int = 49408           # OpenAI's byte-level BPE; small presets use a tokenizer trained on captions
    context_length: int = 77          # L: tokens per caption, SOT and EOT included
    width: int = 512                  # token width D
    layers: int = 12
    heads: int = 8
    mlp_ratio: float = 4.0


@dataclass
class CLIPConfig:
    embed_dim: int = 512              # E: the shared image-text embedding space
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    quick_gelu: bool = True           # OpenAI's models use QuickGELU, x * sigmoid(1.702 x); False means nn.GELU
    init_logit_scale: float = math.log(1 / 0.07)  # CLIP §2.5: temperature initialised to 0.07
    init_logit_bias: Optional[float] = None  # SigLIP: a learned logit bias, initialised to -10 (None: no bias, CLIP)
    tokenizer: str = "openai"         # "openai" (49,408 BPE) or "shapeworld" (a small BPE trained on ShapeWorld captions)

    @classmethod
    def preset(cls, name: str) -> "CLIPConfig":
        """A named configuration: one of `CLIPConfig.presets()`."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict(PRESETS[name])

    @staticmethod
    def presets() -> list:
        return sorted(PRESETS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CLIPConfig":
        """Inverse of to_dict (e.g. a run's config.json). Unknown keys are an error, so typos do not pass silently."""
        top = {f.name for f in fields(cls)}
        unknown = set(d) - top
        if unknown:
            raise ValueError(f"unknown CLIPConfig keys {sorted(unknown)}; valid keys are {sorted(top)}")
        d = dict(d)
        vision = dict(d.pop("vision", {}))
        if isinstance(vision.get("layers"), list):
            vision["layers"] = tuple(vision["layers"])
        return cls(vision=VisionConfig(**vision), text=TextConfig(**d.pop("text", {})), **d)


PRESETS = {
    # The teaching presets use exact GELU: one fused op, a 12% faster training step than QuickGELU on a 2-core CPU
    # (QuickGELU is kept where it matters: the OpenAI architectures below, so that released weights load).
    # micro: the smallest size, for compute sweeps (CLIP Figs. 9 and 10 want three sizes a family on a CPU).
    "micro": dict(embed_dim=32, tokenizer="shapeworld", quick_gelu=False,
                  vision=dict(image_size=32, patch_size=8, width=64, layers=2, heads=2),
                  text=dict(vocab_size=512, context_length=32, width=64, layers=1, heads=2)),
    # tiny, ~0.4M parameters: trains to >97% zero-shot on ShapeWorld in a few CPU-minutes (see README).
    "tiny": dict(embed_dim=64, tokenizer="shapeworld", quick_gelu=False,
                 vision=dict(image_size=32, patch_size=8, width=96, layers=3, heads=3),
                 text=dict(vocab_size=512, context_length=32, width=64, layers=2, heads=2)),
    # mini, ~2.5M: 5x tiny's compute per pair (benchmarks/RESULTS.md, "Presets").
    "mini": dict(embed_dim=128, tokenizer="shapeworld", quick_gelu=False,
                 vision=dict(image_size=32, patch_size=8, width=192, layers=4, heads=6),
                 text=dict(vocab_size=512, context_length=32, width=128, layers=3, heads=4)),
    "small": dict(embed_dim=256, tokenizer="shapeworld", quick_gelu=False,
                  vision=dict(image_size=64, patch_size=8, width=256, layers=6, heads=4),
                  text=dict(vocab_size=512, context_length=32, width=256, layers=4, heads=4)),
    # The ResNet family at the same sizes: CLIP's ModifiedResNet (3-conv stem, anti-aliased strides, attention
    # pooling), its stem `width` C and blocks per stage scaled down, each beside the ViT preset of its name, with
    # that preset's text tower. Attention-pool heads = 32C / 64, as RN50's. 32 px leaves a 1x1 map after the 32x
    # downsampling: the pool then attends over the mean token and that one position.
    "micro-rn": dict(embed_dim=32, tokenizer="shapeworld", quick_gelu=False,
                     vision=dict(kind="resnet", image_size=32, width=8, layers=(1, 1, 1, 1), heads=4),
                     text=dict(vocab_size=512, context_length=32, width=64, layers=1, heads=2)),
    "tiny-rn": dict(embed_dim=64, tokenizer="shapeworld", quick_gelu=False,
                    vision=dict(kind="resnet", image_size=32, width=16, layers=(1, 1, 1, 1), heads=8),
                    text=dict(vocab_size=512, context_length=32, width=64, layers=2, heads=2)),
    "mini-rn": dict(embed_dim=128, tokenizer="shapeworld", quick_gelu=False,
                    vision=dict(kind="resnet", image_size=32, width=32, layers=(1, 1, 1, 1), heads=16),
                    text=dict(vocab_size=512, context_length=32, width=128, layers=3, heads=4)),
    "small-rn": dict(embed_dim=256, tokenizer="shapeworld", quick_gelu=False,
                     vision=dict(kind="resnet", image_size=64, width=32, layers=(1, 2, 2, 1), heads=16),
                     text=dict(vocab_size=512, context_length=32, width=256, layers=4, heads=4)),
    # OpenAI's released architectures (open_clip "ViT-B-32-quickgelu", "ViT-B-16-quickgelu", "RN50-quickgelu").
    "vit-b-32": dict(embed_dim=512, vision=dict(image_size=224, patch_size=32, width=768, layers=12, heads=12)),
    "vit-b-16": dict(embed_dim=512, vision=dict(image_size=224, patch_size=16, width=768, layers=12, heads=12)),
    # RN50: heads = width * 32 // 64 (open_clip), the attention pool works on 2048 channels.
    "rn50": dict(embed_dim=1024, vision=dict(kind="resnet", image_size=224, width=64, layers=(3, 4, 6, 3), heads=32)),
}
