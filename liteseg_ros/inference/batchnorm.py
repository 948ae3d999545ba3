"""BatchNorm folding: every BatchNorm2d into the convolution that feeds it, and the separable convolutions' 1x1
depthwise scale into the pointwise convolution, checked against the unfolded logits."""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn

from liteseg_ros.errors import ConfigError, OptimizationError
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)

FOLD_CHECK_RTOL = 1e-3  # relative (to the logits' range) tolerance of the post-fold self-check


def fold_batchnorm(model: nn.Module, example_input: torch.Tensor) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every BatchNorm2d folded into the convolution that feeds it.

    A 1x1 depthwise convolution feeding a 1x1 convolution (the separable convolutions' per-channel scale) is
    folded into it as well. The pairs are found by running ``example_input`` through the model and matching the
    tensor each module receives with the tensor another produced; a folded copy that does not reproduce the
    original logits raises OptimizationError (it would mean a convolution's output is used elsewhere too).
    """
    folded = copy.deepcopy(model).eval()
    depthwise_pairs, bn_pairs = _producer_pairs(folded, example_input)
    with torch.no_grad():
        reference = folded(example_input)
        for depthwise_name, pointwise_name in depthwise_pairs:
            _fold_depthwise_scale(folded, depthwise_name, pointwise_name)
        for conv_name, bn_name in bn_pairs:
            _fold_bn_into_conv(folded, conv_name, bn_name)
        result = folded(example_input)
    scale = reference.abs().max().clamp_min(1e-6)
    if not torch.allclose(result, reference, rtol=0.0, atol=FOLD_CHECK_RTOL * float(scale)):
        raise OptimizationError("BatchNorm folding changed the network's output (a convolution's output is used "
                                "elsewhere too)")
    LOG.debug("folded %d BatchNorms and %d depthwise scales", len(bn_pairs), len(depthwise_pairs))
    return folded


def _producer_pairs(model: nn.Module, example: torch.Tensor) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(depthwise 1x1 -> pointwise 1x1) and (conv -> BatchNorm) module-name pairs, in execution order."""
    produced_by: dict[int, str] = {}
    keep_alive: list[torch.Tensor] = []  # ids stay unique while the tensors live
    depthwise_pairs: list[tuple[str, str]] = []
    bn_pairs: list[tuple[str, str]] = []
    modules = dict(model.named_modules())

    def hook(name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple, output: Any) -> None:
            producer = produced_by.get(id(inputs[0])) if inputs and isinstance(inputs[0], torch.Tensor) else None
            if producer is not None and isinstance(module, nn.BatchNorm2d):
                bn_pairs.append((producer, name))
            elif producer is not None and _is_pointwise(module) and _is_depthwise_scale(modules[producer]):
                depthwise_pairs.append((producer, name))
            if isinstance(module, nn.Conv2d) and isinstance(output, torch.Tensor):
                produced_by[id(output)] = name
                keep_alive.append(output)
        return record

    watched = [(n, m) for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    handles = [m.register_forward_hook(hook(n)) for n, m in watched]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    folded_pointwise = {pointwise for _, pointwise in depthwise_pairs}
    if len(folded_pointwise) != len(depthwise_pairs) or len({bn for _, bn in bn_pairs}) != len(bn_pairs):
        raise OptimizationError("a module runs more than once per forward pass, which BatchNorm folding cannot handle")
    return depthwise_pairs, bn_pairs


def _is_depthwise_scale(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and conv.groups == conv.in_channels == conv.out_channels)


def _is_pointwise(conv: nn.Module) -> bool:
    return isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1 and conv.padding == (0, 0)


def _fold_depthwise_scale(model: nn.Module, depthwise_name: str, pointwise_name: str) -> None:
    """pointwise(s * x + b) = (W * s) x + (W b + bias): scale the pointwise weights' input channels."""
    depthwise, pointwise = model.get_submodule(depthwise_name), model.get_submodule(pointwise_name)
    scale = depthwise.weight.reshape(-1)
    weight = pointwise.weight.reshape(pointwise.out_channels, -1)
    bias = pointwise.bias.clone() if pointwise.bias is not None else torch.zeros(pointwise.out_channels)
    if depthwise.bias is not None:
        bias += weight @ depthwise.bias
    fused = _conv_like(pointwise, bias=True)
    fused.weight.copy_((weight * scale).reshape_as(pointwise.weight))
    fused.bias.copy_(bias)
    _replace_module(model, pointwise_name, fused)
    _replace_module(model, depthwise_name, nn.Identity())


def _fold_bn_into_conv(model: nn.Module, conv_name: str, bn_name: str) -> None:
    """conv -> BN  ==  conv with weight * g / sqrt(var + eps) and bias (b - mean) * g / sqrt(var + eps) + beta."""
    conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    factor = gamma / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused = _conv_like(conv, bias=True)
    fused.weight.copy_(conv.weight * factor.reshape(-1, 1, 1, 1))
    fused.bias.copy_((bias - bn.running_mean) * factor + beta)
    _replace_module(model, conv_name, fused)
    _replace_module(model, bn_name, nn.Identity())


def _conv_like(conv: nn.Conv2d, *, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.dilation, conv.groups, bias=bias, padding_mode=conv.padding_mode,
                     device=conv.weight.device, dtype=conv.weight.dtype).eval()


def _replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    parent._modules[child] = new


def small_probe(model: nn.Module, device: torch.device) -> torch.Tensor | None:
    """A small valid fp32 input for finding BatchNorm pairs (64 x 64 suits every LiteSeg backbone), or None."""
    side = 64
    check = getattr(model, "check_input_size", None)
    if check is None:
        return None
    try:
        check(side, side)
    except ConfigError:
        return None
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1)).to(device)
