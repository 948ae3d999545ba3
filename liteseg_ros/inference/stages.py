"""The stages of a frame, for every device, in one place: normalise + resize, network, resize + argmax,
confidence, palette, blend, as tensor operations that run wherever their tensors are.

The paths call them in order and differ only in transfers, fusions and graph capture: the CPU path
(:mod:`liteseg_ros.inference.cpu`) fuses the network's last upsampling with the argmax at the output's resolution,
in row bands; the CUDA path (:mod:`liteseg_ros.inference.cuda`) runs :meth:`PipelineStages.run` (no host syncs, so a
CUDA graph can capture it). Because the stages are plain tensor code, the tests run the CUDA path's stages on CPU
tensors and compare them with the CPU path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from liteseg_ros.inference.bands import BandPool


@dataclass
class SegmentationResult:
    """One segmented image. Outputs that were not requested are None.

    ``timings`` (seconds): ``preprocess`` (validation, upload, resize, normalisation), ``inference`` (network;
    on CUDA the whole device pipeline, synchronised), ``postprocess`` (resize + argmax, colour, overlay,
    download), ``total``.
    """

    mask: np.ndarray | None = None  # H x W uint8 class ids at the image's resolution (or the output size)
    color: np.ndarray | None = None  # H x W x 3 uint8 RGB, the class set's colours
    overlay: np.ndarray | None = None  # H x W x 3 uint8 RGB, (1 - alpha) * image + alpha * color
    confidence: np.ndarray | None = None  # H x W uint8: the mask's class's probability x 255
    labels: np.ndarray | None = None  # the mask at the ``label_size`` asked for (e.g. a depth image's), own array
    label_confidence: np.ndarray | None = None  # the confidence at ``label_size``, when the confidence was asked for
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class PipelineStages:
    """What a Segmenter runs for one frame, stage by stage, on the device of its tensors."""

    network: Callable[[torch.Tensor], torch.Tensor]  # 1 x 3 x h x w normalised input -> 1 x C x h' x w' logits
    input_size: tuple[int, int]  # (h, w) of the network input
    dtype: torch.dtype  # of the network input
    channels_last: bool  # memory format of the network input
    scale: torch.Tensor  # 1 x 3 x 1 x 1: uint8 * scale + shift == (uint8 / 255 - mean) / std
    shift: torch.Tensor
    palette: torch.Tensor  # 256 x 3 uint8, the class set's colours
    upsample: str  # "logits" or "mask"
    float_resize: bool = False  # resize in float32 (GPUs) instead of on the uint8 image (CPU)
    output_size: tuple[int, int] | None = None  # (h, w) of the outputs; None: the image's

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the outputs for an image of ``height`` x ``width``."""
        return self.output_size or (height, width)

    def overlay_image(self, image: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """The H x W x C uint8 image the overlay blends: the image itself, or resized to ``size`` (default: the
        output size)."""
        size = size or self.output_shape(*image.shape[:2])
        if tuple(image.shape[:2]) == size:
            return image
        batch = image.permute(2, 0, 1).unsqueeze(0)
        if self.float_resize:  # GPUs resize floats; the CPU resizes the uint8 image directly
            batch = resize_image(batch.to(torch.float32), size).round_().clamp_(0, 255).to(torch.uint8)
        else:
            batch = resize_image(batch, size)
        return batch[0].permute(1, 2, 0).contiguous()

    def network_input(self, batch: torch.Tensor, bands: BandPool | None = None) -> torch.Tensor:
        """1 x C x H x W uint8 (C = 1 or 3) -> 1 x 3 x h x w normalised network input in the network's dtype.

        With ``bands`` (CPU) the normalisation runs in row bands on its threads; the result is the same."""
        if self.float_resize:
            batch = batch.to(torch.float32)
        resized = resize_image(batch, self.input_size)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        if bands is None:
            normalised = torch.addcmul(self.shift, resized.to(torch.float32), self.scale)
            return normalised.to(dtype=self.dtype, memory_format=memory_format)
        out = torch.empty((1, 3, *self.input_size), dtype=self.dtype).contiguous(memory_format=memory_format)

        def normalise(first: int, end: int) -> None:
            out[:, :, first:end] = torch.addcmul(self.shift, resized[:, :, first:end].to(torch.float32), self.scale)

        bands.run(normalise, self.input_size[0])
        return out

    def classes(self, logits: torch.Tensor, height: int, width: int,
                nearest: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """1 x C x h' x w' logits -> H x W class indices (int64): bilinear logits then argmax (``logits``), or
        argmax then the ``nearest`` (row, column) index tensors (``mask``)."""
        if self.upsample == "logits":
            return at_size(logits, height, width)[0].argmax(dim=0)
        rows, cols = nearest
        return logits[0].argmax(dim=0).index_select(0, rows).index_select(1, cols)

    def confidence(self, logits: torch.Tensor, classes: torch.Tensor,
                   nearest: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The probability of each pixel's class x 255 (uint8): the softmax of the logits the classes' argmax is
        taken from (bilinear at the output size for ``logits``; at the network's size, then nearest, for
        ``mask``)."""
        if self.upsample == "mask":
            rows, cols = nearest
            probabilities = torch.softmax(logits[0].float(), dim=0)
            winner = probabilities.max(dim=0).values.index_select(0, rows).index_select(1, cols)
        else:
            probabilities = torch.softmax(at_size(logits, *classes.shape)[0].float(), dim=0)
            winner = probabilities.gather(0, classes.long().unsqueeze(0))[0]
        return probability_to_uint8(winner)

    def colour(self, classes: torch.Tensor) -> torch.Tensor:
        """H x W class indices -> H x W x 3 uint8 palette colours."""
        return self.palette.index_select(0, classes.reshape(-1).to(torch.int32)).view(*classes.shape, 3)

    def run(self, image: torch.Tensor, encoding: str, wanted: frozenset[str], alpha: torch.Tensor,
            nearest: tuple[torch.Tensor, torch.Tensor] | None = None, shape: tuple[int, int] | None = None,
            labels: tuple[tuple[int, int], tuple[torch.Tensor, torch.Tensor] | None] | None = None
            ) -> dict[str, torch.Tensor]:
        """H x W x C uint8 image on the device -> the wanted uint8 outputs on the device (no host syncs); ``alpha``
        is the overlay's weight as a 0-d tensor (updated in place between frames); ``shape`` the outputs' (default:
        the output size); ``labels`` (shape, its nearest indices) adds ``labels`` (and ``label_confidence``): the
        mask at another size."""
        height, width = shape or self.output_shape(*image.shape[:2])
        raw = self.network(self.network_input(image_to_batch(image, encoding)))
        outputs = self.masks(raw, (height, width), "confidence" in wanted, nearest)
        if labels is not None:
            same = tuple(labels[0]) == (height, width)
            at_labels = outputs if same else self.masks(raw, labels[0], "confidence" in wanted, labels[1])
            outputs["labels"] = at_labels["mask"]
            if "confidence" in at_labels:
                outputs["label_confidence"] = at_labels["confidence"]
        if wanted & {"color", "overlay"}:
            outputs["color"] = self.colour(outputs["mask"])
            if "overlay" in wanted:
                overlay_image = rgb_view(self.overlay_image(image, (height, width)), encoding)
                outputs["overlay"] = blend(overlay_image, outputs["color"], alpha)
        return outputs

    def masks(self, raw: torch.Tensor, shape: tuple[int, int], confidence: bool,
              nearest: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """The uint8 mask (and confidence) at ``shape`` from the network's logits."""
        logits = at_size(raw, *shape) if self.upsample == "logits" else raw  # resized once, for both
        classes = self.classes(logits, *shape, nearest)
        outputs = {"mask": classes.to(torch.uint8)}
        if confidence:
            outputs["confidence"] = self.confidence(logits, classes, nearest)
        return outputs


def normalization_constants(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), 1 x 3 x 1 x 1, such that ``uint8 * scale + shift == (uint8 / 255 - mean) / std``."""
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32, device=device)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32, device=device)
    return scale.view(1, 3, 1, 1), shift.view(1, 3, 1, 1)


def at_size(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """1 x C x h' x w' logits resized bilinearly (float32) to ``height`` x ``width``, or as they are."""
    if tuple(logits.shape[2:]) == (height, width):
        return logits
    return F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)


def image_to_batch(image: torch.Tensor, encoding: str) -> torch.Tensor:
    """H x W x C uint8 (C = 3 or 1) -> 1 x C x H x W view in RGB order (channels_last strides, no copy for rgb8)."""
    batch = image.permute(2, 0, 1).unsqueeze(0)
    if encoding == "bgr8":
        batch = batch.flip(1)
    return batch


def rgb_view(image: torch.Tensor, encoding: str) -> torch.Tensor:
    """H x W x C uint8 image -> H x W x 3 RGB (a view for rgb8 and mono8)."""
    if encoding == "bgr8":
        return image.flip(2)
    if encoding == "mono8":
        return image.expand(-1, -1, 3)
    return image


def resize_image(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (half-pixel centres) to ``size``; antialiased when shrinking, as PIL's BILINEAR does."""
    if tuple(batch.shape[2:]) == tuple(size):
        return batch
    shrinking = size[0] < batch.shape[2] or size[1] < batch.shape[3]
    return F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def blend(image: torch.Tensor, color: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """``round((1 - alpha) * image + alpha * color)`` as uint8 (float32 arithmetic, halves rounded to even).

    For ``alpha`` 0.5 (the default) the same bytes come from integer arithmetic, which a CPU does in 60 % of the
    time; a CUDA graph captures the float form (``alpha`` a tensor it updates in place)."""
    if not image.is_cuda and float(alpha) == 0.5:
        total = image.to(torch.int16) + color.to(torch.int16)  # (image + colour) / 2, exact in float32 too
        half = total >> 1
        return half.add_((total & 1) & (half & 1)).to(torch.uint8)  # a .5 goes to the even neighbour, as round_
    mixed = image.to(torch.float32).mul_(1.0 - alpha)
    mixed.add_(color.to(torch.float32).mul_(alpha))
    return mixed.round_().to(torch.uint8)


def probability_to_uint8(probability: torch.Tensor) -> torch.Tensor:
    """Probabilities in [0, 1] -> round(p x 255) as uint8 (in place where it can)."""
    return probability.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    """A torch view of a (possibly read-only) uint8 array."""
    with warnings.catch_warnings():  # read-only arrays (ROS buffers) are never written to
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(pixels)
