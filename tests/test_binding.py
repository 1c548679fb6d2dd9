"""minclip/binding.py (the benchmark, the blind baseline, NegCLIP's negatives), loss.negclip_loss, --hard-negatives
and --task binding."""
import json
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import minclip
from minclip import binding as B, train as T
from minclip.data import ShapeWorld
from minclip.loss import clip_loss, negclip_loss


@pytest.fixture(scope="module")
def world():
    return ShapeWorld(seed=0, image_size=32)


@pytest.fixture(scope="module")
def items(world):
    return {(kind, split): B.benchmark(world, kind, 200, split) for kind in B.NEGATIVE_TYPES for split in B.SPLITS}


def words(caption):
    return Counter(re.findall(r"[a-z]+", caption))


def test_items_are_minimal_pairs_of_the_right_kind(items):
    for (kind, split), it in items.items():
        assert len(it.captions_a) == len(it.images_a) == len(it.images_b) == 200
        assert all(a != b for a, b in zip(it.captions_a, it.captions_b))
        # the two images of an item differ (in the objects) and share everything else, background and noise
        differ = (it.images_a != it.images_b).flatten(1)
        assert differ.any(1).all(), kind
        assert (differ.float().mean(1) < 0.5).all(), f"{kind}: more than the objects changed between A and B"
        for a, b in zip(it.captions_a, it.captions_b):
            if kind.startswith("swap"):  # the same words, in another order
                assert words(a) == words(b), (a, b)
            else:  # one word changed
                assert sum((words(a) - words(b)).values()) == 1 and len(a.split()) == len(b.split()), (a, b)
            if kind == "swap_relation":
                assert re.fullmatch(r"a \w+ \w+ (left of|right of|above|below) a \w+ \w+", a), a


def test_splits_hold_seen_or_held_out_pairs(world, items):
    holdout = set(world.holdout_pairs)
    for (kind, split), it in items.items():
        named = [B._names_holdout(a, holdout) or B._names_holdout(b, holdout)
                 for a, b in zip(it.captions_a, it.captions_b)]
        assert all(named) if split == "unseen" else not any(named), (kind, split)


def test_the_benchmark_is_deterministic_by_seed(world):
    one, two = B.benchmark(world, "swap_attribute", 20, seed=3), B.benchmark(world, "swap_attribute", 20, seed=3)
    assert one.captions_a == two.captions_a and torch.equal(one.images_b, two.images_b)
    assert B.benchmark(world, "swap_attribute", 20, seed=4).captions_a != one.captions_a


def truth(it):
    """The true caption of every image of the items, by its pixels."""
    known = {}
    for images, captions in ((it.images_a, it.captions_a), (it.images_b, it.captions_b)):
        for image, caption in zip(images, captions):
            known[image.numpy().tobytes()] = caption
    return known


def test_scores_count_both_directions_with_ties_as_coin_flips(items):
    it = items["swap_attribute", "seen"]
    known = truth(it)
    oracle = lambda images, captions: torch.tensor([float(known[x.numpy().tobytes()] == c)  # noqa: E731
                                                    for x, c in zip(images, captions)])
    assert B.binding_scores(oracle, it) == {"text": 1.0, "image": 1.0, "one_sided": 1.0}
    contrary = lambda images, captions: -oracle(images, captions)  # noqa: E731
    assert B.binding_scores(contrary, it) == {"text": 0.0, "image": 0.0, "one_sided": 0.0}
    constant = lambda images, captions: torch.zeros(len(captions))  # noqa: E731
    assert B.binding_scores(constant, it) == {"text": 0.5, "image": 0.5, "one_sided": 0.5}
    # a bag of words cannot tell a swap from the truth: every comparison is a tie
    bag = lambda images, captions: torch.tensor([hash(tuple(sorted(c.split()))) % 1000 for c in captions],  # noqa
                                                dtype=torch.float64)
    assert B.binding_scores(bag, it)["text"] == 0.5


def test_the_blind_baseline_is_at_chance_on_every_type_and_split(world, items):
    lm = B.CaptionLM(world.caption_corpus(5000)[:5000])
    assert lm.log_prob("a red circle") > lm.log_prob("circle red a")  # it is a language model
    for key, it in items.items():
        scores = B.binding_scores(lm.scorer(), it)
        assert scores["text"] == scores["image"] == 0.5, key  # by construction: each caption is true of one image
        # each image against its own negative only (ARO's measure): the wording must not give the negative away
        assert abs(scores["one_sided"] - 0.5) < 0.1, (key, scores)


