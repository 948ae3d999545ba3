"""Paired training transforms: label values, image/label alignment, crop policies, rotation, determinism."""

import numpy as np
import pytest
import torch

from liteseg_ros.classes import IGNORE_INDEX
from liteseg_ros.errors import ConfigError
from liteseg_ros.labels import TRAIN_ID_PALETTE
from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD
from liteseg_ros.training.transforms import (
    EvalTransform,
    TrainTransform,
    normalize,
    resize_label,
    rotate,
    to_float_image,
)

VALID_VALUES = set(range(19)) | {IGNORE_INDEX}


def block_scene(height=96, width=160, seed=0):
    """A label of large rectangles (all 19 classes + some 255) and an image painted with each class's colour."""
    rng = np.random.default_rng(seed)
    label = np.zeros((height, width), np.uint8)
    for class_id in list(range(19)) + [IGNORE_INDEX]:
        top, left = rng.integers(0, height - 16), rng.integers(0, width - 24)
        label[top:top + 16, left:left + 24] = class_id
    palette = TRAIN_ID_PALETTE.copy()
    palette[IGNORE_INDEX] = (255, 255, 255)
    return palette[label], label, palette


def denormalize(tensor: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor * std + mean).mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def colour_agreement(image: torch.Tensor, label: torch.Tensor, palette: np.ndarray) -> float:
    """Fraction of labelled pixels whose image colour is exactly the colour of their label."""
    rgb, lab = denormalize(image).astype(np.int16), label.numpy()
    valid = lab != IGNORE_INDEX
    expected = palette[np.where(valid, lab, 0)].astype(np.int16)
    return float((np.abs(rgb - expected).max(-1) <= 1)[valid].mean())


def interior_agreement(image: torch.Tensor, label: torch.Tensor, palette: np.ndarray) -> float:
    """Fraction of labelled pixels away from borders (uniform 5x5 neighbourhood) whose colour is nearest their class."""
    lab = label.numpy().astype(np.int32)
    padded = np.pad(lab, 2, mode="edge")
    height, width = lab.shape
    uniform = np.ones_like(lab, dtype=bool)
    for dy in range(5):
        for dx in range(5):
            uniform &= padded[dy:dy + height, dx:dx + width] == lab
    keep = uniform & (lab != IGNORE_INDEX)
    assert keep.sum() > 500  # enough pixels to mean something
    rgb = denormalize(image).astype(np.int32)
    colours = palette[:19].astype(np.int32)
    nearest = ((rgb[:, :, None, :] - colours[None, None]) ** 2).sum(-1).argmin(-1)
    return float((nearest == lab)[keep].mean())


def test_scale_one_crop_and_flip_keep_image_and_label_exactly_aligned():
    image, label, palette = block_scene()
    transform = TrainTransform(scale_range=(1.0, 1.0), flip=True)
    for seed in range(8):
        out_image, out_label = transform(image, label, np.random.default_rng(seed), (64, 128))
        assert out_image.shape == (3, 64, 128) and out_label.shape == (64, 128) and out_label.dtype == torch.int64
        assert colour_agreement(out_image, out_label, palette) == 1.0


@pytest.mark.parametrize("policy", ["pad", "resize"])
def test_random_scale_rotation_labels_stay_valid_and_aligned(policy):
    image, label, palette = block_scene()
    transform = TrainTransform(scale_range=(0.4, 2.0), flip=True, rotation_degrees=10.0, crop_policy=policy)
    for seed in range(10):
        out_image, out_label = transform(image, label, np.random.default_rng(seed), (64, 128))
        assert out_label.shape == (64, 128)
        assert set(np.unique(out_label.numpy())) <= VALID_VALUES
        # bilinear image vs nearest label differ only along class borders: away from them colours match exactly
        assert interior_agreement(out_image, out_label, palette) > 0.99


def test_crop_larger_than_image_pad_policy_fills_ignore_and_mean():
    image, label, _ = block_scene(40, 60)
    transform = TrainTransform(scale_range=(1.0, 1.0), flip=False, crop_policy="pad")
    out_image, out_label = transform(image, label, np.random.default_rng(0), (64, 128))
    assert (out_label[40:, :] == IGNORE_INDEX).all() and (out_label[:, 60:] == IGNORE_INDEX).all()
    assert torch.equal(out_label[:40, :60], torch.from_numpy(label).long())
    assert (out_image[:, 40:, :] == 0).all()  # 0 after normalisation = the ImageNet mean colour


def test_crop_larger_than_image_resize_policy_scales_up_to_the_crop():
    image, label, _ = block_scene(40, 60)
    transform = TrainTransform(scale_range=(1.0, 1.0), flip=False, crop_policy="resize")
    out_image, out_label = transform(image, label, np.random.default_rng(0), (64, 128))
    assert out_image.shape == (3, 64, 128)
    # upscaled by 128/60 (the larger factor): no padding, every pixel keeps a real label
    assert set(np.unique(out_label.numpy())) == set(np.unique(label))


def test_same_generator_seed_gives_the_same_sample():
    image, label, _ = block_scene()
    transform = TrainTransform(scale_range=(0.5, 1.5), rotation_degrees=5.0)
    first = transform(image, label, np.random.default_rng(7), (64, 128))
    second = transform(image, label, np.random.default_rng(7), (64, 128))
    third = transform(image, label, np.random.default_rng(8), (64, 128))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[1], third[1])


def test_rotation_is_counter_clockwise_and_fills_ignore():
    label = np.arange(16, dtype=np.uint8).reshape(4, 4)
    _, rotated = rotate(torch.zeros(3, 4, 4), label, 90.0)
    assert np.array_equal(rotated, np.rot90(label))
    _, tilted = rotate(torch.zeros(3, 32, 32), np.zeros((32, 32), np.uint8), 45.0)
    assert tilted[0, 0] == IGNORE_INDEX and tilted[16, 16] == 0


def test_resize_label_nearest_takes_pixel_centres():
    label = np.array([[1, 2], [3, 4]], np.uint8)
    assert np.array_equal(resize_label(label, 4, 4), np.repeat(np.repeat(label, 2, 0), 2, 1))
    assert np.array_equal(resize_label(np.repeat(np.repeat(label, 2, 0), 2, 1), 2, 2), label)


def test_normalisation_is_imagenet_mean_std():
    image = np.full((2, 2, 3), 255, np.uint8)
    out = normalize(to_float_image(image))
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(out[:, 0, 0], torch.tensor(expected))


def test_eval_transform_centre_crop():
    image, label, _ = block_scene(100, 200)
    tensor, out_label = EvalTransform((50, 100))(image, label)
    assert tensor.shape == (3, 50, 100)
    assert torch.equal(out_label, torch.from_numpy(label[25:75, 50:150]).long())


def test_bad_transform_settings_raise_config_error():
    with pytest.raises(ConfigError):
        TrainTransform(scale_range=(2.0, 1.0))
    with pytest.raises(ConfigError):
        TrainTransform(crop_policy="stretch")
