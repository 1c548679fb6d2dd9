"""Bag-of-words contrastive: CLIP with a bag-of-words text encoder (CLIP Fig. 2, the top curve, "Bag of Words
Contrastive (CLIP)").

The paper's Fig. 2 swaps two things at once when it goes from predicting words to CLIP: the objective (predict
the text -> pick the right text out of the batch) and, to isolate that, keeps the text side a bag of words. This
model is that point: CLIP's image tower and loss, and a text encoder that ignores word order.

    T_f = mean of the caption's word embeddings       (B, D) SOT, EOT and padding left out
    T_e = normalize(T_f @ W_t)                        (B, E)
    loss = clip_loss(I_e, T_e, exp(t))                the symmetric cross-entropy of minclip/loss.py

Derivation. For a caption with word counts c_w (sum c_w = n) and word embeddings e_w, T_f = (1/n) sum_w c_w e_w =
(c / n) @ Embedding: a linear map of the bag-of-words vector, so "red circle" and "circle red" embed alike. The
loss and its gradient are CLIP's (minclip/loss.py derives them); only the text tower differs.

Zero-shot is CLIP's: cosine similarity to each class's mean prompt embedding (minclip.zeroshot_classifier).

    python -m baselines.bow_contrastive --steps 1000 --out runs/bow-contrastive
"""
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from baselines import common
from baselines.bow_prediction import bag_of_words
from minclip import loop
from minclip.cli import arg
from minclip.config import CLIPConfig
from minclip.loss import clip_loss
from minclip.model import CLIP


class BagOfWordsText(nn.Module):
    """tokens (B, L) -> (B, E): the mean of the caption's word embeddings, projected to the shared space."""

    def __init__(self, vocab_size: int, width: int, embed_dim: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def forward(self, tokens):
        counts = bag_of_words(tokens, self.vocab_size)  # (B, V)
        bag = (counts / counts.sum(dim=1, keepdim=True).clamp(min=1)).to(self.text_projection)  # (B, V), rows sum to 1
        return bag @ self.token_embedding.weight @ self.text_projection  # (B, V) @ (V, D) @ (D, E) -> (B, E)


class BagOfWordsCLIP(CLIP):
    """A minclip.CLIP whose text tower is a bag of words (its width the preset's text width); everything else,
    encode_image/encode_text, forward, the temperature, is CLIP's."""

    def __init__(self, config: CLIPConfig):
        super().__init__(config)
        self.text = BagOfWordsText(config.text.vocab_size, config.text.width, config.embed_dim)


def build(model_config: dict) -> BagOfWordsCLIP:
    """The model a checkpoint's model_config describes (minclip.load calls this)."""
    return common.from_config(BagOfWordsCLIP, model_config)


@dataclass
class BowContrastiveRun(common.BaselineConfig):
    COMMAND: ClassVar[str] = "python -m baselines.bow_contrastive"
    out: str = arg("runs/bow-contrastive", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    weight_decay: float = arg(0.2, "AdamW decoupled weight decay on weight matrices (CLIP: 0.2)")


class BowContrastiveObjective(common.CaptionBaseline):
    """CLIP's loss with a bag-of-words text encoder, on minclip.train's ShapeWorld pairs."""
    method = "bow_contrastive"

    def __init__(self, cfg: BowContrastiveRun, state, par):
        super().__init__(cfg, state, par, BagOfWordsCLIP)

    def loss(self, step: int) -> torch.Tensor:
        return clip_loss(*self.model(*self.text_pairs(step)))


def train(cfg: BowContrastiveRun) -> dict:
    """Train (or resume) a bag-of-words contrastive run; returns the summary (also OUT/summary.json)."""
    return loop.run(cfg, BowContrastiveObjective)


if __name__ == "__main__":
    common.main(BowContrastiveRun, BowContrastiveObjective, __doc__)
