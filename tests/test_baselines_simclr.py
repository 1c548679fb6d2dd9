"""baselines/simclr.py and the loop it trains through (baselines/common.py): the loss path equals lightly's
NTXentLoss, values and gradients; the views are seeded; a run resumes bit for bit and loads back."""
import json

import pytest
import torch
from lightly.loss import NTXentLoss

from baselines import common, simclr
from minclip.config import CLIPConfig
from minclip.data.transforms import simclr_augment


def tiny_simclr(seed=0):
    torch.manual_seed(seed)
    return simclr.SimCLR(CLIPConfig.preset("tiny"), hidden=32, out_dim=16)


def images(B=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (B, 3, 32, 32), dtype=torch.uint8, generator=g)


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_loss_path_equals_lightly(temperature):
    """The same views through the same model: our loss and every parameter gradient equal lightly's NTXentLoss.

    In float64, so that the comparison measures the formula and not the CPU's float32 kernels: two correct float32
    paths differ by ~1e-4 relative on some CPUs (the class embedding's gradient, a sum over the whole batch), while in
    float64 both agree to ~1e-13. 1e-9 leaves room for summation order and still catches any wrong term.
    """
    model, x = tiny_simclr().double(), images()
    augment = lambda images, g: simclr_augment(32)(images, g).double()  # noqa: E731  the same views, in float64
    ours = simclr.simclr_loss(model.visual, model.head, x, augment, torch.Generator().manual_seed(3), temperature)
    ours.backward()
    g_ours = grads(model)
    model.zero_grad()
    g = torch.Generator().manual_seed(3)
    z1, z2 = model(torch.cat([augment(x, g), augment(x, g)])).chunk(2)
    theirs = NTXentLoss(temperature=temperature)(z1, z2)
    theirs.backward()
    assert ours.dtype == theirs.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, atol=0, rtol=1e-12)
    assert g_ours.keys() == grads(model).keys() and len(g_ours) == len(list(model.parameters()))
    for name, grad in grads(model).items():
        torch.testing.assert_close(g_ours[name], grad, atol=1e-12, rtol=1e-9, msg=name)


def test_views_are_seeded_and_differ():
    """Equal generator seeds give equal losses; the two views of an image differ (or the task would be trivial)."""
    model, x, augment = tiny_simclr(), images(), simclr_augment(32)
    loss = lambda seed: simclr.simclr_loss(model.visual, model.head, x, augment,  # noqa: E731
                                           torch.Generator().manual_seed(seed), 0.5).item()
    assert loss(1) == loss(1) != loss(2)
    g = torch.Generator().manual_seed(0)
    v1, v2 = augment(x, g), augment(x, g)
    assert (v1 - v2).abs().mean() > 0.1


def test_simclr_uses_cifar_settings():
    """At 32 px SimCLR's views follow lightly's CIFAR recipe: crops from 8% of the image, strong jitter, no blur."""
    augment = simclr_augment(32)
    assert augment.blur == 0 and augment.min_scale == 0.08 and augment.jitter == (0.8, 0.8, 0.8, 0.2)
    assert augment.jitter_p == 0.8 and augment.grayscale == 0.2


def test_encode_image_is_the_representation_before_the_head():
    model = tiny_simclr().eval()
    x = torch.randn(4, 3, 32, 32)
    h = model.encode_image(x)
    assert h.shape == (4, 64) and torch.allclose(h.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(model.encode_image(x, normalize=False), model.visual(x))
    assert model(x).shape == (4, 16)
    with pytest.raises(TypeError, match="preprocess"):
        model.encode_image(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))


def run(tmp_path, name, **flags):
    cfg = simclr.SimCLRRun(batch_size=8, hidden=32, out_dim=16, warmup=1, save_every=2, log_every=1, quiet=True,
                           out=str(tmp_path / name), **flags)
    return simclr.train(cfg)


@pytest.mark.slow
def test_resume_is_bit_identical_and_the_run_loads(tmp_path, crash_after):
    """A run killed after step 3 (last checkpoint: step 2) and resumed equals an uninterrupted one, bit for bit;
    the run folder loads back as the trained model."""
    run(tmp_path, "straight", steps=4)
    with crash_after(3):
        run(tmp_path, "split", steps=4)
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["step"] == 2
    assert run(tmp_path, "split", resume=True)["steps"] == 4  # the saved config (4 steps) wins
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    model, tokenizer, preprocess = common.load(tmp_path / "straight")
    assert isinstance(model, simclr.SimCLR) and tokenizer is None and not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, a[key]), key
    saved = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert saved["method"] == "simclr" and saved["model"]["hidden"] == 32
    lines = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    # minclip.eval --suite opens an image-only run through its builder: probe rows, no zero-shot
    from minclip import eval as minclip_eval, suite
    with pytest.MonkeyPatch.context() as m:
        m.setitem(suite.SUITES, "shapeworld-12", ["shape-photo"])
        minclip_eval.main(["--checkpoint", str(tmp_path / "straight"), "--suite", "shapeworld-12", "--n", "200",
                           "--out", str(tmp_path / "eval")])
    rows = json.loads((tmp_path / "eval" / "suite.json").read_text())["rows"]
    assert [(r["dataset"], r["task"]) for r in rows] == [("shape-photo", "linear_probe")]


def test_cli_refuses_bad_flags_with_the_fix(tmp_path, capsys):
    with pytest.raises(SystemExit, match="exactly one of --steps N or --minutes M"):
        common.main(simclr.SimCLRRun, simclr.SimCLRObjective, "", ["--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="--width 40 must be a multiple of 32"):
        common.main(simclr.SimCLRRun, simclr.SimCLRObjective, "", ["--steps", "1", "--width", "40"])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="pass --resume"):
        simclr.SimCLRRun(steps=1, out=str(tmp_path / "b")).check()
    with pytest.raises(ValueError, match="no checkpoint"):
        simclr.SimCLRRun(resume=True, out=str(tmp_path / "c")).check()
