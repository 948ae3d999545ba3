"""Paired (image, label) transforms for training LiteSeg, in numpy and torch (no cv2, no torchvision).

Every random transform takes an explicit ``numpy.random.Generator``: the training data pipeline seeds it
from (seed, epoch, pass, sample index), so the augmentation of a sample does not depend on which worker
process loads it, nor on where a resumed run restarted.

Conventions:
- image: H x W x 3 uint8 RGB; label: H x W uint8 trainIds (255 = ignore).
- the image is resized bilinearly (torch ``interpolate``, ``align_corners=False``, no antialiasing), the label
  with nearest neighbour (pixel-centre sampling), so labels only ever take values that were in the input.
- pixels that come from outside the source (padding, rotation corners) get label 255 and image value 0
  after normalisation (i.e. the ImageNet mean colour), so they neither train nor bias the network.
- crop larger than the (scaled) image: ``crop_policy="pad"`` (ours, the default) pads the image with the mean
  colour and the label with 255 up to the crop, keeping the sampled scale; ``crop_policy="resize"`` (the
  authors' reference code) resizes the scaled image up until the crop fits (keeping its aspect ratio),
  which changes the effective scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from liteseg_ros.classes import IGNORE_INDEX
from liteseg_ros.errors import ConfigError
from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD

CROP_POLICIES = ("pad", "resize")


def to_float_image(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float32 in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).div_(255.0)


def normalize(image: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """3 x H x W float in [0, 1] -> ImageNet-normalised tensor (new tensor)."""
    mean_t = torch.tensor(mean, dtype=image.dtype).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype).view(3, 1, 1)
    return (image - mean_t) / std_t


def resize_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of a 3 x H x W float tensor."""
    if tuple(image.shape[1:]) == (height, width):
        return image
    return F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False)[0]


def resize_label(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an H x W label (samples at pixel centres)."""
    src_h, src_w = label.shape
    if (src_h, src_w) == (height, width):
        return label
    rows = np.minimum(((np.arange(height) + 0.5) * src_h / height).astype(np.int64), src_h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * src_w / width).astype(np.int64), src_w - 1)
    return label[rows[:, None], cols[None, :]]


def pad_to(image: torch.Tensor, label: np.ndarray, height: int, width: int) -> tuple[torch.Tensor, np.ndarray]:
    """Pad (bottom/right) a normalised image with 0 and the label with 255 up to at least height x width."""
    src_h, src_w = label.shape
    pad_h, pad_w = max(0, height - src_h), max(0, width - src_w)
    if pad_h == 0 and pad_w == 0:
        return image, label
    image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
    label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
    return image, label


def rotate(image: torch.Tensor, label: np.ndarray, degrees: float) -> tuple[torch.Tensor, np.ndarray]:
    """Rotate about the centre by ``degrees`` (counter-clockwise); image bilinear (fill 0), label nearest (fill 255)."""
    if degrees == 0:
        return image, label
    height, width = label.shape
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # affine_grid works in normalised coordinates; correct for the aspect ratio so the rotation is rigid in pixels
    theta = torch.tensor([[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]], dtype=torch.float32)
    grid = F.affine_grid(theta[None], [1, 1, height, width], align_corners=False)
    image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    shifted = torch.from_numpy(label.astype(np.float32) + 1.0)[None, None]  # 0 marks "outside"
    sampled = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    sampled = sampled.round().to(torch.int64).numpy()
    rotated = np.where(sampled == 0, IGNORE_INDEX, sampled - 1).astype(np.uint8)
    return image, rotated


@dataclass(frozen=True)
class TrainTransform:
    """Random scale -> crop (pad or resize policy) -> horizontal flip -> optional rotation -> normalise.

    Called as ``transform(image, label, rng, crop_size)``; returns (3 x h x w float32 tensor, h x w int64 tensor)
    with (h, w) = crop_size.
    """

    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    rotation_degrees: float = 0.0
    crop_policy: str = "pad"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ConfigError(f"scale_range must be 0 < low <= high, got {self.scale_range}")
        if self.crop_policy not in CROP_POLICIES:
            raise ConfigError(f"crop_policy must be one of {CROP_POLICIES}, got {self.crop_policy!r}")

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator, crop_size) -> tuple:
        crop_h, crop_w = int(crop_size[0]), int(crop_size[1])
        scale = float(rng.uniform(*self.scale_range))
        height, width = label.shape
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        if self.crop_policy == "resize" and (new_h < crop_h or new_w < crop_w):
            grow = max(crop_h / new_h, crop_w / new_w)
            new_h, new_w = max(crop_h, math.ceil(new_h * grow)), max(crop_w, math.ceil(new_w * grow))
        tensor = normalize(resize_image(to_float_image(image), new_h, new_w), self.mean, self.std)
        label = resize_label(label, new_h, new_w)
        tensor, label = pad_to(tensor, label, crop_h, crop_w)
        top = int(rng.integers(0, label.shape[0] - crop_h + 1))
        left = int(rng.integers(0, label.shape[1] - crop_w + 1))
        tensor = tensor[:, top:top + crop_h, left:left + crop_w]
        label = label[top:top + crop_h, left:left + crop_w]
        if self.flip and rng.random() < 0.5:
            tensor = tensor.flip(-1)
            label = label[:, ::-1]
        if self.rotation_degrees > 0:
            tensor, label = rotate(tensor, label, float(rng.uniform(-self.rotation_degrees, self.rotation_degrees)))
        return tensor.contiguous(), torch.from_numpy(np.ascontiguousarray(label)).long()


@dataclass(frozen=True)
class EvalTransform:
    """Normalise only, optionally after a centre crop (the authors validate on a centre 512x1024 crop)."""

    crop_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple:
        if self.crop_size is not None:
            crop_h, crop_w = min(self.crop_size[0], label.shape[0]), min(self.crop_size[1], label.shape[1])
            top, left = (label.shape[0] - crop_h) // 2, (label.shape[1] - crop_w) // 2
            image = image[top:top + crop_h, left:left + crop_w]
            label = label[top:top + crop_h, left:left + crop_w]
        tensor = normalize(to_float_image(image), self.mean, self.std)
        return tensor, torch.from_numpy(np.ascontiguousarray(label)).long()
