"""ShapeWorld: determinism, the held-out pairs, labels that match the scenes, every domain, balance, bad input."""
import re

import numpy as np
import pytest
import torch

from minclip.data import ShapeWorld, ShapeWorldCaptions, ShapeWorldClassification, gallery
from minclip.data import render as render_module
from minclip.data.render import COLORS, SHAPES
from minclip.data.shapeworld import PLURALS, TASKS


@pytest.fixture(scope="module")
def sw():
    return ShapeWorld(seed=0)


@pytest.fixture
def rendered_scenes(monkeypatch):
    """Record every Scenes object that gets rendered: the ground truth behind the images."""
    seen = []
    real = render_module.render

    def recording(scenes, domain, image_size, rng):
        seen.append((scenes, domain))
        return real(scenes, domain, image_size, rng)

    monkeypatch.setattr(render_module, "render", recording)
    return seen


def present_pairs(scenes):
    """Set of (colour, shape) names of every object actually in the scenes."""
    B, K = scenes.color.shape
    here = np.arange(K) < scenes.count[:, None]
    return {(ShapeWorld.COLORS[c], ShapeWorld.SHAPES[s]) for c, s in zip(scenes.color[here], scenes.shape[here])}


def test_same_seeds_same_bytes_and_new_seeds_new_images(sw):
    a = sw.classification("color_shape", "test", "photo", n=300, seed=3)
    b = ShapeWorld(seed=0).classification("color_shape", "test", "photo", n=300, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    p, q = sw.pretraining(300, seed=4), ShapeWorld(seed=0).pretraining(300, seed=4)
    assert torch.equal(p.images, q.images) and p.captions == q.captions
    c = sw.classification("color_shape", "test", "photo", n=300, seed=4)
    assert (c.images != a.images).flatten(1).any(1).all()  # every image differs
    assert sw.pretraining(300, seed=5).captions != p.captions


def test_train_and_test_streams_share_no_image(sw):
    train = sw.classification("color_shape", "train", n=2000, seed=0).images
    test = sw.classification("color_shape", "test", n=2000, seed=0).images
    assert not {bytes(x.numpy()) for x in train} & {bytes(x.numpy()) for x in test}


def test_holdout_pairs_are_seeded_and_keep_every_word_in_training():
    held = ShapeWorld(seed=0).holdout_pairs
    assert held == ShapeWorld(seed=0).holdout_pairs != ShapeWorld(seed=1).holdout_pairs
    assert len(held) == 8 and len(set(held)) == 8
    # one held-out shape per colour and vice versa: every colour and every shape is still seen in training
    assert sorted(c for c, _ in held) == sorted(ShapeWorld.COLORS)
    assert sorted(s for _, s in held) == sorted(ShapeWorld.SHAPES)


def test_holdout_pairs_never_rendered_in_training_images(sw, rendered_scenes):
    sw.pretraining(5000, seed=1)
    sw.pretraining(500, seed=2, objects=(3, 3), domains={"sketch": 1, "photo": 2})
    for task in TASKS:
        for split in ("train", "test"):
            sw.classification(task, split, domain_of(task), n=300, seed=1)
    drawn = set().union(*(present_pairs(scenes) for scenes, _ in rendered_scenes))
    assert not drawn & set(sw.holdout_pairs)
    assert len(drawn) == 64 - 8  # and every seen pair does occur


def test_holdout_pairs_never_in_captions(sw):
    captions = sw.pretraining(20_000, seed=6).captions
    captions += sw.pretraining(2000, seed=7, caption_style="simple").captions
    colors, shapes = set(ShapeWorld.COLORS), set(ShapeWorld.SHAPES) | set(PLURALS.values())
    singular = {p: s for s, p in PLURALS.items()}
    for caption in captions:
        for color, shape in sw.holdout_pairs:
            assert f"{color} {shape}" not in caption and f"{color} {PLURALS[shape]}" not in caption, caption
        # no object phrase names a held-out colour and shape apart ("a red shape ... a cross" is two objects)
        for phrase in re.split(r",| and | left of | right of | above | below ", caption):
            words = phrase.replace(".", "").split()
            named = {(c, singular.get(s, s)) for c in colors & set(words) for s in shapes & set(words)}
            assert not named & set(sw.holdout_pairs), caption


def domain_of(task):
    """Every task renders in the photo domain, except the background pattern, which only "patterned" draws."""
    return "patterned" if task == "pattern" else "photo"


@pytest.mark.parametrize("task", list(TASKS))
def test_labels_match_the_rendered_scenes(sw, rendered_scenes, task):
    for split in ("train", "unseen"):
        labels = sw.classification(task, split, domain_of(task), n=200, seed=2).labels.numpy()
        scenes, _ = rendered_scenes[-1]
        truth = {"color_shape": scenes.color[:, 0] * 8 + scenes.shape[:, 0], "shape": scenes.shape[:, 0],
                 "color": scenes.color[:, 0], "count": scenes.count - 1, "position": scenes.position[:, 0],
                 "size": scenes.size[:, 0], "pattern": scenes.pattern}[task]
        np.testing.assert_array_equal(labels, truth)
        if task != "count":
            assert (scenes.count == 1).all()
        expected = set(sw.holdout_pairs) if split == "unseen" else None
        assert expected is None or present_pairs(scenes) <= expected


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("split", ["train", "test", "unseen"])
def test_views_are_balanced(sw, task, split):
    images, labels, classnames = sw.classification(task, split, domain_of(task), n=131, seed=0)
    assert images.dtype == torch.uint8 and images.shape == (131, 3, 32, 32)
    assert labels.dtype == torch.int64 and classnames == TASKS[task]
    counts = torch.bincount(labels, minlength=len(classnames))
    present = counts[counts > 0]
    assert present.max() - present.min() <= 1
    if task != "color_shape":
        assert len(present) == len(classnames)  # every shape, colour, ... occurs even among the held-out pairs


def test_unseen_split_covers_exactly_the_holdout_pairs(sw):
    _, labels, names = sw.classification("color_shape", "unseen", n=160, seed=0)
    assert {tuple(names[i].split()) for i in labels.unique()} == set(sw.holdout_pairs)
    _, labels, names = sw.classification("color_shape", "test", n=560, seed=0)
    assert len(labels.unique()) == 56 and not {tuple(names[i].split()) for i in labels} & set(sw.holdout_pairs)


def test_every_domain_renders_and_differs_from_the_others(sw):
    views = {d: sw.classification("shape", "test", d, n=32, seed=0).images.float() for d in sw.domains}
    assert len(sw.domains) >= 6
    for d, x in views.items():
        assert x.std() > 10, f"{d} looks blank"
        for e, y in views.items():
            assert d == e or (x - y).abs().mean() > 5, f"{d} and {e} look alike"
    gray = views["grayscale"]
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])


