"""minclip/pairs.py and minclip/data/shards.py: real image-caption data through loader workers and webdataset shards.

Every image here is a real JPEG (or PNG) the test encodes; every shard is a tar file in img2dataset's layout.
"""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import minclip
from minclip import train as T
from minclip.data import ImageCaptionCSV, shards
from minclip.data.captions import square_uint8
from minclip.data.datasets import load_rgb
from minclip.pairs import DatasetPairs, ShardPairs, default_workers

from _images import jpeg_bytes, png_bytes, write_shard


def photo(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth picture (JPEG keeps it) that differs from image to image."""
    y, x = np.mgrid[0:h, 0:w]
    channels = [(x * 4 + 30 * i) % 256, (y * 5 + 17 * i) % 256, np.full_like(x, (40 * i) % 256)]
    return np.stack(channels, -1).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    """40 JPEGs, a CSV of their captions (row 3's image is corrupt, row 7's caption empty) and two shards of the
    same pairs (sample 3's image corrupt, sample 7's caption empty, sample 9's caption not UTF-8, sample 11 with
    no caption)."""
    (tmp_path / "images").mkdir()
    rows = []
    for i in range(40):
        (tmp_path / "images" / f"{i:04d}.jpg").write_bytes(jpeg_bytes(photo(i)))
        rows.append((f"{i:04d}.jpg", f"photo number {i}"))
    (tmp_path / "images" / "0003.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    (tmp_path / "train.csv").write_text("image,caption\n" + "".join(
        f"{p},{'' if i == 7 else c}\n" for i, (p, c) in enumerate(rows)))
    (tmp_path / "shards").mkdir()
    for s in range(2):
        samples = []
        for i in range(20 * s, 20 * s + 20):
            files = {"jpg": (tmp_path / "images" / rows[i][0]).read_bytes(), "txt": rows[i][1].encode(),
                     "json": b'{"width": 64}'}
            files["txt"] = {7: b"", 9: "légende".encode("latin-1")}.get(i, files["txt"])
            if i == 11:
                del files["txt"]
            samples.append((f"{i:09d}", files))
        write_shard(tmp_path / "shards" / f"{s:05d}.tar", samples)
    return tmp_path


def csv_pairs(folder, batch_size=8, workers=0, rank=0, world=1):
    with pytest.warns(UserWarning, match="caption is empty"):
        dataset = ImageCaptionCSV(folder / "train.csv", folder / "images", image_size=16, on_bad_image="skip")
    return DatasetPairs(dataset, batch_size, seed=0, rank=rank, world_size=world, workers=workers)


# ---- the CSV loader ---------------------------------------------------------------------------------------------

def test_an_empty_caption_drops_its_row_with_a_warning_that_names_the_line(folder):
    with pytest.warns(UserWarning, match=r"skipped 1 of 40 rows .*train.csv whose caption is empty, e.g. line 9"):
        dataset = ImageCaptionCSV(folder / "train.csv", folder / "images")
    assert len(dataset) == 39 and all(row.caption for row in dataset.rows)
    (folder / "blank.csv").write_text("image,caption\n0000.jpg,\n0001.jpg, \n")
    with pytest.raises(ValueError, match="every caption in .*blank.csv is empty"):
        ImageCaptionCSV(folder / "blank.csv", folder / "images")


def test_each_epoch_is_a_seeded_permutation_of_the_rows(folder):
    stream = csv_pairs(folder, batch_size=13)  # 39 rows: 3 steps an epoch
    epochs = [sorted(r for s in range(3 * e, 3 * e + 3) for r in stream.rows(s)) for e in range(3)]
    assert all(e == list(range(39)) for e in epochs)
    assert [stream.rows(s) for s in range(3)] != [stream.rows(s) for s in range(3, 6)]  # reshuffled


def test_workers_deliver_exactly_the_batches_of_in_process_decoding(folder):
    """Batch `step` is a function of (seed, step): 0 and 2 workers give the same pixels and captions, across an
    epoch's end, and after a jump (the loop's --minutes timing goes back to step 0; a resume starts anywhere)."""
    inline, workers = csv_pairs(folder, workers=0), csv_pairs(folder, workers=2)
    for step in [0, 1, 2, 3, 4, 5, 6, 0, 1, 11, 12]:
        a, b = inline.pairs(step), workers.pairs(step)
        assert torch.equal(a.images, b.images) and a.captions == b.captions, step
        assert a.images.shape == (8, 3, 16, 16) and a.images.dtype == torch.uint8
    # row 3's corrupt JPEG was found inside a worker process: the main process knows it
    assert inline.skipped == workers.skipped == ["0003.jpg"]


def test_two_ranks_of_half_the_batch_read_the_rows_of_one_process(folder):
    one, r0, r1 = csv_pairs(folder, 8), csv_pairs(folder, 8, 1, 0, 2), csv_pairs(folder, 8, 1, 1, 2)
    for step in range(7):
        a, b, c = one.pairs(step), r0.pairs(step), r1.pairs(step)
        assert torch.equal(a.images, torch.cat([b.images, c.images])) and a.captions == b.captions + c.captions


@pytest.mark.filterwarnings("ignore:skipped bad sample")
def test_a_dropped_stream_stops_its_workers_at_once(folder):
    """No reference cycle keeps a stream (and its prefetching workers) alive until the garbage collector runs."""
    import gc
    import multiprocessing
    gc.disable()
    try:
        shards_pattern = str(folder / "shards" / "{00000..00001}.tar")
        for make in (lambda: csv_pairs(folder, workers=2), lambda: ShardPairs(shards_pattern, 16, 8, 0, workers=2)):
            stream = make()
            stream.pairs(0)
            assert len(multiprocessing.active_children()) == 2
            del stream
            assert multiprocessing.active_children() == []
    finally:
        gc.enable()


def test_default_workers_is_one_per_core_at_most_8_shared_by_the_ranks_of_a_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_workers() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun --nproc_per_node 8 on 16 cores: 2 workers a rank
    assert default_workers() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert default_workers() == 1


# ---- webdataset shards ------------------------------------------------------------------------------------------

def test_shard_patterns_expand_and_missing_shards_are_named(folder):
    paths = shards.expand_shards(str(folder / "shards" / "{00000..00001}.tar"))
    assert [os.path.basename(p) for p in paths] == ["00000.tar", "00001.tar"]
    with pytest.raises(FileNotFoundError, match=r"2 of 3 shards do not exist, e.g. .*00002.tar.*brace notation"):
        shards.expand_shards(str(folder / "shards" / "{00001..00003}.tar"))


def test_every_reader_gets_shards_and_each_epoch_visits_every_shard_once():
    paths = [f"s{i}.tar" for i in range(5)]
    for world, workers in [(1, 1), (2, 3), (4, 2)]:  # 8 readers for 5 shards: each still gets some
        readers, epochs = world * workers, [[], []]
        for rank in range(world):
            for k in range(workers):
                g, visits = rank * workers + k, shards.ShardBatches(paths, 8, 2, 0, rank, world, workers, 0).visits(k)
                # reader g takes positions g, g + readers, ... of the endless list of epochs (5 positions each)
                for position in range(g, 10, readers):
                    epochs[position // 5].append(next(visits))
        assert sorted(epochs[0]) == sorted(epochs[1]) == paths and epochs[0] != epochs[1]  # reshuffled


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_shard_stream_continues_with_the_right_samples(folder, workers):
    pattern = str(folder / "shards" / "{00000..00001}.tar")
    whole = ShardPairs(pattern, 16, 8, seed=1, workers=workers)
    with pytest.warns(UserWarning, match="skipped bad sample"):
        expected = [whole.pairs(step) for step in range(9)]  # 72 samples: past the end of the first epoch
    resumed = ShardPairs(pattern, 16, 8, seed=1, workers=workers)
    for step in (5, 6, 7, 8):
        got = resumed.pairs(step)
        assert torch.equal(got.images, expected[step].images) and got.captions == expected[step].captions, step
    other = ShardPairs(pattern, 16, 8, seed=2, workers=workers)
    assert [other.pairs(s).captions for s in range(3)] != [e.captions for e in expected[:3]]


def test_bad_samples_are_skipped_counted_and_named_never_fatal(folder):
    # shuffle=1 (no shuffle buffer): 10 batches of 8 are exactly two epochs of the 40 samples
    stream = ShardPairs(str(folder / "shards" / "{00000..00001}.tar"), 16, 8, seed=0, workers=2, shuffle=1)
    with pytest.warns(UserWarning, match=r"skipped bad sample .*\.tar:0000000\d\d: "):
        batches = [stream.pairs(step) for step in range(10)]
    assert all(b.images.shape == (8, 3, 16, 16) and len(b.captions) == 8 for b in batches)
    why = {name.split(":")[1]: name.split(": ", 1)[1] for name in stream.skipped}
    assert why.pop("000000003").startswith("its .jpg image cannot be decoded (")  # PIL's error, e.g. OSError
    assert why == {"000000007": "its .txt caption is empty", "000000009": "its .txt caption is not UTF-8",
                   "000000011": "no image or no caption: it has ['jpg', 'json']"}
    seen = {c for b in batches for c in b.captions}
    assert seen == {f"photo number {i}" for i in range(40) if i not in (3, 7, 9, 11)}


def test_a_batch_of_one_bad_sample_takes_the_latest_good_one_and_resumes_exactly(folder):
    # a batch of 1 (e.g. --batch-size 8 on 8 ranks) whose only sample is bad: never fatal
    stream = ShardPairs(str(folder / "shards" / "00000.tar"), 16, 1, seed=0, shuffle=1)  # samples 0-19 in order
    with pytest.warns(UserWarning, match="skipped bad sample"):
        batches = [stream.pairs(step) for step in range(13)]
    assert [b.captions[0] for b in batches[:3]] == ["photo number 0", "photo number 1", "photo number 2"]
    assert batches[3].captions == ["photo number 2"]  # sample 3 is corrupt: the latest good sample before it
    assert batches[11].captions == ["photo number 10"] and batches[12].captions == ["photo number 12"]
    assert len(stream.skipped) == 4  # 3, 7, 9 and 11
    resumed = ShardPairs(str(folder / "shards" / "00000.tar"), 16, 1, seed=0, shuffle=1)
    for step in (3, 4, 9, 11, 12):  # a resume lands on the same samples: each batch read exactly one
        assert torch.equal(resumed.pairs(step).images, batches[step].images), step


def test_only_shards_that_all_hold_no_sample_are_refused(folder, tmp_path):
    write_shard(tmp_path / "empty.tar", [])
    good = str(folder / "shards" / "00000.tar")
    for workers in (0, 2):  # seed 13, 2 readers: reader 0 visits the empty shard 3 times before the good one
        stream = ShardPairs(f"{{{tmp_path / 'empty.tar'},{good}}}", 16, 4, seed=13, workers=workers, shuffle=1)
        with pytest.warns(UserWarning, match="skipped bad sample"):
            assert all(len(stream.pairs(step).captions) == 4 for step in range(12))
        stream.close()
    with pytest.raises(OSError, match="all 1 shards hold no sample"):
        ShardPairs(str(tmp_path / "empty.tar"), 16, 4, seed=0).pairs(0)


def test_every_image_kind_decodes_from_a_shard_as_from_a_file(tmp_path):
    """Gray, CMYK, palette, 16-bit and EXIF-rotated images: decoded by the same load_rgb as a CSV's files."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    gray16 = (np.arange(30 * 40, dtype=np.uint16).reshape(30, 40) * 50)
    files = {"gray": jpeg_bytes(photo(1)[:, :, 0]), "rotated": jpeg_bytes(photo(2), exif=exif.tobytes()),
             "gray16": png_bytes(gray16)}
    for mode in ("CMYK", "P"):
        out = io.BytesIO()
        Image.fromarray(photo(3)).convert(mode).save(out, "JPEG" if mode == "CMYK" else "PNG")
        files[mode] = out.getvalue()
    write_shard(tmp_path / "kinds.tar", [(f"{i:09d}", {"png" if b[:4] == b"\x89PNG" else "jpg": b,
                                                       "txt": name.encode()})
                                         for i, (name, b) in enumerate(files.items())])
    got = {}
    for sample in shards._samples([str(tmp_path / "kinds.tar")]):
        image, caption = shards.decode(sample, 24)
        got[caption] = image
    assert sorted(got) == sorted(files)
    for name, payload in files.items():
        expected = square_uint8(24)(load_rgb(io.BytesIO(payload), 24))
        assert torch.equal(got[name], expected) and got[name].shape == (3, 24, 24), name
    upright = load_rgb(io.BytesIO(files["rotated"]))
    assert upright.size == (48, 64)  # 64 x 48 stored, shown turned: 48 wide
    assert np.asarray(load_rgb(io.BytesIO(files["gray16"]))).max() == (gray16.max() >> 8)


