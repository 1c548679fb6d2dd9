"""minclip/train.py, optim.py, parallel.py, pairs.py, checkpoint.py: the loop's guarantees."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import minclip
from minclip import CLIP, CLIPConfig, train as T
from minclip.loss import clip_loss
from minclip.optim import param_groups, warmup_cosine


def tiny_model(seed=0, patch_dropout=0.0):
    config = CLIPConfig.preset("tiny")
    config.vision.patch_dropout = patch_dropout
    torch.manual_seed(seed)
    return CLIP(config)


def batch(B=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(B, 3, 32, 32, generator=g)
    tokens = torch.zeros(B, 32, dtype=torch.long)
    for b in range(B):
        n = int(torch.randint(2, 20, (1,), generator=g))
        tokens[b, 0], tokens[b, n] = 510, 511
        tokens[b, 1:n] = torch.randint(1, 500, (n - 1,), generator=g)
    return images, tokens


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("patch_dropout", [0.0, 0.5])
def test_gradcache_chunks_equal_one_batch(patch_dropout):
    """k chunks through GradCache give the full batch's loss and gradients (the contrastive batch is unchanged)."""
    images, tokens = batch(16)
    model = tiny_model(patch_dropout=patch_dropout)
    torch.manual_seed(1)
    loss1 = T.train_step(model, images, tokens, clip_loss, accum_steps=1)
    g1 = grads(model)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    loss4 = T.train_step(model, images, tokens, clip_loss, accum_steps=4)
    g4 = grads(model)
    assert abs(loss1.item() - loss4.item()) < 1e-5
    assert g1.keys() == g4.keys()
    for name in g1:
        torch.testing.assert_close(g4[name], g1[name], atol=1e-5, rtol=1e-4, msg=name)


def test_optimizer_groups_and_schedule():
    model = tiny_model()
    decay, no_decay = param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert "logit_scale" in exempt and "text.token_embedding.weight" in exempt
    assert "visual.positional_embedding" in exempt and "visual.class_embedding" in exempt
    assert all(n.endswith(("bias", "weight")) or "embedding" in n or n == "logit_scale" for n in exempt)
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.2
    f = warmup_cosine(10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0, abs=1e-12)
    assert all(f(s) >= f(s + 1) for s in range(10, 110))


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "minclip.train", *args], capture_output=True, text=True, **kw)


@pytest.mark.slow
def test_smoke_run_learns_and_writes_its_folder(tmp_path):
    out = tmp_path / "run"
    r = run_cli("--steps", "60", "--batch-size", "64", "--warmup", "10", "--out", str(out), "--save-every", "30",
                "--domains", "mix", "--objects", "1,3")
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("config.json", "tokenizer.json", "checkpoint.pt", "metrics.jsonl", "zeroshot.json", "similarity.png",
                 "predictions.png"):
        assert (out / name).exists(), name
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in lines if "loss" in m]
    assert losses[-1] < losses[0] - 0.25  # it learns something in 60 steps (chance is log 64 = 4.16)
    zs = json.loads((out / "zeroshot.json").read_text())
    assert zs["seen"] > 2 / 64  # better than chance on 64 classes
    model, tokenizer, preprocess = minclip.load(out)
    same, _, _ = minclip.load(out / "checkpoint.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    assert not model.training


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    args = ["--steps", "40", "--batch-size", "32", "--save-every", "10", "--seed", "3", "--patch-dropout", "0.25"]
    assert run_cli(*args, "--out", str(tmp_path / "a")).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "minclip.train", *args, "--out", str(tmp_path / "b")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "b" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(ckpt, weights_only=True)["step"]
    assert step < 40, "the run finished before it could be killed; the test proves nothing"
    r = run_cli(*args, "--out", str(tmp_path / "b"), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = minclip.load(tmp_path / "a")[0].state_dict(), minclip.load(tmp_path / "b")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_ranks_of_half_the_batch_equal_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo) of B/2 pairs each trains the same weights as one process of B."""
    args = ["--steps", "3", "--batch-size", "32", "--warmup", "1", "--seed", "5", "--eval-every", "1000", "--quiet"]
    one = run_cli(*args, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "minclip.train", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = minclip.load(tmp_path / "one")[0].state_dict(), minclip.load(tmp_path / "two")[0].state_dict()
    start = tiny_model(5).state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a), "the weights never moved; the test proves nothing"
    for k in a:  # float sums in another order: equal to rounding, after 3 AdamW steps
        torch.testing.assert_close(b[k], a[k], atol=2e-5, rtol=1e-4, msg=k)


def test_nan_loss_stops_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "clip_loss", lambda i, t, s: (i * t).sum() * float("nan"))
    cfg = T.TrainConfig(steps=5, batch_size=8, out=str(tmp_path / "run"))
    with pytest.raises(FloatingPointError, match="at step 0.*learning rate"):
        T.train(cfg)


@pytest.mark.parametrize("argv, match", [
    (["--steps", "10", "--batch-size", "1"], "at least 2 pairs"),
    (["--steps", "10", "--amp", "fp8"], "--amp"),
    (["--steps", "10", "--minutes", "1"], "exactly one of"),
    ([], "exactly one of"),
    (["--steps", "10", "--preset", "huge"], "unknown"),
    (["--steps", "10", "--batch-size", "10", "--accum-steps", "3"], "equal chunks"),
    (["--steps", "10", "--data", "csv", "--csv", "nope.csv"], "not a file"),
    (["--steps", "10", "--patch-dropout", "1.5"], "patch-dropout"),
])
def test_bad_flags_are_refused_before_work(argv, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        T.parse_args(argv + ["--out", str(tmp_path / "x")]).check()


def test_existing_run_needs_resume(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="--resume"):
        T.parse_args(["--steps", "5", "--out", str(tmp_path)]).check()
    with pytest.raises(ValueError, match="no checkpoint"):
        T.parse_args(["--resume", "--out", str(tmp_path / "empty")]).check()


def test_help_explains_every_flag():
    r = run_cli("--help")
    assert r.returncode == 0
    for flag in ("--preset", "--data", "--steps", "--minutes", "--batch-size", "--lr", "--out", "--resume", "--amp",
                 "--accum-steps", "--compile", "--seed", "--patch-dropout"):
        assert flag in r.stdout
    r = run_cli("--steps", "3", "--batch-size", "1")
    assert r.returncode != 0 and "at least 2 pairs" in r.stderr and "Traceback" not in r.stderr


def test_logit_scale_is_clamped_after_each_step(tmp_path):
    cfg = T.TrainConfig(steps=2, batch_size=8, lr=10.0, warmup=0, out=str(tmp_path / "run"), eval_every=100)
    T.train(cfg)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert 0 <= state["model"]["logit_scale"].item() <= math.log(100) + 1e-6
