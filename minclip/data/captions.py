"""Image-caption pairs from a CSV or TSV file of `path, caption` rows plus an image folder (the Flickr8k and
COCO-captions layout), for pre-training or retrieval on your own data: `ImageCaptionCSV`. Webdataset shards, the
other layout, are in shards.py; both decode images with datasets.load_rgb and square them with `square_uint8`.
"""
import csv
import io
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torchvision.transforms import v2

from minclip.data.datasets import load_rgb


def square_uint8(image_size: int) -> v2.Compose:
    """PIL image -> uint8 (3, S, S): resized on its short side to S (bicubic), then centre-cropped."""
    return v2.Compose([v2.Resize(image_size, interpolation=v2.InterpolationMode.BICUBIC),
                       v2.CenterCrop(image_size), v2.PILToTensor()])


class _Row(NamedTuple):
    line: int  # where the row starts in the CSV file, as a text editor numbers it (the header is line 1)
    path: str
    caption: str


class ImageCaptionCSV(torch.utils.data.Dataset):
    """(image uint8 (3, S, S), caption) pairs from a CSV/TSV file and a folder of images.

    Each row is `path, caption` (path relative to image_root); a header row (path/image/filepath/filename, ...)
    is skipped, and the delimiter is a tab if the first line has one, else a comma. Unquoted commas inside a
    caption are kept; rows with an empty caption are dropped, with a warning that counts them; a long caption is
    kept whole (the tokenizer truncates it to the context length). Images are decoded by `load_rgb`, resized on
    their short side to `image_size` (bicubic) and centre-cropped. A bad CSV file raises here; every error names
    the file and the line.

    on_bad_image="error": a missing image raises here, an unreadable one (corrupt, truncated, a decompression
    bomb) when it is loaded.
    on_bad_image="skip": rows whose image is missing are dropped here, with one warning that counts them; an
    unreadable image is found when loaded (decoding every image up front would take minutes on a large set), is
    warned about, and the next readable row stands in for it. Skipped paths are listed in `.skipped` (per
    process: each DataLoader worker keeps its own list).
    """
    HEADER_NAMES = {"path", "image", "image_path", "filepath", "filename", "file", "image_id"}
    FIX = "pass --on-bad-image skip (python -m minclip.train) or on_bad_image='skip' to skip such rows"

    def __init__(self, csv_path, image_root, image_size: int = 224, on_bad_image: str = "error"):
        if on_bad_image not in ("error", "skip"):
            raise ValueError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
        self.csv_path, self.image_root = Path(csv_path), Path(image_root)
        self.image_size, self.on_bad_image = image_size, on_bad_image
        self.resize = square_uint8(image_size)
        rows = _read_rows(self.csv_path, self.HEADER_NAMES, self.image_root)
        empty = [row for row in rows if not row.caption]
        if len(empty) == len(rows):
            raise ValueError(f"every caption in {csv_path} is empty, e.g. line {rows[0].line}; the second column "
                             f"is the caption")
        if empty:  # a pair without text teaches nothing: drop it, and say so
            warnings.warn(f"ImageCaptionCSV skipped {len(empty)} of {len(rows)} rows of {csv_path} whose caption is "
                          f"empty, e.g. line " + ", ".join(str(row.line) for row in empty[:3]), stacklevel=2)
            rows = [row for row in rows if row.caption]
        missing = [row for row in rows if not (self.image_root / row.path).is_file()]
        if missing and on_bad_image == "error":
            raise FileNotFoundError(f"{csv_path} line {missing[0].line}: image {missing[0].path!r} does not exist "
                                    f"under {self.image_root} ({len(missing)} of {len(rows)} images are missing); "
                                    f"fix the paths or image_root, or {self.FIX}")
        if len(missing) == len(rows):
            raise FileNotFoundError(f"none of the {len(rows)} images listed in {csv_path} exist under "
                                    f"{self.image_root}, e.g. {rows[0].path!r}; fix the paths or image_root")
        if missing:
            warnings.warn(f"ImageCaptionCSV skipped {len(missing)} of {len(rows)} rows of {csv_path} whose image "
                          f"does not exist, e.g. " + ", ".join(f"line {r.line}: {r.path}" for r in missing[:3]),
                          stacklevel=2)
        self.skipped = list(dict.fromkeys(row.path for row in missing))  # each path once (Flickr8k: 5 rows an image)
        missing_paths = set(self.skipped)
        self.rows = [row for row in rows if row.path not in missing_paths]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple:
        i = range(len(self.rows))[i]  # IndexError past the end, which is what ends `for pair in dataset`
        for j in range(i, i + len(self.rows)):  # with "skip", the next readable row stands in for a bad one
            row = self.rows[j % len(self.rows)]
            if row.path in self.skipped:
                continue
            try:
                image = load_rgb(self.image_root / row.path, self.image_size)
            except Exception as error:  # PIL raises many kinds on bad bytes: OSError, SyntaxError, EOFError, ...
                problem = (f"cannot read image {self.image_root / row.path} ({self.csv_path} line {row.line}): "
                           f"{type(error).__name__}: {error}")
                if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
                    problem += "; if you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS"
                if self.on_bad_image == "error":
                    raise OSError(f"{problem}; replace or remove it, or {self.FIX}") from None  # PIL's stack: noise
                self.skipped.append(row.path)
                warnings.warn(f"ImageCaptionCSV skipped {problem} ({len(self.skipped)} image(s) skipped so far, "
                              f"e.g. {self.skipped[:3]})", stacklevel=2)
                continue
            return self.resize(image), row.caption
        raise OSError(f"none of the {len(self.rows)} images listed in {self.csv_path} can be read "
                      f"(skipped: {self.skipped[:3]}, ...)")


