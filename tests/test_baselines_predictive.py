"""The predictive objectives of CLIP's Fig. 2 (baselines/captioning.py, bow_prediction.py, bow_contrastive.py): each
loss and each likelihood score against a slow oracle written from its definition, a float64 gradient check, and
a smoke run that minclip.load and `python -m minclip.eval` open like any run."""
import json

import pytest
import torch

from baselines import bow_contrastive, bow_prediction, captioning, common
from minclip import CLIPConfig, checkpoint, eval as minclip_eval, suite
from minclip.data import ShapeWorld
from minclip.tokenizer import make_tokenizer
from minclip.zeroshot import prompt_likelihoods, scores_likelihood

CONFIG = CLIPConfig.preset("tiny")
V = CONFIG.text.vocab_size
TOKENIZER = make_tokenizer(CONFIG, corpus=lambda: ShapeWorld(seed=0).caption_corpus(n=500))  # fewer ids than V


# A 12-id vocabulary for the gradient checks (gradcheck perturbs every input: 512 ids would take minutes):
# SOT 10, EOT 11 (the largest id), captions of 1 to 3 words, then padding 0.
SMALL = torch.tensor([[10, 3, 11, 0, 0], [10, 1, 4, 5, 11], [10, 2, 2, 11, 0]])


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    images, captions = ShapeWorld(seed=0).pretraining(6, seed=3)
    tokens = TOKENIZER(captions, context_length=CONFIG.text.context_length, truncate=True)
    return torch.randn(6, 3, 32, 32, dtype=torch.float64), tokens, TOKENIZER


def words(tokens_row):
    """The caption's word ids, by the definition: everything after SOT up to (not including) EOT."""
    ids = tokens_row.tolist()
    assert ids[0] == TOKENIZER.sot_token_id
    return ids[1:ids.index(TOKENIZER.eot_token_id)]


def test_bag_of_words_counts_the_words_between_sot_and_eot(batch):
    _, tokens, _ = batch
    counts = bow_prediction.bag_of_words(tokens, V)
    for row, c in zip(tokens, counts):
        expected = torch.zeros(V)
        for w in words(row):
            expected[w] += 1
        assert torch.equal(c, expected)
        assert c[TOKENIZER.eot_token_id] == 0 and c[TOKENIZER.sot_token_id] == 0  # neither marker is a word


def test_bow_loss_is_the_cross_entropy_against_the_word_distribution(batch):
    _, tokens, _ = batch
    logits = torch.randn(len(tokens), V, dtype=torch.float64)
    loss = bow_prediction.bow_loss(logits, bow_prediction.bag_of_words(tokens, V).double())
    oracle = 0.0
    for z, row in zip(logits, tokens):  # -1/n sum over the caption's words of log p(word)
        w = words(row)
        oracle += -sum(float(torch.log_softmax(z, 0)[i]) for i in w) / len(w)
    assert loss.item() == pytest.approx(oracle / len(tokens), rel=1e-10)


def test_bow_loss_gradient_float64():
    counts = bow_prediction.bag_of_words(SMALL, 12).double()
    logits = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: bow_prediction.bow_loss(z, counts), (logits,))
    bow_prediction.bow_loss(logits, counts).backward()  # the derivation: d loss / d z = (p - q) / B
    q = counts / counts.sum(1, keepdim=True)
    assert torch.allclose(logits.grad, (logits.softmax(1) - q) / 3, atol=1e-12)


def test_bow_prompt_likelihood_is_each_bags_log_likelihood(batch):
    images, tokens, _ = batch
    model = bow_prediction.BowPredictor(CONFIG).double().eval()
    scores = model.prompt_log_likelihood(images, tokens)  # (B, M)
    log_p = torch.log_softmax(model(images), dim=1)  # (B, V)
    for b in range(len(images)):
        for m in range(len(tokens)):
            assert scores[b, m].item() == pytest.approx(sum(log_p[b, w].item() for w in words(tokens[m])), rel=1e-10)


