"""Real datasets, tested offline on small files in the real formats, written here."""
import pickle
import warnings

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from minclip.data import templates
from minclip.data.datasets import DATASETS, ImageCaptionCSV, load_classification
from minclip.data.transforms import clip_preprocess

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_templates_are_openai_lists():
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    assert templates.IMAGENET_TEMPLATES == [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]
    assert len(templates.CIFAR_TEMPLATES) == len(set(templates.CIFAR_TEMPLATES)) == 18
    assert templates.CIFAR_TEMPLATES[0] == "a photo of a {}."
    for name, spec in DATASETS.items():
        assert spec.templates and all(t.count("{}") == 1 for t in spec.templates), name


def write_cifar10(root, n_per_batch=4, seed=0):
    """Write cifar-10-batches-py/ in the format of the real download (pickled dicts of uint8 rows)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n_per_batch, 3 * 32 * 32), dtype=np.uint8),
                 "labels": rng.integers(0, 10, n_per_batch).tolist(), "batch_label": name}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        batches[name] = batch
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR10_NAMES, "num_cases_per_batch": n_per_batch}, f)
    return batches


@pytest.fixture
def skip_md5(monkeypatch):
    """torchvision checks the real files' md5 sums; ours are different files in the same format, so the test
    switches that check off (only that check: the files are still opened, unpickled and decoded by torchvision)."""
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)


def test_cifar10_loads_through_torchvision(tmp_path, skip_md5):
    batches = write_cifar10(tmp_path)
    data = load_classification("cifar10", tmp_path, split="test")
    assert data.classnames == CIFAR10_NAMES and data.templates == templates.CIFAR_TEMPLATES
    image, label = data.dataset[2]
    expected = torch.from_numpy(batches["test_batch"]["data"][2].reshape(3, 32, 32))  # rows are R, G, B planes
    assert image.dtype == torch.uint8 and torch.equal(image, expected)
    assert label == batches["test_batch"]["labels"][2]
    train = load_classification("cifar10", tmp_path, split="train", transform=clip_preprocess(32))
    image, _ = train.dataset[0]
    assert len(train.dataset) == 20 and image.dtype == torch.float32 and image.shape == (3, 32, 32)


@pytest.mark.parametrize("name", list(DATASETS))
def test_missing_data_says_where_it_looked_and_how_to_download(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=f"{name} was not found under {tmp_path}.*download=True"):
        load_classification(name, tmp_path)


def test_bad_names_and_splits():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_classification("imagenet")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_classification("cifar10", split="val")


def test_eurosat_split_is_fixed_disjoint_and_complete(tmp_path):
    folders = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
               "PermanentCrop", "Residential", "River", "SeaLake"]  # EuroSAT's own folder names
    for k, folder in enumerate(folders):
        (tmp_path / "eurosat" / "2750" / folder).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (8, 8), (k * 20, i * 40, 0)).save(tmp_path / "eurosat" / "2750" / folder / f"{i}.jpg")
    test, train = load_classification("eurosat", tmp_path, "test"), load_classification("eurosat", tmp_path, "train")
    assert test.classnames == templates.EUROSAT_CLASSNAMES and len(test.dataset) == 10 and len(train.dataset) == 40
    assert not set(test.dataset.indices) & set(train.dataset.indices)
    assert test.dataset.indices == load_classification("eurosat", tmp_path, "test").dataset.indices
    image, label = test.dataset[0]
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8 and 0 <= label < 10


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name, size in [("a.png", (40, 20)), ("b.png", (16, 16)), ("c.jpg", (30, 30))]:
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / name)
    jpeg = (tmp_path / "c.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # a download cut short
    (tmp_path / "garbage.jpg").write_bytes(b"this is not an image")
    return tmp_path


def test_csv_with_header_commas_and_resizing(image_folder):
    (image_folder / "captions.csv").write_text(
        'image,caption\na.png,"a red circle, small"\nb.png,two blue squares, on stripes\nc.jpg,a star\n')
    pairs = ImageCaptionCSV(image_folder / "captions.csv", image_folder, image_size=16)
    assert len(pairs) == 3
    assert [pairs[i][1] for i in range(3)] == ["a red circle, small", "two blue squares, on stripes", "a star"]
    image, _ = pairs[0]  # 40 x 20: short side to 16, centre crop
    assert image.dtype == torch.uint8 and image.shape == (3, 16, 16)
    original = torch.from_numpy(np.array(Image.open(image_folder / "b.png"))).permute(2, 0, 1)
    assert torch.equal(pairs[1][0], original)  # already 16 x 16: untouched


def test_tsv_without_header(image_folder):
    (image_folder / "captions.tsv").write_text("a.png\ta photo, with a comma\nb.png\tanother one\n")
    pairs = ImageCaptionCSV(image_folder / "captions.tsv", image_folder, image_size=8)
    assert len(pairs) == 2 and pairs[0][1] == "a photo, with a comma" and pairs[1][0].shape == (3, 8, 8)


def test_missing_and_corrupt_images_raise_naming_the_file(image_folder):
    (image_folder / "missing.csv").write_text("a.png,fine\nnowhere.png,gone\n")
    with pytest.raises(FileNotFoundError, match="nowhere.png.*on_error='skip'"):
        ImageCaptionCSV(image_folder / "missing.csv", image_folder)
    (image_folder / "corrupt.csv").write_text("a.png,fine\ntruncated.jpg,cut\ngarbage.jpg,junk\n")
    pairs = ImageCaptionCSV(image_folder / "corrupt.csv", image_folder, image_size=8)
    assert pairs[0][0].shape == (3, 8, 8)
    for i, name in [(1, "truncated.jpg"), (2, "garbage.jpg")]:
        with pytest.raises(OSError, match=name):
            pairs[i]


def test_skip_drops_bad_rows_with_one_counted_warning(image_folder):
    (image_folder / "mixed.csv").write_text("a.png,ok\nnowhere.png,gone\ntruncated.jpg,cut\nc.jpg,ok too\n"
                                            "garbage.jpg,junk\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = ImageCaptionCSV(image_folder / "mixed.csv", image_folder, image_size=8, on_error="skip")
    assert len(caught) == 1 and "skipped 3 of 5 rows" in str(caught[0].message)
    assert pairs.skipped == ["nowhere.png", "truncated.jpg", "garbage.jpg"]
    assert [pairs[i][1] for i in range(len(pairs))] == ["ok", "ok too"]


def test_csv_errors(image_folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageCaptionCSV(image_folder / "none.csv", image_folder)
    (image_folder / "short.csv").write_text("a.png,ok\nb.png\n")
    with pytest.raises(ValueError, match="row 2 has no caption"):
        ImageCaptionCSV(image_folder / "short.csv", image_folder)
    with pytest.raises(ValueError, match="on_error must be"):
        ImageCaptionCSV(image_folder / "short.csv", image_folder, on_error="ignore")
