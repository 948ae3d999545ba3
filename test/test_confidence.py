"""The confidence output: each pixel's class's probability x 255, equal to a dense reference (softmax, resampled
of the logits the mask's argmax is taken from), in both upsample modes, on the CPU path and the CUDA stages."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from liteseg_ros.class_map import LogitMerge, parse_class_map
from liteseg_ros.inference.confidence import ConfidenceRows
from liteseg_ros.inference.cuda import CudaPath
from liteseg_ros.inference.resampling import bilinear_map, compose
from liteseg_ros.inference.resize_argmax import ResizeArgmax, along_rows, resize_argmax
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.labels import CITYSCAPES
from liteseg_ros.outputs import OUTPUTS

from segmenter_fixtures import (  # noqa: F401  (one_torch_thread is an autouse fixture)
    calibrated_model,
    one_torch_thread,
    street_image,
)

SIZE = (64, 128)


@pytest.fixture(scope="module")
def model():
    return calibrated_model("mobilenetv2", size=SIZE)


def dense_confidence(logits: torch.Tensor, rows, cols, classes: torch.Tensor) -> np.ndarray:
    """The reference, in float64: every class's logits resampled over the whole frame, their softmax, read at
    ``classes``."""
    rows, cols = (dataclasses.replace(axis, weight=axis.weight.double()) for axis in (rows, cols))
    resampled = along_rows(along_rows(logits.double(), rows, dim=1), cols, dim=2)
    winner = torch.softmax(resampled, 0).gather(0, classes.long().unsqueeze(0))[0]
    return (winner * 255).round().clamp(0, 255).to(torch.uint8).numpy()


@pytest.mark.parametrize("shape", [(23, 40), (120, 200), (361, 641)])
def test_the_banded_confidence_equals_the_dense_reference(shape):
    generator = torch.Generator().manual_seed(shape[0])
    logits = torch.randn(19, 16, 32, generator=generator) * 3
    rows = compose(bilinear_map(16, 64, align_corners=True), bilinear_map(64, shape[0], align_corners=False))
    cols = compose(bilinear_map(32, 128, align_corners=True), bilinear_map(128, shape[1], align_corners=False))
    classes = resize_argmax(logits, rows, cols)
    confidence = ConfidenceRows(ResizeArgmax(logits, rows, cols))
    bands = torch.cat([confidence.band(first, min(first + 50, shape[0]), classes[first:first + 50])
                       for first in range(0, shape[0], 50)])
    expected = dense_confidence(logits, rows, cols, classes)
    assert np.abs(bands.numpy().astype(int) - expected).max() <= 1  # float32 vs float64 rounding
    assert bands.min() >= 255 // 19 - 1  # the argmax's probability is at least 1 / C
    assert bands.float().std() > 10  # not constant: boundaries are less certain


@pytest.mark.parametrize("upsample", ["logits", "mask"])
def test_the_cuda_stages_compute_the_confidence_the_cpu_path_computes(model, upsample):
    cpu = Segmenter(model, device="cpu", input_size=SIZE, upsample=upsample, optimize="none")
    stages = dataclasses.replace(cpu.stages, network=copy.deepcopy(model).eval())
    cuda_path = CudaPath(stages, torch.device("cpu"), cpu.options, overlay_alpha=cpu.overlay_alpha)
    rgb = street_image(96, 160, seed=4)
    nearest = cuda_path._nearest_indices(96, 160) if upsample == "mask" else None
    with torch.inference_mode():
        outputs = stages.run(torch.from_numpy(rgb), "rgb8", frozenset(OUTPUTS), cuda_path.alpha, nearest)
    expected = cpu.segment(rgb, outputs=("mask", "confidence"))
    same = outputs["mask"].numpy() == expected.mask
    difference = np.abs(outputs["confidence"].numpy().astype(int) - expected.confidence)[same]
    # the CUDA stages take the softmax after the network's own last upsampling, the CPU path before it
    assert np.median(difference) <= 2 and np.mean(difference <= 8) >= 0.95
    assert expected.confidence.shape == (96, 160) and expected.confidence.dtype == np.uint8


def test_confidence_only_when_asked_and_at_the_output_size(model):
    segmenter = Segmenter(model, device="cpu", input_size=SIZE, optimize="none", output_size=(48, 80))
    rgb = street_image(96, 160, seed=2)
    assert segmenter.segment(rgb, outputs=("mask",)).confidence is None
    result = segmenter.segment(rgb, outputs=("confidence",))
    assert result.confidence.shape == (48, 80) and result.mask is None


def test_the_cuda_stages_merge_classes_as_the_cpu_path(model):
    """A class map is part of the network both paths run: the CUDA stages on CPU tensors give the CPU path's
    merged classes and confidence."""
    class_map = parse_class_map({"classes": [{"name": "flat", "color": [1, 1, 1], "from": ["road", "sidewalk"]}],
                                 "other": {"name": "rest", "color": [2, 2, 2]}}, CITYSCAPES)
    cpu = Segmenter(model, device="cpu", input_size=SIZE, optimize="none", class_map=class_map)
    merge = LogitMerge(class_map.groups)
    whole = copy.deepcopy(model).eval()
    stages = dataclasses.replace(cpu.stages, network=lambda x: merge(whole(x)))
    rgb = street_image(96, 160, seed=4)
    with torch.inference_mode():
        outputs = stages.run(torch.from_numpy(rgb), "rgb8", frozenset(OUTPUTS), torch.tensor(0.5))
    expected = cpu.segment(rgb, outputs=("mask", "confidence"))
    # the CPU path merges the logits before the network's last upsampling (which it fuses with the argmax), the
    # CUDA stages after it; log-sum-exp and interpolation do not commute, so boundary pixels may differ (0.4 %)
    assert np.mean(outputs["mask"].numpy() == expected.mask) >= 0.99
    assert set(np.unique(expected.mask)) == {0, 1}
    same = outputs["mask"].numpy() == expected.mask
    difference = np.abs(outputs["confidence"].numpy().astype(int) - expected.confidence)[same]
    assert np.median(difference) <= 2 and np.mean(difference <= 8) >= 0.95