def slow_caption_log_likelihood(model, image, row):
    """log p(caption | image), one token at a time: for each target, run the decoder on the image token and the
    tokens before it only, and read the last position's prediction (nothing after the target is even there; the
    test below checks that the mask hides later tokens in the batched forward)."""
    d = model.text
    prefix = d.image_proj(model.visual(image[None]))  # (1, D)
    ids = row.tolist()[:row.tolist().index(TOKENIZER.eot_token_id) + 1]  # SOT ... EOT
    total = 0.0
    for j in range(1, len(ids)):
        x = torch.cat([prefix, d.token_embedding(torch.tensor(ids[:j]))])  # (j + 1, D): image, t_0 .. t_{j-1}
        x = d.transformer((x + d.positional_embedding[:j + 1])[None], causal=True)[0]
        total += torch.log_softmax(d.head(d.ln_final(x[-1])), 0)[ids[j]].item()
    return total


def test_caption_likelihood_and_loss_match_a_token_by_token_oracle(batch):
    images, tokens, _ = batch
    torch.manual_seed(1)
    model = captioning.Captioner(CONFIG).double().eval()
    logits = model(images, tokens)
    ll = captioning.caption_log_likelihood(logits, tokens)
    oracle = [slow_caption_log_likelihood(model, images[b], tokens[b]) for b in range(len(images))]
    assert ll.tolist() == pytest.approx(oracle, rel=1e-9)
    n_targets = sum(len(words(row)) + 1 for row in tokens)  # every word and the EOT
    assert captioning.caption_loss(logits, tokens).item() == pytest.approx(-sum(oracle) / n_targets, rel=1e-9)
    scores = model.prompt_log_likelihood(images[:2], tokens[:3])  # every (image, prompt) pair
    for b in range(2):
        for m in range(3):
            assert scores[b, m].item() == pytest.approx(slow_caption_log_likelihood(model, images[b], tokens[m]),
                                                        rel=1e-9)


def test_caption_loss_gradient_float64():
    logits = torch.randn(3, 4, 12, dtype=torch.float64, requires_grad=True)  # n = 4: the last EOT's position
    assert torch.autograd.gradcheck(lambda z: captioning.caption_loss(z, SMALL), (logits,))


def test_a_caption_token_never_sees_a_later_one(batch):
    images, tokens, _ = batch
    model = captioning.Captioner(CONFIG).double().eval()
    changed = tokens.clone()
    changed[:, 3] = 5  # change token 3: the predictions of tokens 1..3 (logits 0..2) must not move
    a, b = model(images, tokens), model(images, changed)
    assert torch.equal(a[:, :3], b[:, :3]) and not torch.allclose(a[:, 3:], b[:, 3:])


def test_bag_of_words_text_is_the_mean_word_embedding_projected(batch):
    _, tokens, _ = batch
    text = bow_contrastive.BagOfWordsText(V, 16, 8).double()
    out = text(tokens)
    for row, o in zip(tokens, out):
        w = words(row)
        mean = sum(text.token_embedding.weight[i] for i in w) / len(w)
        assert torch.allclose(o, mean @ text.text_projection, atol=1e-12)
    shuffled = tokens.clone()  # word order does not matter
    for row, s in zip(tokens, shuffled):
        n = len(words(row))
        s[1:n + 1] = row[1:n + 1].flip(0)
    assert torch.allclose(text(shuffled), out, atol=1e-12)
    small = bow_contrastive.BagOfWordsText(12, 4, 3).double()  # the gradient, in float64
    forward = lambda e, w: torch.func.functional_call(small, {"token_embedding.weight": e, "text_projection": w},
                                                       (SMALL,))
    assert torch.autograd.gradcheck(forward, (small.token_embedding.weight.detach().requires_grad_(),
                                              small.text_projection.detach().requires_grad_()))


def test_zero_shot_takes_the_likelihood_path_for_predictive_models(batch):
    images, _, tokenizer = batch
    model = bow_prediction.BowPredictor(CONFIG).double()
    assert scores_likelihood(model) and not scores_likelihood(bow_contrastive.BagOfWordsCLIP(CONFIG))
    names, templates = ["red circle", "blue square", "green star"], ["a {}.", "a photo of a {}."]
    scores = prompt_likelihoods(model, tokenizer, images, names, templates, pairs=4)  # chunks of 2 images
    texts = [t.replace("{}", c) for c in names for t in templates]
    full = model.prompt_log_likelihood(images, tokenizer(texts, context_length=32)).view(6, 3, 2).mean(2)
    assert torch.allclose(scores, full.float())