def test_shard_captions_are_read_without_decoding_an_image(folder, monkeypatch):
    monkeypatch.setattr(shards, "load_rgb", lambda *a: pytest.fail("reading captions decoded an image"))
    captions = shards.shard_captions(shards.expand_shards(str(folder / "shards" / "{00000..00001}.tar")))
    assert len(captions) == 37 and captions[0] == "photo number 0"  # no empty, non-UTF-8 or missing caption


# ---- training from both -----------------------------------------------------------------------------------------

def test_the_flags_refuse_what_cannot_run(folder):
    with pytest.raises(ValueError, match="--data wds needs --train-data"):
        T.parse_args(["--steps", "1", "--data", "wds"]).check()
    with pytest.raises(FileNotFoundError, match=r"2 of 2 shards do not exist, e.g. .*00006.tar"):
        T.parse_args(["--steps", "1", "--data", "wds", "--train-data", str(folder / "{00006..00007}.tar")]).check()
    with pytest.raises(ValueError, match="--workers -1 must be 0 or more"):
        T.parse_args(["--steps", "1", "--workers", "-1"]).check()
    assert "truncated by the tokenizer" in T.TrainConfig.__dataclass_fields__["csv"].metadata["help"]


def csv_config(folder, out, **flags):
    return T.TrainConfig(data="csv", csv=str(folder / "train.csv"), image_root=str(folder / "images"),
                         batch_size=8, warmup=1, eval_every=1000, quiet=True, out=str(out), **flags)


