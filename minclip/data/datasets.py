"""Real datasets, through the same interfaces as ShapeWorld: images as uint8 (3, H, W) tensors, with class names and
zero-shot templates, or with captions.

- `load_rgb(path)`: any image file as the upright 8-bit RGB picture a viewer shows (16-bit, EXIF-rotated,
  palette, transparent and CMYK files included).
- `load_classification(name, ...)`: a torchvision dataset (CIFAR-10, CIFAR-100, STL-10, MNIST, EuroSAT, Oxford
  Pets) with OpenAI's class names and prompt templates, the evaluation sets of CLIP §3.1. Nothing is downloaded
  unless you pass download=True.
- `ImageCaptionCSV`: image-caption pairs from a CSV or TSV file of `path, caption` rows plus an image folder (the
  Flickr8k and COCO-captions layout), for pre-training or retrieval on your own data.
"""
import csv
import io
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torchvision
from PIL import Image, ImageOps
from torchvision.transforms import v2

from minclip.data import templates
from minclip.io import data_dir


# ---- decoding one image file ----------------------------------------------------------------------------------

def load_rgb(path, size: int = 0) -> Image.Image:
    """The image file at `path` as 8-bit RGB, upright, as an image viewer shows it.

    size: if > 0, a JPEG may be decoded at a reduced scale (1/2, 1/4, 1/8) whose sides stay >= size: much faster.
    Raises PIL's own errors for a file that is not an image, is truncated, or is a decompression bomb (more than
    PIL.Image.MAX_IMAGE_PIXELS pixels, which PIL only warns about up to twice that limit; here both are errors).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            if size:
                image.draft("RGB", (size, size))
            # cameras store "turn this 90°" in the EXIF Orientation tag rather than in the pixels; this also loads
            image = ImageOps.exif_transpose(image)
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (1, L, P, I;16, I, LA, PA, RGBA, CMYK, YCbCr, ...) -> RGB."""
    if image.mode.startswith("I"):
        # 16-bit gray ("I;16", or "I" in older PIL): keep the high byte; convert("RGB") would clip all of 256..65535
        # to white. 16-bit RGB(A) PNGs need nothing: PIL already keeps their high bytes.
        image = Image.fromarray((np.asarray(image).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # a fully transparent pixel's colour is arbitrary (often black): show the image over white, as viewers do
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return image.convert("RGB")  # CMYK: PIL's (255 - C)(255 - K) / 255, ignoring any ICC profile


class ClassificationData(NamedTuple):
    dataset: torch.utils.data.Dataset  # item: (image uint8 (3, H, W), or transform(image); label int)
    classnames: list
    templates: list


class _Spec(NamedTuple):
    make: object  # (root, split, download, transform) -> torchvision dataset
    classnames: object  # torchvision dataset -> class names
    templates: list
    size: str  # download size, for the error message


tv = torchvision.datasets
_underscores = lambda ds: [c.replace("_", " ") for c in ds.classes]
DATASETS = {
    "cifar10": _Spec(lambda root, split, dl, tf: tv.CIFAR10(root, split == "train", tf, download=dl),
                     _underscores, templates.CIFAR_TEMPLATES, "163 MB"),
    "cifar100": _Spec(lambda root, split, dl, tf: tv.CIFAR100(root, split == "train", tf, download=dl),
                      _underscores, templates.CIFAR_TEMPLATES, "161 MB"),
    "stl10": _Spec(lambda root, split, dl, tf: tv.STL10(root, split, transform=tf, download=dl),
                   _underscores, templates.STL10_TEMPLATES, "2.5 GB"),
    "mnist": _Spec(lambda root, split, dl, tf: tv.MNIST(root, split == "train", tf, download=dl),
                   lambda ds: templates.MNIST_CLASSNAMES, templates.MNIST_TEMPLATES, "12 MB"),
    "eurosat": _Spec(lambda root, split, dl, tf: _eurosat(root, split, dl, tf),
                     lambda ds: templates.EUROSAT_CLASSNAMES, templates.EUROSAT_TEMPLATES, "94 MB"),
    "pets": _Spec(lambda root, split, dl, tf: tv.OxfordIIITPet(root, "trainval" if split == "train" else "test",
                                                               transform=tf, download=dl),
                  _underscores, templates.PETS_TEMPLATES, "800 MB"),
}


def load_classification(name: str, root=None, split: str = "test", download: bool = False,
                        transform=None) -> ClassificationData:
    """A torchvision classification dataset with OpenAI's class names and templates.

    name: one of DATASETS. root: where the data lives (default: data_dir()). split: "train" or "test".
    Items are (image, label): the image as uint8 (3, H, W) RGB (MNIST's gray repeated), then `transform` if given
    (e.g. `clip_preprocess(224)`).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root, spec = Path(root) if root is not None else data_dir(), DATASETS[name]
    to_uint8 = v2.Compose([v2.PILToTensor(), v2.RGB()] + ([transform] if transform is not None else []))
    try:
        dataset = spec.make(str(root), split, download, to_uint8)
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        if download:
            raise
        raise FileNotFoundError(f"{name} was not found under {root} (torchvision: {error}). "
                                f"Pass download=True to download it there ({spec.size}).") from error
    classnames = spec.classnames(dataset.dataset if isinstance(dataset, torch.utils.data.Subset) else dataset)
    return ClassificationData(dataset, classnames, list(spec.templates))


def _eurosat(root: str, split: str, download: bool, transform) -> torch.utils.data.Subset:
    """EuroSAT ships as one set; like other zero-shot benchmarks, hold out a fixed, seeded 20% as the test split."""
    full = tv.EuroSAT(root, transform=transform, download=download)
    full.loader = load_rgb  # torchvision's loader ignores EXIF rotation (set here: older torchvision has no argument)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    n_test = len(full) // 5
    return torch.utils.data.Subset(full, (order[:n_test] if split == "test" else order[n_test:]).tolist())


class _Row(NamedTuple):
    line: int  # where the row starts in the CSV file, as a text editor numbers it (the header is line 1)
    path: str
    caption: str


class ImageCaptionCSV(torch.utils.data.Dataset):
    """(image uint8 (3, S, S), caption) pairs from a CSV/TSV file and a folder of images.

    Each row is `path, caption` (path relative to image_root); a header row (path/image/filepath/filename, ...)
    is skipped, and the delimiter is a tab if the first line has one, else a comma. Unquoted commas inside a
    caption are kept. Images are decoded by `load_rgb`, resized on their short side to `image_size` (bicubic)
    and centre-cropped. A bad CSV file raises here; every error names the file and the line.

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
        self.resize = v2.Compose([v2.Resize(image_size, interpolation=v2.InterpolationMode.BICUBIC),
                                  v2.CenterCrop(image_size), v2.PILToTensor()])
        rows = _read_rows(self.csv_path, self.HEADER_NAMES, self.image_root)
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
