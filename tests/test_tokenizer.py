"""minclip/tokenizer.py: ids identical to open_clip's tokenizer on a varied corpus, padding/truncation/EOT rules,
the trainable tokenizer, save/load, and clear errors."""
import html
import inspect
import json
import random
import string
from pathlib import Path

import ftfy
import pytest
import torch
from tokenizers import Tokenizer, models

from minclip.tokenizer import EOT, PAD, SOT, UNK, CLIPTokenizer, clean, words

open_clip = pytest.importorskip("open_clip")  # the oracle: a dev dependency


@pytest.fixture(scope="module")
def openai():
    return CLIPTokenizer.from_openai_vocab()


@pytest.fixture(scope="module")
def ref():
    return open_clip.get_tokenizer("ViT-B-32")


def openai_clean(text):
    """OpenAI's cleaning, written out as in open_clip's tokenizer.py (basic_clean, whitespace_clean, lower)."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip().lower()


# ---------------------------------------------------------------------------------------------------- test corpus
def word_list():
    """Real words: license texts where the system has them, and docstrings of Python's own modules."""
    text = [p.read_text(errors="ignore") for p in sorted(Path("/usr/share/common-licenses").glob("*")) if p.is_file()]
    for module in (str, dict, list, json, random, string, inspect, Path, html):
        text += [inspect.getdoc(getattr(module, name)) or "" for name in sorted(dir(module))]
    return sorted(set(" ".join(text).split()))


SHAPES = ["circle", "square", "triangle", "star", "cross", "heart", "diamond", "hexagon"]
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "cyan", "white"]
PLACES = ["in the top left", "in the bottom right", "in the centre", "on the left", "on the right"]


def shapeworld_captions(n, seed):
    """ShapeWorld-like alt-text: templates that mention some attributes and leave others out."""
    rng = random.Random(seed)
    templates = ["a {s} {c} {h} {p}", "a {c} {h}", "two {c} {h}s {p}", "a sketch of a {s} {h}", "a {h} {p}"]
    return [rng.choice(templates).format(s=rng.choice(["small", "large"]), c=rng.choice(COLOURS),
                                         h=rng.choice(SHAPES), p=rng.choice(PLACES)) for _ in range(n)]


FRAGMENTS = {
    "punctuation": [*string.punctuation, "...", "!?", "--", "—", "–", "“quoted”", "‘single’", "«»", "¿¡", "(e.g.)"],
    "digits": ["3.14", "1,000", "2026-11-28", "42", "007", "½", "²", "٣", "①", "Ⅻ", "1e-5", "#1"],
    "accents": ["naïve", "café", "déjà-vu", "résumé", "façade", "coöperate", "Ångström", "Straße", "İstanbul", "ıi",
                "Tiếng Việt", "e\u0301", "ǅ", "ﬁne", "ＬＯＵＤ", "𝐀𝐁𝐂", "a\u0345b"],
    "scripts": ["Καλημέρα", "Привет мир", "مرحبا", "שלום", "नमस्ते", "สวัสดี", "中文", "日本語", "한국어", "カタカナ",
                "ひらがな", "漢字テスト", "你好，世界。"],
    "emoji": ["😀", "🐱", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "✔", "☃", "🤖🤖"],
    "html": ["&amp;", "&lt;b&gt;", "&quot;", "&#39;", "&#x27;", "&nbsp;", "&amp;amp;", "&amp;lt;", "&eacute;",
             "&hellip;", "&copy;", "<b>bold</b>", "&notanentity;", "&", "a&b"],
    "whitespace": [" ", "  ", "\t", "\n", "\r\n", "\xa0", "\u3000", "\u2028", "\x0b", "\x0c", "\x1c", "\u200b"],
    "oddities": ["\x00", "\x1b[31mred\x1b[0m", "\x7f", "cafÃ©", "â€™", "Ã¼ber", "\ufeff", "\u200d", "\U000e0041"],
    "contractions": ["it's", "IT'S", "we'll", "they're", "I'm", "you've", "she'd", "don't", "rock'n'roll", "it’s"],
    "special": [SOT, EOT, "!" + EOT, "<START_OF_TEXT>", f"x{SOT}y", PAD, UNK],
}