def _read_rows(csv_path: Path, header_names: set, image_root: Path) -> list:
    """-> [_Row] from a UTF-8 CSV or TSV file, header optional; raises ValueError naming the line of a bad row."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"caption file {csv_path} does not exist")
    data = csv_path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # "-sig": drop the byte-order mark that Excel and Notepad write
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{csv_path} line {line} is not UTF-8 (byte {data[error.start]:#04x}); save the file as "
                         f"UTF-8 (e.g. iconv -f latin1 -t utf-8 old.csv > new.csv for a Latin-1 file)") from None
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    reader, rows, line = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [], 1
    try:
        for cells in reader:
            if cells:  # blank lines are skipped but still counted
                rows.append((line, cells))
            line = reader.line_num + 1  # a quoted caption may span lines: the next row starts after them
    except csv.Error as error:
        raise ValueError(f"{csv_path} line {reader.line_num}: {error}") from None
    if rows and rows[0][1][0].strip().lower() in header_names:
        rows = rows[1:]
    elif len(rows) > 1 and _looks_like_header(rows[0][1][0].strip(), rows[1][1][0].strip(), image_root):
        raise ValueError(f"{csv_path} line {rows[0][0]} looks like a header, but its first column {rows[0][1][0]!r} "
                         f"is none of {sorted(header_names)}; rename it to one of these (e.g. 'image') or delete "
                         f"the line")
    if not rows:
        raise ValueError(f"{csv_path} has no rows (it is empty or only a header); each line must be 'path, caption'")
    bad = next(((line, cells) for line, cells in rows if len(cells) < 2), None)
    if bad is not None:
        raise ValueError(f"{csv_path} line {bad[0]} has no caption: {bad[1]!r}; each line must be 'path, caption'")
    return [_Row(line, cells[0].strip(), delimiter.join(cells[1:]).strip()) for line, cells in rows]


def _looks_like_header(first: str, second: str, image_root: Path) -> bool:
    """Line 1 names no file and has no extension (like 'img' or 'url'), while line 2 names an existing image."""
    return not Path(first).suffix and not (image_root / first).is_file() and (image_root / second).is_file()