@pytest.mark.parametrize("module", [captioning, bow_prediction, bow_contrastive])
def test_a_run_trains_loads_and_evaluates(module, tmp_path, monkeypatch):
    monkeypatch.setattr(common.CaptionBaseline, "FINAL_N", {"embeddings": 64, "likelihood": 64})
    config_class = next(v for k, v in vars(module).items() if k.endswith("Run"))
    out = tmp_path / "run"
    summary = module.train(config_class(steps=3, batch_size=16, warmup=1, eval_every=100, quiet=True, out=str(out)))
    assert summary["steps"] == 3 and 0 <= summary["seen"] <= 1
    model, tokenizer, _ = checkpoint.load(out)  # minclip's loader, through the run's builder
    assert type(model).__module__ == module.__name__ and tokenizer is not None
    assert json.loads((out / "config.json").read_text())["builder"] == module.__name__
    minclip_eval.main(["--checkpoint", str(out), "--task", "zeroshot", "--n", "64", "--out", str(tmp_path / "e")])
    result = json.loads((tmp_path / "e" / "eval_zeroshot.json").read_text())
    assert 0 <= result["color_shape seen"] <= 1 and "prompts: ensemble" in result
    monkeypatch.setitem(suite.SUITES, "shapeworld-12", ["color-photo"])  # and a suite: zero-shot and the probe
    minclip_eval.main(["--checkpoint", str(out), "--suite", "shapeworld-12", "--n", "64", "--out", str(tmp_path / "s")])
    rows = json.loads((tmp_path / "s" / "suite.json").read_text())["rows"]
    assert [r["task"] for r in rows] == ["zeroshot_classification", "linear_probe"]
    assert all(0 <= r["value"] <= 1 for r in rows)


def test_eval_images_sets_the_caption_baselines_zero_shot_test(tmp_path, monkeypatch):
    sizes = []
    monkeypatch.setattr(common, "shapeworld_zeroshot", lambda *a, n: sizes.append(n) or {"seen": 0.0, "unseen": 0.0})
    bow_contrastive.train(bow_contrastive.BowContrastiveRun(steps=2, batch_size=16, warmup=1, eval_every=1,
                                                            eval_images=24, quiet=True, out=str(tmp_path / "run")))
    assert sizes == [24, 24, 24]  # while training (steps 1 and 2), then the final test
    with pytest.raises(ValueError, match="--eval-images -1 must be 0"):
        bow_contrastive.BowContrastiveRun(eval_images=-1).check()


def test_a_checkpoint_may_name_only_a_minclip_or_baselines_builder(tmp_path):
    model = bow_prediction.BowPredictor(CONFIG)
    config = {"clip": CONFIG.to_dict()}
    for builder, ok in (("os", False), ("baselines.bow_prediction", True), ("__import__('os')", False)):
        path = tmp_path / "c.pt"
        checkpoint.save_checkpoint(path, model, None, 0, method="bow_prediction", model_config=config,
                                   builder=builder)
        if ok:
            assert isinstance(checkpoint.load(path).model, bow_prediction.BowPredictor)
        else:
            with pytest.raises(ValueError, match="BUILDER_PACKAGES"):
                checkpoint.load(path)
    state = torch.load(path, weights_only=True)  # a run saved before checkpoints named a builder: baselines.<method>
    del state["builder"]
    torch.save(state, path)
    assert isinstance(checkpoint.load(path).model, bow_prediction.BowPredictor)


def test_eval_refuses_retrieval_for_a_likelihood_model(tmp_path, batch):
    _, _, tokenizer = batch
    checkpoint.save_checkpoint(tmp_path / "checkpoint.pt", captioning.Captioner(CONFIG), tokenizer, 0,
                               method="captioning", model_config={"clip": CONFIG.to_dict()},
                               builder="baselines.captioning")
    with pytest.raises(SystemExit, match="likelihood"):
        minclip_eval.main(["--checkpoint", str(tmp_path), "--task", "retrieval", "--n", "64"])
