"""Deployment optimisations: BatchNorm folding on logits, and each optimisation's masks against eager fp32."""

from __future__ import annotations

import copy
import shutil
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from liteseg_ros.errors import ConfigError, OptimizationError
from liteseg_ros.inference.batchnorm import fold_batchnorm
from liteseg_ros.inference.cuda_graphs import CudaGraphRunner
from liteseg_ros.inference.memory import keep_freed_memory
from liteseg_ros.inference.optimize import OptimizeOptions, auto_options, resolve_optimize
from liteseg_ros.inference.runners import package_available
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.model import build_liteseg

from segmenter_fixtures import (  # noqa: F401  (one_torch_thread is an autouse fixture)
    agreement,
    calibrated_model,
    core_log,
    network_input,
    one_torch_thread,
    reference_prediction,
    street_image,
)

SIZE = (64, 128)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return calibrated_model("mobilenetv2", size=SIZE)


@pytest.fixture(scope="module")
def street() -> np.ndarray:
    return street_image(96, 192, seed=21)


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    return float((result - reference).abs().max() / reference.abs().max())


@pytest.mark.parametrize("backbone", ["mobilenetv2", "shufflenet", "darknet19"])
def test_folding_removes_every_batchnorm_and_keeps_the_logits(backbone):
    model = calibrated_model(backbone, size=SIZE if backbone != "darknet19" else (32, 64))
    x = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    folded = fold_batchnorm(model, x[:, :, :32, :64])
    assert count(model, nn.BatchNorm2d) > 0 and count(folded, nn.BatchNorm2d) == 0
    with torch.no_grad():
        reference, result = model(x), folded(x)
    assert relative_error(result, reference) < 1e-4


def test_folding_merges_the_separable_1x1_depthwise_scales():
    model = calibrated_model("mobilenetv2", size=SIZE)
    depthwise_1x1 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
                     and m.groups == m.in_channels > 1]
    assert len(depthwise_1x1) == 2  # aspp1 and the encoder's conv1: SepConv(C, 96, 1)
    folded = fold_batchnorm(model, torch.randn(1, 3, 64, 64))
    assert count(folded, nn.Conv2d) == count(model, nn.Conv2d) - 2
    assert isinstance(folded.aspp1.atrous_convolution.conv1, nn.Identity)


@pytest.mark.parametrize("aspp, separable", [("aspp", True), ("daspp", False)])
def test_folding_handles_the_ablation_heads(aspp, separable):
    model = build_liteseg("shufflenet", aspp=aspp, separable=separable)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 128))
    model.eval()
    x = torch.randn(1, 3, 64, 128)
    folded = fold_batchnorm(model, x)
    assert count(folded, nn.BatchNorm2d) == 0
    with torch.no_grad():
        assert relative_error(folded(x), model(x)) < 1e-4


class _ConvUsedTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


def test_folding_refuses_a_convolution_whose_output_is_used_elsewhere():
    module = _ConvUsedTwice()
    with torch.no_grad():
        module.bn.running_mean.uniform_(-1, 1)
        module.bn.running_var.uniform_(0.5, 2)
    with pytest.raises(OptimizationError, match="BatchNorm folding changed"):
        fold_batchnorm(module.eval(), torch.randn(1, 3, 8, 8))


OPTIMISATIONS = ["fold_bn", "channels_last", "torchscript_freeze", "onnxruntime", "malloc_tuning",
                 "fold_bn,channels_last,torchscript_freeze", "auto",
                 pytest.param("fold_bn,openvino", marks=pytest.mark.skipif(not package_available("openvino"),
                                                                           reason="OpenVINO is not installed"))]


