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
from minclip import CLIP, CLIPConfig, loop, train as T
from minclip.loss import clip_loss
from minclip.optim import param_groups, warmup_cosine
from minclip.parallel import Parallel


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
    """k chunks through GradCache give the full batch's loss and gradients (the contrastive batch is unchanged).

    In float64: the two paths sum in different orders, which float32 kernels round differently on different CPUs;
    in float64 they agree to ~1e-14, and a wrong chunking (a missing term, a lost gradient) is off by far more."""
    images, tokens = batch(16)
    images = images.double()
    model = tiny_model(patch_dropout=patch_dropout).double()
    torch.manual_seed(1)
    loss1 = T.train_step(model, images, tokens, clip_loss, accum_steps=1)
    g1 = grads(model)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    loss4 = T.train_step(model, images, tokens, clip_loss, accum_steps=4)
    g4 = grads(model)
    assert loss1.dtype == torch.float64
    torch.testing.assert_close(loss4, loss1, atol=0, rtol=1e-12)
    assert g1.keys() == g4.keys() and len(g1) == len(list(model.parameters()))
    for name in g1:
        torch.testing.assert_close(g4[name], g1[name], atol=1e-12, rtol=1e-9, msg=name)


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
@pytest.mark.parametrize("loss", ["clip", "siglip", "negclip"])
def test_two_ranks_of_half_the_batch_equal_one_process(tmp_path, loss):
    """torchrun with 2 CPU processes (gloo) of B/2 pairs each trains the same weights as one process of B, with
    each loss (minclip/loss.py: distributed_clip_loss, distributed_siglip_loss, negclip_loss with the hard
    negatives of --hard-negatives swap, which each rank draws for its own rows)."""
    # Why the tolerance holds on any CPU: the two runs sum the same gradient in another order, so they differ by
    # rounding, |dg| <~ 1e-9 here. Adam's step is lr·m/(sqrt(v) + eps), which moves by at most lr·|dg|/eps when g
    # does: with eps 1e-4 that is 3e-3·1e-9/1e-4 = 3e-8 a step, far inside 2e-5 after 3 steps. (At the default eps
    # 1e-6 the bound is 3e-6 a step, too close to the tolerance to hold on every machine.)
    args = ["--steps", "3", "--batch-size", "32", "--warmup", "1", "--seed", "5", "--eval-every", "1000", "--quiet",
            "--eps", "1e-4"]
    args += ["--loss", loss] if loss != "negclip" else ["--hard-negatives", "swap", "--objects", "1,3"]
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
    nan_loss = lambda i, t, s: (i * t).sum() * float("nan")  # noqa: E731
    monkeypatch.setitem(T.LOSSES, "clip", (nan_loss, nan_loss))
    cfg = T.TrainConfig(steps=5, batch_size=8, out=str(tmp_path / "run"))
    with pytest.raises(FloatingPointError, match="after step 1: the loss is nan.*learning rate"):
        T.train(cfg)


@pytest.mark.parametrize("argv, match", [
    (["--steps", "10", "--batch-size", "1"], "at least 2 examples"),
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
    assert r.returncode != 0 and "at least 2 examples" in r.stderr and "Traceback" not in r.stderr


def test_logit_scale_is_clamped_after_each_step(tmp_path):
    cfg = T.TrainConfig(steps=2, batch_size=8, lr=10.0, warmup=0, out=str(tmp_path / "run"), eval_every=100)
    T.train(cfg)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert 0 <= state["model"]["logit_scale"].item() <= math.log(100) + 1e-6


# the run folder: nothing lost, nothing mixed up

def quick(tmp_path, name="run", **kw):
    """A few tiny steps in-process (no evaluation but the final one)."""
    return T.TrainConfig(**{"steps": 3, "batch_size": 8, "warmup": 1, "eval_every": 1000, "quiet": True,
                            "log_every": 1, "out": str(tmp_path / name), **kw})


def records(out, timings=("pairs_per_s", "time")):
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in timings} for r in lines]


