"""Deployment optimisations of a segmentation network, each switchable and each checked against eager fp32 in tests.

- BatchNorm folding into the preceding convolution (:mod:`liteseg_ros.inference.batchnorm`).
- channels_last memory format.
- TorchScript freezing (trace + freeze), torch.compile (Inductor, with weight freezing), onnxruntime (fp32) or
  OpenVINO (fp32 or bf16) for a fixed input size: the runtimes take the network exported to ONNX in memory
  (:mod:`liteseg_ros.inference.runtimes`).
- CUDA graphs for a fixed input size (:mod:`liteseg_ros.inference.cuda_graphs`, applied by the CUDA path).
- warm-up passes.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Mapping

import torch
from torch import nn

from liteseg_ros.errors import ConfigError, OptimizationError, first_line
from liteseg_ros.inference.batchnorm import fold_batchnorm
from liteseg_ros.inference.runtimes import (
    OnnxRuntimeNetwork,
    OpenVinoNetwork,
    package_available,
)
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)

RUNNERS = ("openvino", "onnxruntime", "torchscript_freeze", "compile")
# the runners that take the network exported to ONNX (the onnx package), CPU only, with their precisions
ONNX_RUNNER_PRECISIONS = {"openvino": {"fp32": torch.float32, "bf16": torch.bfloat16},
                          "onnxruntime": {"fp32": torch.float32}}
ONNX_RUNNERS = tuple(ONNX_RUNNER_PRECISIONS)


@dataclass(frozen=True)
class OptimizeOptions:
    """Which deployment optimisations to apply. :func:`auto_options` gives the measured defaults."""

    fold_bn: bool = True  # fold BatchNorm (and separable 1x1 depthwise scales) into the convolutions
    channels_last: bool = True  # NHWC memory format for the network and its input
    warmup: int = 3  # forward passes at construction (JIT profiling, cuDNN autotuning, allocator)
    cuda_graphs: bool = False  # capture the whole GPU pipeline for a fixed image size (CUDA only)
    compile: bool = False  # torch.compile (Inductor) for the fixed input size
    torchscript_freeze: bool = False  # torch.jit.trace + torch.jit.freeze for the fixed input size
    onnxruntime: bool = False  # export to ONNX in memory and run onnxruntime's CPU provider (fp32, CPU only)
    openvino: bool = False  # export to ONNX in memory and run OpenVINO on the CPU (fp32 or bf16; optional extra)
    malloc_tuning: bool = False  # keep freed memory in the process (glibc mallopt); helps eager, not the runners

    @classmethod
    def none(cls) -> "OptimizeOptions":
        """Plain eager execution, nothing changed."""
        return cls(fold_bn=False, channels_last=False, warmup=0)

    @classmethod
    def cpu_fallback(cls) -> "OptimizeOptions":
        """The CPU default when onnxruntime cannot run: BatchNorm folding, channels-last and TorchScript freezing."""
        return cls(fold_bn=True, channels_last=True, warmup=3, torchscript_freeze=True)

    def validate(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "OptimizeOptions":
        """Raise ConfigError for contradictory options or options the device/precision cannot run; return self."""
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"optimize warmup must be a non-negative integer, got {self.warmup!r}")
        runners = [name for name in RUNNERS if getattr(self, name)]
        if len(runners) > 1:
            raise ConfigError(f"optimize: choose one of {', '.join(RUNNERS)}, not {' and '.join(runners)}")
        if device is not None and self.cuda_graphs and torch.device(device).type != "cuda":
            raise ConfigError("optimize: cuda_graphs needs device=cuda; drop cuda_graphs or run on a GPU")
        for runner, precisions in ONNX_RUNNER_PRECISIONS.items():
            if getattr(self, runner):
                _check_onnx_runner(runner, precisions, device, dtype, self.channels_last)
        return self

    def tags(self) -> list[str]:
        """Short names of the enabled optimisations, for descriptions and tables."""
        names = {"fold_bn": "bn-folded", "channels_last": "channels-last", "cuda_graphs": "cuda-graph",
                 "compile": "compiled", "torchscript_freeze": "torchscript", "onnxruntime": "onnxruntime",
                 "openvino": "openvino", "malloc_tuning": "malloc-tuned"}
        return [tag for name, tag in names.items() if getattr(self, name)]


def _check_onnx_runner(runner: str, precisions: Mapping[str, torch.dtype], device: torch.device | str | None,
                       dtype: torch.dtype | None, channels_last: bool) -> None:
    if device is not None and torch.device(device).type != "cpu":
        raise ConfigError(f"optimize: {runner} runs on the CPU here; on a GPU use cuda_graphs")
    if channels_last:
        raise ConfigError(f"optimize: {runner} takes NCHW input; drop channels_last")
    if dtype is not None and dtype not in precisions.values():
        names = " or ".join(precisions)
        raise ConfigError(f"optimize: {runner} runs {names} only; use precision={names.split()[0]} or another "
                          "optimisation")


OPTION_NAMES = tuple(f.name for f in fields(OptimizeOptions) if f.name != "warmup")


# the packages a runner needs: the ONNX runners take the network exported to ONNX (the onnx package)
RUNNER_PACKAGES = {"openvino": ("openvino", "onnx"), "onnxruntime": ("onnxruntime", "onnx")}


def runner_installed(runner: str, package_installed: Callable[[str], bool] = package_available) -> bool:
    """Whether ``runner``'s packages (:data:`RUNNER_PACKAGES`) are installed, as ``package_installed`` says."""
    return all(package_installed(package) for package in RUNNER_PACKAGES.get(runner, ()))


