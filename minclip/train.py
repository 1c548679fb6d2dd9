"""Pre-train CLIP (or SigLIP): `python -m minclip.train --preset tiny --data shapeworld --minutes 3 --out runs/demo`.

One step: a batch of (image, caption) pairs -> CLIP.forward -> clip_loss (or siglip_loss) -> backward -> AdamW ->
clamp the temperature (CLIP §2.5). Everything but the first three arrows is the shared loop, minclip/loop.py; this
file is what is CLIP's own: its flags, its model and data, GradCache, and its zero-shot evaluation.
Multi-GPU: `torchrun --nproc_per_node 8 -m minclip.train ...`; each rank encodes its share of the batch and the loss
sees all of it through gather-with-grad (minclip/loss.py).
Data: --data shapeworld (offline), csv (Flickr30k, COCO: a caption file and an image folder) or wds (webdataset
shards, as img2dataset writes CC3M); real images are decoded in --workers DataLoader processes (minclip/pairs.py).

    --loss clip     softmax over the batch, both directions (Radford et al. 2021)
    --loss siglip   a sigmoid per pair, with a learned bias b = -10 and scale exp(t) = 10 at the start (Zhai et al.
                    2023): no normalisation over the batch, so no batch-wide softmax to gather
    --hard-negatives swap
                    NegCLIP (Yuksekgonul et al. 2023): each caption's hard negative ("a blue circle and a red square"
                    for "a red circle and a blue square") joins the batch's texts (minclip/binding.py)
"""
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

import torch

from . import checkpoint, loop
from .binding import hard_negatives
from .cli import arg, parse_flags
from .config import CLIPConfig
from .data import ShapeWorld
from .data.shapeworld import CAPTION_STYLES
from .data.transforms import clip_preprocess
from .loss import clip_loss, distributed_clip_loss, distributed_siglip_loss, negclip_loss, siglip_loss, widen
from .model import CLIP
from .data import shards
from .pairs import DatasetPairs, ShapeWorldPairs, ShardPairs, default_workers, parse_domains, parse_objects, step_seed
from .tokenizer import make_tokenizer
from .zeroshot import shapeworld_zeroshot


def preset_defaults(preset: str) -> dict:
    """The optimiser settings a preset trains with when --lr, --weight-decay, --beta2, --eps are not given."""
    resnet = CLIPConfig.preset(preset).vision.kind == "resnet"
    return {
        # the paper's 5e-4 at B = 32,768; the teaching presets, smaller and on smaller batches, take more
        "lr": {"micro": 3e-3, "micro-rn": 3e-3, "tiny": 3e-3, "tiny-rn": 3e-3, "mini": 2e-3, "mini-rn": 2e-3,
               "small": 1e-3, "small-rn": 1e-3}.get(preset, 5e-4),
        # tiny: 1.0, not 0.2. Measured on the demo's 1,000-1,150 steps (zero-shot on held-out pairs, 2,000 images):
        # 0.05 -> 83%, 0.2 -> 87-89%, 0.5 -> 85%, 1.0 -> 91-92%; seen pairs ~100% throughout.
        "weight_decay": {"tiny": 1.0}.get(preset, 0.2),
        "beta2": 0.999 if resnet else 0.98,  # the paper's: 0.98 for ViTs, 0.999 for ResNets
        "eps": 1e-8 if resnet else 1e-6,
    }


def _by_preset(name: str) -> str:
    """'tiny 0.003, small 0.001, ...': what each preset takes for one optimiser flag, for --help."""
    return ", ".join(f"{p} {preset_defaults(p)[name]:g}" for p in CLIPConfig.presets())


# The two losses, each with its data-parallel form (the same loss over the batch of all ranks).
LOSSES = {"clip": (clip_loss, distributed_clip_loss), "siglip": (siglip_loss, distributed_siglip_loss)}
SIGLIP_INIT = {"init_logit_scale": math.log(10), "init_logit_bias": -10.0}  # SigLIP §3: t' = log 10, b = -10


