"""Validation during training: class / category mIoU with liteseg_ros.metrics, sample images for TensorBoard."""

from __future__ import annotations

import numpy as np
import torch

from liteseg_ros.classes import ClassSet
from liteseg_ros.metrics import ConfusionMatrix, SegmentationScores
from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD
from liteseg_ros.training.distributed import DistContext, sum_array


@torch.no_grad()
def predict(model: torch.nn.Module, image: torch.Tensor, device: torch.device, amp: bool = False) -> torch.Tensor:
    """3 x H x W normalised image -> H x W trainId prediction (on ``device``)."""
    with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
        logits = model(image[None].to(device))
    return logits.argmax(1)[0]


def validate(
    model: torch.nn.Module, dataset, context: DistContext, classes: ClassSet | int, *, amp: bool = False
) -> SegmentationScores:
    """Evaluate at the labels' resolution; each rank takes every world_size-th image, counts are summed."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(classes)
    try:
        for index in range(context.rank, len(dataset), context.world_size):
            image, label = dataset[index]
            matrix.update(label.to(context.device), predict(model, image, context.device, amp))
    finally:
        model.train(was_training)
    matrix.matrix = sum_array(matrix.matrix, context)
    matrix.frames = len(dataset)
    return matrix.scores()


def denormalize(image: torch.Tensor) -> np.ndarray:
    """3 x H x W normalised tensor -> H x W x 3 uint8."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (image.cpu().float() * std + mean).clamp(0, 1).mul(255).round().byte()
    return rgb.permute(1, 2, 0).numpy()


def write_sample_images(writer, model: torch.nn.Module, dataset, count: int, step: int, device: torch.device,
                        classes: ClassSet) -> None:
    """Input | ground truth | prediction (in the class set's colours), side by side, for the first ``count``
    validation images."""
    was_training = model.training
    model.eval()
    try:
        for index in range(min(count, len(dataset))):
            image, label = dataset[index]
            prediction = predict(model, image, device).cpu().numpy().astype(np.uint8)
            truth = label.numpy().astype(np.uint8)
            panel = np.concatenate([denormalize(image), classes.colorize(truth), classes.colorize(prediction)], axis=1)
            writer.add_image(f"val/sample_{index}", panel, step, dataformats="HWC")
    finally:
        model.train(was_training)