def random_codepoints(rng, n):
    points = [rng.choice([rng.randrange(0x20, 0x3000), rng.randrange(0x3000, 0xD800), rng.randrange(0x10000, 0x30000)])
              for _ in range(n)]
    return "".join(map(chr, points))


def make_corpus(n=5000, seed=0):
    """Varied strings, seeded: prose from real words with sprinkles of every fragment kind, fragment soups, captions,
    empty strings, texts too long for 77 tokens, and random code points."""
    rng, vocab, kinds = random.Random(seed), word_list(), sorted(FRAGMENTS)
    separators = [" ", " ", " ", "", "  ", "\t", "\n", " \n "]
    corpus = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.35:  # prose
            parts = [rng.choice(vocab) for _ in range(rng.randint(1, 20))]
            parts += [rng.choice(FRAGMENTS[rng.choice(kinds)]) for _ in range(rng.randint(0, 3))]
            rng.shuffle(parts)
        elif kind < 0.65:  # fragment soup
            parts = [rng.choice(FRAGMENTS[rng.choice(kinds)]) for _ in range(rng.randint(1, 12))]
        elif kind < 0.75:  # captions, in any case
            caption = shapeworld_captions(1, seed=i)[0]
            parts = [rng.choice([caption, caption.upper(), caption.title()]) + rng.choice(["", ".", "!", " ,"])]
        elif kind < 0.80:  # empty or blank
            parts = [rng.choice(["", " ", "\n\t ", "\u3000"])]
        elif kind < 0.90:  # long: usually more than 77 tokens
            parts = [rng.choice(vocab) for _ in range(rng.randint(40, 150))]
        else:
            parts = [random_codepoints(rng, rng.randint(1, 30))]
        corpus.append("".join(p + rng.choice(separators) for p in parts))
    return corpus


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


def without_special_tokens(texts):
    """OpenAI's tokenizer turns a literal "<end_of_text>" in a caption into EOT; leave those out where that matters."""
    return [t for t in texts if SOT not in t.lower() and EOT not in t.lower()]


# ---------------------------------------------------------------------------------------------------- OpenAI parity
def test_vocabulary_is_openais(openai, ref):
    assert openai.tokenizer.get_vocab() == ref.encoder
    assert (openai.vocab_size, openai.sot_token_id, openai.eot_token_id) == (49408, 49406, 49407)
    assert (openai.sot_token_id, openai.eot_token_id) == (ref.sot_token_id, ref.eot_token_id)


@pytest.mark.slow
def test_ids_identical_to_open_clip_on_varied_corpus(openai, ref, corpus):
    assert len(corpus) >= 5000
    mine, theirs = openai(corpus, truncate=True), ref(corpus)  # open_clip truncates silently
    differ = [corpus[i] for i in (mine != theirs).any(1).nonzero().flatten().tolist()]
    assert not differ, f"{len(differ)} strings differ, e.g. {differ[:3]!r}"
    # The corpus really covers the hard cases: truncation, empty captions, non-ASCII text and HTML entities.
    assert (theirs[:, -1] == ref.eot_token_id).sum() > 300
    assert (theirs[:, 1] == ref.eot_token_id).sum() > 100  # empty after cleaning
    assert sum(not s.isascii() for s in corpus) > 1500 and sum("&" in s for s in corpus) > 300


def test_captions_that_fit_need_no_truncate(openai, ref, corpus):
    fits = [s for s in corpus[:2000] if len(ref.encode(s)) <= 75]
    assert len(fits) > 1000
    assert torch.equal(openai(fits), ref(fits))


def test_encode_and_decode_match_open_clip(openai, ref, corpus):
    for text in without_special_tokens(corpus[:1000]):
        ids = openai.encode(text)
        assert ids == ref.encode(text)
        assert openai.decode(ids) == ref.decode(ids).removesuffix(" ")  # open_clip leaves one trailing space
    assert openai.decode(torch.tensor(ids)) == openai.decode(ids)


