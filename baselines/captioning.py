"""Captioning: a transformer language model that predicts the caption, word by word, from the image (CLIP Fig. 2,
the bottom curve; VirTex, Desai & Johnson 2021, is the paper's reference for it).

The image tower is minclip's; its embedding, projected to the decoder's width, is the first token of a causal
transformer that reads the caption after it and predicts each next token:

    sequence  [image, SOT, w_1, ..., w_n]                     n + 2 tokens in, the image first
    predicts  [ .   , w_1, w_2, ..., EOT]                     the state at each caption token predicts the next
    loss = -1/N sum over captions and positions j = 1..n+1 of log p(t_j | image, t_0 .. t_{j-1})

(VirTex lets every decoder layer cross-attend to the image's grid of features; here the image is one prefix token,
so that the image tower is exactly CLIP's and the comparison with CLIP is about the objective alone.)

Derivation. The chain rule of probability factorises a caption's likelihood given the image,
p(t_1 .. t_{n+1} | image) = prod_j p(t_j | image, t_<j), and a causal mask lets one forward pass compute every
factor at once: the state at position j has seen the image and t_0 .. t_j, never a later token. The loss is the
negative log-likelihood averaged over the N predicted tokens of the batch (EOT included: the model learns where a
caption ends); its gradient in each position's logits is softmax - onehot(target).

Zero-shot, as the paper scores it: each class's prompt gets its log-likelihood sum_j log p(t_j | image, t_<j),
and the class whose prompts are most likely wins (minclip.zeroshot.prompt_likelihoods averages over templates).
This is the paper's point of Fig. 2: the model must predict the exact words, "a photo of a red circle", where CLIP
only has to tell which caption goes with which image.

    python -m baselines.captioning --steps 1000 --out runs/captioning
"""
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines import common
from minclip import loop
from minclip.cli import arg
from minclip.config import CLIPConfig
from minclip.encoders.transformer import Transformer
from minclip.loss import widen
from minclip.model import check_tokens


class CaptionDecoder(nn.Module):
    """A GPT-style causal transformer over [image token, caption tokens], sized like CLIP's text tower."""

    def __init__(self, vocab_size: int, context_length: int, width: int, layers: int, heads: int, embed_dim: int,
                 mlp_ratio: float = 4.0, quick_gelu: bool = True):
        super().__init__()
        self.image_proj = nn.Linear(embed_dim, width)  # the image embedding (E) becomes the first token (D)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_ratio, quick_gelu)
        self.ln_final = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)  # a distribution over the next token
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)

    def forward(self, tokens, image_embeds: Optional[torch.Tensor] = None):
        """tokens (B, L) SOT ... EOT then padding, image_embeds (B, E) -> logits (B, n, V), n = the batch's last
        EOT position: logits[:, j] predicts tokens[:, j + 1]. image_embeds None: a zero image token (an image-blind
        language model, e.g. for counting FLOPs)."""
        B = tokens.shape[0]
        n = int(tokens.argmax(dim=-1).max())  # the last EOT: nothing after it is predicted or read
        if image_embeds is None:
            image_embeds = torch.zeros(B, self.image_proj.in_features, device=tokens.device)
        image = self.image_proj(image_embeds).unsqueeze(1)  # (B, 1, D)
        x = torch.cat([image, self.token_embedding(tokens[:, :n])], dim=1)  # (B, n + 1, D): image, SOT, w_1 ...
        x = x + self.positional_embedding[:n + 1]
        x = self.transformer(x, causal=True)  # (B, n + 1, D): position i has seen the image and tokens < i
        return self.head(self.ln_final(x[:, 1:]))  # (B, n, V): the states at SOT, w_1 ... predict w_1, ..., EOT


def token_log_likelihoods(logits: torch.Tensor, tokens: torch.Tensor) -> tuple:
    """logits (B, n, V) from CaptionDecoder, tokens (B, L) -> (log p of each target token (B, n), mask (B, n)).

    Target j is tokens[:, j + 1]; the mask keeps the targets up to and including each caption's EOT."""
    n = logits.shape[1]
    targets = tokens[:, 1:n + 1]  # (B, n)
    log_p = F.log_softmax(widen(logits), dim=-1).gather(2, targets.unsqueeze(2)).squeeze(2)  # (B, n)
    mask = torch.arange(n, device=tokens.device)[None] < tokens.argmax(dim=-1, keepdim=True)  # (B, n): j < EOT pos
    return log_p, mask


def caption_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The mean negative log-likelihood of the batch's predicted tokens (each caption's words and its EOT)."""
    log_p, mask = token_log_likelihoods(logits, tokens)
    return -(log_p * mask).sum() / mask.sum()


def caption_log_likelihood(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(caption | image) = sum_j log p(t_j | image, t_<j) for each caption: (B,)."""
    log_p, mask = token_log_likelihoods(logits, tokens)
    return (log_p * mask).sum(dim=1)


class Captioner(common.ImageTower):
    """minclip's image tower and a caption decoder the size of the preset's text tower.
    forward(images, tokens) -> next-token logits (B, n, V)."""

    def __init__(self, config: CLIPConfig):
        super().__init__(config)
        t = config.text
        self.text = CaptionDecoder(t.vocab_size, t.context_length, t.width, t.layers, t.heads, config.embed_dim,
                                   t.mlp_ratio, config.quick_gelu)

    @property
    def context_length(self) -> int:
        return self.config.text.context_length

    def forward(self, images, tokens):
        """images (B, 3, H, W) float, preprocessed; tokens (B, L) -> logits (B, n, V)."""
        check_tokens(tokens, self.config.text.vocab_size, self.context_length)
        return self.text(tokens, self.encode_image(images, normalize=False))

    def prompt_log_likelihood(self, images, tokens):
        """log p(prompt m | image b) for every pair: images (B, 3, H, W), tokens (M, L) -> (B, M)."""
        check_tokens(tokens, self.config.text.vocab_size, self.context_length)
        image_embeds = self.encode_image(images, normalize=False)  # (B, E), once per image
        B, M = len(image_embeds), len(tokens)
        pairs_image = image_embeds.repeat_interleave(M, dim=0)  # (B*M, E): image b, M times
        pairs_tokens = tokens.repeat(B, 1)  # (B*M, L): all prompts, for each image
        return caption_log_likelihood(self.text(pairs_tokens, pairs_image), pairs_tokens).view(B, M)


def build(model_config: dict) -> Captioner:
    """The model a checkpoint's model_config describes (minclip.load calls this)."""
    return common.from_config(Captioner, model_config)


@dataclass
class CaptioningRun(common.BaselineConfig):
    COMMAND: ClassVar[str] = "python -m baselines.captioning"
    out: str = arg("runs/captioning", "run folder: config.json, metrics.jsonl, checkpoint.pt, summary.json")
    weight_decay: float = arg(0.2, "AdamW decoupled weight decay on weight matrices (CLIP: 0.2)")


class CaptioningObjective(common.CaptionBaseline):
    """Predict each caption token from the image and the tokens before it, on minclip.train's ShapeWorld pairs."""
    method = "captioning"

    def __init__(self, cfg: CaptioningRun, state, par):
        super().__init__(cfg, state, par, Captioner)

    def loss(self, step: int) -> torch.Tensor:
        images, tokens = self.text_pairs(step)
        return caption_loss(self.model(images, tokens), tokens)


def train(cfg: CaptioningRun) -> dict:
    """Train (or resume) a captioning run; returns the summary (also OUT/summary.json)."""
    return loop.run(cfg, CaptioningObjective)


if __name__ == "__main__":
    common.main(CaptioningRun, CaptioningObjective, __doc__)
