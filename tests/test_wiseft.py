"""reproduce/wiseft.py: the weight average is exact at its ends, the head is minclip's zero-shot classifier, and
fine-tuning (minclip's training loop) is deterministic and resumes exactly. An untrained tiny CLIP throughout: these are facts about the arithmetic, not the model."""
import json

import pytest
import torch
from torch import nn

from minclip import CLIP, CLIPConfig, load
from minclip.data.transforms import clip_preprocess
from minclip.suite import Sizes, shapeworld_dataset
from minclip.tokenizer import make_tokenizer
from minclip.zeroshot import zeroshot_logits
from reproduce.wiseft import ImageClassifier, finetune, interpolate, wise_ft, zeroshot_head

SMALL = Sizes(train=48, val=6, test=24)


@pytest.fixture(scope="module")
def tiny():
    config = CLIPConfig.preset("tiny")
    torch.manual_seed(0)
    return CLIP(config), make_tokenizer(config), clip_preprocess(config.vision.image_size)


@pytest.fixture(scope="module")
def count(tiny):
    return shapeworld_dataset("count-photo", tiny[0].config.vision.image_size, SMALL, seed=0)


@pytest.fixture(scope="module")
def zeroshot(tiny, count):
    model, tokenizer, _ = tiny
    return ImageClassifier(model, zeroshot_head(model, tokenizer, count.classnames, count.templates))


def _states(gen):
    """Two state dicts of one small architecture with a float and an integer buffer (BatchNorm's counter)."""
    a, b = (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)) for _ in range(2))
    with torch.no_grad():
        for p in b.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    b[1].num_batches_tracked += 7
    b[1].running_mean.copy_(torch.randn(4, generator=gen))
    return a.state_dict(), b.state_dict()


def test_interpolate_ends_are_the_inputs_and_the_middle_is_the_mean(gen):
    z, f = _states(gen)
    for alpha, expected in ((0.0, z), (1.0, f)):
        mixed = interpolate(z, f, alpha)
        assert all(torch.equal(mixed[k], expected[k]) for k in z), alpha
    middle = interpolate(z, f, 0.5)
    for k in z:
        if z[k].is_floating_point():
            torch.testing.assert_close(middle[k], (z[k] + f[k]) / 2, rtol=0, atol=0)
    assert int(middle["1.num_batches_tracked"]) == 7  # not averaged: copied from the nearer end (alpha >= 0.5)
    assert int(interpolate(z, f, 0.25)["1.num_batches_tracked"]) == 0
    assert middle["0.weight"] is not f["0.weight"]  # a new dict of new tensors: the inputs stay as they were


