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

from _images import png_bytes

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
    with pytest.raises(FileNotFoundError, match="nowhere.png.*on_bad_image='skip'"):
        ImageCaptionCSV(image_folder / "missing.csv", image_folder)
    (image_folder / "corrupt.csv").write_text("a.png,fine\ntruncated.jpg,cut\ngarbage.jpg,junk\n")
    pairs = ImageCaptionCSV(image_folder / "corrupt.csv", image_folder, image_size=8)
    assert pairs[0][0].shape == (3, 8, 8)
    for i, name in [(1, "truncated.jpg"), (2, "garbage.jpg")]:
        with pytest.raises(OSError, match=name):
            pairs[i]


def test_skip_drops_missing_rows_here_and_unreadable_ones_when_loaded_with_counted_warnings(image_folder):
    (image_folder / "mixed.csv").write_text("a.png,ok\nnowhere.png,gone\ntruncated.jpg,cut\nc.jpg,ok too\n"
                                            "garbage.jpg,junk\n")
    with pytest.warns(UserWarning, match=r"skipped 1 of 5 rows .* does not exist, e.g. line 2: nowhere.png"):
        pairs = ImageCaptionCSV(image_folder / "mixed.csv", image_folder, image_size=8, on_bad_image="skip")
    assert len(pairs) == 4 and pairs.skipped == ["nowhere.png"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        captions = [caption for _, caption in pairs]  # iterating also checks that IndexError ends the loop
    assert captions == ["ok", "ok too", "ok too", "ok"]  # the next readable row stands in for a bad one
    assert pairs.skipped == ["nowhere.png", "truncated.jpg", "garbage.jpg"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "truncated.jpg" in messages[0] and "mixed.csv line 3" in messages[0]
    assert "garbage.jpg" in messages[1] and "line 5" in messages[1] and "3 image(s) skipped so far" in messages[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bad image already skipped is not decoded or warned about again
        assert pairs[1][1] == "ok too"


def test_csv_errors(image_folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageCaptionCSV(image_folder / "none.csv", image_folder)
    (image_folder / "short.csv").write_text("a.png,ok\nb.png\n")
    with pytest.raises(ValueError, match="line 2 has no caption"):
        ImageCaptionCSV(image_folder / "short.csv", image_folder)
    with pytest.raises(ValueError, match="on_bad_image must be 'error' or 'skip'"):
        ImageCaptionCSV(image_folder / "short.csv", image_folder, on_bad_image="ignore")
    (image_folder / "gone.csv").write_text("nowhere.png,gone\nnot-here.png,gone too\n")
    with pytest.raises(FileNotFoundError, match="none of the 2 images"):
        ImageCaptionCSV(image_folder / "gone.csv", image_folder, on_bad_image="skip")


# ---- real image files decode to the RGB a viewer shows ---------------------------------------------------------

def load_one(folder, name, image_size):
    """The image file `name` through ImageCaptionCSV -> uint8 (S, S, 3) numpy."""
    (folder / "one.csv").write_text(f"image,caption\n{name},a caption\n")
    image, _ = ImageCaptionCSV(folder / "one.csv", folder, image_size=image_size)[0]
    return image.permute(1, 2, 0).numpy()


def test_16bit_grayscale_png_keeps_its_gray_levels(tmp_path):
    levels = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)  # a ramp from black to white
    Image.fromarray(levels).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    image = load_one(tmp_path, "gray16.png", 8)
    expected = np.round(levels / 257)  # 65535 -> 255
    assert np.abs(image.astype(float) - expected[:, :, None]).max() <= 1  # was: everything over 255 white


def test_16bit_rgb_png_keeps_its_colours(tmp_path):
    # PIL cannot write 16-bit RGB (it has no such mode); png_bytes writes the file itself. PIL reads it as 8-bit RGB
    # of the high bytes: this guards that path.
    pixels = np.random.default_rng(0).integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    (tmp_path / "rgb16.png").write_bytes(png_bytes(pixels))
    image = load_one(tmp_path, "rgb16.png", 8)
    assert np.abs(image.astype(float) - pixels / 257).max() <= 1


def quadrants(width=64, height=32):
    """uint8 (H, W, 3): four flat colours, so that each rotation and flip gives a different picture."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (255, 0, 0)
    image[: height // 2, width // 2:] = (0, 255, 0)
    image[height // 2:, : width // 2] = (0, 0, 255)
    image[height // 2:, width // 2:] = (255, 255, 0)
    return image


def save_jpeg_with_orientation(path, pixels, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation  # the EXIF Orientation tag
    Image.fromarray(pixels).save(path, quality=95, subsampling=0, exif=exif)


# EXIF orientation -> how a viewer turns the stored pixels (np.rot90: k > 0 counter-clockwise)
UPRIGHT = {3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_jpeg_is_loaded_upright(tmp_path, orientation):
    pixels = quadrants()  # 64 wide, 32 tall
    save_jpeg_with_orientation(tmp_path / "photo.jpg", pixels, orientation)
    upright = UPRIGHT[orientation](pixels)
    H, W = upright.shape[:2]
    crop = (slice((H - 32) // 2, (H + 32) // 2), slice((W - 32) // 2, (W + 32) // 2))  # the centre crop, S = 32
    image = load_one(tmp_path, "photo.jpg", 32)
    assert np.abs(image.astype(int) - upright[crop]).max() <= 16  # JPEG noise; a wrong quadrant is off by 255


def test_eurosat_loads_exif_rotated_jpegs_upright(tmp_path):
    pixels = quadrants(16, 8)
    for folder in ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake"]:
        (tmp_path / "eurosat" / "2750" / folder).mkdir(parents=True)
        save_jpeg_with_orientation(tmp_path / "eurosat" / "2750" / folder / "0.jpg", pixels, 6)
    image, _ = load_classification("eurosat", tmp_path, "train").dataset[0]
    assert image.shape == (3, 16, 8)  # stored 16 wide, 8 tall; upright 8 wide, 16 tall


def test_cmyk_palette_gray_and_transparent_images_come_out_as_viewed_rgb(tmp_path):
    colours = [(255, 255, 255), (0, 255, 255), (0, 0, 0), (94, 125, 155)]  # as RGB
    cmyk = Image.new("CMYK", (4, 1))
    cmyk.putdata([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255), (100, 50, 0, 100)])  # white, cyan, black, a blue
    cmyk.resize((64, 16), Image.NEAREST).save(tmp_path / "cmyk.jpg", quality=100)
    palette = Image.new("P", (4, 1))
    palette.putpalette([c for colour in colours for c in colour])
    palette.putdata([0, 1, 2, 3])
    palette.resize((64, 16), Image.NEAREST).save(tmp_path / "palette.png")
    palette.resize((64, 16), Image.NEAREST).save(tmp_path / "palette-transparent.png", transparency=1)
    gray = np.repeat(np.array([[0, 90, 180, 255]], np.uint8), 16, axis=1).repeat(16, axis=0)  # (16, 64)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    rgba = np.zeros((16, 64, 4), np.uint8)
    rgba[:, :, 0] = 255  # hidden under the alpha: red
    rgba[:, :, 3] = np.repeat([255, 0, 128, 255], 16)  # opaque, transparent, half, opaque
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(np.stack([gray, rgba[:, :, 3]], axis=2), "LA").save(tmp_path / "la.png")
    half = lambda over: (over + 255) / 2  # a half-transparent pixel over white
    expected = {  # file: (its PIL mode, the RGB of its middle two stripes)
        "cmyk.jpg": ("CMYK", colours[1:3]), "palette.png": ("P", colours[1:3]),
        "palette-transparent.png": ("P", [(255, 255, 255), colours[2]]),  # colour 1 is transparent: white
        "gray.png": ("L", [(90, 90, 90), (180, 180, 180)]),
        "rgba.png": ("RGBA", [(255, 255, 255), (255, half(0), half(0))]),
        "la.png": ("LA", [(255, 255, 255), (half(180),) * 3])}
    for name, (mode, rgbs) in expected.items():
        assert Image.open(tmp_path / name).mode == mode
        image = load_one(tmp_path, name, 16)  # the centre crop: columns 24-39, half of stripe 1, half of stripe 2
        for x, rgb in zip([0, 15], rgbs):
            assert np.abs(image[8, x].astype(float) - rgb).max() <= 3, (name, x, image[8, x], rgb)


# ---- errors name the problem, the file, the line and the fix ----------------------------------------------------

def test_missing_image_error_names_the_line_and_the_training_flag(image_folder):
    (image_folder / "missing.csv").write_text('image,caption\na.png,"a caption\nover two lines"\n\nnowhere.png,gone\n')
    with pytest.raises(FileNotFoundError) as caught:
        ImageCaptionCSV(image_folder / "missing.csv", image_folder)
    message = str(caught.value)
    assert "missing.csv line 5: image 'nowhere.png' does not exist" in message  # header 1, caption 2-3, blank 4
    assert "pass --on-bad-image skip (python -m minclip.train) or on_bad_image='skip'" in message
    assert caught.value.__cause__ is None and caught.value.__context__ is None


@pytest.mark.parametrize("name", ["truncated.jpg", "garbage.jpg"])
def test_corrupt_image_error_is_one_message_naming_file_line_and_fix(image_folder, name):
    (image_folder / "corrupt.csv").write_text(f"filepath\ttitle\na.png\tfine\n\n{name}\tbad\n")
    pairs = ImageCaptionCSV(image_folder / "corrupt.csv", image_folder, image_size=8)
    with pytest.raises(OSError) as caught:
        pairs[1]
    message = str(caught.value)
    assert f"cannot read image {image_folder / name} ({image_folder / 'corrupt.csv'} line 4)" in message
    assert "--on-bad-image skip" in message and "\n" not in message
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None  # no chained PIL traceback


def test_row_numbers_are_the_editors_line_numbers(image_folder):
    (image_folder / "lines.csv").write_text('image,caption\n\na.png,"two\nlines"\nb.png\n')
    with pytest.raises(ValueError, match="lines.csv line 5 has no caption"):
        ImageCaptionCSV(image_folder / "lines.csv", image_folder)


def test_non_utf8_csv_names_the_line_and_says_save_as_utf8(image_folder):
    (image_folder / "latin1.csv").write_bytes("image,caption\na.png,a café\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.csv line 2 is not UTF-8.*save the file as UTF-8") as caught:
        ImageCaptionCSV(image_folder / "latin1.csv", image_folder)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_utf8_csv_with_a_byte_order_mark_just_works(image_folder):
    (image_folder / "bom.csv").write_bytes("image,caption\na.png,a café\n".encode("utf-8-sig"))  # as Excel saves
    pairs = ImageCaptionCSV(image_folder / "bom.csv", image_folder, image_size=8)
    assert len(pairs) == 1 and pairs[0][1] == "a café"


def test_unknown_header_lists_the_accepted_names(image_folder):
    (image_folder / "img.csv").write_text("img,caption\na.png,a caption\n")
    with pytest.raises(ValueError, match=r"line 1 looks like a header.*'img'.*\['file', 'filename',") as caught:
        ImageCaptionCSV(image_folder / "img.csv", image_folder)
    assert all(name in str(caught.value) for name in ImageCaptionCSV.HEADER_NAMES)
    (image_folder / "file.csv").write_text("file,text\na.png,a caption\n")  # 'file' is an accepted name
    assert [caption for _, caption in ImageCaptionCSV(image_folder / "file.csv", image_folder, 8)] == ["a caption"]


@pytest.mark.parametrize("text", ["", "image,caption\n", "\n\n"])
def test_empty_csv_says_it_has_no_rows(image_folder, text):
    (image_folder / "empty.csv").write_text(text)
    with pytest.raises(ValueError, match="empty.csv has no rows"):
        ImageCaptionCSV(image_folder / "empty.csv", image_folder)


def test_decompression_bomb_names_the_file_or_is_skipped(image_folder):
    # a 100,000 x 100,000 header on a few bytes: PIL refuses it (> 2 x MAX_IMAGE_PIXELS) from the header alone
    (image_folder / "bomb.png").write_bytes(png_bytes(np.zeros((1, 1), np.uint8), width=100_000, height=100_000))
    (image_folder / "bomb.csv").write_text("image,caption\nbomb.png,boom\na.png,fine\n")
    with pytest.raises(OSError, match=r"bomb.png \(.*bomb.csv line 2\).*DecompressionBomb.*MAX_IMAGE_PIXELS"):
        ImageCaptionCSV(image_folder / "bomb.csv", image_folder)[0]
    pairs = ImageCaptionCSV(image_folder / "bomb.csv", image_folder, image_size=8, on_bad_image="skip")
    with pytest.warns(UserWarning, match="skipped cannot read image .*bomb.png"):
        assert pairs[0][1] == "fine"
    assert pairs.skipped == ["bomb.png"]


def test_image_over_pils_pixel_limit_is_an_error_not_just_a_warning(image_folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # b.png has 256 pixels, a.png 800: PIL would only warn
    (image_folder / "big.csv").write_text("image,caption\nb.png,small\na.png,big\n")
    pairs = ImageCaptionCSV(image_folder / "big.csv", image_folder, image_size=8)
    assert pairs[0][1] == "small"
    with pytest.raises(OSError, match=r"a.png .*line 3\).*DecompressionBombWarning"):
        pairs[1]