def test_cleaning_shortcut_is_exact():
    """clean() skips ftfy on printable ASCII without "&"; on such text and near misses it must equal OpenAI's."""
    rng = random.Random(0)
    alphabet = string.printable + "&;#\x00\x1b\x7f"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    texts += ["&amp;lt;", "a &amp b", "x\ry", "\x1b[1mbold", "tab\there", "a\x0bb", "a\x1cb"]
    assert [clean(t) for t in texts] == [openai_clean(t) for t in texts]


def test_words_are_openais_split(openai, ref):
    assert words("A photo of  a CAT, isn't it?") == "a photo of a cat , isn 't it ?"
    # OpenAI's regex reads a literal special token as one only where a word can start, not inside a symbol run.
    assert words("x" + EOT + "!" + EOT) == f"x {EOT} !< end _ of _ text >"
    assert openai.encode("x" + EOT + "!" + EOT) == ref.encode("x" + EOT + "!" + EOT)


# ---------------------------------------------------------------------------------------------------- rows: pad, EOT
def test_rows_are_sot_tokens_eot_then_zeros(openai, corpus):
    tokens = openai(without_special_tokens(corpus[:500]), truncate=True)
    B, L = tokens.shape
    assert B > 400 and L == 77 and tokens.dtype == torch.long
    assert (tokens[:, 0] == openai.sot_token_id).all()
    eot = tokens.argmax(-1)  # how the text tower pools: EOT is the largest id
    assert (tokens[torch.arange(B), eot] == openai.eot_token_id).all()
    after = torch.arange(L) > eot[:, None]  # (B, L)
    assert (tokens[after] == 0).all() and (tokens[~after] != 0).sum() > 0


def test_context_length_fits_exactly(openai):
    assert openai("a " * 75)[0, -1] == openai.eot_token_id  # 75 tokens + SOT + EOT fit exactly
    with pytest.raises(ValueError, match="has 78 tokens"):
        openai("a " * 76)
    assert openai([], context_length=5).shape == (0, 5)


def test_overflow_error_names_caption_and_length(openai, ref):
    long = "A small red circle in the top left. " * 12
    with pytest.raises(ValueError) as error:
        openai(["a cat", long], context_length=77)
    message, n = str(error.value), len(ref.encode(long)) + 2
    for part in ["caption 1", "'A small red circle", f"{n} tokens", "context_length=77", "truncate=True"]:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("context_length", [2, 5, 16, 77])
def test_truncate_keeps_eot_last(openai, ref, context_length):
    texts = ["one two three four five six seven eight nine ten, " * 10, "hi"]  # 112 tokens, and 3
    cut, full = openai(texts, context_length, truncate=True), openai(texts, 200)
    assert cut[0, -1] == openai.eot_token_id
    assert torch.equal(cut[0, :-1], full[0, :context_length - 1])
    assert torch.equal(cut, ref(texts, context_length=context_length))


# ---------------------------------------------------------------------------------------------------- trained
@pytest.fixture(scope="module")
def captions():
    return shapeworld_captions(2000, seed=1)


def test_trained_layout_pad_zero_and_eot_largest(captions):
    tok = CLIPTokenizer.train(captions, vocab_size=512)
    vocab = tok.tokenizer.get_vocab()
    assert tok.vocab_size <= 512 and (vocab[PAD], vocab[UNK]) == (0, 1)
    assert (tok.sot_token_id, tok.eot_token_id) == (tok.vocab_size - 2, tok.vocab_size - 1)
    tokens = tok(captions, context_length=16)
    real = (tokens != 0) & (tokens != tok.sot_token_id) & (tokens != tok.eot_token_id)
    assert real.sum() > 2000 and (tokens[real] > 1).all()  # no real token is padding or <unk>
    assert (tokens.argmax(-1) == (tokens != 0).sum(-1) - 1).all()  # argmax finds EOT, right before the padding


def test_trained_round_trips_captions(captions):
    tok = CLIPTokenizer.train(captions, vocab_size=256)
    for caption in captions[:200] + ["a large cyan hexagon on the left", "Two RED stars in the CENTRE"]:
        assert tok.decode(tok.encode(caption)) == words(caption)
    assert tok.decode(tok.encode("a small red circle in the top left")) == "a small red circle in the top left"
    assert tok.decode(tok("a small red circle")[0]) == "a small red circle"  # SOT, EOT and <pad> are dropped