def test_bad_arguments_are_refused(world):
    with pytest.raises(ValueError, match="negative type"):
        B.benchmark(world, "swap", 10)
    with pytest.raises(ValueError, match="split"):
        B.benchmark(world, "swap_attribute", 10, split="test")
    with pytest.raises(ValueError, match="positive"):
        B.benchmark(world, "swap_attribute", 0)


@pytest.mark.parametrize("caption, negative", [
    ("a photo of a red circle and a blue square.", "a photo of a blue circle and a red square."),
    ("a small red star left of a green cross", "a green cross left of a small red star"),
    ("a picture where the number of shapes is two", None),  # nothing to swap: one word changed
])
def test_hard_negatives_swap_what_the_caption_allows(caption, negative):
    rng = np.random.default_rng(0)
    drawn = {B.hard_negative(caption, rng) for _ in range(40)}
    if negative is not None:
        assert negative in drawn
    assert caption not in drawn
    for d in drawn:
        assert len(d.split()) == len(caption.split())


def test_a_list_of_objects_in_another_order_is_not_a_negative(world):
    # "a pink square and a pink heart" -> "a pink heart and a pink square" swaps two shape words but says the same
    drawn = {B.hard_negative("a pink square and a pink heart", np.random.default_rng(i)) for i in range(60)}
    assert "a pink heart and a pink square" not in drawn
    assert "a pink heart left of a pink square" in {  # in a relation the order is the meaning: that one is a negative
        B.hard_negative("a pink square left of a pink heart", np.random.default_rng(i)) for i in range(10)}
    captions = [c for c in world.pretraining(2000, seed=4, objects=(2, 3), caption_style="complete").captions
                if not B._RELATION.search(c)]
    objects = lambda c: Counter(B._OBJECT.findall(c))  # noqa: E731
    for caption, negative in zip(captions, B.hard_negatives(captions, seed=0, holdout=set(world.holdout_pairs))):
        assert objects(negative) != objects(caption), (caption, negative)


def test_every_training_caption_gets_a_negative_that_names_no_held_out_pair(world):
    holdout = set(world.holdout_pairs)
    captions = world.caption_corpus(5000)[:5000]
    negatives = B.hard_negatives(captions, seed=1, holdout=holdout)
    assert all(n != c for n, c in zip(negatives, captions))
    assert not any(B._names_holdout(n, holdout) for n in negatives)
    swapped = sum(words(n) == words(c) for n, c in zip(negatives, captions))
    # a swap wherever the caption names two objects apart (about a quarter of these alt-text-like captions)
    assert swapped > 0.2 * len(captions), f"only {swapped} of {len(captions)} captions got a swap"
    # a function of (seed, row) only: two ranks holding halves of the batch draw what one process draws
    assert B.hard_negatives(captions[:7], 1, holdout) + B.hard_negatives(captions[7:20], 1, holdout, first=7) \
        == negatives[:20]
    with pytest.raises(ValueError, match="no hard negative"):
        B.hard_negative("a picture", np.random.default_rng(0))


