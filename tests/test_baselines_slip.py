"""baselines/slip.py: the loss is CLIP's plus the weighted SimCLR loss of baselines/simclr.py, gradients reach both
towers and the head; a SLIP model is a CLIP to every zero-shot tool; a run trains and loads back."""
import pytest
import torch

from baselines import common, slip
from baselines.simclr import simclr_loss
from minclip import CLIP, CLIPConfig
from minclip.data import ShapeWorld, clip_preprocess, simclr_augment
from minclip.loss import clip_loss
from minclip.tokenizer import make_tokenizer
from minclip.zeroshot import image_features, zeroshot_classifier


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    config = CLIPConfig.preset("tiny")
    model = slip.SLIP(config, hidden=32, out_dim=16)
    images, captions = ShapeWorld(seed=0).pretraining(8, seed=1)
    tokenizer = make_tokenizer(config, corpus=lambda: ShapeWorld(seed=0).caption_corpus(n=500))
    tokens = tokenizer(captions, context_length=config.text.context_length, truncate=True)
    return model, images, tokens, tokenizer


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_loss_is_clip_plus_weighted_simclr(setup, weight):
    model, images, tokens, _ = setup
    preprocess, augment = clip_preprocess(32), simclr_augment(32)
    total = slip.slip_loss(model, images, tokens, preprocess, augment, torch.Generator().manual_seed(4), 0.1, weight)
    clip = clip_loss(*model(preprocess(images), tokens))
    ssl = simclr_loss(model.visual, model.head, images, augment, torch.Generator().manual_seed(4), 0.1)
    assert total.item() == pytest.approx(clip.item() + weight * ssl.item(), rel=1e-6)


def test_gradients_reach_both_towers_and_the_head(setup):
    model, images, tokens, _ = setup
    model.zero_grad()
    slip.slip_loss(model, images, tokens, clip_preprocess(32), simclr_augment(32), torch.Generator().manual_seed(0),
                   0.1).backward()
    for part in (model.visual, model.text, model.head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    assert model.logit_scale.grad is not None
    model.zero_grad()
    slip.slip_loss(model, images, tokens, clip_preprocess(32), simclr_augment(32), torch.Generator().manual_seed(0),
                   0.1, ssl_weight=0.0).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.head.parameters())  # only CLIP's loss left


def test_slip_is_a_clip_to_the_zero_shot_tools(setup):
    model, images, _, tokenizer = setup
    assert isinstance(model, CLIP)
    weights = zeroshot_classifier(model, tokenizer, ["red circle", "blue square"], ShapeWorld.templates("color_shape"))
    features = image_features(model, images, preprocess=clip_preprocess(32))
    assert weights.shape == (64, 2) and (features @ weights).shape == (8, 2)


@pytest.mark.slow
def test_a_run_trains_and_loads(tmp_path):
    summary = slip.train(slip.SLIPRun(steps=2, batch_size=8, warmup=1, hidden=32, out_dim=16, quiet=True,
                                      out=str(tmp_path)))
    model, tokenizer, _ = common.load(tmp_path)
    assert isinstance(model, slip.SLIP) and tokenizer is not None and summary["steps"] == 2
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["method"] == "slip" and state["model_config"]["hidden"] == 32