@pytest.mark.filterwarnings("ignore:ImageCaptionCSV skipped")
def test_csv_training_with_workers_resumes_bit_identically(folder, tmp_path, crash_after):
    T.train(csv_config(folder, tmp_path / "a", steps=6, workers=2))
    with crash_after(3):
        T.train(csv_config(folder, tmp_path / "b", steps=6, workers=2, save_every=2))
    summary = T.train(csv_config(folder, tmp_path / "b", steps=6, workers=2, resume=True))
    a, b = minclip.load(tmp_path / "a")[0].state_dict(), minclip.load(tmp_path / "b")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert summary["skipped_samples"] == 1  # 0003.jpg (row 7, with no caption, was dropped up front)


@pytest.mark.filterwarnings("ignore:skipped bad sample")
def test_shard_training_resumes_bit_identically_and_counts_bad_samples(folder, tmp_path, crash_after):
    flags = dict(data="wds", train_data=str(folder / "shards" / "{00000..00001}.tar"), batch_size=8, warmup=1,
                 eval_every=1000, quiet=True, workers=2, steps=6)
    summary = T.train(T.TrainConfig(out=str(tmp_path / "a"), **flags))
    with crash_after(3):
        T.train(T.TrainConfig(out=str(tmp_path / "b"), save_every=2, **flags))
    T.train(T.TrainConfig(out=str(tmp_path / "b"), resume=True, **flags))
    a, b = minclip.load(tmp_path / "a")[0].state_dict(), minclip.load(tmp_path / "b")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    stream = ShardPairs(flags["train_data"], 32, 8, seed=0, workers=2)  # the run's batches: which were bad?
    for step in range(6):
        stream.pairs(step)
    assert summary["skipped_samples"] == len(stream.skipped) > 0


