"""Segmenter values: masks against eager logits computed here, palette, blend, encodings, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from liteseg_ros.errors import ConfigError, ImageError, InputSizeError
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.labels import TRAIN_ID_PALETTE
from liteseg_ros.model import build_liteseg, save_checkpoint

from segmenter_fixtures import (  # noqa: F401  (one_torch_thread is an autouse fixture)
    agreement,
    calibrated_model,
    core_log,
    one_torch_thread,
    reference_prediction,
    street_image,
)

SIZE = (64, 128)
NEAR_TIE = 1e-4  # a pixel whose two best logits are this close may round either way


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return calibrated_model("mobilenetv2", size=SIZE)


@pytest.fixture(scope="module")
def plain(model) -> Segmenter:
    return Segmenter(model, device="cpu", input_size=SIZE, optimize="none")


def assert_mask_matches(mask: np.ndarray, expected: np.ndarray, margin: np.ndarray) -> None:
    differing = mask != expected
    assert not np.any(differing & (margin > NEAR_TIE)), "mask differs from the reference away from near-ties"
    assert agreement(mask, expected) >= 0.999


class _Wrapped(nn.Module):
    """A network that is not a LiteSeg instance (the Segmenter takes its generic path)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.mark.parametrize("upsample", ["logits", "mask"])
@pytest.mark.parametrize("image_size", [SIZE, (96, 200), (48, 100)])
def test_mask_is_the_argmax_of_the_eager_logits_resized(model, upsample, image_size):
    image = street_image(*image_size, seed=3)
    segmenter = Segmenter(model, device="cpu", input_size=SIZE, upsample=upsample, optimize="none")
    expected, margin = reference_prediction(model, image, SIZE, upsample)
    result = segmenter.segment(image, outputs=("mask",))
    assert result.mask.shape == image_size and result.mask.dtype == np.uint8
    assert_mask_matches(result.mask, expected, margin)
    assert len(np.unique(result.mask)) > 1  # the check would be empty on a constant prediction


@pytest.mark.parametrize("upsample", ["logits", "mask"])
def test_a_network_that_is_not_liteseg_gives_the_same_masks(model, upsample):
    image = street_image(96, 200, seed=4)
    generic = Segmenter(_Wrapped(model), device="cpu", input_size=SIZE, upsample=upsample, optimize="none")
    expected, margin = reference_prediction(model, image, SIZE, upsample)
    assert_mask_matches(generic.segment(image, outputs=("mask",)).mask, expected, margin)


def test_color_is_the_palette_of_the_mask_and_overlay_the_blend(model):
    image = street_image(80, 160, seed=5)
    segmenter = Segmenter(model, device="cpu", input_size=SIZE, overlay_alpha=0.3, optimize="none")
    result = segmenter.segment(image)
    assert result.color.shape == (80, 160, 3) and result.color.dtype == np.uint8
    assert np.array_equal(result.color, TRAIN_ID_PALETTE[result.mask])
    exact = 0.7 * image.astype(np.float64) + 0.3 * result.color.astype(np.float64)
    difference = np.abs(result.overlay.astype(np.int16) - np.rint(exact).astype(np.int16))
    near_half = np.abs(exact - np.floor(exact) - 0.5) < 1e-3  # float32 arithmetic may round these either way
    assert difference.max() <= 1 and not np.any((difference > 0) & ~near_half)
    segmenter.overlay_alpha = 0.0
    assert np.array_equal(segmenter.segment(image, outputs=("overlay",)).overlay, image)
    segmenter.overlay_alpha = 1.0
    assert np.array_equal(segmenter.segment(image, outputs=("overlay",)).overlay, result.color)


def test_bgr8_and_mono8_give_the_results_of_the_equivalent_rgb8(plain):
    image = street_image(64, 128, seed=6)
    rgb = plain.segment(image)
    bgr = plain.segment(np.ascontiguousarray(image[:, :, ::-1]), encoding="bgr8")
    for name in ("mask", "color", "overlay"):
        assert np.array_equal(getattr(bgr, name), getattr(rgb, name)), name
    gray = image[:, :, 1].copy()
    as_rgb = plain.segment(np.repeat(gray[:, :, None], 3, axis=2))
    for mono in (gray, gray[:, :, None]):
        result = plain.segment(mono, encoding="mono8")
        for name in ("mask", "color", "overlay"):
            assert np.array_equal(getattr(result, name), getattr(as_rgb, name)), name


def test_outputs_not_requested_are_none_and_timings_are_reported(plain):
    image = street_image(64, 128, seed=7)
    full = plain.segment(image)
    only_overlay = plain.segment(image, outputs=("overlay",))
    assert only_overlay.mask is None and only_overlay.color is None
    assert np.array_equal(only_overlay.overlay, full.overlay)
    only_mask = plain.segment(image, outputs="mask")
    assert only_mask.color is None and only_mask.overlay is None and np.array_equal(only_mask.mask, full.mask)
    for stage in ("preprocess", "inference", "postprocess", "total"):
        assert only_mask.timings[stage] > 0
    assert only_mask.timings["total"] >= only_mask.timings["inference"]
    with pytest.raises(ConfigError, match="outputs"):
        plain.segment(image, outputs=("mask", "depth"))
    with pytest.raises(ConfigError, match="outputs"):
        plain.segment(image, outputs=())