def auto_options(device: torch.device | str, dtype: torch.dtype = torch.float32,
                 installed: Callable[[str], bool] = runner_installed) -> OptimizeOptions:
    """``optimize=auto``, measured fastest on the CPU (docs/benchmarks.md): OpenVINO for bf16 and onnxruntime for
    fp32 where ``installed`` says they can run, else TorchScript freezing; on CUDA BatchNorm folding,
    channels-last and CUDA graphs (chosen by reasoning, not measured)."""
    if torch.device(device).type == "cuda":
        return OptimizeOptions(fold_bn=True, channels_last=True, cuda_graphs=True)
    if dtype == torch.bfloat16 and installed("openvino"):
        return OptimizeOptions(fold_bn=True, channels_last=False, openvino=True)
    if dtype == torch.float32 and installed("onnxruntime"):
        return OptimizeOptions(fold_bn=True, channels_last=False, onnxruntime=True)
    return OptimizeOptions.cpu_fallback()


def resolve_optimize(optimize: Any, device: torch.device | str, dtype: torch.dtype = torch.float32,
                     installed: Callable[[str], bool] = runner_installed) -> OptimizeOptions:
    """Turn the ``optimize=`` argument into validated options (``auto`` per :func:`auto_options`).

    Accepts ``"auto"``, ``"none"`` (or None/False), an :class:`OptimizeOptions`, a mapping of fields overriding
    the auto defaults (e.g. ``{"cuda_graphs": False}``), or a comma-separated list of the optimisations to enable
    (e.g. ``"fold_bn,channels_last,torchscript_freeze"``; ``warmup=N`` may be one of the items).
    """
    if isinstance(optimize, OptimizeOptions):
        options = optimize
    elif optimize is None or optimize is False or optimize == "none":
        options = OptimizeOptions.none()
    elif optimize is True or optimize == "auto":
        options = auto_options(device, dtype, installed)
    elif isinstance(optimize, Mapping):
        unknown = set(optimize) - {f.name for f in fields(OptimizeOptions)}
        if unknown:
            raise ConfigError(f"unknown optimize option(s) {sorted(unknown)}: "
                              f"choose from {', '.join(OPTION_NAMES)}, warmup")
        options = replace(auto_options(device, dtype, installed), **optimize)
    elif isinstance(optimize, str):
        options = parse_option_list(optimize)
    else:
        raise ConfigError("optimize must be 'auto', 'none', a comma-separated list or OptimizeOptions, "
                          f"got {optimize!r}")
    return options.validate(device, dtype)


