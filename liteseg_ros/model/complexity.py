"""Parameter and multiply-accumulate counts, and eager forward timing, of a LiteSeg model."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from liteseg_ros.model.liteseg import LiteSeg, LiteSegConfig

MAC_COUNTER = (
    "torch.utils.flop_counter.FlopCounterMode (conv/linear MACs = FLOPs / 2) "
    "+ one add per output element of each biased convolution"
)


@dataclass(frozen=True)
class Complexity:
    """Complexity figures of one architecture at one input size."""

    backbone: str
    input_size: tuple[int, int]
    params_used: int
    params_with_imagenet_head: int  # as the paper's Table III counts them
    macs: int  # conv + linear MACs plus bias additions (see MAC_COUNTER)
    conv_macs: int  # FlopCounterMode only
    output_stride: int
    low_level_stride: int


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: LiteSeg, input_size: tuple[int, int]) -> tuple[int, int]:
    """(MACs with bias additions, FlopCounterMode MACs) of one forward pass of ``model`` (best on the meta device)."""
    device = next(model.parameters()).device
    bias_adds = 0

    def count_bias(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal bias_adds
        if getattr(module, "bias", None) is not None:
            bias_adds += output.numel()

    hooks = [m.register_forward_hook(count_bias) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(torch.empty(1, 3, *input_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    conv_macs = counter.get_total_flops() // 2
    return conv_macs + bias_adds, conv_macs


def measure_complexity(config: LiteSegConfig, input_size: tuple[int, int]) -> Complexity:
    """Parameters, MACs and strides of the architecture ``config`` at ``input_size`` (height, width).

    The model is built on the meta device: shapes only, no weights allocated or computed.
    """
    with torch.device("meta"):
        model = LiteSeg(config)
    model.check_input_size(*input_size)
    params = count_parameters(model)
    macs, conv_macs = count_macs(model, input_size)
    spec = model.spec
    return Complexity(
        backbone=spec.name,
        input_size=tuple(input_size),
        params_used=params,
        params_with_imagenet_head=params + spec.imagenet_head_params,
        macs=macs,
        conv_macs=conv_macs,
        output_stride=spec.output_stride,
        low_level_stride=spec.low_level_stride,
    )


def time_eager_forward(
    model: nn.Module, input_size: tuple[int, int], *, warmup: int = 3, iters: int = 10
) -> list[float]:
    """Seconds per eager fp32 CPU forward of a 1x3xHxW random input (after ``warmup`` passes)."""
    model = model.eval()
    x = torch.randn(1, 3, *input_size)
    timings = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                timings.append(time.perf_counter() - start)
    return timings


def median_ms(timings: list[float]) -> float:
    return statistics.median(timings) * 1000.0
