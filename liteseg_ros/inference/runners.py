"""The runners: what executes a network, one registry. A runner has one name everywhere (the plan's ``runner``,
``optimize=`` items, ``liteseg-quantize --runner``, ``liteseg-bench --runners``); its spec says what it needs,
what it runs and what preparing it folds, and :func:`auto_runner` is the one rule ``optimize=auto`` follows.
Imports no torch: the plan, the node's parameters and the launch file read it cheaply.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

EAGER = "eager"
OPENVINO_INSTALL = "pip install openvino (x86-64 installs get it with liteseg_ros)"


@dataclass(frozen=True)
class RunnerSpec:
    """One way to execute a network."""

    name: str
    tag: str  # in descriptions: "mobilenetv2 fp32 cpu 360x640 (bn-folded, onnxruntime)"
    devices: tuple[str, ...]  # device types it runs on
    precisions: tuple[str, ...]  # precisions it runs
    packages: tuple[str, ...] = ()  # what must be installed for it to be set up
    onnx: bool = False  # runs the network exported to ONNX: a fixed input shape, NCHW fp32 input
    folds: str = ""  # what preparing it folds into the network (beyond fold_bn)
    fallback: str | None = EAGER  # the runner tried when this one cannot be set up
    cacheable: bool = False  # its prepared form is kept in the network cache (liteseg_ros.inference.cache)

    def installed(self, package_installed: Callable[[str], bool]) -> bool:
        """Whether every package it needs is installed, as ``package_installed`` says."""
        return all(package_installed(name) for name in self.packages)


RUNNERS: dict[str, RunnerSpec] = {spec.name: spec for spec in (
    RunnerSpec("openvino", "openvino", ("cpu",), ("fp32", "bf16", "int8"), ("openvino",), onnx=True,
               folds="the final upsampling (dead code in the export)", fallback="onnxruntime", cacheable=True),
    RunnerSpec("onnxruntime", "onnxruntime", ("cpu",), ("fp32", "int8"), ("onnxruntime",), onnx=True,
               folds="the final upsampling (dead code in the export)", fallback="torchscript_freeze", cacheable=True),
    RunnerSpec("torchscript_freeze", "torchscript", ("cpu", "cuda"), ("fp32", "fp16", "bf16"),
               folds="constants (torch.jit.freeze)"),
    RunnerSpec("compile", "compiled", ("cpu", "cuda"), ("fp32", "fp16", "bf16"), folds="weights (Inductor freezing)"),
    RunnerSpec(EAGER, "eager", ("cpu", "cuda"), ("fp32", "fp16", "bf16"), fallback=None),
)}
RUNNER_NAMES = tuple(RUNNERS)
ONNX_RUNNERS = tuple(name for name, spec in RUNNERS.items() if spec.onnx)
EXPORT_PACKAGE = "onnx"  # torch.onnx.export needs it to write a network (not to run an exported one)
PACKAGES = tuple(sorted({package for spec in RUNNERS.values() for package in spec.packages} | {EXPORT_PACKAGE}))

# precision -> the CPU runners auto tries, fastest measured first (docs/benchmarks.md, per CPU class)
AUTO_CPU_RUNNERS = {"bf16": ("openvino",), "int8": ("openvino", "onnxruntime"), "fp32": ("onnxruntime",)}
AUTO_RUNNER_RULE = ("auto: on a GPU the eager network with CUDA graphs; on a CPU OpenVINO for bf16 and INT8, "
                    "onnxruntime for fp32 (each the fastest measured for its precision), TorchScript where neither "
                    "can be set up")
WHY_FASTEST = {"openvino": "OpenVINO runs {precision} fastest (measured)",
               "onnxruntime": "onnxruntime runs {precision} fastest (measured)"}


def package_available(name: str) -> bool:
    """Whether the package ``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def can_prepare(runner: str, precision: str, has: Callable[[str], bool]) -> bool:
    """Whether ``runner`` can be set up for ``precision`` where ``has(package)`` says what is installed: an ONNX
    runner also needs the exporter's package, except for INT8, which always comes as an ONNX file."""
    spec = RUNNERS[runner]
    return spec.installed(has) and not (spec.onnx and precision != "int8" and not has(EXPORT_PACKAGE))


def auto_runner(device_type: str, precision: str, has: Callable[[str], bool]) -> tuple[str, str]:
    """``optimize=auto``'s runner for ``precision`` on ``device_type``, and why (:data:`AUTO_RUNNER_RULE`)."""
    if device_type == "cuda":
        return EAGER, "auto on CUDA: the stages captured as CUDA graphs"
    candidates = AUTO_CPU_RUNNERS.get(precision, ())
    for name in candidates:
        if can_prepare(name, precision, has):
            return name, "auto: " + WHY_FASTEST[name].format(precision=precision)
    needed = {package for name in candidates or ("onnxruntime",) for package in RUNNERS[name].packages}
    missing = sorted(package for package in needed | {EXPORT_PACKAGE} if not has(package))
    if missing:
        return "torchscript_freeze", f"auto: {' and '.join(missing)} not installed"
    return "torchscript_freeze", f"auto: no ONNX runner runs {precision}"


def fallback_chain(runner: str, precision: str, has: Callable[[str], bool]) -> tuple[tuple[str, str], ...]:
    """The (runner, precision) pairs tried after ``runner``, skipping those this machine cannot set up. A
    precision the next runner does not run becomes fp32 (bf16 and INT8 are fast on OpenVINO alone)."""
    chain, current = [], runner
    while RUNNERS[current].fallback is not None:
        current = RUNNERS[current].fallback
        spec = RUNNERS[current]
        precision = precision if precision in spec.precisions else "fp32"
        if can_prepare(current, precision, has):
            chain.append((current, precision))
    return tuple(chain)
