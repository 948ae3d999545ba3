"""How a Segmenter runs, decided once: device, precision, runner and threads, each with its reason, and the
fallbacks it will try. :func:`make_plan` is pure: what the user asked (:class:`Request`) and what the machine has
(:class:`Machine`) in, a :class:`Plan` out. The Segmenter executes a plan; a runner that cannot be set up gives
the next plan (:meth:`Plan.fell_back`), never a patched field.

>>> plan = make_plan(Request(device="cpu"), Machine.detect())
>>> print(plan.describe())
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.cpu_features import NATIVE_BF16_FLAGS, cpu_flags, native_bf16_flags
from liteseg_ros.inference.optimize import (
    ONNX_RUNNER_PRECISIONS,
    ONNX_RUNNERS,
    RUNNER_PACKAGES,
    RUNNERS,
    OptimizeOptions,
    resolve_optimize,
    runner_installed,
)
from liteseg_ros.inference.runtimes import OPENVINO_INSTALL, package_available

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32}
AUTO_PRECISION_RULE = ("auto: fp16 on CUDA; on a CPU bf16 where it is native (AVX-512 BF16 or AMX) and OpenVINO "
                       "is installed, else fp32")
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
EAGER = "eager"
RUNTIME_PACKAGES = tuple(sorted({name for names in RUNNER_PACKAGES.values() for name in names}))
# the runner tried when one cannot be set up (OpenVINO's fallback runs fp32); the others fall back to eager
RUNNER_FALLBACK = {"openvino": "onnxruntime", "onnxruntime": "torchscript_freeze", "torchscript_freeze": EAGER,
                   "compile": EAGER}


@dataclass(frozen=True)
class Machine:
    """What this machine offers a Segmenter (:meth:`detect`; tests build their own)."""

    cuda_devices: int = 0
    cuda_current: int = 0
    cuda_bf16: bool = False
    cpu_flags: frozenset[str] = frozenset()
    cpu_threads: int = 1
    packages: frozenset[str] = frozenset()  # of RUNTIME_PACKAGES, those installed
    torch_version: str = torch.__version__
    cuda_build: str | None = None

    @classmethod
    def detect(cls) -> "Machine":
        """This process's machine: CUDA (as torch sees it), CPU flags, torch's thread count, installed runtimes."""
        cuda = torch.cuda.is_available()
        return cls(
            cuda_devices=torch.cuda.device_count() if cuda else 0,
            cuda_current=torch.cuda.current_device() if cuda else 0,
            cuda_bf16=bool(cuda and torch.cuda.is_bf16_supported()),
            cpu_flags=cpu_flags(), cpu_threads=torch.get_num_threads(),
            packages=frozenset(name for name in RUNTIME_PACKAGES if package_available(name)),
            torch_version=torch.__version__, cuda_build=torch.version.cuda,
        )

    def has(self, runner: str) -> bool:
        """Whether ``runner`` can be set up here at all (:data:`RUNNER_PACKAGES` installed)."""
        return runner_installed(runner, self.packages.__contains__)


@dataclass(frozen=True)
class Request:
    """What the user asked for: the Segmenter's keywords, the node's parameters of the same names."""

    device: str = "auto"
    precision: str = "auto"
    optimize: Any = "auto"
    threads: int | None = None
    postprocess_threads: int | None = None
    int8_model: str | None = None  # the file name of an INT8 model (it fixes device, precision and runtimes)


@dataclass(frozen=True)
class Plan:
    """How a Segmenter runs. ``reasons`` says why for each decision; ``fallbacks`` lists the (runner, precision)
    tried next, in order, should the runner not set up; ``history`` the fallbacks taken, with their reasons."""

    device: str
    precision: str
    options: OptimizeOptions
    threads: int
    postprocess_threads: int
    reasons: dict[str, str] = field(default_factory=dict)
    fallbacks: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    history: tuple[str, ...] = ()

    @property
    def runner(self) -> str:
        """``openvino``, ``onnxruntime``, ``torchscript_freeze``, ``compile`` or ``eager``."""
        return next((name for name in RUNNERS if getattr(self.options, name)), EAGER)

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    @property
    def input_dtype(self) -> torch.dtype:
        """The network input's dtype: the precision's, except for the ONNX runtimes, which take fp32."""
        return torch.float32 if self.runner in ONNX_RUNNERS else self.dtype

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def fell_back(self, reason: str) -> "Plan":
        """The plan after the runner could not be set up: the next of ``fallbacks`` (ConfigError when none)."""
        if not self.fallbacks:
            raise ConfigError(f"{self.runner} could not be set up ({reason}) and there is nothing to fall back to")
        (runner, precision), rest = self.fallbacks[0], self.fallbacks[1:]
        options = replace(self.options, **{name: name == runner for name in RUNNERS})
        reasons = {**self.reasons, "runner": f"{self.runner} could not be set up ({reason})"}
        if precision != self.precision:
            reasons["precision"] = f"{precision}: {runner}, the fallback of {self.runner}, runs {precision}"
        return replace(self, precision=precision, options=options, reasons=reasons, fallbacks=rest,
                       history=self.history + (f"{self.runner} {self.precision} -> {runner} {precision}: {reason}",))

    def without(self, optimisation: str, reason: str) -> "Plan":
        """The plan without one optimisation (``fold_bn``, ``cuda_graphs``) that could not be set up."""
        return replace(self, options=replace(self.options, **{optimisation: False}),
                       history=self.history + (f"without {optimisation}: {reason}",))

    def summary(self) -> str:
        """One line: ``cpu bf16 openvino (bn-folded), 2 threads (post-processing 2)``."""
        tags = ", ".join(self.options.tags()) or "no optimisations"
        threads = f"{self.threads} threads" + (f" (post-processing {self.postprocess_threads})"
                                              if not self.is_cuda else "")
        return f"{self.device} {self.precision} {self.runner} ({tags}), {threads}"

    def decisions(self) -> list[tuple[str, str, str]]:
        """(decision, value, reason) rows: device, precision, runner, threads, options, fallbacks, fell back."""
        rows = [(name, value, self.reasons.get(name, "")) for name, value in (
            ("device", self.device), ("precision", self.precision), ("runner", self.runner),
            ("threads", str(self.threads)))]
        rows.append(("options", ", ".join(self.options.tags()) or "none", f"warm-up {self.options.warmup}"))
        chain = [f"{runner} {precision}" for runner, precision in self.fallbacks]
        chain += ["the stages without cuda_graphs"] if self.options.cuda_graphs else []
        rows.append(("fallbacks", " -> ".join(chain) or "none", "tried in turn should the runner not set up"))
        if self.history:
            rows.append(("fell back", "; ".join(self.history), ""))
        return rows

    def describe(self) -> str:
        """The plan as an aligned table of :meth:`decisions`."""
        width = max(len(value) for _, value, _ in self.decisions())
        return "\n".join(f"{name:<10} {value:<{width}}  {reason}".rstrip() for name, value, reason in self.decisions())

    def to_dict(self) -> dict:
        return {"device": self.device, "precision": self.precision, "runner": self.runner, "threads": self.threads,
                "postprocess_threads": self.postprocess_threads, "options": self.options.tags(),
                "warmup": self.options.warmup, "reasons": dict(self.reasons),
                "fallbacks": [f"{runner} {precision}" for runner, precision in self.fallbacks],
                "history": list(self.history), "warnings": list(self.warnings)}


def make_plan(request: Request, machine: Machine) -> Plan:
    """The plan for ``request`` on ``machine``. Raises ConfigError for what cannot run there, saying what to use."""
    warnings: list[str] = []
    if request.int8_model is not None:
        return _int8_plan(request, machine)
    device, device_reason = _plan_device(request.device, machine, warnings)
    precision, precision_reason = _plan_precision(request.precision, device, request.optimize, machine, warnings)
    options = resolve_optimize(request.optimize, device, DTYPES[precision], machine.has)
    threads, threads_reason = _plan_threads(request.threads, machine)
    runner = next((name for name in RUNNERS if getattr(options, name)), EAGER)
    runner_reason = _runner_reason(runner, request.optimize, device, precision, machine)
    return Plan(device=device, precision=precision, options=options, threads=threads,
                postprocess_threads=_positive_threads(request.postprocess_threads, "postprocess_threads") or threads,
                reasons={"device": device_reason, "precision": precision_reason, "runner": runner_reason,
                         "threads": threads_reason},
                fallbacks=_fallback_chain(runner, precision, machine), warnings=tuple(warnings))


def _plan_device(device: str, machine: Machine, warnings: list[str]) -> tuple[str, str]:
    if device == "auto":
        if machine.cuda_devices:
            return f"cuda:{machine.cuda_current}", "auto: CUDA is available"
        warnings.append("CUDA is not available: running on the CPU (expect a few frames per second)")
        return "cpu", "auto: CUDA is not available"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}: use {DEVICE_CHOICES}") from None
    if resolved.type == "cpu":
        return "cpu", "asked for"
    if resolved.type != "cuda":
        raise ConfigError(f"unsupported device {device!r}: use {DEVICE_CHOICES}")
    if not machine.cuda_devices:
        raise ConfigError(f"device={device} requested but CUDA is not available (torch {machine.torch_version}, "
                          f"CUDA build: {machine.cuda_build or 'none'}); use device=cpu or auto")
    index = resolved.index if resolved.index is not None else machine.cuda_current
    if index >= machine.cuda_devices:
        raise ConfigError(f"device={device} requested but only {machine.cuda_devices} GPU(s) are visible")
    return f"cuda:{index}", "asked for"


def _plan_precision(precision: str, device: str, optimize: Any, machine: Machine,
                    warnings: list[str]) -> tuple[str, str]:
    cuda = device.startswith("cuda")
    reason = "asked for"
    if precision == "auto":
        precision, reason = ("fp16", "auto on CUDA") if cuda else auto_cpu_precision(optimize, machine)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "bf16" and cuda and not machine.cuda_bf16:
        raise ConfigError("precision=bf16 requested but this GPU does not support bfloat16; use fp16")
    if precision == "fp16" and not cuda:
        warnings.append("precision=fp16 on the CPU is slow on most processors; fp32 (or bf16) is recommended")
    return precision, reason


def auto_cpu_precision(optimize: Any, machine: Machine) -> tuple[str, str]:
    """``precision=auto`` on the CPU: (``bf16`` or ``fp32``, why). bf16 where the CPU executes it natively and
    OpenVINO, which runs it about twice as fast as fp32 there (docs/benchmarks.md), is installed and allowed by
    ``optimize``; fp32 elsewhere."""
    native = native_bf16_flags(machine.cpu_flags)
    if not native:
        return "fp32", f"auto: this CPU has no native bf16 ({' or '.join(NATIVE_BF16_FLAGS)})"
    if "openvino" not in machine.packages:
        return "fp32", f"auto: the CPU has {', '.join(native)} but OpenVINO, which runs bf16, is not installed: " \
                       f"{OPENVINO_INSTALL}"
    try:
        uses_openvino = resolve_optimize(optimize, "cpu", torch.bfloat16, machine.has).openvino
    except ConfigError:
        uses_openvino = False
    if not uses_openvino:
        return "fp32", f"auto: the CPU has {', '.join(native)} but optimize={optimize!r} does not run OpenVINO"
    return "bf16", f"auto: the CPU has {', '.join(native)}; OpenVINO runs bf16 natively"


def _runner_reason(runner: str, optimize: Any, device: str, precision: str, machine: Machine) -> str:
    if optimize not in ("auto", True):
        return "asked for (optimize)"
    if device.startswith("cuda"):
        return "auto on CUDA: the stages captured as CUDA graphs"
    if runner == "openvino":
        return "auto: OpenVINO runs bf16 natively"
    if runner == "onnxruntime":
        return "auto: the fastest fp32 runtime measured here"
    missing = [name for name in RUNNER_PACKAGES["onnxruntime"] if name not in machine.packages]
    why = f"{' and '.join(missing)} not installed" if missing else f"onnxruntime does not run {precision}"
    return f"auto: {why}"


def _fallback_chain(runner: str, precision: str, machine: Machine) -> tuple[tuple[str, str], ...]:
    """The (runner, precision) pairs tried after ``runner``, skipping those this machine cannot set up."""
    chain, current = [], runner
    if runner == "openvino":
        precision = "fp32"  # OpenVINO's fallbacks run fp32 (bf16 is fast on OpenVINO alone)
    while current in RUNNER_FALLBACK:
        current = RUNNER_FALLBACK[current]
        if not machine.has(current):
            continue
        if current in ONNX_RUNNERS and precision not in ONNX_RUNNER_PRECISIONS[current]:
            continue
        chain.append((current, precision))
    return tuple(chain)


def _plan_threads(threads: Any, machine: Machine) -> tuple[int, str]:
    count = _positive_threads(threads, "threads")
    if count:
        return count, "asked for (set process-wide for torch)"
    return machine.cpu_threads, "torch's count (one per core unless OMP_NUM_THREADS says otherwise)"


def _positive_threads(threads: Any, name: str) -> int:
    """0 for None/0 (the default), else the positive integer; ConfigError otherwise."""
    if threads is None or threads == 0:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"{name} must be a positive integer (0: torch's count), got {threads!r}")
    return threads


def _int8_plan(request: Request, machine: Machine) -> Plan:
    """An INT8 model runs on the CPU, on OpenVINO where it is installed (fastest measured), else onnxruntime."""
    name = request.int8_model
    if request.precision not in ("auto", "int8"):
        raise ConfigError(f"{name} is an INT8 model: use precision auto (or the fp32 checkpoint for "
                          f"precision={request.precision})")
    if request.device not in ("auto", "cpu"):
        raise ConfigError(f"{name} is an INT8 model, which runs on the CPU: use device cpu or auto")
    warmup = OptimizeOptions().warmup
    asked = None
    if request.optimize not in (None, False, True, "auto", "none"):
        chosen = resolve_optimize(request.optimize, "cpu", torch.float32)
        warmup = chosen.warmup
        asked = "openvino" if chosen.openvino else "onnxruntime" if chosen.onnxruntime else None
    if asked == "openvino" and "openvino" not in machine.packages:
        raise ConfigError(f"optimize=openvino for {name}, but OpenVINO is not installed: {OPENVINO_INSTALL}")
    runner = asked or ("openvino" if "openvino" in machine.packages else "onnxruntime")
    reason = "asked for (optimize)" if asked else (
        "auto: OpenVINO runs INT8 fastest" if runner == "openvino" else "auto: OpenVINO is not installed")
    threads, threads_reason = _plan_threads(request.threads, machine)
    options = OptimizeOptions(fold_bn=False, channels_last=False, warmup=warmup, **{runner: True})
    return Plan(device="cpu", precision="int8", options=options, threads=threads,
                postprocess_threads=_positive_threads(request.postprocess_threads, "postprocess_threads") or threads,
                reasons={"device": "an INT8 model runs on the CPU", "precision": "the model is INT8",
                         "runner": reason, "threads": threads_reason},
                fallbacks=(("onnxruntime", "int8"),) if runner == "openvino" else ())
