"""CLIP's tokenizer: OpenAI's byte-level BPE run by Hugging Face `tokenizers`, and a small one trained on captions.

CLIP §2.4: the text encoder reads "a lower-cased byte pair encoding (BPE) representation of the text with a 49,152
vocab size", bracketed by [SOS] and [EOS]; the feature is read at [EOS]. EOT is the largest id and padding is 0, so
the text tower finds EOT with `tokens.argmax(-1)`.

A caption becomes ids in four steps:
  1. clean:  OpenAI's cleaning (ftfy, HTML unescaping, whitespace, lower case), in Python.
  2. split:  OpenAI's regex cuts the text into words, in Python with the same `regex` module, so the words are exact
             (the Rust regex engine inside `tokenizers` disagrees with it on ~17k rarer code points).
  3. BPE:    `tokenizers` maps each word's UTF-8 bytes to 256 printable characters, marks the word's end with "</w>"
             and applies the merges, in Rust. A template adds SOT and EOT.
  4. pad:    rows of `context_length`, padded with 0, or an error if a caption does not fit.
Steps 1-2 are `words(text)`; `tokenizer` (a `tokenizers.Tokenizer`) does step 3 on their output.

Usage:
    tok = CLIPTokenizer.from_openai_vocab()               # ids identical to open_clip.get_tokenizer("ViT-B-32")
    tokens = tok(["a photo of a cat", "a red circle"])    # LongTensor (B, L) with L = 77
    small = CLIPTokenizer.train(captions, vocab_size=512)   # a ShapeWorld-size vocabulary
"""
import gzip
import html
import importlib.util
import json
import os
from pathlib import Path
from typing import List, Sequence, Union

import ftfy
import numpy as np
import regex
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SOT, EOT, PAD, UNK = "<start_of_text>", "<end_of_text>", "<pad>", "<unk>"
END_OF_WORD = "</w>"  # CLIP marks the last piece of a word, so "cat" at a word's end and inside "catalog" differ
# OpenAI's words: the special tokens, English contractions, runs of letters, single digits, runs of other symbols.
# Whitespace only separates words. IGNORECASE is OpenAI's flag: it changes the split of a few marks such as U+0345.
WORD_PATTERN = regex.compile(
    rf"{SOT}|{EOT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE
)
OPENAI_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
OPENAI_MERGES = 49152 - 256 - 2  # the file holds more; OpenAI keeps these, so the vocabulary has 49,408 tokens
FORMAT = "minclip.CLIPTokenizer"
REWRITE = ("write one with CLIPTokenizer.save(path), or take a run's own: its tokenizer.json, or "
           "minclip.load(run).tokenizer (every checkpoint carries its tokenizer)")


def clean(text: str) -> str:
    """OpenAI's text cleaning: repair mojibake (ftfy), unescape HTML twice, collapse whitespace, lower-case."""
    # ftfy is the slow step, and it leaves printable ASCII without "&" unchanged (no mojibake, entities or control
    # characters to fix). Most captions are such text, so skipping ftfy there gives the same result much faster.
    if not (text.isascii() and text.isprintable() and "&" not in text):
        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


def words(text: str) -> str:
    """OpenAI's cleaning and word split, as one string of words joined by single spaces (no word holds a space)."""
    return " ".join(WORD_PATTERN.findall(clean(text)))