def embeds(B_, E=8, M=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    unit = lambda n: F.normalize(torch.randn(n, E, generator=g, dtype=torch.float64), dim=-1)  # noqa: E731
    return unit(B_), unit(B_), unit(B_ if M is None else M)


def test_negclip_loss_is_its_formula_and_clip_loss_without_negatives():
    images, texts, negatives = embeds(6)
    s = torch.tensor(7.0, dtype=torch.float64)
    torch.testing.assert_close(negclip_loss(images, texts, negatives[:0], s), clip_loss(images, texts, s),
                               rtol=1e-14, atol=0)
    # the oracle, one image and one caption at a time: -log softmax over its candidates
    i2t = [-(s * images[i] @ texts[i]) + torch.logsumexp(s * images[i] @ torch.cat([texts, negatives]).T, 0)
           for i in range(6)]
    t2i = [-(s * texts[j] @ images[j]) + torch.logsumexp(s * texts[j] @ images.T, 0) for j in range(6)]
    torch.testing.assert_close(negclip_loss(images, texts, negatives, s),
                               (torch.stack(i2t).mean() + torch.stack(t2i).mean()) / 2, rtol=1e-12, atol=0)
    # a hard negative on top of the image costs more than one opposite to it, and either costs more than none
    assert negclip_loss(images, texts, images, s) > negclip_loss(images, texts, -images, s) > clip_loss(
        images, texts, s)
    with pytest.raises(ValueError, match="negative_embeds"):
        negclip_loss(images, texts, negatives[:, :4], s)


def test_gradcache_chunks_equal_one_batch_with_hard_negatives():
    """The texts are the b captions then their b negatives; GradCache's chunks of images and of texts still give
    the whole batch's loss and gradients."""
    from test_train import batch, grads, tiny_model

    images, tokens = batch(16)
    _, negatives = batch(16, seed=1)
    tokens = torch.cat([tokens, negatives])  # (2B, L)
    model = tiny_model().double()
    loss_fn = lambda i, t, s: negclip_loss(i, t[:len(i)], t[len(i):], s)  # noqa: E731
    loss1 = T.train_step(model, images.double(), tokens, loss_fn, accum_steps=1)
    g1 = grads(model)
    model.zero_grad(set_to_none=True)
    loss4 = T.train_step(model, images.double(), tokens, loss_fn, accum_steps=4)
    g4 = grads(model)
    torch.testing.assert_close(loss4, loss1, atol=0, rtol=1e-12)
    for name in g1:
        torch.testing.assert_close(g4[name], g1[name], atol=1e-12, rtol=1e-9, msg=name)


def test_hard_negative_training_resumes_bit_identically(tmp_path, crash_after):
    flags = dict(steps=6, batch_size=16, warmup=1, save_every=2, objects="1,3", hard_negatives="swap",
                 eval_every=10 ** 9, quiet=True)
    T.train(T.TrainConfig(**flags, out=str(tmp_path / "straight")))
    with crash_after(3):
        T.train(T.TrainConfig(**flags, out=str(tmp_path / "split")))
    T.train(T.TrainConfig(out=str(tmp_path / "split"), resume=True))
    a, b = (minclip.load(tmp_path / n)[0].state_dict() for n in ("straight", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert config["train"]["hard_negatives"] == "swap"


@pytest.mark.parametrize("argv, match", [
    (["--hard-negatives", "all"], "use none or swap"),
    (["--hard-negatives", "swap", "--loss", "siglip"], "--loss clip"),
])
def test_hard_negative_flags_are_checked(argv, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        T.parse_args(["--steps", "2"] + argv + ["--out", str(tmp_path / "x")]).check()


@pytest.mark.slow
def test_eval_task_binding_writes_its_json_and_figure(tmp_path):
    T.train(T.TrainConfig(steps=4, batch_size=16, objects="1,3", eval_every=10 ** 9, quiet=True,
                          out=str(tmp_path / "run")))
    r = subprocess.run([sys.executable, "-m", "minclip.eval", "--checkpoint", str(tmp_path / "run"), "--task",
                        "binding", "--n", "40", "--out", str(tmp_path / "eval")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((tmp_path / "eval" / "binding.json").read_text())
    assert (tmp_path / "eval" / "binding.png").stat().st_size > 5000
    assert set(result["types"]) == set(result["blind"]) == set(B.NEGATIVE_TYPES)
    for kind in B.NEGATIVE_TYPES:
        for split in B.SPLITS:
            assert 0 <= result["types"][kind][split]["text"] <= 1
            assert result["blind"][kind][split]["text"] == 0.5
    assert set(result["single_object_zeroshot"]) == {"seen", "unseen"} and result["n_items"] == 40
    assert "swap_attribute" in r.stdout and "chance 50%" in r.stdout


@pytest.mark.slow
def test_a_likelihood_model_is_scored_by_the_caption_likelihood(tmp_path, world):
    """The captioning baseline scores (image, caption) by log p(caption | image): pair_scorer's other path."""
    from baselines import captioning

    captioning.train(captioning.CaptioningRun(steps=3, batch_size=16, objects="1,3", eval_every=10 ** 9, quiet=True,
                                              out=str(tmp_path / "cap")))
    model, tokenizer, preprocess = minclip.load(tmp_path / "cap")
    it = B.benchmark(world, "swap_attribute", 8)
    score = B.pair_scorer(model, tokenizer, preprocess)(it.images_a, it.captions_a)
    tokens = tokenizer(it.captions_a, context_length=model.context_length, truncate=True)
    with torch.no_grad():
        full = model.prompt_log_likelihood(preprocess(it.images_a), tokens)  # (n, n)
    torch.testing.assert_close(score, full.diagonal().float())
