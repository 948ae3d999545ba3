"""The ``optimize=`` argument: which deployment optimisations a Segmenter applies, parsed and checked. Imports no
torch (the plan and the node's parameters read it); :mod:`liteseg_ros.inference.networks` applies them.

- ``runner``: what executes the network (:mod:`liteseg_ros.inference.runners`: eager, TorchScript freezing,
  torch.compile, onnxruntime or OpenVINO on the network exported to ONNX);
- BatchNorm folding into the preceding convolution (:mod:`liteseg_ros.inference.batchnorm`);
- channels_last memory format;
- CUDA graphs for a fixed input size (:mod:`liteseg_ros.inference.cuda_graphs`, applied by the CUDA path);
- warm-up passes; glibc malloc tuning (keeps freed memory in the process: helps eager PyTorch, not the runners).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.runners import EAGER, RUNNER_NAMES, RUNNERS, auto_runner, package_available

FLAG_TAGS = {"fold_bn": "bn-folded", "channels_last": "channels-last", "cuda_graphs": "cuda-graph",
             "malloc_tuning": "malloc-tuned"}


@dataclass(frozen=True)
class OptimizeOptions:
    """Which deployment optimisations to apply. :func:`auto_options` gives the measured defaults."""

    runner: str = EAGER  # a name of liteseg_ros.inference.runners.RUNNERS
    fold_bn: bool = True  # fold BatchNorm (and separable 1x1 depthwise scales) into the convolutions
    channels_last: bool = True  # NHWC memory format for the network and its input
    warmup: int = 3  # forward passes at construction (JIT profiling, cuDNN autotuning, allocator)
    cuda_graphs: bool = False  # capture the whole GPU pipeline for a fixed image size (CUDA only)
    malloc_tuning: bool = False  # keep freed memory in the process (glibc mallopt); helps eager, not the runners

    @classmethod
    def none(cls) -> "OptimizeOptions":
        """Plain eager execution, nothing changed."""
        return cls(fold_bn=False, channels_last=False, warmup=0)

    def validate(self, device_type: str | None = None, precision: str | None = None) -> "OptimizeOptions":
        """Raise ConfigError for options the device/precision cannot run; return self."""
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or self.warmup < 0:
            raise ConfigError(f"optimize warmup must be a non-negative integer, got {self.warmup!r}")
        if self.runner not in RUNNERS:
            raise ConfigError(f"unknown runner {self.runner!r}: choose one of {', '.join(RUNNER_NAMES)}")
        if device_type is not None and self.cuda_graphs and device_type != "cuda":
            raise ConfigError("optimize: cuda_graphs needs device=cuda; drop cuda_graphs or run on a GPU")
        spec = RUNNERS[self.runner]
        if device_type is not None and device_type not in spec.devices:
            raise ConfigError(f"optimize: {self.runner} runs on the CPU here; on a GPU use cuda_graphs")
        if spec.onnx and self.channels_last:
            raise ConfigError(f"optimize: {self.runner} takes NCHW input; drop channels_last")
        if precision is not None and precision not in spec.precisions:
            names = " or ".join(spec.precisions)
            raise ConfigError(f"optimize: {self.runner} runs {names} only; use precision={spec.precisions[0]} or "
                              "another runner")
        return self

    def tags(self) -> list[str]:
        """Short names of the enabled optimisations, for descriptions and tables: the network's, its runner's, the
        process's (``bn-folded, channels-last, torchscript``)."""
        tags = [tag for name, tag in FLAG_TAGS.items() if getattr(self, name) and name != "malloc_tuning"]
        tags += [RUNNERS[self.runner].tag] if self.runner != EAGER else []
        return tags + ([FLAG_TAGS["malloc_tuning"]] if self.malloc_tuning else [])


FLAG_NAMES = tuple(f.name for f in fields(OptimizeOptions) if f.name not in ("runner", "warmup"))
OPTION_NAMES = RUNNER_NAMES[:-1] + FLAG_NAMES  # what an optimize= list may name (eager is the absence of one)


def auto_options(device_type: str, precision: str = "fp32",
                 installed: Callable[[str], bool] = package_available) -> OptimizeOptions:
    """``optimize=auto``: the runner of :func:`~liteseg_ros.inference.runners.auto_runner` with BatchNorm folding;
    on CUDA also channels-last and CUDA graphs (chosen by reasoning, not measured)."""
    runner, _ = auto_runner(device_type, precision, installed)
    if device_type == "cuda":
        return OptimizeOptions(runner=runner, fold_bn=True, channels_last=True, cuda_graphs=True)
    return OptimizeOptions(runner=runner, fold_bn=True, channels_last=not RUNNERS[runner].onnx)


def resolve_optimize(optimize: Any, device_type: str, precision: str = "fp32",
                     installed: Callable[[str], bool] = package_available) -> OptimizeOptions:
    """Turn the ``optimize=`` argument into validated options (``auto`` per :func:`auto_options`).

    Accepts ``"auto"``, ``"none"`` (or None/False), an :class:`OptimizeOptions`, a mapping of fields overriding
    the auto defaults (e.g. ``{"cuda_graphs": False}``), or a comma-separated list of the optimisations to enable
    (e.g. ``"fold_bn,onnxruntime"``: at most one runner; ``warmup=N`` may be one of the items).
    """
    if isinstance(optimize, OptimizeOptions):
        options = optimize
    elif optimize is None or optimize is False or optimize == "none":
        options = OptimizeOptions.none()
    elif optimize is True or optimize == "auto":
        options = auto_options(device_type, precision, installed)
    elif isinstance(optimize, Mapping):
        unknown = set(optimize) - {f.name for f in fields(OptimizeOptions)}
        if unknown:
            raise ConfigError(f"unknown optimize option(s) {sorted(unknown)}: "
                              f"choose from runner, {', '.join(FLAG_NAMES)}, warmup")
        options = replace(auto_options(device_type, precision, installed), **optimize)
    elif isinstance(optimize, str):
        options = parse_option_list(optimize)
    else:
        raise ConfigError("optimize must be 'auto', 'none', a comma-separated list or OptimizeOptions, "
                          f"got {optimize!r}")
    return options.validate(device_type, precision)


def parse_option_list(text: str) -> OptimizeOptions:
    """Parse ``"fold_bn,onnxruntime,warmup=5"`` (the optimisations to enable) into OptimizeOptions, unvalidated."""
    flags: dict[str, Any] = {name: False for name in FLAG_NAMES}
    runners: list[str] = []
    warmup = OptimizeOptions().warmup
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item.startswith("warmup="):
            try:
                warmup = int(item.split("=", 1)[1])
            except ValueError:
                raise ConfigError(f"optimize: warmup must be an integer, got {item!r}") from None
        elif item in flags:
            flags[item] = True
        elif item in RUNNERS and item != EAGER:
            runners.append(item)
        else:
            raise ConfigError(f"unknown optimize option {item!r}: "
                              f"use 'auto', 'none' or a list of {', '.join(OPTION_NAMES)}")
    if len(runners) > 1:
        raise ConfigError(f"optimize: choose one runner of {', '.join(RUNNER_NAMES[:-1])}, not {' and '.join(runners)}")
    return OptimizeOptions(runner=runners[0] if runners else EAGER, warmup=warmup, **flags)
