"""minclip/io.py: atomic writes and the run-folder lock."""
import os
import subprocess
import sys

import pytest
import torch

from minclip.io import RunFolderBusy, RunLock, atomic_save


def test_atomic_save_replaces_the_file_whole(tmp_path):
    path = tmp_path / "x.pt"
    atomic_save({"a": torch.ones(3)}, path)
    atomic_save({"a": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "x.pt"
    atomic_save({"a": torch.ones(3)}, path)
    with pytest.raises(Exception):
        atomic_save({"a": lambda: 0}, path)  # a lambda cannot be pickled: the write fails half-way
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_the_lock_refuses_a_second_writer_and_names_the_first(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}.*another --out"):
            with RunLock(tmp_path / "run"):
                pass
    with RunLock(tmp_path / "run"):  # released on exit
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    """The kernel drops a flock when its process dies, however it dies."""
    code = ("import os, sys; from minclip.io import RunLock; RunLock(sys.argv[1]).__enter__(); "
            "os.kill(os.getpid(), 9)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")])
    assert r.returncode == -9
    with RunLock(tmp_path / "run"):
        pass


def test_locking_removes_temporary_files_of_dead_writers(tmp_path):
    (tmp_path / "run").mkdir()
    stale = tmp_path / "run" / ".checkpoint.pt.tmp4242"
    stale.write_bytes(b"half")
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"kept")
    with RunLock(tmp_path / "run"):
        assert not stale.exists() and (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_file_is_not_a_run_folder(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        RunLock(tmp_path / "file").__enter__()
