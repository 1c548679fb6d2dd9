"""Real datasets, tested offline on small files in the real formats, written here."""
import functools
import io
import json
import os
import pathlib
import pickle
import struct
import sys
import tarfile
import warnings

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from minclip.data import prompts, templates
from minclip.data import ImageCaptionCSV
from minclip.data.datasets import DATASETS, MISSING, load_classification, paper_name
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
    tv = torchvision.datasets
    exists = lambda path, md5=None: os.path.isfile(path)  # the check without its md5 part
    monkeypatch.setattr(tv.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv.cifar, "check_integrity", lambda path, md5=None: True)
    monkeypatch.setattr(tv.STL10, "_check_integrity", lambda self: True)
    for module in (tv.flowers102, tv.fer2013, tv.svhn, tv.imagenet):
        monkeypatch.setattr(module, "check_integrity", exists)


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
    for module in DATASETS[name].needs:
        pytest.importorskip(module)
    fix = "torchvision cannot download it" if DATASETS[name].by_hand else "download=True"
    with pytest.raises(FileNotFoundError, match=f"{name} was not found under {tmp_path}.*{fix}"):
        load_classification(name, tmp_path)


def test_imagenet_says_it_must_be_downloaded_by_hand_and_where_to_put_it(tmp_path):
    for download in (False, True):
        with pytest.raises(FileNotFoundError) as caught:
            load_classification("imagenet", tmp_path, download=download)
        message = str(caught.value)
        assert "image-net.org" in message and f"{tmp_path}/imagenet/" in message
        assert "ILSVRC2012_devkit_t12.tar.gz" in message and "ILSVRC2012_img_val.tar" in message


def test_bad_names_and_splits():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet21k'"):
        load_classification("imagenet21k")
    with pytest.raises(ValueError, match=r"cifar10 has no split 'val'; its splits are \('train', 'test'\)"):
        load_classification("cifar10", split="val")
    with pytest.raises(ValueError, match=r"its splits are \('train', 'val', 'test'\)"):
        load_classification("flowers", split="trainval")


def test_missing_datasets_are_named_with_their_reason_never_faked():
    assert set(MISSING) == {"birdsnap", "voc2007", "resisc45", "kitti_distance", "ucf101", "kinetics700",
                            "hateful_memes"}
    assert not set(MISSING) & set(DATASETS) and len(DATASETS) + len(MISSING) == 27 + 1  # the paper's 27, and SVHN
    for name, reason in MISSING.items():
        with pytest.raises(ValueError, match=f"{name} \\({paper_name(name)}\\) is not available") as caught:
            load_classification(name)
        assert reason in str(caught.value)


def test_paper_names_metrics_and_splits():
    assert paper_name("pets") == "Oxford-IIIT Pets" and paper_name("aircraft") == "FGVC Aircraft"
    assert paper_name("clevr_counts") == "CLEVR Counts" and paper_name("rendered_sst2") == "Rendered SST2"
    assert paper_name("voc2007") == "Pascal VOC 2007 Classification"
    assert paper_name("kitti_distance") == "KITTI Distance" and paper_name("svhn") == "SVHN"
    with pytest.raises(ValueError, match="unknown dataset 'coco'"):
        paper_name("coco")
    per_class = {name for name, spec in DATASETS.items() if spec.metric == "mean_per_class_recall"}
    assert per_class == {"pets", "caltech101", "flowers", "aircraft"}  # CLIP Table 9's mean per-class accuracy
    assert {spec.metric for spec in DATASETS.values()} == {"accuracy", "mean_per_class_recall"}
    with_val = {name for name, spec in DATASETS.items() if "val" in spec.splits}
    assert with_val == {"aircraft", "dtd", "flowers", "country211", "pcam", "clevr_counts", "rendered_sst2"}
    assert all(spec.splits in [("train", "test"), ("train", "val", "test")] for spec in DATASETS.values())


def test_imagenet_classnames_are_openai_s():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    assert DATASETS["imagenet"].classnames == list(IMAGENET_CLASSNAMES)
    assert DATASETS["imagenet"].templates == templates.IMAGENET_TEMPLATES


def test_a_missing_library_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)  # as if scipy were not installed
    with pytest.raises(ImportError, match="torchvision needs scipy to read cars: pip install scipy"):
        load_classification("cars")


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


# ---- every dataset, from tiny files in its real on-disk format -------------------------------------------------

