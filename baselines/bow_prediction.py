"""Bag-of-words prediction: from the image, predict which words its caption holds (CLIP Fig. 2, the middle curve).

The paper's step between predicting the exact caption and contrasting it: keep the image tower, drop the word
order. The caption becomes its bag of words, a distribution q over the vocabulary (each word's count divided by
the caption's length); a linear head on the image embedding predicts a distribution p over the vocabulary.

    z = head(visual(images))                    (B, V) one logit per word of the vocabulary
    p = softmax(z)                              (B, V)
    q = bag_of_words(tokens) / length           (B, V) the caption's words, SOT, EOT and padding left out
    loss = mean_b  -sum_w q_bw log p_bw         cross-entropy against the caption's word distribution

Derivation. Read p as a model that draws a caption's n words independently from the vocabulary. The bag with
counts c_w (sum_w c_w = n) then has log-likelihood sum_w c_w log p_w (up to the multinomial coefficient, which does
not depend on the image), so -1/n log p(bag | image) = -sum_w q_w log p_w: the loss is the per-word negative
log-likelihood of the caption's bag. Its gradient in z is p - q (softmax cross-entropy with soft targets).

Zero-shot, the way the paper scores a predictive model: each class's prompt is scored by the log-likelihood of its
bag, sum_w c_w log p_w, and the class with the most likely prompts wins (minclip.zeroshot.prompt_likelihoods
averages it over templates). All prompts of one template share their words but for the class name, so the score
compares log p(name words | image).

    python -m baselines.bow_prediction --steps 1000 --out runs/bow-prediction
"""
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines import common
from minclip import loop
from minclip.cli import arg
from minclip.config import CLIPConfig
from minclip.loss import widen
from minclip.model import check_tokens


def bag_of_words(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """tokens (B, L) int64, SOT w_1 ... w_n EOT then padding -> counts (B, V) float of w_1 ... w_n.

    The words are the positions strictly between SOT (position 0) and EOT (the largest id, found by argmax), so
    neither marker nor the padding counts, whatever the padding id."""
    eot = tokens.argmax(dim=-1, keepdim=True)  # (B, 1)
    position = torch.arange(tokens.shape[1], device=tokens.device)[None]  # (1, L)
    is_word = ((position > 0) & (position < eot)).float()  # (B, L)
    return torch.zeros(tokens.shape[0], vocab_size, device=tokens.device).scatter_add_(1, tokens, is_word)


def bow_loss(logits: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """logits (B, V), counts (B, V) -> the mean over captions of -sum_w q_w log softmax(logits)_w, q = counts / n."""
    q = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)  # (B, V); an empty caption contributes 0
    return -(q * F.log_softmax(widen(logits), dim=-1)).sum(dim=1).mean()


class BowPredictor(common.ImageTower):
    """minclip's image tower and a linear head over the caption vocabulary. forward(images) -> logits (B, V)."""

    def __init__(self, config: CLIPConfig):
        super().__init__(config)
        self.head = nn.Linear(config.embed_dim, config.text.vocab_size)

    @property
    def context_length(self) -> int:  # the tokenizer's context: captions are tokenized as for CLIP
        return self.config.text.context_length

    def forward(self, images):
        """images (B, 3, H, W) float, preprocessed -> word logits (B, V)."""
        return self.head(self.encode_image(images, normalize=False))  # (B, E) -> (B, V)

    def prompt_log_likelihood(self, images, tokens):
        """log p(bag of prompt m | image b) = sum_w c_mw log p_bw for every pair: images (B, 3, H, W), tokens (M, L)
        -> (B, M)."""
        check_tokens(tokens, self.config.text.vocab_size, self.context_length)
        log_p = F.log_softmax(widen(self(images)), dim=-1)  # (B, V)
        return log_p @ bag_of_words(tokens, self.config.text.vocab_size).to(log_p).T  # (B, V) @ (V, M) -> (B, M)


def build(model_config: dict) -> BowPredictor:
    """The model a checkpoint's model_config describes (minclip.load calls this)."""
    return common.from_config(BowPredictor, model_config)


@dataclass
class BowPredictionRun(common.BaselineConfig):
    COMMAND: ClassVar[str] = "python -m baselines.bow_prediction"
    out: str = arg("runs/bow-prediction", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    weight_decay: float = arg(0.2, "AdamW decoupled weight decay on weight matrices (CLIP: 0.2)")


class BowPredictionObjective(common.CaptionBaseline):
    """Predict the caption's bag of words from the image, on minclip.train's ShapeWorld pairs."""
    method = "bow_prediction"

    def __init__(self, cfg: BowPredictionRun, state, par):
        super().__init__(cfg, state, par, BowPredictor)

    def loss(self, step: int) -> torch.Tensor:
        images, tokens = self.text_pairs(step)
        return bow_loss(self.model(images), bag_of_words(tokens, self.model.config.text.vocab_size))


def train(cfg: BowPredictionRun) -> dict:
    """Train (or resume) a bag-of-words prediction run; returns the summary (also OUT/summary.json)."""
    return loop.run(cfg, BowPredictionObjective)


if __name__ == "__main__":
    common.main(BowPredictionRun, BowPredictionObjective, __doc__)