def test_interpolate_refuses_other_keys_and_shapes(gen):
    z, f = _states(gen)
    with pytest.raises(ValueError, match=r"different keys .*only fine-tuned: \['extra'\]"):
        interpolate(z, {**f, "extra": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match=r"'0.bias' is \(4,\) in the zero-shot state but \(5,\)"):
        interpolate(z, {**f, "0.bias": torch.zeros(5)}, 0.5)


def test_zeroshot_head_gives_minclips_zeroshot_logits_times_the_scale(tiny, count, zeroshot):
    model, tokenizer, preprocess = tiny
    images, _ = count.splits["test"]
    expected = model.scale().item() * zeroshot_logits(model, tokenizer, images, count.classnames, count.templates,
                                                      preprocess)  # (B, K)
    with torch.no_grad():
        logits = zeroshot.eval()(preprocess(images))  # (B, K)
    assert zeroshot.head.bias.abs().max() == 0
    assert torch.equal(logits.argmax(dim=1), expected.argmax(dim=1))
    # Both are float32 sums of E products of unit vectors, scaled: rounding bounded by about E eps times the scale
    atol = model.embed_dim * torch.finfo(torch.float32).eps * model.scale().item()
    torch.testing.assert_close(logits, expected, rtol=0, atol=atol)


def test_classifier_is_a_copy(tiny):
    model = tiny[0]
    classifier = ImageClassifier(model, nn.Linear(model.embed_dim, 3))
    with torch.no_grad():
        classifier.encoder.visual.proj.add_(1.0)
    assert not torch.equal(classifier.encoder.visual.proj, model.visual.proj)


def test_finetune_is_deterministic_and_moves_the_tower_and_head(tiny, count, zeroshot, tmp_path):
    preprocess = tiny[2]
    images, labels = count.splits["train"]
    before = {k: v.clone() for k, v in zeroshot.state_dict().items()}
    run = lambda seed, name: finetune(zeroshot, images, labels, preprocess, tmp_path / name, steps=3, batch_size=8,
                                      lr=1e-3, seed=seed)
    a, b, c = run(0, "a").state_dict(), run(0, "b").state_dict(), run(1, "c").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # another seed, other batches
    assert all(torch.equal(v, before[k]) for k, v in zeroshot.state_dict().items())  # the argument is untouched
    for moved in ("head.weight", "encoder.visual.proj", "encoder.visual.conv1.weight"):
        assert not torch.equal(a[moved], before[moved]), moved
    text = [k for k in a if k.startswith("encoder.text.")]
    assert text and all(torch.equal(a[k], before[k]) for k in text)  # no gradient, no decay: the text tower as it was


def test_finetune_trains_through_the_loop_resumes_exactly_and_reuses_a_finished_run(tiny, count, zeroshot, tmp_path):
    preprocess = tiny[2]
    images, labels = count.splits["train"]
    tune = lambda out, steps: finetune(zeroshot, images, labels, preprocess, out, steps=steps, batch_size=8,
                                       lr=1e-3, seed=0)
    whole = tune(tmp_path / "whole", 4).state_dict()
    # the loop's run folder, which minclip.load opens like any other run
    assert {"config.json", "metrics.jsonl", "checkpoint.pt", "summary.json"} <= {p.name for p in
                                                                                (tmp_path / "whole").iterdir()}
    assert json.loads((tmp_path / "whole" / "config.json").read_text())["method"] == "wise-ft"
    loaded = load(tmp_path / "whole").model
    assert isinstance(loaded, ImageClassifier) and all(torch.equal(loaded.state_dict()[k], whole[k]) for k in whole)
    # stopped after 2 of 4 steps, then continued: the same weights as the run that never stopped
    tune(tmp_path / "split", 2)
    resumed = tune(tmp_path / "split", 4).state_dict()
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    # a finished run is reused, not trained again: its files stay as they were
    mtime = (tmp_path / "whole" / "checkpoint.pt").stat().st_mtime_ns
    again = tune(tmp_path / "whole", 4).state_dict()
    assert (tmp_path / "whole" / "checkpoint.pt").stat().st_mtime_ns == mtime
    assert all(torch.equal(again[k], whole[k]) for k in whole)


def test_finetune_refuses_float_images(tiny, count, zeroshot, tmp_path):
    images, labels = count.splits["train"]
    with pytest.raises(ValueError, match="uint8"):
        finetune(zeroshot, images.float(), labels, tiny[2], tmp_path, steps=1, batch_size=4, lr=1e-3, seed=0)


def test_wise_ft_ends_are_the_zeroshot_and_finetuned_models(tiny, tmp_path):
    model, tokenizer, preprocess = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = wise_ft(model, tokenizer, preprocess, tmp_path, alphas=(0.0, 0.5, 1.0), steps=3, batch_size=8, lr=1e-3,
                     sizes=SMALL)
    assert json.loads(json.dumps(result)) == result  # plain JSON-able numbers
    assert result["on_task"][0] == result["zeroshot"]["on_task"]
    assert result["under_shift"][0] == result["zeroshot"]["under_shift"]
    assert result["on_task"][-1] == result["finetuned"]["on_task"]
    assert result["under_shift"][-1] == result["finetuned"]["under_shift"]
    assert result["best_alpha_under_shift"] in result["alphas"]
    assert all(0 <= v <= 1 for v in [*result["on_task"], *result["under_shift"], *result["linear_probe"].values()])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the caller's model untouched


@pytest.mark.parametrize("dataset, shifted", [("count-photo", ("shape-cartoon",)),
                                              ("color_shape-photo", ("unseen_pairs-sketch",)),
                                              ("count-photo", ())])
def test_wise_ft_refuses_a_shift_that_changes_the_classes(tiny, dataset, shifted, tmp_path):
    model, tokenizer, preprocess = tiny
    with pytest.raises(ValueError, match="keep the classes|shifted is empty"):
        wise_ft(model, tokenizer, preprocess, tmp_path, dataset=dataset, shifted=shifted, sizes=SMALL)