@dataclass
class TrainConfig(loop.RunConfig):
    """The flags of `python -m minclip.train`: the shared ones (minclip/loop.py) and CLIP's own."""
    # what may change on --resume; --workers may not: a shard run's batches depend on it
    RESUMABLE: ClassVar[tuple] = loop.RunConfig.RESUMABLE + ("on_bad_image",)

    preset: str = arg("tiny", "model preset: " + ", ".join(CLIPConfig.presets()))
    loss: str = arg("clip", "'clip' (softmax over the batch, Radford et al. 2021) or 'siglip' (a sigmoid per pair "
                            "with a learned bias, Zhai et al. 2023)")
    data: str = arg("shapeworld", "'shapeworld' (offline, rendered on the fly), 'csv' (an image-caption CSV and an "
                    "image folder: Flickr30k, COCO) or 'wds' (webdataset tar shards, as img2dataset writes: CC3M)")
    csv: str = arg("", "--data csv: a UTF-8 CSV/TSV file with (path, caption) rows; a row with an empty caption is "
                   "skipped (counted in a warning), a file that is not UTF-8 is refused, and a caption longer than "
                   "the text tower's context is truncated by the tokenizer")
    image_root: str = arg("", "--data csv: the folder image paths are relative to")
    train_data: str = arg("", "--data wds: the shards, in brace notation, e.g. 'shards/{00000..00331}.tar' (quote "
                          "it); a sample whose image cannot be decoded, or whose .txt caption is missing, empty or "
                          "not UTF-8, is skipped and counted (a copy of a good pair takes its place in the batch); a "
                          "long caption is truncated by the tokenizer")
    workers: Optional[int] = arg(None, "--data csv/wds: DataLoader worker processes that decode images while the "
                                 "model trains (0 = decode in the training process; default: one per CPU core, "
                                 "the cores shared by torchrun's ranks on a machine, at most 8)")
    on_bad_image: str = arg("skip", "--data csv: a missing or undecodable image is skipped ('skip': counted, named "
                            "in a warning, and the next readable row stands in) or stops the run ('error', naming "
                            "the file and its line)")
    domains: str = arg("photo", "--data shapeworld: comma-separated domains to train on, or 'mix' for ShapeWorld's "
                       "7-domain mix (the demo trains on photos, the domain its zero-shot test uses)")
    objects: str = arg("1,1", "--data shapeworld: fewest,most objects per training image (the demo: one, like its "
                       "zero-shot test; 1,3 for crowded scenes)")
    captions: str = arg("varied", "--data shapeworld: caption style, 'varied' (alt-text-like), 'simple' (one object, "
                                     "a zero-shot template) or 'complete' (every object by colour and shape)")
    hard_negatives: str = arg("none", "'swap' (NegCLIP): add to the batch, for each caption, the same words in a wrong "
                              "order (two colours, two shapes, or the objects of a relation swapped; one word "
                              "changed where nothing can be swapped), as texts no image matches; 'none' (CLIP)")
    batch_size: int = arg(256, "pairs per step across all ranks: the contrastive batch (paper: 32,768)")
    lr: Optional[float] = arg(None, "peak learning rate (default: the preset's: " + _by_preset("lr") + ")")
    weight_decay: Optional[float] = arg(None, "AdamW decoupled weight decay on weight matrices (default: the "
                                        "preset's: " + _by_preset("weight_decay") + ")")
    beta2: Optional[float] = arg(None, "Adam beta2 (default: the paper's, 0.98 for ViTs and 0.999 for ResNets)")
    eps: Optional[float] = arg(None, "Adam eps (default: the paper's, 1e-6 for ViTs and 1e-8 for ResNets)")
    accum_steps: int = arg(1, "encode the batch in this many chunks (GradCache: the loss still sees the whole batch)")
    compile: bool = arg(False, "torch.compile both towers")
    patch_dropout: float = arg(0.0, "FLIP: fraction of image patches dropped while training (e.g. 0.5)")
    init: str = arg("", "fine-tune: start from the weights and tokenizer of this CLIP run folder or checkpoint "
                        "(its preset; a fresh optimiser and schedule), e.g. NegCLIP from a trained CLIP")
    out: str = arg("runs/clip", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json, zeroshot.json")
    eval_every: int = arg(0, "zero-shot evaluation on held-out ShapeWorld images every this many steps (0 = 4 times)")

    def check(self) -> None:
        """Refuse bad values before any work starts, naming the flag and the fix."""
        def need(ok, msg):
            if not ok:
                raise ValueError(msg)
        need(self.preset in CLIPConfig.presets(), f"--preset {self.preset!r} is unknown; choose one of {CLIPConfig.presets()}")
        need(self.loss in LOSSES, f"--loss {self.loss!r} is unknown; use clip or siglip")
        need(self.data in ("shapeworld", "csv", "wds"),
             f"--data {self.data!r} is unknown; use shapeworld, csv or wds")
        need(self.data != "csv" or Path(self.csv).is_file(), f"--data csv needs --csv FILE; {self.csv!r} is not a file")
        need(self.data != "wds" or bool(self.train_data), "--data wds needs --train-data 'shards/{00000..00099}.tar'")
        if self.data == "wds":
            shards.expand_shards(self.train_data)  # raises naming the missing shards
        need(self.workers is None or self.workers >= 0, f"--workers {self.workers} must be 0 or more")
        need(self.on_bad_image in ("error", "skip"), f"--on-bad-image {self.on_bad_image!r}: use error or skip")
        parse_objects(self.objects), parse_domains(self.domains)  # each raises with the fix
        need(self.captions in CAPTION_STYLES, f"--captions {self.captions!r}: use one of {', '.join(CAPTION_STYLES)}")
        need(self.hard_negatives in ("none", "swap"), f"--hard-negatives {self.hard_negatives!r}: use none or swap")
        need(self.hard_negatives == "none" or (self.loss == "clip" and self.data == "shapeworld"),
             "--hard-negatives swap works with --loss clip on --data shapeworld (it rewrites ShapeWorld's "
             "captions, whose colour, shape and relation words it knows)")
        need(not self.init or Path(self.init).exists(), f"--init {self.init}: no run folder or checkpoint there")
        need(math.isfinite(self.patch_dropout) and 0 <= self.patch_dropout < 1,
             f"--patch-dropout {self.patch_dropout} must be in [0, 1)")
        need(self.accum_steps >= 1 and self.batch_size % self.accum_steps == 0,
             f"--batch-size {self.batch_size} must split into --accum-steps {self.accum_steps} equal chunks")
        super().check()

    def resolved(self) -> "TrainConfig":
        """The preset's optimiser settings where the flags leave them out (config.json records what ran)."""
        cfg = super().resolved()
        for name, value in preset_defaults(cfg.preset).items():
            if getattr(cfg, name) is None:
                setattr(cfg, name, value)
        if cfg.workers is None:
            cfg.workers = default_workers() if cfg.data != "shapeworld" else 0
        return cfg


def model_config(cfg: TrainConfig) -> CLIPConfig:
    """The preset's CLIPConfig, with FLIP's patch dropout and, for SigLIP, its temperature and bias at the start."""
    config = CLIPConfig.preset(cfg.preset)
    config.vision.patch_dropout = cfg.patch_dropout
    if cfg.loss == "siglip":
        config.init_logit_scale, config.init_logit_bias = SIGLIP_INIT["init_logit_scale"], SIGLIP_INIT["init_logit_bias"]
    return config


class CLIPObjective(loop.Objective):
    """CLIP's two towers on image-caption pairs, with the CLIP or the SigLIP loss."""
    method, unit = "clip", "pairs"

    def __init__(self, cfg: TrainConfig, state: Optional[dict], par):
        config = model_config(cfg)
        self.cfg, self.device, self.first_row = cfg, par.device, par.rank * (cfg.batch_size // par.world)
        self.world = ShapeWorld(seed=0, image_size=config.vision.image_size) if cfg.data == "shapeworld" else None
        ranks = state.get("extra", {}).get("world_size", 1) if state is not None else par.world
        if cfg.data == "wds" and ranks != par.world:  # each rank reads its own shards: the batches would differ
            raise ValueError(f"--resume: the run in {cfg.out} trained on {ranks} rank(s) and this one has {par.world}; "
                             f"a --data wds run resumes on the same number of processes (torchrun --nproc_per_node "
                             f"{ranks}), or starts anew in another --out")
        self.data = pair_stream(cfg, self.world, config.vision.image_size, par.rank, par.world,
                                pin_memory=par.device.type == "cuda")
        start = state if state is not None else start_from(cfg.init, config)  # a resumed run has its own weights
        self.tokenizer = make_tokenizer(config, start, self.data.corpus)
        self.model = CLIP(config)
        if start is not None:
            self.model.load_state_dict(start["model"])
        self.model.to(par.device)
        self.model_config = config.to_dict()
        self.preprocess = clip_preprocess(config.vision.image_size)
        loss, distributed = LOSSES[cfg.loss]
        self.loss_fn = distributed if par.world > 1 else loss
        if cfg.loss == "siglip":  # the bias is the model's: the loss takes it beside the scale
            self.loss_fn = lambda i, t, s, f=self.loss_fn, m=self.model: f(i, t, s, m.logit_bias)  # no `self`: no cycle
        if cfg.hard_negatives == "swap":  # the texts are the b captions, then their b negatives
            self.loss_fn = lambda i, t, s: negclip_loss(i, t[:len(i)], t[len(i):], s)

    def batch(self, step: int) -> tuple:
        """Batch `step`: images float (b, 3, H, W) and tokens (b, L), on the device; with --hard-negatives, tokens
        (2b, L): the captions, then one hard negative of each."""
        images, captions = self.data.pairs(step)
        if self.cfg.hard_negatives == "swap":
            captions = captions + hard_negatives(captions, step_seed(self.cfg.seed, step, 3),
                                                 set(self.world.holdout_pairs), first=self.first_row)
        tokens = self.tokenizer(captions, context_length=self.model.context_length, truncate=True)
        images = torch.as_tensor(images).to(self.device, non_blocking=True)  # pinned memory (--workers on a GPU): async
        return self.preprocess(images), tokens.to(self.device)

    def backward(self, step: int, autocast, scaler) -> torch.Tensor:
        images, tokens = self.batch(step)
        return train_step(self.model, images, tokens, self.loss_fn, self.cfg.accum_steps, autocast, scaler)

    def evaluate(self, n: int = 500) -> dict:
        """Zero-shot on fresh 64-class ShapeWorld photos: seen colour-shape pairs and held-out ones."""
        if self.world is None:  # a CSV or shard run has no labelled test set of its own
            return {}
        return shapeworld_zeroshot(self.model, self.tokenizer, self.preprocess, self.world, n=n)

    def finish(self, out: Path, summary: dict) -> dict:
        """The zero-shot test on 2,000 images per split -> OUT/zeroshot.json, and the run's figures. A CSV or shard
        run counts its skipped samples in the summary (this rank's: rank 0 reports)."""
        skipped = getattr(self.data, "skipped", None)
        if skipped is not None:
            summary["skipped_samples"] = len(skipped)
            if skipped:
                print(f"skipped {len(skipped)} bad sample(s) while training, e.g. {', '.join(skipped[:3])}",
                      file=sys.stderr)
        result = self.evaluate(n=2000)
        if result:
            (out / "zeroshot.json").write_text(json.dumps({**result, "steps": summary["steps"],
                                                           "train_seconds": summary["train_seconds"]}))
            from .plots import save_run_figures  # matplotlib and seaborn load only for the run's figures
            save_run_figures(out, self.world, self.model, self.tokenizer, self.preprocess)
        return result

    def compile(self) -> None:
        self.model.visual.compile()  # the towers, not forward(): GradCache calls them one at a time
        self.model.text.compile()


def start_from(init: str, config: CLIPConfig) -> Optional[dict]:
    """--init: the checkpoint of the CLIP run to fine-tune, refused unless its model is the one the flags build."""
    if not init:
        return None
    state = checkpoint.read_checkpoint(init, needs=("model", "model_config", "tokenizer"))
    if checkpoint.builder_of(state) or state["model_config"] != config.to_dict():
        raise ValueError(f"--init {init} holds a {state.get('method', 'clip')} model that is not the one these flags "
                         f"build (--preset, --patch-dropout, --loss); pass the flags it was trained with (its "
                         f"config.json says them)")
    return state


def pair_stream(cfg: TrainConfig, world: Optional[ShapeWorld], image_size: int, rank: int = 0, world_size: int = 1,
                pin_memory: bool = False):
    """The training pairs the flags describe: ShapeWorld scenes, the rows of an image-caption CSV, or shards."""
    if world is not None:
        return ShapeWorldPairs(world, cfg.batch_size, cfg.seed, parse_domains(cfg.domains), parse_objects(cfg.objects),
                               cfg.captions, rank, world_size)
    workers = default_workers() if cfg.workers is None else cfg.workers
    if cfg.data == "wds":  # any preset's image size works: the shards are resized as they are read
        return ShardPairs(cfg.train_data, image_size, cfg.batch_size, cfg.seed, rank, world_size, workers, pin_memory)
    from .data.captions import ImageCaptionCSV
    dataset = ImageCaptionCSV(cfg.csv, cfg.image_root, image_size=image_size, on_bad_image=cfg.on_bad_image)
    return DatasetPairs(dataset, cfg.batch_size, cfg.seed, rank, world_size, workers, pin_memory)


def train_step(model, images, tokens, loss_fn, accum_steps: int = 1, autocast=None, scaler=None):
    """Forward and backward for one batch; gradients are left in .grad. Returns the loss (detached).

    With accum_steps = k the batch is encoded in k chunks, GradCache-style (Gao et al. 2021), and the loss is exactly
    the full batch's: 1. embed every chunk without a graph; 2. compute the loss on all the embeddings and its gradient
    with respect to them; 3. re-encode each chunk with a graph and push those gradients through it. Memory is one
    chunk's activations; compute is one extra forward.
    """
    autocast = autocast or torch.autocast("cpu", enabled=False)
    scale = scaler.scale if scaler is not None else (lambda x: x)
    if accum_steps == 1:
        with autocast:
            out = model(images, tokens)
            loss = loss_fn(widen(out.image_embeds), widen(out.text_embeds), widen(out.logit_scale))
        scale(loss).backward()
        return loss.detach()
    chunks = list(zip(images.chunk(accum_steps), tokens.chunk(accum_steps)))
    rng, cached = [], []
    with torch.no_grad():  # 1.
        for x, t in chunks:
            rng.append(checkpoint.rng_state())  # patch dropout must draw the same patches again in 3.
            with autocast:
                cached.append((model.encode_image(x), model.encode_text(t)))
    image_embeds = widen(torch.cat([i for i, _ in cached])).requires_grad_()  # (B, E)
    text_embeds = widen(torch.cat([t for _, t in cached])).requires_grad_()  # (B, E)
    loss = loss_fn(image_embeds, text_embeds, model.scale())  # 2.
    scale(loss).backward()  # fills image_embeds.grad, text_embeds.grad and model.logit_scale.grad
    grads = zip(image_embeds.grad.chunk(accum_steps), text_embeds.grad.chunk(accum_steps))
    for (x, t), state, (gi, gt) in zip(chunks, rng, grads):  # 3.
        checkpoint.set_rng_state(state)
        with autocast:
            i, e = model.encode_image(x), model.encode_text(t)
        torch.autograd.backward([widen(i), widen(e)], [gi, gt])
    return loss.detach()


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) one training run through minclip/loop.py; returns its summary (also OUT/summary.json), with
    the final zero-shot accuracies "seen" and "unseen" for a ShapeWorld run (also OUT/zeroshot.json)."""
    return loop.run(cfg, CLIPObjective)


def parse_args(argv=None) -> TrainConfig:
    return parse_flags(TrainConfig, argv, prog=TrainConfig.COMMAND, description=__doc__)


def main(argv=None) -> None:
    cfg = parse_args(argv)
    result = loop.main(cfg, CLIPObjective)
    if "seen" in result:  # the main process of a ShapeWorld run
        out = Path(cfg.out)
        print(f"zero-shot on 2,000 fresh photos, 64 classes: seen pairs {result['seen']:.1%}, held-out pairs "
              f"{result['unseen']:.1%}. Figures: {out / 'similarity.png'}, {out / 'predictions.png'}")


if __name__ == "__main__":
    main()
