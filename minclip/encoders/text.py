"""TextTransformer: CLIP's text encoder (Radford et al. 2021 §2.4, a GPT-2-style transformer).

Tokens are embedded, a causal transformer runs over them (token i sees tokens <= i), and the state at the
end-of-text (EOT) token, which has seen the whole caption, is layer-normed and projected: that is the caption's
embedding. EOT has the largest id in the vocabulary and padding is 0, so `tokens.argmax(-1)` finds it.
"""
import torch
import torch.nn as nn

from .transformer import Transformer


class TextTransformer(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, width: int, layers: int, heads: int, embed_dim: int,
                 mlp_ratio: float = 4.0, quick_gelu: bool = True):
        super().__init__()
        self.vocab_size, self.context_length = vocab_size, context_length
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_ratio, quick_gelu)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def forward(self, tokens):
        """tokens (B, L) int64, SOT ... EOT then 0-padding -> (B, E) unnormalised text embeddings."""
        eot = tokens.argmax(dim=-1)  # (B,) position of each caption's EOT
        # With a causal mask no position after the batch's last EOT can change any EOT state, so the padding
        # after it is dropped. The result is the same; a batch of short captions costs far less than L = 77.
        L = int(eot.max()) + 1
        x = self.token_embedding(tokens[:, :L]) + self.positional_embedding[:L]  # (B, L, D)
        x = self.transformer(x, causal=True, readout=eot)  # (B, D): the EOT token's final state
        x = self.ln_final(x)
        return x @ self.text_projection  # (B, D) @ (D, E) -> (B, E)