@functools.lru_cache(maxsize=None)
def tiny(image_format="JPEG") -> bytes:
    """A 6 x 4 RGB image file's bytes, encoded once and written as many times as a dataset needs files."""
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), (200, 30, 60)).save(buffer, image_format)
    return buffer.getvalue()


def put(path, data=None):
    """Write `data` (default: a tiny JPEG) at `path`, making its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiny() if data is None else data)


def savemat(path, **arrays):
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, arrays)


# The folder and file names of the real downloads, where the tests check the order of the class names against them.
PETS_FILE_NAMES = [  # oxford-iiit-pet/annotations/list.txt: class ids 1-37 in this order (cats capitalised)
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal", "Birman",
    "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel", "english_setter",
    "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond", "leonberger", "Maine_Coon",
    "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll", "Russian_Blue", "saint_bernard",
    "samoyed", "scottish_terrier", "shiba_inu", "Siamese", "Sphynx", "staffordshire_bull_terrier", "wheaten_terrier",
    "yorkshire_terrier"]
CALTECH101_FOLDERS = [  # caltech101/101_ObjectCategories/, with the BACKGROUND_Google folder torchvision skips
    "BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes", "accordion", "airplanes", "anchor", "ant",
    "barrel", "bass", "beaver", "binocular", "bonsai", "brain", "brontosaurus", "buddha", "butterfly", "camera",
    "cannon", "car_side", "ceiling_fan", "cellphone", "chair", "chandelier", "cougar_body", "cougar_face", "crab",
    "crayfish", "crocodile", "crocodile_head", "cup", "dalmatian", "dollar_bill", "dolphin", "dragonfly",
    "electric_guitar", "elephant", "emu", "euphonium", "ewer", "ferry", "flamingo", "flamingo_head", "garfield",
    "gerenuk", "gramophone", "grand_piano", "hawksbill", "headphone", "hedgehog", "helicopter", "ibis", "inline_skate",
    "joshua_tree", "kangaroo", "ketch", "lamp", "laptop", "llama", "lobster", "lotus", "mandolin", "mayfly", "menorah",
    "metronome", "minaret", "nautilus", "octopus", "okapi", "pagoda", "panda", "pigeon", "pizza", "platypus",
    "pyramid", "revolver", "rhino", "rooster", "saxophone", "schooner", "scissors", "scorpion", "sea_horse", "snoopy",
    "soccer_ball", "stapler", "starfish", "stegosaurus", "stop_sign", "strawberry", "sunflower", "tick", "trilobite",
    "umbrella", "watch", "water_lilly", "wheelchair", "wild_cat", "windsor_chair", "wrench", "yin_yang"]
COUNTRY211_FOLDERS = (  # country211/<split>/: ISO 3166 country codes
    "AD AE AF AG AI AL AM AO AQ AR AT AU AW AX AZ BA BB BD BE BF BG BH BJ BM BN BO BQ BR BS BT BW BY BZ CA CD CF CH CI "
    "CK CL CM CN CO CR CU CV CW CY CZ DE DK DM DO DZ EC EE EG ES ET FI FJ FK FO FR GA GB GD GE GF GG GH GI GL GM GP GR "
    "GS GT GU GY HK HN HR HT HU ID IE IL IM IN IQ IR IS IT JE JM JO JP KE KG KH KN KP KR KW KY KZ LA LB LC LI LK LR LT "
    "LU LV LY MA MC MD ME MF MG MK ML MM MN MO MQ MR MT MU MV MW MX MY MZ NA NC NG NI NL NO NP NZ OM PA PE PF PG PH PK "
    "PL PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SS SV SX SY SZ TG TH TJ TL TM TN TO "
    "TR TT TW TZ UA UG US UY UZ VA VE VG VI VN VU WS XK YE ZA ZM ZW").split()


def write_cifar100(root, rng):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("train", "test"):
        batch = {"data": rng.integers(0, 256, (3, 3 * 32 * 32), dtype=np.uint8), "fine_labels": [0, 57, 99],
                 "coarse_labels": [4, 4, 19], "filenames": ["a.png", "b.png", "c.png"]}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = [name.replace(" ", "_") for name in prompts.CIFAR100_CLASSNAMES]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names, "coarse_label_names": ["x"] * 20}))
    return 100


def write_stl10(root, rng):
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for split in ("train", "test"):  # 96 x 96 images, stored column-major; labels 1-10
        (folder / f"{split}_X.bin").write_bytes(rng.integers(0, 256, 2 * 3 * 96 * 96, dtype=np.uint8).tobytes())
        (folder / f"{split}_y.bin").write_bytes(bytes([1, 10]))
    (folder / "class_names.txt").write_text("\n".join(prompts.STL10_CLASSNAMES) + "\n")
    return 10


def write_mnist(root, rng):
    for prefix in ("train", "t10k"):  # the IDX format: a big-endian magic number, the sizes, then the bytes
        images, labels = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), np.array([7, 0, 9], np.uint8)
        raw = root / "MNIST" / "raw"
        put(raw / f"{prefix}-images-idx3-ubyte", struct.pack(">IIII", 2051, 3, 28, 28) + images.tobytes())
        put(raw / f"{prefix}-labels-idx1-ubyte", struct.pack(">II", 2049, 3) + labels.tobytes())
    return 10


def write_eurosat(root, rng):
    for folder in ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake"]:
        put(root / "eurosat" / "2750" / folder / f"{folder}_1.jpg")
    return 10


def write_pets(root, rng):
    folder = root / "oxford-iiit-pet"
    for split, number in [("trainval", 1), ("test", 2)]:
        lines = [f"{name}_{number} {k + 1} {1 if name[0].isupper() else 2} 1" for k, name in enumerate(PETS_FILE_NAMES)]
        put(folder / "annotations" / f"{split}.txt", ("\n".join(lines) + "\n").encode())
        for name in PETS_FILE_NAMES:
            put(folder / "images" / f"{name}_{number}.jpg")
    return 37


def write_food101(root, rng):
    folders = [name.replace(" ", "_") for name in prompts.FOOD101_CLASSNAMES]  # the real folder names
    for split in ("train", "test"):
        meta = {folder: [f"{folder}/{split}1"] for folder in reversed(folders)}  # torchvision sorts them
        put(root / "food-101" / "meta" / f"{split}.json", json.dumps(meta).encode())
        for folder in folders:
            put(root / "food-101" / "images" / folder / f"{split}1.jpg")
    return 101


def write_sun397(root, rng):
    nested = {"apartment building outdoor": "apartment_building/outdoor", "temple east asia": "temple/east_asia"}
    paths = [f"/{name[0]}/{nested.get(name, name.replace(' ', '_'))}" for name in prompts.SUN397_CLASSNAMES]
    put(root / "SUN397" / "ClassName.txt", ("\n".join(paths) + "\n").encode())
    for k in [0, 8, 100, 351, 396, 8, 351]:
        put(root / "SUN397" / paths[k][1:] / f"sun_{k}{rng.integers(10**6)}.jpg")
    return 397


def write_cars(root, rng):
    folder = root / "stanford_cars"
    savemat(folder / "devkit" / "cars_meta.mat", class_names=np.array(prompts.CARS_CLASSNAMES, dtype=object))
    fields = [("bbox_x1", "u2"), ("bbox_y1", "u2"), ("bbox_x2", "u2"), ("bbox_y2", "u2"), ("class", "u1"),
              ("fname", "O")]
    annotations = np.array([(0, 0, 5, 3, 196, "00001.jpg"), (0, 0, 5, 3, 1, "00002.jpg")], dtype=fields)
    savemat(folder / "devkit" / "cars_train_annos.mat", annotations=annotations)
    savemat(folder / "cars_test_annos_withlabels.mat", annotations=annotations)
    for images in ("cars_train", "cars_test"):
        put(folder / images / "00001.jpg"), put(folder / images / "00002.jpg")
    return 196


def write_aircraft(root, rng):
    folder = root / "fgvc-aircraft-2013b" / "data"
    put(folder / "variants.txt", ("\n".join(prompts.AIRCRAFT_CLASSNAMES) + "\n").encode())
    for i, split in enumerate(["train", "val", "test"]):
        put(folder / f"images_variant_{split}.txt", f"105{i}794 F/A-18\n205{i}002 707-320\n".encode())
        put(folder / "images" / f"105{i}794.jpg"), put(folder / "images" / f"205{i}002.jpg")
    return 100


def write_dtd(root, rng):
    folder = root / "dtd" / "dtd"
    for i, split in enumerate(["train", "val", "test"]):
        lines = [f"{name}/{name}_000{i}.jpg" for name in prompts.DTD_CLASSNAMES]
        put(folder / "labels" / f"{split}1.txt", ("\n".join(lines) + "\n").encode())
        for line in lines:
            put(folder / "images" / line)
    return 47


def write_caltech101(root, rng):
    for folder in CALTECH101_FOLDERS:
        put(root / "caltech101" / "101_ObjectCategories" / folder / "image_0001.jpg")
    return 101


def write_flowers(root, rng):
    folder = root / "flowers-102"
    savemat(folder / "imagelabels.mat", labels=np.array([[1, 16, 60, 93, 101, 102]], np.uint8))  # classes 1-102
    savemat(folder / "setid.mat", trnid=np.array([[1, 2]]), valid=np.array([[3, 4]]), tstid=np.array([[5, 6]]))
    for i in range(1, 7):
        put(folder / "jpg" / f"image_{i:05d}.jpg")
    return 102


def write_fer2013(root, rng):
    pixels = lambda: " ".join(str(p) for p in rng.integers(0, 256, 48 * 48))
    rows = [(3, "Training"), (6, "Training"), (0, "PublicTest"), (5, "PrivateTest")]
    text = "emotion,pixels,Usage\n" + "".join(f"{emotion},{pixels()},{usage}\n" for emotion, usage in rows)
    put(root / "fer2013" / "fer2013.csv", text.encode())
    return 7


def write_gtsrb(root, rng):
    folder = root / "gtsrb"
    for k in range(43):  # Training/00000 ... 00042, one folder a class; the real folders also hold a GT csv
        put(folder / "GTSRB" / "Training" / f"{k:05d}" / f"00000_0000{k % 3}.ppm", tiny("PPM"))
    put(folder / "GTSRB" / "Final_Test" / "Images" / "00000.ppm", tiny("PPM"))
    put(folder / "GTSRB" / "Final_Test" / "Images" / "00001.ppm", tiny("PPM"))
    put(folder / "GT-final_test.csv", b"Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
                                      b"00000.ppm;6;4;0;0;5;3;16\n00001.ppm;6;4;0;0;5;3;1\n")
    return 43


def write_country211(root, rng):
    for split in ("train", "valid", "test"):
        for code in COUNTRY211_FOLDERS:
            put(root / "country211" / split / code / f"{split}_{code}.jpg")
    return 211


def write_pcam(root, rng):
    h5py = pytest.importorskip("h5py")
    folder = root / "pcam"
    folder.mkdir()
    for split in ("train", "valid", "test"):  # 96 x 96 RGB patches; targets shaped (N, 1, 1, 1)
        with h5py.File(folder / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as file:
            file["x"] = rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
        with h5py.File(folder / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as file:
            file["y"] = np.array([1, 0], np.uint8).reshape(2, 1, 1, 1)
    return 2


def write_clevr(root, rng):
    folder = root / "clevr" / "CLEVR_v1.0"
    for split, n in [("train", 10), ("val", 2), ("test", 2)]:
        names = [f"CLEVR_{split}_{i:06d}.png" for i in range(n)]
        for name in names:
            put(folder / "images" / split / name, tiny("PNG"))
        if split != "test":  # the test split ships without scenes: no labels
            scenes = [{"image_filename": name, "objects": [{"shape": "cube"}] * (3 + i % 8)}
                      for i, name in enumerate(names)]
            put(folder / "scenes" / f"CLEVR_{split}_scenes.json", json.dumps({"scenes": scenes}).encode())
    return 8


def write_rendered_sst2(root, rng):
    for split in ("train", "valid", "test"):
        for sentiment in ("negative", "positive"):
            put(root / "rendered-sst2" / split / sentiment / f"{split}_{sentiment}.png", tiny("PNG"))
    return 2


def tar_bytes(files: dict, mode="w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_imagenet(root, rng):
    """The three archives from image-net.org, each holding one tiny image a class."""
    folder = root / "imagenet"
    wnids = [f"n{10**7 + 17 * k:08d}" for k in range(1000)]  # sorted, like the real WordNet ids
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "wordnet_height", "num_train_images"]
    leaves = [(k + 1, wnid, f"class {k}, another name", "a gloss", 0, 0, 1) for k, wnid in enumerate(wnids)]
    synsets = np.array(leaves + [(1001, "n00001740", "entity", "the root", 1000, 19, 0)],  # not a class
                       dtype=[(field, "O") for field in fields])
    savemat(root / "devkit" / "meta.mat", synsets=synsets)
    val_ids = rng.permutation(1000) + 1  # the class (ILSVRC2012_ID) of each validation image, in file order
    put(folder / "ILSVRC2012_devkit_t12.tar.gz", tar_bytes({
        "ILSVRC2012_devkit_t12/data/meta.mat": (root / "devkit" / "meta.mat").read_bytes(),
        "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt": b"".join(b"%d\n" % k for k in val_ids)},
        mode="w:gz"))
    put(folder / "ILSVRC2012_img_val.tar", tar_bytes({f"ILSVRC2012_val_{i + 1:08d}.JPEG": tiny() for i in range(1000)}))
    put(folder / "ILSVRC2012_img_train.tar", tar_bytes({f"{wnid}.tar": tar_bytes({f"{wnid}_1.JPEG": tiny()})
                                                        for wnid in wnids}))  # one archive a class, inside
    return 1000


def write_svhn(root, rng):
    for split in ("train", "test"):  # X: (32, 32, 3, N); y: (N, 1), with 10 for the digit 0
        savemat(root / "svhn" / f"{split}_32x32.mat", X=rng.integers(0, 256, (32, 32, 3, 3), dtype=np.uint8),
                y=np.array([[10], [1], [9]], np.uint8))
    return 10


WRITERS = {  # name -> write(root, rng) -> the real dataset's number of classes
    "food101": write_food101, "cifar10": lambda root, rng: len(write_cifar10(root)) and 10, "cifar100": write_cifar100,
    "sun397": write_sun397, "cars": write_cars, "aircraft": write_aircraft, "dtd": write_dtd, "pets": write_pets,
    "caltech101": write_caltech101, "flowers": write_flowers, "mnist": write_mnist, "fer2013": write_fer2013,
    "stl10": write_stl10, "eurosat": write_eurosat, "gtsrb": write_gtsrb, "country211": write_country211,
    "pcam": write_pcam, "clevr_counts": write_clevr, "rendered_sst2": write_rendered_sst2,
    "imagenet": write_imagenet, "svhn": write_svhn,
}


def test_every_dataset_has_a_writer():
    assert set(WRITERS) == set(DATASETS)


def torchvision_dataset(dataset):
    return dataset.dataset if isinstance(dataset, torch.utils.data.Subset) else dataset  # a seeded split's full set


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dataset_loads_each_split_from_files_in_its_real_format(tmp_path, skip_md5, name):
    spec = DATASETS[name]
    for module in spec.needs:
        pytest.importorskip(module)
    n_classes = WRITERS[name](tmp_path, np.random.default_rng(0))
    assert len(spec.classnames) == n_classes and all(isinstance(c, str) and c for c in spec.classnames)
    indices = {}
    for split in spec.splits:
        data = load_classification(name, tmp_path, split)
        image, label = data.dataset[0]
        assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3, (split, image.shape)
        assert type(label) is int and label in range(len(data.classnames)), (split, label)
        assert data.classnames == spec.classnames and data.templates == spec.templates
        full = torchvision_dataset(data.dataset)
        if hasattr(full, "classes"):  # where torchvision knows the classes, it knows as many as we name
            assert len(full.classes) == n_classes, (split, len(full.classes))
        if isinstance(data.dataset, torch.utils.data.Subset):
            indices[split], n_whole = set(data.dataset.indices), len(full)
    if indices:  # the seeded splits of a set that ships whole (or of CLEVR's train): disjoint, complete, not empty
        assert sum(len(i) for i in indices.values()) == len(set().union(*indices.values())) == n_whole
        assert all(indices.values())


def load_full(name, root, split="test"):
    return torchvision_dataset(load_classification(name, root, split).dataset)


def test_class_names_follow_torchvision_s_label_ids(tmp_path, skip_md5):
    """Where the order could go wrong: OpenAI's names against the real folder and file names, as torchvision orders
    them."""
    rng = np.random.default_rng(0)
    write_pets(tmp_path, rng)
    assert [c.lower() for c in prompts.PETS_CLASSNAMES] == [c.lower() for c in load_full("pets", tmp_path).classes]
    write_caltech101(tmp_path, rng)
    folders = load_full("caltech101", tmp_path).categories  # sorted, without BACKGROUND_Google
    names = dict(zip(folders, prompts.CALTECH101_CLASSNAMES))
    assert names["Faces"] == "off-center face" and names["Faces_easy"] == "centered face"
    assert names["car_side"] == "side of a car" and names["yin_yang"] == "yin and yang symbol"
    assert names["accordion"] == "accordion" and names["wrench"] == "wrench"
    flowers = torchvision.datasets.Flowers102.classes
    assert [k for k, (ours, theirs) in enumerate(zip(prompts.FLOWERS_CLASSNAMES, flowers)) if ours != theirs] == [
        15, 59, 92]  # globe flower, pink and yellow dahlia, air plant: OpenAI's fixes of torchvision's names
    write_food101(tmp_path, rng)
    assert [c.replace("_", " ") for c in load_full("food101", tmp_path).classes] == prompts.FOOD101_CLASSNAMES
    write_dtd(tmp_path, rng)
    assert load_full("dtd", tmp_path).classes == prompts.DTD_CLASSNAMES
    write_country211(tmp_path, rng)
    names = dict(zip(load_full("country211", tmp_path).classes, prompts.COUNTRY211_CLASSNAMES))
    assert names["AD"] == "Andorra" and names["GB"] == "United Kingdom" and names["US"] == "United States"
    assert names["CI"] == "Cote d'Ivoire" and names["XK"] == "Kosovo" and names["ZW"] == "Zimbabwe"
    write_rendered_sst2(tmp_path, rng)
    assert load_full("rendered_sst2", tmp_path).classes == prompts.RENDERED_SST2_CLASSNAMES
    assert [c.split(" - ")[0] for c in torchvision.datasets.MNIST.classes] == prompts.MNIST_CLASSNAMES


def test_labels_mean_what_the_class_names_say(tmp_path, skip_md5):
    rng = np.random.default_rng(0)
    write_clevr(tmp_path, rng)  # val image i holds 3 + i objects
    data = load_classification("clevr_counts", tmp_path, "test")
    assert [data.classnames[label] for _, label in data.dataset] == ["3", "4"]
    write_svhn(tmp_path, rng)  # SVHN stores the digit 0 as 10
    data = load_classification("svhn", tmp_path, "train")
    assert [data.classnames[label] for _, label in data.dataset] == ["0", "1", "9"]
    write_cars(tmp_path, rng)  # class ids 1-196 in the .mat file
    data = load_classification("cars", tmp_path, "train")
    assert [data.classnames[label] for _, label in data.dataset] == ["smart fortwo Convertible 2012",
                                                                     "AM General Hummer SUV 2000"]
    write_flowers(tmp_path, rng)
    data = load_classification("flowers", tmp_path, "test")
    assert [data.classnames[label] for _, label in data.dataset] == ["trumpet creeper", "blackberry lily"]
    write_fer2013(tmp_path, rng)
    data = load_classification("fer2013", tmp_path, "test")  # PublicTest + PrivateTest
    assert [data.classnames[label] for _, label in data.dataset] == ["angry", "surprised"]
    write_imagenet(tmp_path, rng)
    full = load_full("imagenet", tmp_path)
    assert full.wnids == sorted(full.wnids) and full.classes[0] == ("class 0", "another name")
    assert len(full) == 1000 and sorted(full.targets) == list(range(1000))


def test_fer2013_test_csv_without_labels_says_which_file_to_get(tmp_path, skip_md5):
    rng = np.random.default_rng(0)
    write_fer2013(tmp_path, rng)
    (tmp_path / "fer2013" / "fer2013.csv").rename(tmp_path / "fer2013" / "test.csv")  # as Kaggle's test.csv: no labels
    with pytest.raises(FileNotFoundError, match="test.csv has no labels; put fer2013.csv or icml_face_data.csv"):
        load_classification("fer2013", tmp_path, "test")


def test_seeded_splits_are_the_same_on_every_machine(tmp_path, monkeypatch):
    """torchvision lists SUN397's images in file-system order; minclip sorts them, so the split cannot depend on it."""
    write_sun397(tmp_path, np.random.default_rng(0))
    def held_out():
        test = load_classification("sun397", tmp_path, "test").dataset
        return [test.dataset._image_files[i] for i in test.indices]

    files = held_out()
    rglob = pathlib.Path.rglob
    monkeypatch.setattr(pathlib.Path, "rglob", lambda self, pattern: reversed(list(rglob(self, pattern))))
    assert held_out() == files and len(files) == 1


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
