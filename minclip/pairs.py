"""Where training pairs come from: a deterministic stream of (image, caption) batches, one per step.

Batch `step` depends only on (seed, step), never on what came before, and rank `r` of `world` takes its r-th slice.
So a resumed run sees exactly the batches an uninterrupted run would have seen, with no data-loader state to save,
and two ranks of B/2 together see exactly the batch of B that one process sees.
"""
import numpy as np
import torch

from .data import ShapeWorld
from .data.shapeworld import Pretraining
from .tokenizer import CLIPTokenizer
from .zeroshot import image_features, zeroshot_classifier


def step_seed(*keys: int) -> int:
    """A well-mixed 32-bit seed from several integers (numpy's SeedSequence hashes them)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


class PairSource:
    """`batch(step, ...)` -> (images float (b, 3, H, W) on device, tokens (b, L)), b = batch_size / world."""

    def __init__(self, cfg, model_config, rank: int = 0, world: int = 1):
        if cfg.batch_size % world:
            raise ValueError(f"--batch-size {cfg.batch_size} must split evenly over {world} ranks")
        self.cfg, self.rank, self.world = cfg, rank, world
        self.local = cfg.batch_size // world
        self.context_length = model_config.text.context_length
        self.domains = None if cfg.domains == "mix" else [d for d in cfg.domains.split(",") if d]
        self.objects = tuple(int(k) for k in cfg.objects.split(","))
        if cfg.data == "shapeworld":
            self.shapeworld = ShapeWorld(seed=0, image_size=model_config.vision.image_size)
        else:  # a CSV run needs no ShapeWorld (which renders only small images): any preset's image size works
            from .data.datasets import ImageCaptionCSV
            self.dataset = ImageCaptionCSV(cfg.csv, cfg.image_root, image_size=model_config.vision.image_size,
                                           on_bad_image=cfg.on_bad_image)

    def pairs(self, step: int):
        """Pretraining(images uint8 (b, 3, H, W), b captions) for this rank at this step."""
        if self.cfg.data == "shapeworld":
            # every rank renders the whole batch of this step and keeps its slice, so that two ranks of B/2 train on
            # exactly the pairs one process of B would (rendering is ~60,000 images/s a core: cheap next to a step)
            batch = self.shapeworld.pretraining(self.cfg.batch_size, seed=step_seed(self.cfg.seed, step, 0),
                                                domains=self.domains, objects=self.objects,
                                                caption_style=self.cfg.captions)
            mine = slice(self.rank * self.local, (self.rank + 1) * self.local)
            return Pretraining(batch.images[mine], batch.captions[mine])
        # an image-caption file: a fresh seeded permutation each epoch; this rank takes its slice of the batch
        n, B = len(self.dataset), self.cfg.batch_size
        start = step * B + self.rank * self.local
        epoch = start // n
        order = torch.randperm(n, generator=torch.Generator().manual_seed(step_seed(self.cfg.seed, epoch)))
        idx = [int(order[(start + i) % n]) for i in range(self.local)]
        items = [self.dataset[i] for i in idx]
        return Pretraining(torch.stack([img for img, _ in items]), [cap for _, cap in items])

    def batch(self, step: int, tokenizer, preprocess, device):
        images, captions = self.pairs(step)
        tokens = tokenizer(captions, context_length=self.context_length, truncate=True)
        return preprocess(torch.as_tensor(images).to(device)), tokens.to(device)

    def corpus(self) -> list:
        """Text to train a small tokenizer on: every caption style and every zero-shot prompt."""
        if self.cfg.data == "csv":  # the caption column alone: decoding every image only to read its caption is slow
            return [row.caption for row in self.dataset.rows]
        return self.shapeworld.caption_corpus()

    @torch.no_grad()
    def zeroshot(self, model, tokenizer, preprocess, n: int = 500, seed: int = 12345) -> dict:
        """Zero-shot accuracy on fresh 64-class colour-shape images (photo domain): seen pairs and held-out ones."""
        was_training = model.training
        model.eval()
        result = {}
        for split, name in (("test", "seen"), ("unseen", "unseen")):
            x, y, classnames = self.shapeworld.classification("color_shape", split=split, domain="photo", n=n,
                                                              seed=seed)
            W = zeroshot_classifier(model, tokenizer, classnames, ShapeWorld.templates("color_shape"))  # (E, K)
            f = image_features(model, x, preprocess=preprocess)  # (n, E)
            result[name] = ((f @ W).argmax(1).cpu() == torch.as_tensor(y)).float().mean().item()
        model.train(was_training)
        return result


def make_tokenizer(model_config, state=None, corpus=None) -> CLIPTokenizer:
    """The run's tokenizer: from its checkpoint when resuming; OpenAI's BPE for the OpenAI presets; otherwise a small
    BPE trained (deterministically) on the training captions. corpus: a function returning those captions, called
    only when a tokenizer must be trained."""
    if state is not None:
        return CLIPTokenizer.from_json(state["tokenizer"])
    if model_config.tokenizer == "openai":
        return CLIPTokenizer.from_openai_vocab()
    texts = corpus() if corpus is not None else ShapeWorld(seed=0).caption_corpus()
    return CLIPTokenizer.train(texts, vocab_size=model_config.text.vocab_size)