def bytes_to_unicode() -> dict:
    """GPT-2's reversible map from the 256 byte values to printable characters, in OpenAI's vocabulary order.

    Printable bytes map to themselves; the 68 others (space, control bytes, ...) map to chr(256 + k). Every token is
    then a visible string, and BPE never needs an unknown token: any text is a sequence of these 256 characters.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + k) for k, b in enumerate(others)}}


class CLIPTokenizer:
    """Captions -> token ids (B, L) for the text tower: [SOT, word pieces..., EOT, 0, 0, ...].

    Build one with `from_openai_vocab` (OpenAI's 49,408 tokens), `train` (a small vocabulary from your captions) or
    `load`. Attributes: `vocab_size`, `sot_token_id`, `eot_token_id` (the largest id), `pad_token_id` (0), and
    `tokenizer`, the underlying `tokenizers.Tokenizer`, which expects text already cleaned and split by `words`.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        self.sot_token_id = tokenizer.token_to_id(SOT)
        self.eot_token_id = tokenizer.token_to_id(EOT)
        self.pad_token_id = 0
        if self.eot_token_id != self.vocab_size - 1:
            raise ValueError(f"{EOT} has id {self.eot_token_id}, not the largest id {self.vocab_size - 1}; the text "
                             "tower pools at tokens.argmax(-1), so build the tokenizer with from_openai_vocab or train")

    def __repr__(self) -> str:
        return f"CLIPTokenizer(vocab_size={self.vocab_size}, sot={self.sot_token_id}, eot={self.eot_token_id})"

    @classmethod
    def from_openai_vocab(cls, path: Union[str, os.PathLike, None] = None) -> "CLIPTokenizer":
        """OpenAI's tokenizer, built from its merges file (`bpe_simple_vocab_16e6.txt.gz`).

        path=None finds the file inside the installed open_clip package. The vocabulary is laid out as OpenAI's
        SimpleTokenizer lays it out: 256 byte characters, the same with "</w>", one token per merge, SOT, EOT.
        """
        path = Path(path) if path is not None else _open_clip_vocab_file()
        if not path.is_file():
            raise FileNotFoundError(f"no OpenAI vocabulary at {path}; pass the path to {OPENAI_VOCAB_FILE}")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1:1 + OPENAI_MERGES]  # line 0 is a version header
        merges = [tuple(line.split()) for line in lines]
        chars = list(bytes_to_unicode().values())
        tokens = chars + [c + END_OF_WORD for c in chars] + ["".join(pair) for pair in merges] + [SOT, EOT]
        model = models.BPE({token: i for i, token in enumerate(tokens)}, merges, end_of_word_suffix=END_OF_WORD)
        return cls(_with_sot_eot(_byte_level(model)))

    @classmethod
    def train(cls, texts: Sequence[str], vocab_size: int = 512) -> "CLIPTokenizer":
        """A small BPE vocabulary learned from `texts` (e.g. ShapeWorld captions) with the `tokenizers` trainer.

        Same cleaning, words and "</w>" convention as OpenAI's. Ids: 0 is <pad>, so padding never collides with a
        real token; 1 is <unk>, for characters never seen in training; SOT and EOT are the two largest. The same
        texts always give the same tokenizer.
        """
        if not isinstance(vocab_size, int) or vocab_size < 5:
            raise ValueError(f"vocab_size must be an int >= 5 (4 special tokens and a character); got {vocab_size!r}")
        texts = _as_captions(texts)
        if not any(t.strip() for t in texts):
            raise ValueError("train needs some non-empty captions; got none")
        trainer = trainers.BpeTrainer(vocab_size=vocab_size - 2, special_tokens=[PAD, UNK],
                                      end_of_word_suffix=END_OF_WORD, show_progress=False)
        trained = _byte_level(models.BPE(unk_token=UNK, end_of_word_suffix=END_OF_WORD))
        trained.train_from_iterator((words(t) for t in texts), trainer)
        # The trainer numbers the "</w>" characters in hash order, which changes from run to run. Renumber in OpenAI's
        # layout (characters, characters + "</w>", one token per merge, in merge order): it depends only on the texts.
        model = json.loads(trained.to_str())["model"]
        merges = [tuple(pair) for pair in model["merges"]]
        pieces = list(dict.fromkeys(a + b for a, b in merges))  # a piece that two merges both make gets one id
        chars = sorted(set(model["vocab"]) - set(pieces) - {PAD, UNK}, key=lambda t: (t.endswith(END_OF_WORD), t))
        vocab = {token: i for i, token in enumerate([PAD, UNK] + chars + pieces)}
        tokenizer = _byte_level(models.BPE(vocab, merges, unk_token=UNK, end_of_word_suffix=END_OF_WORD))
        tokenizer.add_special_tokens([PAD, UNK])
        tokenizer = _with_sot_eot(tokenizer)
        if tokenizer.get_vocab_size() > vocab_size:  # the trainer keeps every character it saw, whatever the budget
            raise ValueError(f"vocab_size={vocab_size} is too small: the special tokens and the characters of these "
                             f"texts (with and without {END_OF_WORD}) already need {tokenizer.get_vocab_size()}; "
                             "raise vocab_size")
        return cls(tokenizer)

    def __call__(self, texts: Union[str, Sequence[str]], context_length: int = 77,
                 truncate: bool = False) -> torch.Tensor:
        """Captions -> LongTensor (B, L) with L = context_length: SOT, the caption's tokens, EOT, then zeros.

        A caption longer than L raises a ValueError, unless truncate=True: then it is cut to L and its last
        position is set to EOT (open_clip's rule), so pooling at EOT still works.
        """
        texts = _as_captions(texts)
        if not isinstance(context_length, int) or context_length < 2:
            raise ValueError(f"context_length must be an int >= 2 (room for SOT and EOT); got {context_length!r}")
        tokens = np.zeros((len(texts), context_length), dtype=np.int64)  # (B, L), padding is 0
        for i, encoding in enumerate(self._encode(texts, add_sot_eot=True)):
            ids = encoding.ids
            if len(ids) > context_length:
                if not truncate:
                    preview = texts[i] if len(texts[i]) <= 40 else texts[i][:40] + "..."
                    raise ValueError(f"caption {i} ({preview!r}) has {len(ids)} tokens with SOT and EOT, "
                                     f"more than context_length={context_length}; shorten it, raise context_length, "
                                     "or pass truncate=True to cut it")
                ids = ids[:context_length - 1] + [self.eot_token_id]
            tokens[i, :len(ids)] = ids
        return torch.from_numpy(tokens)  # (B, L)

    def encode(self, text: str) -> List[int]:
        """One caption -> its token ids, without SOT and EOT."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes one caption, a str; got {type(text).__name__} (call the tokenizer on lists)")
        return self._encode([text], add_sot_eot=False)[0].ids

    def decode(self, ids: Union[Sequence[int], torch.Tensor]) -> str:
        """Token ids -> cleaned text, words joined by single spaces; special tokens (SOT, EOT, <pad>, <unk>) dropped.

        Pass ids without OpenAI's padding: its pad id 0 is also the real token "!".
        """
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.tokenizer.decode(ids).removesuffix(" ")  # every word ends in "</w>", so the text ends in a space

    def to_json(self) -> str:
        """The tokenizer as one JSON string: the `tokenizers` JSON plus minclip's format tag (checkpoints embed it)."""
        return json.dumps({"format": FORMAT, "tokenizer": json.loads(self.tokenizer.to_str())})

    @classmethod
    def from_json(cls, text: str, source: str = "the JSON") -> "CLIPTokenizer":
        """Inverse of `to_json`. Text that is not such JSON raises a ValueError naming `source`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source} is not valid JSON ({error}); {REWRITE}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{source} is not a minclip tokenizer (no 'format': '{FORMAT}'); {REWRITE}")
        try:
            tokenizer = Tokenizer.from_str(json.dumps(data.get("tokenizer")))
        except Exception as error:  # `tokenizers` raises a plain Exception for JSON that is not a tokenizer
            raise ValueError(f"{source} has minclip's format tag but its 'tokenizer' entry is not a `tokenizers` "
                             f"tokenizer ({error}); {REWRITE}") from None
        return cls(tokenizer)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write `to_json()` to one file, to keep next to a checkpoint."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "CLIPTokenizer":
        """Read a file written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}; {REWRITE}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not a text file, so not a tokenizer JSON; {REWRITE}") from None
        return cls.from_json(text, source=str(path))

    def _encode(self, texts: List[str], add_sot_eot: bool) -> list:
        # encode_batch_fast skips the character offsets, which minclip never reads.
        return self.tokenizer.encode_batch_fast([words(t) for t in texts], add_special_tokens=add_sot_eot)