@pytest.mark.parametrize("upsample", ["logits", "mask"])
@pytest.mark.parametrize("optimize", OPTIMISATIONS)
def test_each_optimisation_agrees_with_eager_fp32(model, street, optimize, upsample):
    """fp32 (random weights: bf16 agreement is tested with the trained model, test_cpu_precision.py)."""
    expected, _ = reference_prediction(model, street, SIZE, upsample)
    segmenter = Segmenter(model, device="cpu", input_size=SIZE, upsample=upsample, optimize=optimize,
                          precision="fp32")
    for _ in range(2):  # TorchScript's profiling executor re-optimises during the first calls
        mask = segmenter.segment(street, outputs=("mask",)).mask
        assert agreement(mask, expected) >= 0.999, segmenter.description


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="Inductor needs a C++ compiler")
def test_inductor_compile_agrees_with_eager_fp32(model, street):
    expected, _ = reference_prediction(model, street, SIZE, "logits")
    segmenter = Segmenter(model, device="cpu", input_size=SIZE, optimize="fold_bn,channels_last,compile,warmup=1")
    assert "compiled" in segmenter.description
    assert agreement(segmenter.segment(street, outputs=("mask",)).mask, expected) >= 0.999


def test_bf16_on_cpu_matches_the_eager_bf16_network(model, street):
    """bf16 keeps 8 significant bits: through a deep random-weight network it moves many pixels' classes, so the
    reference is the eager network in bf16 (the dtype plumbing is what is checked; only rounding may differ)."""
    x = network_input(street, SIZE).to(torch.bfloat16)
    with torch.no_grad():
        logits = copy.deepcopy(model).to(torch.bfloat16)(x).float()
        expected = F.interpolate(logits, size=street.shape[:2], mode="bilinear", align_corners=False).argmax(1)[0]
    segmenter = Segmenter(model, device="cpu", precision="bf16", input_size=SIZE, optimize="none")
    assert segmenter.precision == "bf16" and segmenter.example_input().dtype == torch.bfloat16
    assert agreement(segmenter.segment(street, outputs=("mask",)).mask, expected.to(torch.uint8).numpy()) >= 0.97


def _fallback_warnings(messages: list[str]) -> list[str]:
    return [message for message in messages if "could not be set up" in message]


@pytest.mark.skipif(not package_available("onnxruntime"), reason="onnxruntime is not installed")
@pytest.mark.parametrize("optimize", ["auto", "onnxruntime"])
def test_onnxruntime_without_onnx_runs_torchscript(model, street, optimize, monkeypatch):
    """onnxruntime installed but onnx missing (a runtime-only install): the export cannot run. ``auto`` plans
    TorchScript and says why; onnxruntime asked for by name is tried, and falls back with one warning."""
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail as if it were not installed
    expected, _ = reference_prediction(model, street, SIZE, "logits")
    with core_log() as logged:
        segmenter = Segmenter(model, device="cpu", input_size=SIZE, optimize=optimize, precision="fp32")
    warnings = _fallback_warnings(logged)
    if optimize == "auto":
        assert warnings == [] and segmenter.plan.reasons["runner"] == "auto: onnx not installed"
    else:
        assert len(warnings) == 1 and "onnx is not installed; pip install onnx" in warnings[0], warnings
        assert "using torchscript_freeze (fp32) instead" in warnings[0]
        assert segmenter.plan.history == ("onnxruntime fp32 -> torchscript_freeze fp32: onnx is not installed; "
                                          "pip install onnx",)
    assert segmenter.options.runner == "torchscript_freeze"
    assert "torchscript" in segmenter.description and "onnxruntime" not in segmenter.description
    assert agreement(segmenter.segment(street, outputs=("mask",)).mask, expected) >= 0.999


def test_a_network_that_cannot_be_folded_runs_unfolded_with_a_warning(street):
    module = _ConvUsedTwice()
    with torch.no_grad():
        module.bn.running_mean.uniform_(-1, 1)
        module.bn.running_var.uniform_(0.5, 2)
    with core_log() as logged:
        segmenter = Segmenter(module.eval(), device="cpu", input_size=(32, 32), optimize="fold_bn,warmup=1")
    warnings = _fallback_warnings(logged)
    assert len(warnings) == 1 and warnings[0].startswith("optimize: fold_bn could not be set up (BatchNorm folding")
    assert not segmenter.options.fold_bn and segmenter.description.endswith("(eager)")
    with torch.no_grad():
        logits = module(network_input(street, (32, 32)))
        expected = F.interpolate(logits, size=street.shape[:2], mode="bilinear", align_corners=False).argmax(1)[0]
    assert np.array_equal(segmenter.segment(street, outputs=("mask",)).mask, expected.to(torch.uint8).numpy())