def nan_gradients_from_call(n):
    """A loss equal to clip_loss whose gradient is NaN from the n-th call on: the loss stays finite, the weights
    go NaN in the optimiser step (as they do at --lr 10)."""
    calls = []

    def loss(i, t, s):
        calls.append(1)
        bad = (i.sum() * 0).sqrt() if len(calls) >= n else 0  # d sqrt(x)/dx at 0 is inf, times 0: NaN
        return clip_loss(i, t, s) + bad
    return loss


def test_nan_weights_never_reach_the_checkpoint_and_the_message_says_how_to_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(T.LOSSES, "clip", (nan_gradients_from_call(3), None))
    cfg = quick(tmp_path, steps=5, save_every=1, lr=3e-3, warmup=0)
    with pytest.raises(FloatingPointError) as error:
        T.train(cfg)
    message = str(error.value)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 2, "the step whose weights went NaN must not overwrite the good checkpoint"
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert f"{ckpt} (after step 2)" in message and "--resume --lr 0.0003" in message
    assert "fp16" not in message and "--grad-clip" not in message  # neither applies to this run
    monkeypatch.setitem(T.LOSSES, "clip", (clip_loss, None))  # the cause is gone: the resume with a lower lr trains on
    T.train(T.parse_args(["--out", str(tmp_path / "run"), "--resume", "--lr", "3e-4", "--quiet"]))
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 5 and state["train_config"]["lr"] == 3e-4


def test_nan_before_any_checkpoint_says_none_was_written(tmp_path, monkeypatch):
    monkeypatch.setitem(T.LOSSES, "clip", (nan_gradients_from_call(1), None))
    with pytest.raises(FloatingPointError, match="no checkpoint was written yet"):
        T.train(quick(tmp_path, save_every=10))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_resume_honours_a_longer_run_and_a_new_lr_and_refuses_the_rest(tmp_path):
    T.train(quick(tmp_path, steps=3))
    out = str(tmp_path / "run")
    with pytest.raises(ValueError, match="--batch-size 64.*keeps it.*another --out"):
        T.train(T.parse_args(["--out", out, "--resume", "--batch-size", "64"]))
    with pytest.raises(ValueError, match="--seed 7"):
        T.train(T.parse_args(["--out", out, "--resume", "--seed", "7"]))
    with pytest.raises(ValueError, match="--batch-size 256"):  # the default, but given: refused all the same
        T.train(T.parse_args(["--out", out, "--resume", "--batch-size", "256"]))
    with pytest.raises(ValueError, match="already at step 3"):
        T.train(T.parse_args(["--out", out, "--resume", "--steps", "2"]))
    T.train(T.parse_args(["--out", out, "--resume", "--steps", "6", "--lr", "1e-4", "--quiet"]))
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6 and state["train_config"]["lr"] == 1e-4 and state["train_config"]["steps"] == 6
    assert [r["step"] for r in records(tmp_path / "run") if "loss" in r] == [1, 2, 3, 4, 5, 6]


def test_resuming_a_finished_run_says_so(tmp_path, capsys):
    T.train(quick(tmp_path, steps=2))
    before = (tmp_path / "run" / "checkpoint.pt").stat().st_mtime_ns
    T.train(T.parse_args(["--out", str(tmp_path / "run"), "--resume"]))
    err = capsys.readouterr().err
    assert "finished at step 2" in err and "--resume --steps N" in err
    assert (tmp_path / "run" / "checkpoint.pt").stat().st_mtime_ns == before


def test_a_stale_final_evaluation_does_not_pass_for_the_finished_run(tmp_path):
    """Killed after its last checkpoint but before summary.json was rewritten: the resume evaluates again."""
    T.train(quick(tmp_path, steps=2))
    stale = {name: (tmp_path / "run" / name).read_text() for name in ("zeroshot.json", "summary.json")}
    T.train(T.parse_args(["--out", str(tmp_path / "run"), "--resume", "--steps", "4", "--quiet"]))
    for name, text in stale.items():  # as if killed between the save and the evaluation
        (tmp_path / "run" / name).write_text(text)
    T.train(T.parse_args(["--out", str(tmp_path / "run"), "--resume"]))
    assert json.loads((tmp_path / "run" / "zeroshot.json").read_text())["steps"] == 4