def parse_option_list(text: str) -> OptimizeOptions:
    """Parse ``"fold_bn,channels_last,warmup=5"`` (the optimisations to enable) into OptimizeOptions, unvalidated."""
    enabled: dict[str, Any] = {name: False for name in OPTION_NAMES}
    warmup = OptimizeOptions().warmup
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item.startswith("warmup="):
            try:
                warmup = int(item.split("=", 1)[1])
            except ValueError:
                raise ConfigError(f"optimize: warmup must be an integer, got {item!r}") from None
        elif item in enabled:
            enabled[item] = True
        else:
            raise ConfigError(f"unknown optimize option {item!r}: "
                              f"use 'auto', 'none' or a list of {', '.join(OPTION_NAMES)}")
    return OptimizeOptions(warmup=warmup, **enabled)


# ----------------------------------------------------------------------------------------------- preparing a model
def prepare_module(model: nn.Module, options: OptimizeOptions, dtype: torch.dtype, device: torch.device | str,
                   probe_input: torch.Tensor | None) -> tuple[nn.Module, str | None]:
    """A copy of the eval-mode ``model`` on ``device`` with BatchNorm folded (checked on the fp32 ``probe_input``),
    cast to ``dtype`` and in channels-last when ``options`` say so; and why folding failed (None when it did not
    or was not asked for). ``model`` is not modified."""
    if options.malloc_tuning:
        keep_freed_memory()
    network = copy.deepcopy(model).eval().to(device=device, dtype=torch.float32)
    fold_failure = None
    if options.fold_bn and probe_input is not None:
        try:
            network = fold_batchnorm(network, probe_input.float())
        except OptimizationError as error:
            fold_failure = first_line(error)
    network = network.to(dtype)
    if options.channels_last:
        network = network.to(memory_format=torch.channels_last)
    return network, fold_failure


def build_runner(runner: str, network: nn.Module, example_input: torch.Tensor,
                 precision: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network`` run by ``runner`` (a name of :data:`RUNNERS`, or ``eager``) for ``example_input``'s shape;
    ``precision`` is OpenVINO's inference precision (its input stays fp32). Raises whatever the runner raises."""
    return _RUNNER_BUILDERS[runner](network, example_input, precision)


def warmed_up(runner: Callable[[torch.Tensor], torch.Tensor], example_input: torch.Tensor,
              passes: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``runner`` after ``passes`` forward passes on ``example_input`` (JIT profiling, allocator, caches)."""
    with torch.inference_mode():
        for _ in range(passes):
            runner(example_input)
    return runner


def _torchscript_freeze(network: nn.Module, example_input: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still shipped
        return torch.jit.freeze(torch.jit.trace(network, example_input, check_trace=False))


def _compile(network: nn.Module, example_input: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return torch.compile(network, dynamic=False, options={"freezing": True})


_RUNNER_BUILDERS: dict[str, Callable[[nn.Module, torch.Tensor, str], Callable[[torch.Tensor], torch.Tensor]]] = {
    "eager": lambda network, example, precision: network,
    "openvino": lambda network, example, precision: OpenVinoNetwork.from_network(network, example, precision=precision),
    "onnxruntime": lambda network, example, precision: OnnxRuntimeNetwork.from_network(network, example),
    "torchscript_freeze": lambda network, example, precision: _torchscript_freeze(network, example),
    "compile": lambda network, example, precision: _compile(network, example),
}


_MALLOC_TUNED = False
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(limit_bytes: int = 1 << 30) -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory (mallopt), once per process.

    Without it every large tensor is a fresh mmap whose pages fault in on first touch: a few milliseconds per
    frame on CPU. The process keeps its peak memory instead. Returns whether the setting is in effect.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        LOG.info("malloc tuning unavailable (no glibc mallopt); continuing without it")
        return False
    _MALLOC_TUNED = bool(mallopt(_M_MMAP_THRESHOLD, limit_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, limit_bytes))
    return _MALLOC_TUNED