def test_cpu_pre_and_post_processing_leave_the_thread_count_as_it_was(plain):
    image = street_image(64, 128, seed=12)
    expected = plain.segment(image).mask  # one thread (module fixture)
    torch.set_num_threads(2)
    try:
        assert np.array_equal(plain.segment(image).mask, expected)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_read_only_and_strided_images_are_accepted(plain):
    image = street_image(64, 128, seed=8)
    expected = plain.segment(image).mask
    read_only = np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(image.shape)
    assert not read_only.flags.writeable
    assert np.array_equal(plain.segment(read_only).mask, expected)
    padded = np.zeros((64, 140, 3), dtype=np.uint8)
    padded[:, :128] = image
    assert np.array_equal(plain.segment(padded[:, :128]).mask, expected)


def test_overlay_alpha_is_validated(model, plain):
    for bad in (-0.1, 1.5, "0.5", True, float("nan")):
        with pytest.raises(ConfigError, match="overlay_alpha"):
            plain.overlay_alpha = bad
    with pytest.raises(ConfigError, match="overlay_alpha"):
        Segmenter(model, device="cpu", input_size=SIZE, overlay_alpha=2, optimize="none")
    plain.overlay_alpha = 0.25
    assert plain.overlay_alpha == 0.25
    plain.overlay_alpha = 0.5


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_config_error(model):
    with pytest.raises(ConfigError, match="device=cuda requested but CUDA is not available"):
        Segmenter(model, device="cuda", input_size=SIZE)


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks CUDA here")
def test_auto_device_falls_back_to_cpu_fp32_with_a_warning(model):
    with core_log() as logged:
        segmenter = Segmenter(model, input_size=SIZE, optimize="none")
    assert (segmenter.device, segmenter.precision) == ("cpu", "fp32")
    assert any("CUDA is not available" in message for message in logged)
    assert segmenter.description == "mobilenetv2 fp32 cpu 64x128 (eager)"


@pytest.mark.parametrize("bad", [
    np.zeros((64, 128, 3), dtype=np.float32),
    np.zeros((64, 128, 4), dtype=np.uint8),
    np.zeros((64, 128), dtype=np.uint8),
    np.zeros((0, 128, 3), dtype=np.uint8),
    np.zeros((64, 0, 3), dtype=np.uint8),
    [[0, 1], [2, 3]],
])
def test_bad_images_raise_image_error(plain, bad):
    with pytest.raises(ImageError):
        plain.segment(bad)


def test_bad_mono8_and_unknown_encodings_raise_image_error(plain):
    with pytest.raises(ImageError, match="mono8"):
        plain.segment(np.zeros((64, 128, 3), dtype=np.uint8), encoding="mono8")
    with pytest.raises(ImageError, match="encoding"):
        plain.segment(np.zeros((64, 128, 3), dtype=np.uint8), encoding="rgba8")


def test_construction_options_are_validated(model):
    with pytest.raises(InputSizeError):
        Segmenter(model, device="cpu", input_size=(16, 16), optimize="none")
    with pytest.raises(InputSizeError, match="multiples of"):
        Segmenter(build_liteseg("darknet19"), device="cpu", input_size=(70, 130), optimize="none")
    for kwargs in ({"input_size": (64,)}, {"input_size": (64.5, 128)}, {"upsample": "nearest"},
                   {"precision": "int8"}, {"device": "tpu"}, {"optimize": "fold_bn,turbo"},
                   {"optimize": "cuda_graphs"}, {"optimize": "compile,torchscript_freeze"}):
        options = {"device": "cpu", "input_size": SIZE, **kwargs}
        with pytest.raises(ConfigError):
            Segmenter(model, **options)
    with pytest.raises(ConfigError, match="nn.Module or a weights path"):
        Segmenter(42, device="cpu")


def test_a_checkpoint_path_gives_the_same_results_and_the_model_is_left_untouched(model, plain, tmp_path):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / "model.pt", model)
    from_file = Segmenter(str(path), device="cpu", input_size=SIZE, precision="fp32")  # optimize="auto"
    image = street_image(64, 128, seed=9)
    assert agreement(from_file.segment(image).mask, plain.segment(image).mask) >= 0.999
    assert from_file.description.startswith("mobilenetv2 fp32 cpu 64x128 (")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("upsample", ["logits", "mask"])
def test_cuda_fp16_graphs_agree_with_cpu_eager(model, upsample):
    image = street_image(96, 200, seed=10)
    expected, _ = reference_prediction(model, image, SIZE, upsample)
    graphs = Segmenter(model, device="cuda", input_size=SIZE, upsample=upsample)
    eager = Segmenter(model, device="cuda", input_size=SIZE, upsample=upsample, optimize={"cuda_graphs": False})
    assert graphs.precision == "fp16" and "cuda-graph" in graphs.description
    for _ in range(2):  # the second call replays the captured graph
        result = graphs.segment(image)
        assert agreement(result.mask, expected) >= 0.999
        assert np.array_equal(result.color, TRAIN_ID_PALETTE[result.mask])
    assert np.array_equal(eager.segment(image).mask, result.mask)
    graphs.overlay_alpha = 1.0
    assert np.array_equal(graphs.segment(image).overlay, result.color)
    other = graphs.segment(street_image(64, 128, seed=11), encoding="rgb8", outputs=("mask",))
    assert other.mask.shape == (64, 128) and other.color is None
