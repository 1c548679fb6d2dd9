"""baselines/supervised.py: labelled batches come from the seen pairs of the chosen domains; the size knobs build
the family's smaller models; a short run learns the labels; bad flags are refused with the fix."""
import pytest
import torch
import torch.nn.functional as F

from baselines import common, supervised
from baselines.evaluate import eval_data, head_accuracies
from minclip.data import ShapeWorld


def test_labelled_batch_is_balanced_seen_pairs_of_each_domain():
    world = ShapeWorld(seed=0)
    images, labels = supervised.labelled_batch(world, "color_shape", ["photo", "sketch"], 112, seed=3)
    assert images.shape == (112, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (112,)
    unseen = {c * 8 + s for c, s in ((world.COLORS.index(c), world.SHAPES.index(s)) for c, s in world.holdout_pairs)}
    assert not set(labels.tolist()) & unseen
    photo, _ = supervised.labelled_batch(world, "color_shape", ["photo"], 56, seed=3)
    assert torch.equal(photo, images[:56])  # the first domain's part is drawn alike, whatever follows it
    again, _ = supervised.labelled_batch(world, "color_shape", ["photo", "sketch"], 112, seed=3)
    assert torch.equal(again, images)


def test_size_knobs_build_smaller_towers():
    small = common.clip_config(supervised.SupervisedRun(width=32, layers=1))
    assert (small.vision.width, small.vision.layers, small.vision.heads) == (32, 1, 1)
    tiny = common.clip_config(supervised.SupervisedRun())
    assert (tiny.vision.width, tiny.vision.layers, tiny.vision.heads) == (96, 3, 3)
    params = lambda config: sum(p.numel() for p in supervised.Supervised(config).parameters())  # noqa: E731
    assert params(small) < params(tiny) / 5


def test_forward_gives_logits_over_the_tasks_classes():
    model = supervised.build({"clip": common.clip_config(supervised.SupervisedRun()).to_dict(), "task": "color_shape"})
    x = torch.randn(5, 3, 32, 32)
    assert model(x).shape == (5, 64)
    torch.testing.assert_close(model(x), model.head(model.encode_image(x, normalize=False)))


def test_bad_flags_name_the_fix():
    with pytest.raises(ValueError, match="--task 'colour'"):
        supervised.SupervisedRun(steps=1, task="colour").check()
    with pytest.raises(ValueError, match=r"unknown \['sketchy'\]"):
        supervised.SupervisedRun(steps=1, domains="photo,sketchy").check()


@pytest.mark.slow
def test_a_short_run_learns_the_labels(tmp_path):
    """40 steps of a small tower: cross-entropy on fresh labelled images falls well below chance (ln 56), and the
    head beats chance (1/56) on held-out photos."""
    run = supervised.SupervisedRun(steps=40, batch_size=64, warmup=4, width=64, layers=2, quiet=True,
                                   out=str(tmp_path))
    supervised.train(run)
    model, tokenizer, preprocess = common.load(tmp_path)
    assert isinstance(model, supervised.Supervised) and tokenizer is None
    images, labels = supervised.labelled_batch(ShapeWorld(seed=0), "color_shape", ["photo"], 224, seed=10 ** 6)
    with torch.no_grad():
        loss = F.cross_entropy(model(preprocess(images)), labels).item()
    assert loss < torch.log(torch.tensor(56.0)).item() - 0.5
    accuracy = head_accuracies(model, preprocess, eval_data(n_train=56, n_test=112))
    assert set(accuracy) == set(ShapeWorld(seed=0).domains) and accuracy["photo"] > 3 / 56


def test_tower_picks_a_minclip_preset_or_a_timm_model(tmp_path):
    """--tower tiny-rn trains minclip's ResNet; --tower efficientnet_b0 trains timm's, at --preset's image size;
    both load back through minclip's loader."""
    from minclip import checkpoint
    for tower, kind in (("tiny-rn", "resnet"), ("efficientnet_b0", "timm")):
        out = tmp_path / tower
        supervised.train(supervised.SupervisedRun(tower=tower, steps=2, batch_size=8, warmup=1, quiet=True,
                                                  out=str(out)))
        model = checkpoint.load(out).model
        assert model.config.vision.kind == kind and model.config.vision.image_size == 32
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 64)


def test_a_bad_tower_is_named():
    with pytest.raises(ValueError, match="neither a minclip preset nor|timm.list_models"):
        supervised.SupervisedRun(tower="efficientnet_b99", steps=1).check()
    with pytest.raises(ValueError, match="resize minclip's ViT"):
        supervised.SupervisedRun(tower="resnet18", width=64, steps=1).check()
    with pytest.raises(ValueError, match="is a ResNet"):
        supervised.SupervisedRun(preset="tiny-rn", layers=2, steps=1).check()
