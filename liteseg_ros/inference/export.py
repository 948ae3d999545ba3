"""The network as a Segmenter runs it, made from a module or an fp32 weights file: BatchNorm folded, cast to the
plan's dtype and memory format, cut before the final upsampling (which the CPU path fuses with the argmax), and
exported to ONNX for the ONNX runners (a file of the network cache, or bytes in memory)."""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from liteseg_ros.errors import OptimizationError, first_line
from liteseg_ros.inference.batchnorm import fold_batchnorm, small_probe
from liteseg_ros.inference.cache import CacheKey
from liteseg_ros.inference.memory import keep_freed_memory
from liteseg_ros.inference.optimize import OptimizeOptions
from liteseg_ros.inference.plan import Plan
from liteseg_ros.inference.runners import EXPORT_PACKAGE, RUNNERS, package_available
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)


class PreUpsampleLogits(nn.Module):
    """A copy of a LiteSeg that returns its decoder's logits before the final bilinear upsampling (1/s_low size).

    A forward hook on ``last_conv`` keeps its output. The final upsampling still runs in eager mode (its result
    is dropped); TorchScript freezing, Inductor and the ONNX export remove it as dead code. The caller does that
    upsampling fused with the argmax (:mod:`liteseg_ros.inference.resize_argmax`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model)
        self._kept: list[torch.Tensor] = []
        self.model.last_conv.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._kept.append(output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._kept.clear()
        self.model(x)
        return self._kept[-1]


def example_input(plan: Plan, input_size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A random network input of the plan's device, input dtype and memory format at ``input_size``."""
    memory_format = torch.channels_last if plan.options.channels_last else torch.contiguous_format
    x = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(seed))
    return x.to(device=plan.device, dtype=plan.input_dtype).contiguous(memory_format=memory_format)


def export_prepared(weights: Path, key: CacheKey, target: Path) -> dict:
    """The fp32 weights' network as the Segmenter runs it (BatchNorm folded, up to the last upsampling when the
    key says so), exported to ONNX at ``target``; the report (a fold that failed, why)."""
    from liteseg_ros.model import load_weights

    model, _ = load_weights(weights)
    plan = Plan(device="cpu", precision="fp32", threads=1, postprocess_threads=1,
                 options=OptimizeOptions(runner=key.runner, fold_bn=key.fold_bn, channels_last=False))
    module, done = prepared_module(PreUpsampleLogits(model) if key.network == "pre-upsample" else model, plan,
                                   key.input_size)
    export_onnx(module, example_input(done, key.input_size), str(target))
    return {"without fold_bn": done.history[0].split(": ", 1)[1]} if done.history else {}


def prepared_module(model: nn.Module, plan: Plan, input_size: tuple[int, int]) -> tuple[nn.Module, Plan]:
    """A copy of ``model`` as the plan's runner takes it (BatchNorm folded, cast, in its memory format), and the
    plan, without folding when that failed."""
    if plan.options.malloc_tuning:
        keep_freed_memory()
    network = copy.deepcopy(model).eval().to(device=plan.device, dtype=torch.float32)
    if plan.options.fold_bn:  # a small input finds the BatchNorm pairs faster than the deployment-sized one
        probe = small_probe(network, torch.device(plan.device))
        probe = probe if probe is not None else example_input(plan, input_size).float().contiguous()
        try:
            network = fold_batchnorm(network, probe.float())
        except OptimizationError as error:
            LOG.warning("optimize: fold_bn could not be set up (%s); using unfolded BatchNorm instead", error)
            plan = plan.without("fold_bn", first_line(error))
    network = network.to(plan.input_dtype if RUNNERS[plan.runner].onnx else plan.dtype)
    if plan.options.channels_last:
        network = network.to(memory_format=torch.channels_last)
    return network, plan


def export_onnx(network: nn.Module, example_input: torch.Tensor, destination: Any, *, opset: int = 17,
                output_names: Sequence[str] = ("logits",), exporter: str = "torchscript") -> None:
    """torch.onnx.export with our interface: static shape, input ``input``, outputs ``output_names``.

    Both exporters need the ``onnx`` package (torch imports it to write the model): ``exporter="torchscript"``
    (deprecated in torch 2.9+, still shipped) needs nothing more, ``"dynamo"`` also needs onnxscript.
    ``destination`` is a path or a binary file object. Raises OptimizationError when onnx is missing.
    """
    if not package_available(EXPORT_PACKAGE):
        raise OptimizationError("onnx is not installed; pip install onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        extra = {"external_data": False} if exporter == "dynamo" else {}
        torch.onnx.export(network.eval(), (example_input,), destination, input_names=["input"],
                          output_names=list(output_names), opset_version=opset, do_constant_folding=True,
                          dynamo=exporter == "dynamo", **extra)


def export_onnx_bytes(network: nn.Module, example_input: torch.Tensor) -> bytes:
    """The network exported to ONNX in memory (static shape of ``example_input``, input ``input``)."""
    buffer = io.BytesIO()
    export_onnx(network, example_input.contiguous().float(), buffer)
    return buffer.getvalue()


