"""The network a :class:`~liteseg_ros.inference.plan.Plan` describes, built and warmed up. A runner that cannot
be set up is logged as one warning and the plan's next fallback is built instead: the plan returned says what
runs, and why."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from liteseg_ros.errors import first_line
from liteseg_ros.inference.batchnorm import small_probe
from liteseg_ros.inference.optimize import build_runner, prepare_module, warmed_up
from liteseg_ros.inference.plan import EAGER, Plan
from liteseg_ros.inference.quantized import QuantizedModel
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)
Network = Callable[[torch.Tensor], torch.Tensor]


def example_input(plan: Plan, input_size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A random network input of the plan's device, input dtype and memory format at ``input_size``."""
    memory_format = torch.channels_last if plan.options.channels_last else torch.contiguous_format
    x = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(seed))
    return x.to(device=plan.device, dtype=plan.input_dtype).contiguous(memory_format=memory_format)


def build_network(model: nn.Module | QuantizedModel, plan: Plan, input_size: tuple[int, int]) -> tuple[Network, Plan]:
    """``model`` run as ``plan`` says, warmed up; and the plan that was carried out (fallbacks taken)."""
    while True:
        try:
            if isinstance(model, QuantizedModel):
                network, example = model.runner(plan.runner, plan.threads), example_input(plan, input_size)
            else:
                network, plan = prepared_module(model, plan, input_size)
                example = example_input(plan, input_size)
                network = build_runner(plan.runner, network, example, plan.precision)
            # the CUDA graph capture warms the network up itself
            passes = min(plan.options.warmup, 1) if plan.options.cuda_graphs else plan.options.warmup
            return warmed_up(network, example, passes), plan
        except Exception as error:  # an optimisation must never stop start-up; a plan without fallbacks re-raises
            if not plan.fallbacks:
                raise
            failed, plan = plan, plan.fell_back(first_line(error))
            instead = "eager PyTorch" if plan.runner == EAGER else plan.runner
            LOG.warning("optimize: %s could not be set up (%s); using %s (%s) instead", failed.runner,
                        first_line(error), instead, plan.precision)


def prepared_module(model: nn.Module, plan: Plan, input_size: tuple[int, int]) -> tuple[nn.Module, Plan]:
    """A copy of ``model`` as the plan's runner takes it (BatchNorm folded, cast, in its memory format), and the
    plan, without folding when that failed."""
    probe = None
    if plan.options.fold_bn:  # a small input finds the BatchNorm pairs faster than the deployment-sized one
        probe = small_probe(model, torch.device(plan.device))
        probe = probe if probe is not None else example_input(plan, input_size).float().contiguous()
    module, fold_failure = prepare_module(model, plan.options, plan.input_dtype, plan.device, probe)
    if fold_failure is not None:
        LOG.warning("optimize: fold_bn could not be set up (%s); using unfolded BatchNorm instead", fold_failure)
        plan = plan.without("fold_bn", fold_failure)
    return module, plan