def make_tokenizer(model_config, state=None, corpus=None) -> CLIPTokenizer:
    """A run's tokenizer: from its checkpoint when resuming; OpenAI's BPE for the OpenAI presets; otherwise a small
    BPE trained (deterministically) on the training captions. corpus: a function returning those captions, called
    only when a tokenizer must be trained (default: ShapeWorld's caption corpus)."""
    if state is not None:
        return CLIPTokenizer.from_json(state["tokenizer"])
    if model_config.tokenizer == "openai":
        return CLIPTokenizer.from_openai_vocab()
    if corpus is None:
        from .data import ShapeWorld  # imported late: the tokenizer needs the data package only for this default
        corpus = ShapeWorld(seed=0).caption_corpus
    return CLIPTokenizer.train(corpus(), vocab_size=model_config.text.vocab_size)


def _byte_level(model: models.BPE) -> Tokenizer:
    """Wrap a BPE model with GPT-2's byte-to-character mapping on the way in and "</w>" -> space on the way out."""
    tokenizer = Tokenizer(model)
    # The text arrives as `words` output: split at the spaces, then map each word's bytes to characters (use_regex=False
    # turns off the byte-level step's own GPT-2 word regex; the words are OpenAI's already).
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    # Bytes back to text first (a piece can hold half a character), then word ends to spaces, as OpenAI's decode.
    tokenizer.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace(END_OF_WORD, " ")])
    return tokenizer


def _with_sot_eot(tokenizer: Tokenizer) -> Tokenizer:
    """Register SOT and EOT (ids kept if the vocabulary has them, else appended as the two largest) and the template
    that brackets every caption with them."""
    tokenizer.add_special_tokens([SOT, EOT])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}", special_tokens=[(SOT, tokenizer.token_to_id(SOT)), (EOT, tokenizer.token_to_id(EOT))]
    )
    return tokenizer


def _as_captions(texts) -> List[str]:
    """A caption or a list of captions -> a list of str; anything else is refused here, at the boundary."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a str or a list of str; got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is a {type(text).__name__}, not a str; pass captions as strings")
    return list(texts)


def _open_clip_vocab_file() -> Path:
    # find_spec locates open_clip without importing it: the import is slow, and it switches off tokenizers' threads.
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"open_clip is not installed, so minclip cannot find {OPENAI_VOCAB_FILE}; pass "
                                "from_openai_vocab(path=...) or `pip install open_clip_torch`")
    return Path(spec.submodule_search_locations[0]) / OPENAI_VOCAB_FILE