@pytest.mark.parametrize("size", [32, 64, 96])
def test_image_sizes(size):
    world = ShapeWorld(image_size=size)
    assert world.classification("count", n=8).images.shape == (8, 3, size, size)
    assert world.pretraining(8, domains=list(world.domains)).images.shape == (8, 3, size, size)


def test_pretraining_knobs(sw):
    single = sw.pretraining(400, seed=0, objects=(1, 1), domains=["sketch"])
    assert not any(" and " in c or "left of" in c for c in single.captions)
    assert any(c.startswith(("a sketch of", "a drawing of")) for c in single.captions)
    assert not any("photo" in c for c in single.captions)
    simple = sw.pretraining(400, seed=0, caption_style="simple").captions
    prompts = {t.format(name) for t in ShapeWorld.templates("color_shape") for name in TASKS["color_shape"]}
    assert set(simple) <= prompts
    complete = sw.pretraining(400, seed=0, objects=(2, 3), caption_style="complete").captions
    pair = re.compile(r"\b(%s) (%s)\b" % ("|".join(COLORS), "|".join(SHAPES)))
    for caption in complete:  # every object named in full: a colour before each shape, two or three of them
        words = caption.strip(".").replace(",", "").split()
        assert len(pair.findall(caption)) == sum(w in SHAPES for w in words) in (2, 3), caption


def test_templates_are_caption_forms(sw):
    captions = set(sw.pretraining(20_000, seed=8).captions)
    for task, names in TASKS.items():
        templates = ShapeWorld.templates(task)
        assert templates and all(t.count("{}") == 1 for t in templates)
        for template in templates:  # each template, filled with a class name, is a caption or ends one
            prompts = [template.format(name) for name in names]
            # the pattern task's prompts name the background, which ends a caption: "a red circle on a striped ..."
            ends = tuple((" " if task == "pattern" else ", ") + p for p in prompts)
            assert any(p in captions for p in prompts) or any(c.endswith(ends) for c in captions), \
                (task, template)