@pytest.mark.filterwarnings("ignore:skipped bad sample")
def test_a_shard_run_refuses_to_resume_on_another_number_of_ranks(folder, tmp_path, crash_after):
    flags = dict(data="wds", train_data=str(folder / "shards" / "{00000..00001}.tar"), batch_size=8, warmup=1,
                 eval_every=1000, quiet=True, workers=0, steps=4, out=str(tmp_path / "run"))
    with crash_after(3):
        T.train(T.TrainConfig(save_every=2, **flags))
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    assert state["extra"]["world_size"] == 1
    state["extra"]["world_size"] = 2  # as if it had trained under torchrun --nproc_per_node 2
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"trained on 2 rank\(s\) and this one has 1; .* --nproc_per_node 2"):
        T.train(T.TrainConfig(resume=True, **flags))


@pytest.mark.filterwarnings("ignore:skipped bad sample")
def test_a_finished_siglip_run_leaves_no_loader_worker_behind(folder, tmp_path):
    import gc
    import multiprocessing
    gc.disable()  # no reference cycle may keep the objective, its stream and its workers alive
    try:
        T.train(T.TrainConfig(data="wds", train_data=str(folder / "shards" / "{00000..00001}.tar"), loss="siglip",
                              batch_size=8, warmup=1, eval_every=1000, quiet=True, workers=2, steps=2,
                              out=str(tmp_path / "run")))
        assert multiprocessing.active_children() == []
    finally:
        gc.enable()


