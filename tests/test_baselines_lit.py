"""baselines/lit.py (and baselines/zoo.py): the image tower stays locked, only the text tower learns, and the result
is a CLIP that classifies zero-shot; towers come from baseline runs or minclip runs; the zoo trains once."""
import pytest
import torch

import minclip
from baselines import common, lit, simclr, zoo
from minclip import CLIP, CLIPConfig
from minclip.checkpoint import save_checkpoint
from minclip.data import ShapeWorld
from minclip.zeroshot import zeroshot_classifier

TINY = dict(batch_size=8, warmup=1, quiet=True)


def test_locked_clip_copies_and_freezes_the_tower():
    torch.manual_seed(0)
    tower = simclr.SimCLR(CLIPConfig.preset("tiny"))
    model = lit.locked_clip(tower)
    assert isinstance(model, CLIP)
    for (name, p), q in zip(model.visual.named_parameters(), tower.visual.parameters()):
        assert torch.equal(p, q) and not p.requires_grad, name
        assert p.data_ptr() != q.data_ptr()  # a copy: training LiT never touches the tower's run
    assert all(p.requires_grad for p in model.text.parameters()) and model.logit_scale.requires_grad


def test_a_flip_tower_sees_every_patch_once_locked():
    config = CLIPConfig.preset("tiny")
    config.vision.patch_dropout = 0.5
    model = lit.locked_clip(CLIP(config))
    assert model.config.vision.patch_dropout == 0.0 and model.visual.patch_dropout == 0.0


@pytest.mark.slow
def test_lit_trains_the_text_tower_only_and_classifies_zero_shot(tmp_path):
    simclr.train(simclr.SimCLRRun(steps=1, out=str(tmp_path / "tower"), **TINY))
    tower = torch.load(tmp_path / "tower" / "checkpoint.pt", weights_only=True)["model"]
    lit.train(lit.LiTRun(steps=3, tower=str(tmp_path / "tower"), out=str(tmp_path / "lit"), **TINY))
    state = torch.load(tmp_path / "lit" / "checkpoint.pt", weights_only=True)["model"]
    for key, value in tower.items():
        if key.startswith("visual."):
            assert torch.equal(state[key], value), key  # locked
    torch.manual_seed(0)  # as lit.train: the run's seed, then the tower's loading, give the initial text tower
    initial = lit.locked_clip(common.load(tmp_path / "tower").model).state_dict()
    for key, value in initial.items():
        if key.startswith("text."):
            assert not torch.equal(state[key], value), key  # trained
    # a LiT run is a minclip run: minclip.load opens it, and it classifies zero-shot
    model, tokenizer, preprocess = minclip.load(tmp_path / "lit")
    weights = zeroshot_classifier(model, tokenizer, ["red circle", "blue square", "green star"],
                                  ShapeWorld.templates("color_shape"))
    assert weights.shape == (64, 3) and torch.allclose(weights.norm(dim=0), torch.ones(3))
    loaded = common.load(tmp_path / "lit")
    assert isinstance(loaded.model, CLIP) and loaded.tokenizer is not None


@pytest.mark.slow
def test_lit_takes_a_minclip_clip_run_as_its_tower(tmp_path):
    torch.manual_seed(0)
    clip = CLIP(CLIPConfig.preset("tiny"))
    tokenizer = minclip.CLIPTokenizer.train(ShapeWorld(seed=0).caption_corpus(n=500), vocab_size=512)
    save_checkpoint(tmp_path / "clip" / "checkpoint.pt", clip, tokenizer, step=0)
    loaded = common.load(tmp_path / "clip")  # a minclip checkpoint, through the baselines' loader
    assert isinstance(loaded.model, CLIP) and loaded.tokenizer.to_json() == tokenizer.to_json()
    lit.train(lit.LiTRun(steps=1, tower=str(tmp_path / "clip"), out=str(tmp_path / "lit"), **TINY))
    state = torch.load(tmp_path / "lit" / "checkpoint.pt", weights_only=True)["model"]
    assert torch.equal(state["visual.proj"], clip.visual.proj.detach())


def test_missing_tower_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="train one first"):
        lit.LiTRun(steps=1, tower=str(tmp_path / "nothing"), out=str(tmp_path / "lit")).check()


@pytest.mark.slow
def test_zoo_trains_a_lit_model_and_its_tower_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MINCLIP_DATA", str(tmp_path))
    quick = dict(steps=1, batch_size=8, warmup=1, seed=0)
    monkeypatch.setitem(zoo.MODELS, "simclr-tiny-shapeworld", (simclr.train, simclr.SimCLRRun, quick))
    monkeypatch.setitem(zoo.MODELS, "lit-simclr-tiny-shapeworld",
                        (lit.train, lit.LiTRun, dict(quick, tower="simclr-tiny-shapeworld")))
    model, tokenizer, _ = zoo.load("lit-simclr-tiny-shapeworld", verbose=False)
    assert isinstance(model, CLIP) and tokenizer is not None and not model.training
    assert (tmp_path / "zoo" / "simclr-tiny-shapeworld" / "checkpoint.pt").exists()
    monkeypatch.setattr(zoo, "train", lambda *args: pytest.fail("a cached zoo model was trained again"))
    again = zoo.load("lit-simclr-tiny-shapeworld", verbose=False).model
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert set(zoo.names()) >= {"clip-tiny-shapeworld", "flip-tiny-shapeworld", "mae-tiny-shapeworld"}
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.load("simclr-huge")
