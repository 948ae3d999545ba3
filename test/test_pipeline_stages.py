"""One pipeline: the CUDA path's stages (PipelineStages.run, as CudaPath runs and captures them) run here on
CPU tensors and agree with the CPU path, so the GPU default is tested without a GPU."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from liteseg_ros.inference.cuda import CudaPath
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.labels import TRAIN_ID_PALETTE
from liteseg_ros.outputs import OUTPUTS

from segmenter_fixtures import (  # noqa: F401  (one_torch_thread is an autouse fixture)
    agreement,
    calibrated_model,
    one_torch_thread,
    street_image,
)

SIZE = (64, 128)


@pytest.fixture(scope="module")
def model():
    return calibrated_model("mobilenetv2", size=SIZE)


def _pixels(rgb: np.ndarray, encoding: str) -> np.ndarray:
    return {"rgb8": rgb, "bgr8": np.ascontiguousarray(rgb[..., ::-1]), "mono8": rgb[..., 1].copy()}[encoding]


@pytest.mark.parametrize("upsample", ["logits", "mask"])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_the_cuda_stages_on_cpu_tensors_agree_with_the_cpu_path(model, upsample, encoding):
    cpu = Segmenter(model, device="cpu", input_size=SIZE, upsample=upsample, optimize="none", overlay_alpha=0.4)
    # what the CUDA path runs: the whole network (no fused last upsampling); the input resize is the CPU's (a GPU
    # resizes in float32: a transfer detail, as the upload is)
    stages = dataclasses.replace(cpu.stages, network=copy.deepcopy(model).eval())
    cuda_path = CudaPath(stages, torch.device("cpu"), cpu.options, overlay_alpha=cpu.overlay_alpha)
    rgb = street_image(96, 160, seed=4)
    pixels = _pixels(rgb, encoding)
    nearest = cuda_path._nearest_indices(96, 160) if upsample == "mask" else None
    image = torch.from_numpy(pixels if pixels.ndim == 3 else pixels[..., None])
    with torch.inference_mode():
        run = stages.run(image, encoding, frozenset(OUTPUTS), cuda_path.alpha, nearest)
        outputs = {name: tensor.numpy() for name, tensor in run.items()}
    expected = cpu.segment(pixels, encoding)
    assert agreement(outputs["mask"], expected.mask) >= 0.999  # they differ only at exact near-ties
    np.testing.assert_array_equal(outputs["color"], TRAIN_ID_PALETTE[outputs["mask"]])
    same = outputs["mask"] == expected.mask
    np.testing.assert_array_equal(outputs["overlay"][same], expected.overlay[same])
    assert len(np.unique(expected.mask)) > 1


def test_the_cpu_path_and_the_stages_share_one_palette_and_blend(model):
    """Each path owns its overlay weight: the CPU path's, and the 0-d tensor the CUDA path's graphs capture (updated
    in place, so a change reaches a captured graph)."""
    cpu = Segmenter(model, device="cpu", input_size=SIZE, optimize="none")
    cpu.overlay_alpha = 0.25
    assert cpu.overlay_alpha == 0.25 and cpu._path.overlay_alpha == 0.25
    cuda_path = CudaPath(cpu.stages, torch.device("cpu"), cpu.options, overlay_alpha=0.5)
    captured = cuda_path.alpha
    cuda_path.overlay_alpha = 0.25
    assert cuda_path.alpha is captured and float(captured) == 0.25


@pytest.mark.parametrize("upsample", ["logits", "mask"])
def test_per_frame_sizes_and_labels_at_another_size_agree_on_both_paths(model, upsample):
    """``output_size`` and ``label_size`` of one frame (the node's depth outputs): the labels are the mask the
    outputs would have at that size, on the CPU path exactly, on the CUDA path's stages but for near-ties."""
    cpu = Segmenter(model, device="cpu", input_size=SIZE, upsample=upsample, optimize="none")
    rgb = street_image(96, 160, seed=5)
    result = cpu.segment(rgb, outputs=("mask", "confidence"), output_size=(40, 60), label_size=(48, 80))
    at_labels = cpu.segment(rgb, outputs=("mask", "confidence"), output_size=(48, 80))
    assert result.mask.shape == (40, 60) and result.labels.shape == (48, 80)
    np.testing.assert_array_equal(result.labels, at_labels.mask)
    np.testing.assert_array_equal(result.label_confidence, at_labels.confidence)
    same = cpu.segment(rgb, outputs=("mask",), label_size=(96, 160))
    np.testing.assert_array_equal(same.labels, same.mask)
    assert same.labels is not same.mask and same.label_confidence is None  # an array of its own; no confidence asked

    stages = dataclasses.replace(cpu.stages, network=copy.deepcopy(model).eval())
    cuda_path = CudaPath(stages, torch.device("cpu"), cpu.options)
    nearest = {size: cuda_path._nearest_indices(*size) if upsample == "mask" else None for size in ((40, 60), (48, 80))}
    with torch.inference_mode():
        run = stages.run(torch.from_numpy(rgb), "rgb8", frozenset({"mask", "confidence"}), cuda_path.alpha,
                         nearest[(40, 60)], shape=(40, 60), labels=((48, 80), nearest[(48, 80)]))
    assert agreement(run["mask"].numpy(), result.mask) >= 0.999
    assert agreement(run["labels"].numpy(), result.labels) >= 0.999
    assert run["label_confidence"].shape == (48, 80)


def test_a_frame_size_that_is_not_two_positive_integers_is_refused(model):
    from liteseg_ros.errors import ConfigError

    cpu = Segmenter(model, device="cpu", input_size=SIZE, optimize="none")
    with pytest.raises(ConfigError, match="label_size must be None or two positive integers"):
        cpu.segment(street_image(48, 80), label_size=(0, 80))
