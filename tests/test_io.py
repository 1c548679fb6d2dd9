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
    code = ("import sys, time; from minclip.io import RunLock; lock = RunLock(sys.argv[1]); lock.__enter__(); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=f"pid {holder.pid}"):  # it really holds the lock ...
            RunLock(tmp_path / "run").__enter__()
    finally:
        holder.kill()  # ... until kill -9
        holder.wait()
    with RunLock(tmp_path / "run"):
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this OS")
def test_a_forked_child_does_not_keep_the_lock_after_its_parent_lets_go(tmp_path):
    """A DataLoader worker is a fork of the training process; one that lives on after the run ended (a crash, the
    iterator not yet collected) must not keep the run folder locked, and while the run goes on it holds the lock."""
    read, write = os.pipe()
    started_read, started_write = os.pipe()
    with RunLock(tmp_path / "run"):
        child = os.fork()
        if child == 0:  # the child: say it runs, wait until the parent says it is done, then leave without cleanup
            os.write(started_write, b"x")
            os.read(read, 1)
            os._exit(0)
        os.read(started_read, 1)  # the child runs (its fork hooks ran before fork() returned in it)
        with pytest.raises(RunFolderBusy):  # the parent still holds it
            RunLock(tmp_path / "run").__enter__()
    try:
        with RunLock(tmp_path / "run"):  # the child is alive, and the folder is free
            pass
    finally:
        os.write(write, b"x")
        os.waitpid(child, 0)


def test_locking_removes_temporary_files_of_dead_writers_and_nothing_else(tmp_path):
    (tmp_path / "run").mkdir()
    stale = tmp_path / "run" / ".checkpoint.pt.tmp4242"
    stale.write_bytes(b"half")
    for name in ("checkpoint.pt", ".notes.tmp", ".bashrc.tmpl"):
        (tmp_path / "run" / name).write_bytes(b"kept")
    with RunLock(tmp_path / "run"):
        assert not stale.exists()
        assert all((tmp_path / "run" / name).exists() for name in ("checkpoint.pt", ".notes.tmp", ".bashrc.tmpl"))