def test_a_runner_that_fails_falls_back_to_eager(model, street):
    """A runner failing at set-up (here: TorchScript tracing a network that returns a non-tensor) is not fatal."""

    class _DictOutput(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if torch.jit.is_tracing():
                raise RuntimeError("cannot trace this network")
            return self.inner(x)

    with core_log() as logged:
        segmenter = Segmenter(_DictOutput(model), device="cpu", input_size=SIZE, optimize="torchscript_freeze,warmup=1")
    warnings = _fallback_warnings(logged)
    assert len(warnings) == 1 and "torchscript_freeze could not be set up (RuntimeError: cannot trace" in warnings[0]
    assert "using eager PyTorch (fp32) instead" in warnings[0]
    assert segmenter.options.runner == "eager"
    expected, _ = reference_prediction(model, street, SIZE, "logits")
    assert agreement(segmenter.segment(street, outputs=("mask",)).mask, expected) >= 0.999


def test_optimize_argument_forms():
    everything = frozenset({"onnx", "onnxruntime", "openvino"}).__contains__
    assert resolve_optimize("none", "cpu") == OptimizeOptions.none()
    assert resolve_optimize("auto", "cpu", installed=everything) == auto_options("cpu", installed=everything)
    cpu = auto_options("cpu", installed=everything)
    assert (cpu.runner, cpu.fold_bn, cpu.channels_last, cpu.cuda_graphs) == ("onnxruntime", True, False, False)
    assert auto_options("cpu", installed=lambda name: False).runner == "torchscript_freeze"
    assert auto_options("cpu", "bf16", everything).runner == "openvino"  # onnxruntime runs fp32 only
    assert auto_options("cpu", "int8", frozenset({"onnxruntime"}).__contains__).runner == "onnxruntime"  # no export
    with pytest.raises(ConfigError, match="fp32"):
        resolve_optimize("onnxruntime", "cpu", "bf16")
    with pytest.raises(ConfigError, match="openvino runs fp32 or bf16 or int8 only"):
        resolve_optimize("openvino", "cpu", "fp16")
    assert auto_options("cuda").cuda_graphs and auto_options("cuda").runner == "eager"
    assert resolve_optimize({"malloc_tuning": False}, "cpu") == replace(auto_options("cpu"), malloc_tuning=False)
    listed = resolve_optimize("fold_bn, torchscript_freeze, warmup=5", "cpu")
    assert listed == OptimizeOptions(runner="torchscript_freeze", fold_bn=True, channels_last=False, warmup=5)
    assert listed.tags() == ["bn-folded", "torchscript"]
    for bad in (
        "turbo",
        "warmup=x",
        {"turbo": True},
        3,
        "compile,torchscript_freeze",
        "onnxruntime,compile",
        "onnxruntime,channels_last",
        "openvino,channels_last",
        "openvino,onnxruntime",
        "cuda_graphs",
        "warmup=-1",
    ):
        with pytest.raises(ConfigError):
            resolve_optimize(bad, "cpu")


def test_malloc_tuning_takes_effect_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_runner_replays_the_captured_network(model):
    network = fold_batchnorm(model, torch.randn(1, 3, 64, 64)).cuda().half().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, *SIZE, device="cuda").half().contiguous(memory_format=torch.channels_last)
    runner = CudaGraphRunner(network, [x])
    for _ in range(2):
        y = torch.randn_like(x)
        with torch.inference_mode():
            expected = network(y)
        assert torch.allclose(runner(y).float(), expected.float(), atol=1e-2)