def test_trained_marks_unseen_characters_unknown(captions):
    tok = CLIPTokenizer.train(captions, vocab_size=256)
    assert tok.tokenizer.token_to_id(UNK) in tok.encode("a zebra")  # "z" is not in any caption: <unk>, not dropped


def test_training_is_deterministic(captions):
    first = CLIPTokenizer.train(captions, vocab_size=300).tokenizer.to_str()
    assert all(CLIPTokenizer.train(captions, vocab_size=300).tokenizer.to_str() == first for _ in range(3))


def test_save_load_gives_identical_ids(tmp_path, openai, captions, corpus):
    for name, tok, texts in [("openai", openai, corpus[:500]), ("trained", CLIPTokenizer.train(captions), captions)]:
        path = tmp_path / f"{name}.json"
        tok.save(path)
        assert json.loads(path.read_text())["format"] == "minclip.CLIPTokenizer"
        loaded = CLIPTokenizer.load(path)
        assert (loaded.vocab_size, loaded.sot_token_id, loaded.eot_token_id) == (
            tok.vocab_size, tok.sot_token_id, tok.eot_token_id)
        assert torch.equal(loaded(texts, truncate=True), tok(texts, truncate=True))


# ---------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, error, words_in_message", [
    (lambda t: t(3), TypeError, "str or a list of str"),
    (lambda t: t(["a", None]), TypeError, "texts[1] is a NoneType"),
    (lambda t: t("a", context_length=1), ValueError, "context_length must be an int >= 2"),
    (lambda t: t("a", context_length=77.0), ValueError, "context_length must be an int"),
    (lambda t: t.encode(["a"]), TypeError, "one caption"),
    (lambda t: CLIPTokenizer.train(["a red circle"], vocab_size=4), ValueError, "vocab_size must be an int >= 5"),
    (lambda t: CLIPTokenizer.train(["a red circle"], vocab_size=10), ValueError, "raise vocab_size"),
    (lambda t: CLIPTokenizer.train(["", " "]), ValueError, "non-empty captions"),
    (lambda t: CLIPTokenizer.from_openai_vocab("/no/such/vocab.txt.gz"), FileNotFoundError, "no OpenAI vocabulary"),
])
def test_bad_input_raises_clear_errors(openai, call, error, words_in_message):
    with pytest.raises(error) as info:
        call(openai)
    assert words_in_message in str(info.value)


def test_eot_must_be_the_largest_id():
    with pytest.raises(ValueError, match="not the largest id"):
        CLIPTokenizer(Tokenizer(models.WordLevel({EOT: 0, SOT: 1, "a": 2}, unk_token="a")))


def test_missing_open_clip_says_how_to_fix(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install open_clip_torch"):
        CLIPTokenizer.from_openai_vocab()


def test_load_refuses_other_json(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(CLIPTokenizer.train(["a red circle"]).tokenizer.to_str())  # a bare tokenizers file
    with pytest.raises(ValueError, match="not a minclip tokenizer"):
        CLIPTokenizer.load(path)


@pytest.mark.parametrize("content, error, message", [
    ('{"format": "minclip.CLIPTokenizer", ', ValueError, "is not valid JSON \\(Expecting"),
    ("[1, 2, 3]", ValueError, "is not a minclip tokenizer"),
    ('{"format": "minclip.CLIPTokenizer", "tokenizer": {"model": 3}}', ValueError,
     "its 'tokenizer' entry is not a `tokenizers` tokenizer"),
    ('{"format": "minclip.CLIPTokenizer"}', ValueError, "its 'tokenizer' entry is not a `tokenizers` tokenizer"),
    (b"\xff\xd8\xff\xe0 a JPEG", ValueError, "is not a text file"),
    (None, FileNotFoundError, "no tokenizer file at"),
])
def test_a_malformed_tokenizer_file_is_named_with_the_fix(tmp_path, content, error, message):
    path = tmp_path / "tokenizer.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(error, match=message) as raised:
        CLIPTokenizer.load(path)
    assert str(path) in str(raised.value) and "CLIPTokenizer.save" in str(raised.value)