def test_pattern_task_labels_the_background_and_needs_the_patterned_domain(sw):
    with pytest.raises(ValueError, match="only the patterned domain draws.*domain='patterned'"):
        sw.classification("pattern", "test", "photo", n=8)
    images, labels, names = sw.classification("pattern", "test", "patterned", n=300, seed=0)
    assert names == ["striped", "checkered", "dotted"] and torch.bincount(labels).tolist() == [100, 100, 100]
    # each pattern has its own spatial frequencies: the mean |horizontal - vertical gradient| differs by class
    x = images.float().mean(dim=1)  # (B, H, W) gray
    dx, dy = (x[:, :, 1:] - x[:, :, :-1]).abs().mean((1, 2)), (x[:, 1:] - x[:, :-1]).abs().mean((1, 2))
    per_class = torch.stack([torch.stack([dx[labels == k].mean(), dy[labels == k].mean()]) for k in range(3)])
    assert torch.cdist(per_class, per_class).triu(1)[torch.triu(torch.ones(3, 3), 1) > 0].min() > 0.5


def test_caption_corpus_has_captions_and_every_prompt(sw):
    corpus = sw.caption_corpus(n=500, seed=0)
    assert corpus[:500] == sw.pretraining(500, seed=0).captions
    assert "a photo of a red circle." in corpus and "the number of shapes is three." in corpus


def test_dataset_wrappers(sw):
    pairs = ShapeWorldCaptions(sw, 10, seed=0, objects=(1, 1))
    image, caption = pairs[3]
    assert len(pairs) == 10 and image.shape == (3, 32, 32) and isinstance(caption, str)
    view = ShapeWorldClassification(sw, "shape", n=10, transform=lambda x: x.float() / 255)
    image, label = view[0]
    assert image.dtype == torch.float32 and isinstance(label, int) and view.classnames == sw.SHAPES


def test_cache_writes_once_and_reloads_the_same(sw, tmp_path, monkeypatch):
    monkeypatch.setenv("MINCLIP_DATA", str(tmp_path))
    first = sw.classification("size", n=50, seed=1, cache=True)
    files = list((tmp_path / "shapeworld").glob("*.pt"))
    again = sw.classification("size", n=50, seed=1, cache=True)
    assert len(files) == 1 and torch.equal(first.images, again.images) and first.classnames == again.classnames
    sw.classification("size", n=50, seed=2, cache=True)
    p = sw.pretraining(20, seed=0, cache=True)
    assert len(list((tmp_path / "shapeworld").glob("*.pt"))) == 3
    assert sw.pretraining(20, seed=0, cache=True).captions == p.captions


def test_cache_is_read_with_weights_only(sw, tmp_path, monkeypatch):
    """The cache holds only tensors and lists of strings, so it loads with weights_only=True: a cache file that was
    swapped for a pickle with code in it cannot run that code."""
    monkeypatch.setenv("MINCLIP_DATA", str(tmp_path))
    first = sw.classification("size", n=20, seed=1, cache=True)
    calls, load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: calls.append(kwargs) or load(*args, **kwargs))
    again = sw.classification("size", n=20, seed=1, cache=True)
    assert calls and all(kwargs.get("weights_only") is True for kwargs in calls)
    assert torch.equal(first.images, again.images) and again.classnames == first.classnames


def test_gallery_draws_every_domain(sw):
    import matplotlib
    matplotlib.use("Agg")
    fig = gallery(sw, n_scenes=3)
    assert len(fig.axes) == 3 * len(sw.domains)


@pytest.mark.parametrize("call, message", [
    (lambda sw: sw.classification("colour"), "unknown task 'colour'"),
    (lambda sw: sw.classification("shape", split="val"), "unknown split 'val'"),
    (lambda sw: sw.classification("shape", domain="oil painting"), "unknown domain 'oil painting'"),
    (lambda sw: sw.classification("shape", n=0), "n must be a positive number"),
    (lambda sw: sw.pretraining(-5), "n must be a positive number"),
    (lambda sw: sw.pretraining(5, seed=-1), "seed must be a non-negative integer"),
    (lambda sw: sw.pretraining(5, objects=(0, 2)), "objects must be (min, max)"),
    (lambda sw: sw.pretraining(5, objects=(1, 4)), "objects must be (min, max)"),
    (lambda sw: sw.pretraining(5, domains=["photo", "x-ray"]), "unknown domain 'x-ray'"),
    (lambda sw: sw.pretraining(5, domains={"photo": 0}), "must not all be zero"),
    (lambda sw: sw.pretraining(5, caption_style="poetic"), "unknown caption_style"),
    (lambda sw: ShapeWorld.templates("colour"), "unknown task"),
    (lambda sw: ShapeWorld(image_size=30), "image_size must be a multiple of 4"),
    (lambda sw: ShapeWorld(image_size=33), "image_size must be a multiple of 4"),
    (lambda sw: ShapeWorld(image_size=224), "resize for larger models"),
    (lambda sw: ShapeWorld(image_size="32"), "image_size must be a multiple of 4"),
])
def test_bad_input_gives_clear_errors(sw, call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(sw)
