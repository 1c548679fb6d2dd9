"""Where minclip keeps its files, and how it writes them so that a crash never leaves half a file behind."""
import os
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


def atomic_save(obj, path) -> None:
    """torch.save to a temporary file in the same folder, then rename it into place.

    os.replace is atomic on POSIX and Windows: a reader (or a resume after kill -9) sees the old file or the new one,
    never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
