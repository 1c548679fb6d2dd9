"""Transforms: CLIP preprocessing against open_clip's; the SimCLR augmentation, operation by operation, against
torchvision's functional kernels, and its settings against lightly's SimCLRTransform."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from minclip.data.transforms import (CLIP_MEAN, CLIP_STD, SimCLRAugment, clip_preprocess, color_jitter, crop_boxes,
                                     gaussian_blur, resize_matrix, simclr_augment)


def smooth_image(h, w, seed=0):
    """A photo-like PIL image: smooth colour gradients plus mild noise (resampling of pure noise is ill-posed)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = np.stack([np.sin(6 * x + 1), np.cos(5 * y), np.sin(4 * (x + y))], -1) * 100 + 128
    return Image.fromarray((rgb + rng.normal(0, 5, rgb.shape)).clip(0, 255).astype(np.uint8))


def test_normalisation_constants_are_openais():
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    assert CLIP_MEAN == tuple(OPENAI_DATASET_MEAN) and CLIP_STD == tuple(OPENAI_DATASET_STD)


@pytest.mark.parametrize("size", [(320, 240), (180, 260), (224, 224)])
def test_clip_preprocess_matches_open_clip(size):
    import open_clip

    image = smooth_image(size[1], size[0])
    theirs = open_clip.image_transform(224, is_train=False)(image)  # PIL bicubic resize, crop, normalise
    ours = clip_preprocess(224)(torch.from_numpy(np.array(image)).permute(2, 0, 1))  # tensor bicubic resize
    assert ours.shape == theirs.shape == (3, 224, 224)
    # PIL and torch resample slightly differently (within a few uint8 steps); normalised units, 1/255/0.27 = 0.015
    assert (ours - theirs).abs().mean() < 0.01 and (ours - theirs).abs().max() < 0.1


def test_clip_preprocess_at_the_native_size_is_normalisation_alone():
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    out = clip_preprocess(32)(images)
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    torch.testing.assert_close(out, (images / 255 - mean) / std)
    torch.testing.assert_close(clip_preprocess(32)(images[2]), out[2])  # (3, H, W) works too
    assert clip_preprocess(16)(images).shape == (5, 3, 16, 16)


def random_images(B, S=24, seed=0):
    return torch.rand(B, 3, S, S, generator=torch.Generator().manual_seed(seed))