@pytest.mark.slow
def test_two_ranks_with_workers_train_the_weights_of_one_process(folder, tmp_path):
    """torchrun, 2 ranks of B/2, each with a loader worker, on the CSV: the weights of one process of B with 2
    workers (the tolerance's reasoning: tests/test_train.py, test_two_ranks_of_half_the_batch_equal_one_process)."""
    args = ["--data", "csv", "--csv", str(folder / "train.csv"), "--image-root", str(folder / "images"),
            "--steps", "3", "--batch-size", "16", "--warmup", "1", "--seed", "5", "--quiet", "--eps", "1e-4"]
    one = subprocess.run([sys.executable, "-m", "minclip.train", *args, "--workers", "2", "--out", str(tmp_path / "1")],
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "minclip.train", *args, "--workers", "1", "--out", str(tmp_path / "2")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = minclip.load(tmp_path / "1")[0].state_dict(), minclip.load(tmp_path / "2")[0].state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-5, rtol=1e-4, msg=k)
    assert "0003.jpg" in one.stderr  # the corrupt image, named in a warning


@pytest.mark.slow
def test_the_prepared_gpu_script_runs_at_toy_size_on_the_cpu():
    """benchmarks/gpu_throughput.py waits for a lent GPU; this proves it runs end to end (both libraries, both
    modes, the loader with a worker) before anyone spends device time on it."""
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "gpu_throughput.py")
    r = subprocess.run([sys.executable, script, "--device", "cpu", "--preset", "tiny", "--batch", "16", "--steps", "1",
                        "--images", "32", "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert {(row["mode"], row["library"]) for row in rows} == {(m, lib) for m in ("loader", "compute")
                                                                for lib in ("minclip", "open_clip")}
    assert all(row["samples_per_s"] > 0 for row in rows)