def test_a_run_that_finished_into_the_folder_after_check_is_not_overwritten(tmp_path, monkeypatch):
    """check() runs before the lock is taken; the folder is checked again under the lock."""
    T.train(quick(tmp_path, steps=2))  # the other run, finished between our check() and our lock
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(T.TrainConfig, "check", lambda self: None)
    with pytest.raises(ValueError, match="already holds a run"):
        T.train(quick(tmp_path, steps=2))
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_resume_with_a_lower_lr_continues_on_the_new_schedule(tmp_path):
    """Without new flags the resumed learning rate is the saved one, bit for bit (tested by the SIGKILL test);
    with --lr, it is the new peak times the schedule at the saved step."""
    T.train(quick(tmp_path, steps=2, warmup=0))
    T.train(T.parse_args(["--out", str(tmp_path / "run"), "--resume", "--steps", "4", "--lr", "1e-4", "--quiet"]))
    lrs = {r["step"]: r["lr"] for r in records(tmp_path / "run") if "lr" in r}
    schedule = warmup_cosine(0, 4)
    assert lrs[3] == pytest.approx(1e-4 * schedule(3)) and lrs[4] == pytest.approx(1e-4 * schedule(4))


def test_a_fresh_run_into_a_folder_without_checkpoint_starts_a_fresh_log(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 99.0}\n{"step": 2, "loss": 98.0}\n{"step": 3, "lo')
    T.train(quick(tmp_path, steps=2))
    assert [r["step"] for r in records(out) if "loss" in r] == [1, 2]
    assert "99.0" not in (out / "metrics.jsonl").read_text() and '"lo\n' not in (out / "metrics.jsonl").read_text()


def test_two_runs_into_one_folder_are_refused_while_the_first_writes(tmp_path):
    from minclip.io import RunLock, RunFolderBusy
    with RunLock(tmp_path / "run"):  # as a running trainer holds it
        with pytest.raises(RunFolderBusy, match="being written by pid"):
            T.train(quick(tmp_path))
        r = run_cli("--steps", "2", "--batch-size", "8", "--out", str(tmp_path / "run"))
        assert r.returncode != 0 and "being written by pid" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    T.train(quick(tmp_path))  # the lock is gone with its holder


def test_a_temporary_file_left_by_a_kill_is_removed_by_the_next_run(tmp_path):
    T.train(quick(tmp_path, steps=2))
    leftover = tmp_path / "run" / ".checkpoint.pt.tmp999999"
    leftover.write_bytes(b"half a checkpoint")
    T.train(T.parse_args(["--out", str(tmp_path / "run"), "--resume", "--steps", "3", "--quiet"]))
    assert not leftover.exists()


@pytest.mark.slow
def test_ctrl_c_saves_the_step_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path):
    args = ["--steps", "30", "--batch-size", "16", "--save-every", "1000", "--seed", "2", "--log-every", "1",
            "--eval-every", "10", "--quiet"]
    assert run_cli(*args, "--out", str(tmp_path / "a")).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "minclip.train", *args, "--out", str(tmp_path / "b")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics, deadline = tmp_path / "b" / "metrics.jsonl", time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "--resume" in err and len(err.strip().splitlines()) <= 3
    step = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"]
    assert 3 <= step < 30, "the run finished before it could be interrupted; the test proves nothing"
    r = run_cli(*args, "--out", str(tmp_path / "b"), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = minclip.load(tmp_path / "a")[0].state_dict(), minclip.load(tmp_path / "b")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert records(tmp_path / "a") == records(tmp_path / "b")


def test_minutes_are_not_cut_short_by_a_burst_of_load_during_calibration(monkeypatch):
    """A fake clock: steps take 10 ms, but a 0.5 s burst of other work slows 10 steps 5x, at the start. The old
    calibration timed 16 steps, so this burst made their median 5x too slow and cut the run to a fifth."""
    def calibrate(slow) -> int:
        clock, calls = [0.0], []

        class Timed(loop.Objective):  # a step that only advances the fake clock
            model = tiny_model()

            def backward(self, step, autocast, scaler):
                clock[0] += 0.05 if slow(len(calls)) else 0.01
                calls.append(1)
                return torch.tensor(1.0)
        monkeypatch.setattr(loop.time, "perf_counter", lambda: clock[0])
        cfg = T.TrainConfig(minutes=3).resolved()
        return loop.calibrate_steps(Timed(), cfg, Parallel(0, 1, torch.device("cpu")), torch.autocast("cpu", enabled=False))
    quiet = calibrate(lambda i: False)
    assert quiet == 18000  # 180 s of 10 ms steps
    assert calibrate(lambda i: 4 <= i < 14) == quiet
    assert calibrate(lambda i: True) == 3600  # a machine that stays busy gets fewer steps, as it should


@pytest.mark.parametrize("argv, match", [
    (["--beta2", "1.5"], r"--beta2 1.5 must be in \(0, 1\), e.g. 0.98"),
    (["--eps", "-1"], "--eps -1.0 must be > 0, e.g. 1e-6"),
    (["--seed", "-1"], r"--seed -1 must be in \[0, 2\*\*63\).*e.g. --seed 0"),
    (["--seed", str(2 ** 64)], "--seed 18446744073709551616 must be in"),
    (["--minutes", "inf", "--steps", "0"], "--minutes inf must be a finite"),
    (["--weight-decay", "inf"], "--weight-decay inf must be a finite"),
    (["--grad-clip", "-1"], "--grad-clip"),
    (["--grad-clip", "nan"], "--grad-clip nan must be a finite"),
    (["--lr", "inf"], "--lr inf must be a finite"),
    (["--lr", "0"], r"--lr 0.0 must be > 0, e.g. 3e-3 \(or leave the flag out"),
    (["--amp", "fp16", "--device", "cpu"], "fp16 needs a CUDA GPU"),
    (["--on-bad-image", "ignore"], "--on-bad-image"),
    (["--device", "tpu9"], "not a device name"),
])
def test_more_bad_flags_are_refused_before_work(argv, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        T.parse_args(["--steps", "10", *argv, "--out", str(tmp_path / "x")]).check()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no CUDA GPU.*--device cpu"):
        T.parse_args(["--steps", "1", "--device", "cuda", "--out", str(tmp_path / "x")]).check()


def test_out_on_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        T.parse_args(["--steps", "1", "--out", str(tmp_path / "file")]).check()


def test_a_csv_run_needs_no_shapeworld_and_reads_its_captions_without_decoding_images(tmp_path, monkeypatch):
    from PIL import Image
    from minclip.data import captions
    for i in range(3):
        Image.new("RGB", (40, 30), (80 * i, 0, 0)).save(tmp_path / f"{i}.jpg")
    (tmp_path / "pairs.csv").write_text("path,caption\n" + "".join(f"{i}.jpg,photo {i}\n" for i in range(3)))
    cfg = T.TrainConfig(data="csv", csv=str(tmp_path / "pairs.csv"), image_root=str(tmp_path), preset="vit-b-32",
                        batch_size=2)
    source = T.pair_stream(cfg, None, image_size=224)  # 224 px: ShapeWorld would refuse to render it
    with monkeypatch.context() as m:
        m.setattr(captions, "load_rgb", lambda *args: pytest.fail("reading the captions decoded an image"))
        assert source.corpus() == ["photo 0", "photo 1", "photo 2"]
    images, captions = source.pairs(0)
    assert images.shape == (2, 3, 224, 224) and len(captions) == 2


def test_siglip_trains_clips_two_towers_with_a_learned_bias(tmp_path):
    """--loss siglip: the CLIP model gains SigLIP's bias (b = -10) and starts at scale 10 (SigLIP §3); the first
    logged loss is siglip_loss of that model on batch 0; both the bias and the temperature learn."""
    from minclip.loss import siglip_loss
    T.train(quick(tmp_path, steps=3, loss="siglip"))
    out = tmp_path / "run"
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["init_logit_bias"] == -10.0 and config["model"]["init_logit_scale"] == pytest.approx(math.log(10))
    cfg = T.TrainConfig(steps=3, batch_size=8, loss="siglip", out=str(tmp_path / "x")).resolved()
    torch.manual_seed(cfg.seed)
    start = T.CLIPObjective(cfg, None, Parallel(0, 1, torch.device("cpu")))
    assert start.model.logit_bias.item() == -10.0 and start.model.scale().item() == pytest.approx(10.0)
    with torch.no_grad():
        first = siglip_loss(*start.model(*start.batch(0)), start.model.logit_bias).item()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["loss"] == pytest.approx(first, rel=1e-6)
    trained = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert trained["logit_bias"].item() != -10.0 and trained["logit_scale"].item() != pytest.approx(math.log(10))
    assert "logit_bias" in records[0] and minclip.load(out)[0].logit_bias is not None


def test_the_resnet_presets_take_the_papers_resnet_recipe_and_train(tmp_path):
    """tiny-rn: CLIP's ModifiedResNet at 32 px, Adam beta2 0.999 and eps 1e-8 (the paper's ResNet settings, against
    0.98 and 1e-6 for ViTs), and it trains through minclip.train like the ViT presets."""
    from minclip.train import preset_defaults
    assert {k: preset_defaults("tiny-rn")[k] for k in ("beta2", "eps")} == {"beta2": 0.999, "eps": 1e-8}
    assert {k: preset_defaults("tiny")[k] for k in ("beta2", "eps")} == {"beta2": 0.98, "eps": 1e-6}
    for name in ("tiny-rn", "mini-rn", "small-rn"):
        config = CLIPConfig.preset(name)
        model = CLIP(config)
        size = config.vision.image_size
        assert model.encode_image(torch.zeros(2, 3, size, size)).shape == (2, config.embed_dim)
    summary = T.train(T.TrainConfig(preset="tiny-rn", steps=3, batch_size=16, warmup=1, quiet=True, out=str(tmp_path)))
    assert summary["steps"] == 3 and 0 <= summary["seen"] <= 1
    saved = json.loads((tmp_path / "config.json").read_text())["train"]
    assert (saved["beta2"], saved["eps"]) == (0.999, 1e-8)


def test_init_fine_tunes_from_a_runs_weights_and_tokenizer(tmp_path):
    """--init starts from another run's weights and tokenizer (a fresh optimiser); a model the flags do not build is
    refused with the fix."""
    flags = dict(batch_size=16, warmup=1, eval_every=10 ** 9, quiet=True)
    T.train(T.TrainConfig(steps=3, seed=1, **flags, out=str(tmp_path / "base")))
    T.train(T.TrainConfig(steps=1, lr=1e-12, seed=2, init=str(tmp_path / "base"), **flags, out=str(tmp_path / "ft")))
    (base, tok, _), (ft, tok_ft, _) = minclip.load(tmp_path / "base"), minclip.load(tmp_path / "ft")
    for k, v in base.state_dict().items():  # one step at lr 1e-12 leaves the weights where --init put them
        torch.testing.assert_close(ft.state_dict()[k], v, atol=1e-7, rtol=0, msg=k)
    assert tok_ft.to_json() == tok.to_json()
    with pytest.raises(ValueError, match="not the one these flags build"):
        T.train(T.TrainConfig(steps=1, preset="tiny-rn", init=str(tmp_path / "base"), **flags,
                              out=str(tmp_path / "bad")))