def test_color_jitter_matches_torchvision_image_by_image():
    g = torch.Generator().manual_seed(1)
    x = random_images(12)
    factors = [0.2 + 1.6 * torch.rand(12, generator=g) for _ in range(3)] + [0.4 * torch.rand(12, generator=g) - 0.2]
    order = torch.argsort(torch.rand(12, 4, generator=g), 1)
    order[3] = -1  # this image is not jittered
    ours = color_jitter(x, *factors, order)
    adjust = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(12):
        expected = x[i]
        for op in order[i].tolist():
            if op >= 0:
                expected = adjust[op](expected, float(factors[op][i]))
        torch.testing.assert_close(ours[i], expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("shift", [-0.5, -0.2, 0.13, 0.5])
def test_hue_rotation_matches_torchvision_including_grays(shift):
    x = random_images(4)
    x[0, :, :4] = 0.5  # gray pixels have no hue
    x[1, :, :, :4] = x[1, :1, :, :4]
    ours = color_jitter(x, *[torch.ones(4)] * 3, torch.full((4,), shift), torch.full((4, 1), 3))
    torch.testing.assert_close(ours, TF.adjust_hue(x, shift), atol=2e-5, rtol=0)


@pytest.mark.parametrize("box", [(3, 5, 10, 12), (0, 0, 24, 24), (7, 2, 9, 17), (1, 0, 40, 33)])
def test_resized_crop_matches_torchvision(box):
    x = random_images(2, S=48)
    top, left, h, w = box  # a crop smaller than the output is enlarged, a larger one shrunk (antialiased)
    at = lambda v: torch.tensor([float(v)] * 2)
    rows, cols = resize_matrix(at(top), at(h), 48, 24), resize_matrix(at(left), at(w), 48, 24)
    ours = rows[:, None] @ x @ cols[:, None].transpose(-1, -2)
    theirs = TF.resized_crop(x, top, left, h, w, [24, 24], antialias=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    flipped = rows[:, None] @ x @ cols[:, None].flip(2).transpose(-1, -2)  # reversed output columns: a mirror
    torch.testing.assert_close(flipped, TF.horizontal_flip(theirs), atol=1e-5, rtol=0)


def test_crop_boxes_follow_torchvision_random_resized_crop():
    from torchvision.transforms import v2

    top, left, h, w = crop_boxes(4000, 32, 32, 0.08, torch.Generator().manual_seed(0)).unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    torch.manual_seed(0)
    crop = v2.RandomResizedCrop(32, scale=(0.08, 1.0))
    params = [crop.make_params([torch.zeros(3, 32, 32)]) for _ in range(4000)]
    tw, th = torch.tensor([p["width"] for p in params]), torch.tensor([p["height"] for p in params])
    # same distribution: compare means and spreads of areas and aspect ratios (4000 draws: ~1.5% standard error)
    for ours, theirs in [(w * h, tw * th), (w / h, tw / th)]:
        assert abs(ours.float().mean() / theirs.float().mean() - 1) < 0.05
        assert abs(ours.float().std() / theirs.float().std() - 1) < 0.08


def test_gaussian_blur_matches_torchvision():
    x = random_images(3, S=40)
    sigma = torch.tensor([0.3, 1.7, 0.0])
    ours = gaussian_blur(x, sigma, 5)
    for i in range(2):
        torch.testing.assert_close(ours[i], TF.gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours[2], x[2])  # sigma 0: untouched


def test_settings_match_lightly_simclr_transform():
    from lightly.transforms import SimCLRTransform

    for size, blur in [(32, 0.0), (64, 0.5)]:
        steps = SimCLRTransform(input_size=size, gaussian_blur=blur).transforms[0].transform.transforms
        crop, flip, jitter, gray = steps[0], steps[1], steps[4], steps[5]
        ours = simclr_augment(size)
        assert crop.scale == (ours.min_scale, 1.0) and flip.p == ours.hflip and gray.p == ours.grayscale
        assert jitter.p == ours.jitter_p and steps[6].prob == ours.blur
        b, c, s, h = ours.jitter
        j = jitter.transforms[0]
        assert [*j.brightness, *j.contrast, *j.saturation, *j.hue] == pytest.approx(
            [1 - b, 1 + b, 1 - c, 1 + c, 1 - s, 1 + s, -h, h])


def test_augment_is_a_function_of_the_generator_alone():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    augment = simclr_augment(32)
    a = augment(images, torch.Generator().manual_seed(7))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    b = augment(images, torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is neither used nor moved
    c = augment(images, torch.Generator().manual_seed(8))
    assert a.shape == (64, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(augment(images, 7), a)
    with pytest.raises(TypeError, match="CPU torch.Generator or an int seed"):
        augment(images, 0.5)


def test_augment_probabilities():
    images = torch.randint(0, 256, (2000, 3, 32, 32), dtype=torch.uint8)
    out = SimCLRAugment(32, jitter_p=0.0)(images, torch.Generator().manual_seed(0))
    std, mean = torch.tensor(CLIP_STD).view(3, 1, 1), torch.tensor(CLIP_MEAN).view(3, 1, 1)
    pixels = out * std + mean
    gray = (pixels[:, 0] - pixels[:, 1]).abs().amax((1, 2)) < 1e-5
    assert 0.17 < gray.float().mean() < 0.23  # p = 0.2
    with pytest.raises(ValueError, match="expected uint8 images"):
        simclr_augment(32)(images.float(), torch.Generator())
