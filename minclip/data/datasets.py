"""Real datasets, through the same interfaces as ShapeWorld: images as uint8 (3, H, W) tensors, with class names and
zero-shot templates, or with captions.

- `load_classification(name, ...)`: a torchvision dataset (CIFAR-10, CIFAR-100, STL-10, MNIST, EuroSAT, Oxford
  Pets) with OpenAI's class names and prompt templates, the evaluation sets of CLIP §3.1. Nothing is downloaded
  unless you pass download=True.
- `ImageCaptionCSV`: image-caption pairs from a CSV or TSV file of `path, caption` rows plus an image folder (the
  Flickr8k and COCO-captions layout), for pre-training or retrieval on your own data.
"""
import csv
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
import torchvision
from PIL import Image
from torchvision.transforms import v2

from minclip.data import templates
from minclip.io import data_dir


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
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    n_test = len(full) // 5
    return torch.utils.data.Subset(full, (order[:n_test] if split == "test" else order[n_test:]).tolist())


class ImageCaptionCSV(torch.utils.data.Dataset):
    """(image uint8 (3, S, S), caption) pairs from a CSV/TSV file and a folder of images.

    Each row is `path, caption` (path relative to image_root); a header row (path/image/filepath/filename, ...)
    is skipped, and the delimiter is a tab if the first line has one, else a comma. Unquoted commas inside a
    caption are kept. Images are resized on their short side to `image_size` (bicubic) and centre-cropped.

    on_error="raise": a missing image raises here, a corrupt one when it is loaded; both errors name the file.
    on_error="skip": every image is decoded once here; rows whose image is missing or corrupt are dropped, with
    one warning that counts them, and are listed in `.skipped`.
    """
    HEADER_NAMES = {"path", "image", "image_path", "filepath", "filename", "file", "image_id"}

    def __init__(self, csv_path, image_root, image_size: int = 224, on_error: str = "raise"):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.image_root, self.image_size = Path(image_root), image_size
        self.resize = v2.Compose([v2.Resize(image_size, interpolation=v2.InterpolationMode.BICUBIC),
                                  v2.CenterCrop(image_size), v2.PILToTensor()])
        rows = _read_rows(Path(csv_path), self.HEADER_NAMES)
        missing = [path for path, _ in rows if not (self.image_root / path).is_file()]
        if on_error == "raise" and missing:
            raise FileNotFoundError(f"{len(missing)} image(s) listed in {csv_path} do not exist under "
                                    f"{self.image_root}, e.g. {missing[0]!r} (pass on_error='skip' to drop them)")
        self.skipped = [path for path, _ in rows if on_error == "skip" and not self._readable(path)]
        if self.skipped:
            warnings.warn(f"ImageCaptionCSV skipped {len(self.skipped)} of {len(rows)} rows of {csv_path} whose "
                          f"image is missing or unreadable, e.g. {self.skipped[:3]}", stacklevel=2)
        skipped = set(self.skipped)
        self.rows = [(path, caption) for path, caption in rows if path not in skipped]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple:
        path, caption = self.rows[i]
        try:
            with Image.open(self.image_root / path) as image:
                image.draft("RGB", (self.image_size, self.image_size))  # JPEG: decode at reduced scale, faster
                return self.resize(image.convert("RGB")), caption
        except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for unreadable files
            raise OSError(f"cannot read image {self.image_root / path} (row {i}): {error}") from error

    def _readable(self, path: str) -> bool:
        try:
            with Image.open(self.image_root / path) as image:
                image.draft("RGB", (self.image_size, self.image_size))
                image.load()
            return True
        except (OSError, SyntaxError, ValueError):
            return False


def _read_rows(csv_path: Path, header_names: set) -> list:
    """-> [(path, caption)] from a CSV or TSV file, header optional."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"caption file {csv_path} does not exist")
    with open(csv_path, newline="", encoding="utf-8") as f:
        text = f.read()
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    rows = [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if row]
    if rows and rows[0][0].strip().lower() in header_names:
        rows = rows[1:]
    bad = next((i for i, row in enumerate(rows) if len(row) < 2), None)
    if bad is not None:
        raise ValueError(f"{csv_path}: row {bad + 1} has no caption: {rows[bad]!r}; each row must be 'path, caption'")
    return [(row[0].strip(), delimiter.join(row[1:]).strip()) for row in rows]
