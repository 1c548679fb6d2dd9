"""Where minclip keeps its files, how it writes them so that a crash never leaves half a file behind, and the lock that
gives a run folder one writer."""
import os
import re
from pathlib import Path

import torch


def data_dir() -> Path:
    """The cache folder for rendered datasets and zoo models.

    `$MINCLIP_DATA` if set; else `data/` at the root of a source checkout (git-ignored); else `~/.cache/minclip`
    (a pip install, e.g. on Colab).
    """
    if os.environ.get("MINCLIP_DATA"):
        path = Path(os.environ["MINCLIP_DATA"])
    else:
        root = Path(__file__).resolve().parents[1]
        path = root / "data" if (root / "pyproject.toml").exists() else Path.home() / ".cache" / "minclip"
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_text(path, text: str) -> None:
    """Write a small text file (summary.json) so that a reader sees the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save(obj, path) -> None:
    """torch.save to a temporary file in the same folder, then rename it into place.

    os.replace is atomic on POSIX and Windows: a reader (or a resume after kill -9) sees the old file or the new one,
    never a torn one. An exception or Ctrl-C mid-write removes the temporary file; after a kill -9 nothing can, so the
    next run that locks the folder does (RunLock).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RunFolderBusy(RuntimeError):
    """Another process is writing this run folder."""


_HELD = set()  # the lock files this process holds


def _drop_inherited_locks() -> None:
    """In a forked child (a DataLoader worker): close the copies of the parent's lock files. An flock belongs to
    the open file, which a fork shares, so a worker that outlives its run would otherwise keep the folder locked.
    Closing the child's copy leaves the parent's lock as it is."""
    for file in _HELD:
        file.close()
    _HELD.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_drop_inherited_locks)


class RunLock:
    """`with RunLock(out):` one process at a time writes a run folder; a second one is refused at once.

    An OS file lock (flock) on OUT/.lock: the kernel releases it when the holder exits, however it exits (kill -9
    included), so a lock is never left stale; a forked child (a loader worker) inherits the open file and closes its
    copy at once (above), so it cannot keep the folder locked. Holding it also means that any `.*.tmp<PID>` file in
    the folder was left by a writer that died mid-write, so it is removed.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.file = None

    def __enter__(self) -> "RunLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file = open(self.folder / ".lock", "a+")  # not "w": that would erase the holder's pid before we know
        if not _try_lock(self.file):
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise RunFolderBusy(f"{self.folder} is being written by {holder}; wait for that run to finish (or stop it), "
                               f"or pick another --out")
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()}")
        self.file.flush()
        _HELD.add(self.file)
        for stale in self.folder.glob(".*.tmp*"):  # atomic_save's temporaries (.NAME.tmpPID) of a killed writer
            if re.fullmatch(r"\..+\.tmp\d+", stale.name):
                stale.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        _HELD.discard(self.file)
        self.file.close()  # closing the file releases the lock


def _try_lock(file) -> bool:
    """An exclusive, non-blocking lock on an open file: True if we hold it now."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt
        try:
            file.seek(1024)  # Windows locks are mandatory: lock a byte past the pid, so that others can read it
            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
