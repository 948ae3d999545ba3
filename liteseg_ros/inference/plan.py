"""How a Segmenter runs, decided once: device, precision, runner and threads, each with its reason, and the
fallbacks it will try. :func:`make_plan` is pure: what the user asked (:class:`Request`) and what the machine has
(:class:`Machine`) in, a :class:`Plan` out. The Segmenter executes a plan; a runner that cannot be set up gives
the next plan (:meth:`Plan.fell_back`), a precision switch the plan after it (:meth:`Plan.switched`), never a
patched field. Imports no torch (only :meth:`Machine.detect` does).

>>> plan = make_plan(Request(device="cpu"), Machine.detect())
>>> print(plan.describe())
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field, replace
from typing import Any

from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.cpu_features import NATIVE_BF16_FLAGS, cpu_flags, native_bf16_flags
from liteseg_ros.inference.optimize import OptimizeOptions, resolve_optimize
from liteseg_ros.inference.runners import (
    EAGER,
    OPENVINO_INSTALL,
    PACKAGES,
    RUNNERS,
    auto_runner,
    can_prepare,
    fallback_chain,
    package_available,
)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
AUTO_PRECISION_RULE = ("auto: fp16 on CUDA; on a CPU bf16 where it is native (AVX-512 BF16 or AMX) and OpenVINO "
                       "is installed; on other x86-64 CPUs with OpenVINO INT8, where an INT8 model of the weights "
                       "passed its check (the bundled model's ships with it; the node makes one for other weights "
                       "from its first frames); else fp32")
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


@dataclass(frozen=True)
class Machine:
    """What this machine offers a Segmenter (:meth:`detect`; tests build their own)."""

    cuda_devices: int = 0
    cuda_current: int = 0
    cuda_bf16: bool = False
    cpu_flags: frozenset[str] = frozenset()
    cpu_threads: int = 1
    packages: frozenset[str] = frozenset()  # of runners.PACKAGES, those installed
    x86_64: bool = True
    torch_version: str = ""
    cuda_build: str | None = None

    @classmethod
    def detect(cls) -> "Machine":
        """This process's machine: CUDA (as torch sees it), CPU flags, torch's thread count, installed runtimes."""
        import torch

        cuda = torch.cuda.is_available()
        return cls(
            cuda_devices=torch.cuda.device_count() if cuda else 0,
            cuda_current=torch.cuda.current_device() if cuda else 0,
            cuda_bf16=bool(cuda and torch.cuda.is_bf16_supported()),
            cpu_flags=cpu_flags(), cpu_threads=torch.get_num_threads(),
            packages=frozenset(name for name in PACKAGES if package_available(name)),
            x86_64=platform.machine().lower() in ("x86_64", "amd64"),
            torch_version=torch.__version__, cuda_build=torch.version.cuda,
        )

    def has(self, package: str) -> bool:
        """Whether ``package`` is installed here."""
        return package in self.packages


@dataclass(frozen=True)
class Int8Option:
    """An INT8 version of the fp32 weights for this input size: a twin file beside them (the bundled model's
    ships with it) or one the node calibrated on its own frames earlier (from the network cache), and the reason
    it was refused on this machine, if it was (slower than fp32, or its masks too far from fp32's)."""

    description: str
    refused: str | None = None


@dataclass(frozen=True)
class Request:
    """What the user asked for: the Segmenter's keywords, the node's parameters of the same names; and what the
    weights offer (an INT8 model file, an INT8 version of fp32 weights)."""

    device: str = "auto"
    precision: str = "auto"
    optimize: Any = "auto"
    threads: int | None = None
    postprocess_threads: int | None = None
    int8_model: str | None = None  # the file name of an INT8 model (it fixes device, precision and runners)
    int8: Int8Option | None = None  # an INT8 version of fp32 weights (for precision=auto on CPUs without bf16)
    calibrate: bool = False  # may make an INT8 version from the frames it segments (the node), where there is none


@dataclass(frozen=True)
class Plan:
    """How a Segmenter runs. ``reasons`` says why for each decision; ``fallbacks`` lists the (runner, precision)
    tried next, in order, should the runner not set up; ``history`` the fallbacks and switches taken, with their
    reasons; ``pending`` a switch to INT8 the Segmenter prepares while it runs (calibration on its frames)."""

    device: str
    precision: str
    options: OptimizeOptions
    threads: int
    postprocess_threads: int
    reasons: dict[str, str] = field(default_factory=dict)
    fallbacks: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    pending: str | None = None

    @property
    def runner(self) -> str:
        """A name of :data:`~liteseg_ros.inference.runners.RUNNERS`."""
        return self.options.runner

    @property
    def dtype(self) -> Any:
        """The network's torch dtype (float32 for INT8, whose runners take and return float32)."""
        import torch

        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32}[
            self.precision]

    @property
    def input_dtype(self) -> Any:
        """The network input's dtype: the precision's, except for the ONNX runners, which take fp32."""
        import torch

        return torch.float32 if RUNNERS[self.runner].onnx else self.dtype

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def fell_back(self, reason: str) -> "Plan":
        """The plan after the runner could not be set up: the next of ``fallbacks`` (ConfigError when none)."""
        if not self.fallbacks:
            raise ConfigError(f"{self.runner} could not be set up ({reason}) and there is nothing to fall back to")
        (runner, precision), rest = self.fallbacks[0], self.fallbacks[1:]
        options = replace(self.options, runner=runner, channels_last=self.options.channels_last
                          and not RUNNERS[runner].onnx)
        reasons = {**self.reasons, "runner": f"{self.runner} could not be set up ({reason})"}
        if precision != self.precision:
            reasons["precision"] = f"{precision}: {runner}, the fallback of {self.runner}, runs {precision}"
        return replace(self, precision=precision, options=options, reasons=reasons, fallbacks=rest,
                       history=self.history + (f"{self.runner} {self.precision} -> {runner} {precision}: {reason}",))

    def without(self, optimisation: str, reason: str) -> "Plan":
        """The plan without one optimisation (``fold_bn``, ``cuda_graphs``) that could not be set up."""
        return replace(self, options=replace(self.options, **{optimisation: False}),
                       history=self.history + (f"without {optimisation}: {reason}",))

    def switched(self, precision: str, runner: str, reason: str) -> "Plan":
        """The plan after the pending switch (to ``precision`` on ``runner``) was made, or refused (``precision``
        unchanged): ``reason`` says why and when."""
        if precision == self.precision:
            return replace(self, pending=None, history=self.history + (f"stayed {precision}: {reason}",),
                           reasons={**self.reasons, "precision": f"{self.reasons['precision']}; {reason}"})
        return replace(self, precision=precision, options=replace(self.options, runner=runner), pending=None,
                       fallbacks=(), reasons={**self.reasons, "precision": reason, "runner": reason},
                       history=self.history + (f"{self.precision} {self.runner} -> {precision} {runner}: {reason}",))

    def summary(self) -> str:
        """One line: ``cpu bf16 openvino (bn-folded, openvino), 2 threads (post-processing 2)``."""
        tags = ", ".join(self.options.tags()) or "no optimisations"
        threads = f"{self.threads} threads" + (f" (post-processing {self.postprocess_threads})"
                                              if not self.is_cuda else "")
        pending = f"; {self.pending}" if self.pending else ""
        return f"{self.device} {self.precision} {self.runner} ({tags}), {threads}{pending}"

    def decisions(self) -> list[tuple[str, str, str]]:
        """(decision, value, reason) rows: device, precision, runner, threads, options, fallbacks, pending, fell
        back."""
        rows = [(name, value, self.reasons.get(name, "")) for name, value in (
            ("device", self.device), ("precision", self.precision), ("runner", self.runner),
            ("threads", str(self.threads)))]
        rows.append(("options", ", ".join(self.options.tags()) or "none", f"warm-up {self.options.warmup}"))
        chain = [f"{runner} {precision}" for runner, precision in self.fallbacks]
        chain += ["the stages without cuda_graphs"] if self.options.cuda_graphs else []
        rows.append(("fallbacks", " -> ".join(chain) or "none", "tried in turn should the runner not set up"))
        if self.pending:
            rows.append(("pending", self.pending, "made while segmenting; the node keeps publishing meanwhile"))
        if self.history:
            rows.append(("history", "; ".join(self.history), ""))
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
                "pending": self.pending, "history": list(self.history), "warnings": list(self.warnings)}


def make_plan(request: Request, machine: Machine) -> Plan:
    """The plan for ``request`` on ``machine``. Raises ConfigError for what cannot run there, saying what to use."""
    if request.int8_model is not None:
        return _int8_model_plan(request, machine)
    warnings: list[str] = []
    device, device_reason = _plan_device(request.device, machine, warnings)
    device_type = device.split(":")[0]
    precision, precision_reason, pending = _plan_precision(request, device_type, machine, warnings)
    options = resolve_optimize(request.optimize, device_type, precision, machine.has)
    threads, threads_reason = _plan_threads(request.threads, machine)
    runner_reason = ("asked for (optimize)" if request.optimize not in ("auto", True)
                     else auto_runner(device_type, precision, machine.has)[1])
    chain_precision = "fp32" if precision == "int8" else precision  # an INT8 version runs on OpenVINO only
    return Plan(device=device, precision=precision, options=options, threads=threads,
                postprocess_threads=_positive_threads(request.postprocess_threads, "postprocess_threads") or threads,
                reasons={"device": device_reason, "precision": precision_reason, "runner": runner_reason,
                         "threads": threads_reason},
                fallbacks=fallback_chain(options.runner, chain_precision, machine.has), warnings=tuple(warnings),
                pending=pending)


def _plan_device(device: str, machine: Machine, warnings: list[str]) -> tuple[str, str]:
    if device == "auto":
        if machine.cuda_devices:
            return f"cuda:{machine.cuda_current}", "auto: CUDA is available"
        warnings.append("CUDA is not available: running on the CPU (expect a few frames per second)")
        return "cpu", "auto: CUDA is not available"
    kind, _, index_text = device.partition(":") if isinstance(device, str) else ("", "", "")
    if kind not in ("cpu", "cuda") or (index_text and not index_text.isdigit()) or (kind == "cpu" and index_text):
        known = kind in ("cpu", "cuda", "mps", "xpu", "meta", "hip", "mtia") and not index_text
        raise ConfigError(f"{'unsupported' if known else 'unknown'} device {device!r}: use {DEVICE_CHOICES}")
    if kind == "cpu":
        return "cpu", "asked for"
    if not machine.cuda_devices:
        raise ConfigError(f"device={device} requested but CUDA is not available (torch {machine.torch_version}, "
                          f"CUDA build: {machine.cuda_build or 'none'}); use device=cpu or auto")
    index = int(index_text) if index_text else machine.cuda_current
    if index >= machine.cuda_devices:
        raise ConfigError(f"device={device} requested but only {machine.cuda_devices} GPU(s) are visible")
    return f"cuda:{index}", "asked for"


def _plan_precision(request: Request, device_type: str, machine: Machine,
                    warnings: list[str]) -> tuple[str, str, str | None]:
    precision, reason, pending = request.precision, "asked for", None
    if precision == "auto":
        if device_type == "cuda":
            precision, reason = "fp16", "auto on CUDA"
        else:
            precision, reason, pending = auto_cpu_precision(request, machine)
    if precision == "int8" and reason == "asked for":
        raise ConfigError("precision=int8 comes with an INT8 model (liteseg-quantize writes one) or from "
                          "precision=auto on a CPU without native bf16: use one of those")
    if precision not in PRECISIONS[1:] + ("int8",):
        raise ConfigError(f"precision must be {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "bf16" and device_type == "cuda" and not machine.cuda_bf16:
        raise ConfigError("precision=bf16 requested but this GPU does not support bfloat16; use fp16")
    if precision == "fp16" and device_type == "cpu":
        warnings.append("precision=fp16 on the CPU is slow on most processors; fp32 (or bf16) is recommended")
    return precision, reason, pending


def _runs_openvino(optimize: Any, precision: str, machine: Machine) -> bool:
    try:
        return resolve_optimize(optimize, "cpu", precision, machine.has).runner == "openvino"
    except ConfigError:
        return False


def auto_cpu_precision(request: Request, machine: Machine) -> tuple[str, str, str | None]:
    """``precision=auto`` on the CPU (:data:`AUTO_PRECISION_RULE`): (precision, why, a pending switch or None)."""
    native = native_bf16_flags(machine.cpu_flags)
    if native:
        if not machine.has("openvino"):
            return "fp32", f"auto: the CPU has {', '.join(native)} but OpenVINO, which runs bf16, is not " \
                           f"installed: {OPENVINO_INSTALL}", None
        if not can_prepare("openvino", "bf16", machine.has) or not _runs_openvino(request.optimize, "bf16", machine):
            return "fp32", f"auto: the CPU has {', '.join(native)} but optimize={request.optimize!r} does not run " \
                           f"OpenVINO", None
        return "bf16", f"auto: the CPU has {', '.join(native)}; OpenVINO runs bf16 natively", None
    no_bf16 = f"auto: this CPU has no native bf16 ({' or '.join(NATIVE_BF16_FLAGS)})"
    if not machine.x86_64:
        return "fp32", f"{no_bf16}; INT8 was measured on x86-64 only", None
    if not machine.has("openvino"):
        return "fp32", f"{no_bf16}; INT8 runs on OpenVINO, which is not installed: {OPENVINO_INSTALL}", None
    if request.optimize not in ("auto", True):
        return "fp32", f"{no_bf16}; optimize={request.optimize!r} names its runner (INT8 needs auto)", None
    if request.int8 is not None and request.int8.refused is None:
        return "int8", f"{no_bf16}: {request.int8.description}", None
    if request.int8 is not None:
        return "fp32", f"{no_bf16}; {request.int8.description} was refused here: {request.int8.refused}", None
    if request.calibrate and not all(machine.has(name) for name in ("onnx", "onnxruntime")):
        return "fp32", f"{no_bf16}; making an INT8 model from the first frames needs onnx and onnxruntime", None
    if request.calibrate:
        return "fp32", f"{no_bf16}; fp32 until an INT8 model calibrated on the first frames passes its check", \
            "int8: calibrating on the first frames"
    return "fp32", f"{no_bf16}, and no INT8 model of these weights (the node makes one from its first frames)", None


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


def _int8_model_plan(request: Request, machine: Machine) -> Plan:
    """An INT8 model runs on the CPU, on OpenVINO where it is installed (fastest measured), else onnxruntime."""
    name = request.int8_model
    if request.precision not in ("auto", "int8"):
        raise ConfigError(f"{name} is an INT8 model: use precision auto (or the fp32 checkpoint for "
                          f"precision={request.precision})")
    if request.device not in ("auto", "cpu"):
        raise ConfigError(f"{name} is an INT8 model, which runs on the CPU: use device cpu or auto")
    warmup, asked = OptimizeOptions().warmup, None
    if request.optimize not in (None, False, True, "auto", "none"):
        chosen = resolve_optimize(request.optimize, "cpu")  # only an ONNX runner named there is used
        warmup, asked = chosen.warmup, chosen.runner if RUNNERS[chosen.runner].onnx else None
    if asked is not None and not machine.has(asked):
        raise ConfigError(f"optimize={asked} for {name}, but {asked} is not installed"
                          + (f": {OPENVINO_INSTALL}" if asked == "openvino" else ""))
    runner, reason = (asked, "asked for (optimize)") if asked else auto_runner("cpu", "int8", machine.has)
    if not RUNNERS[runner].onnx:
        raise ConfigError(f"{name} runs on OpenVINO or onnxruntime, and neither is installed: pip install onnxruntime")
    threads, threads_reason = _plan_threads(request.threads, machine)
    options = OptimizeOptions(runner=runner, fold_bn=False, channels_last=False, warmup=warmup)
    return Plan(device="cpu", precision="int8", options=options, threads=threads,
                postprocess_threads=_positive_threads(request.postprocess_threads, "postprocess_threads") or threads,
                reasons={"device": "an INT8 model runs on the CPU", "precision": "the model is INT8",
                         "runner": reason, "threads": threads_reason},
                fallbacks=(("onnxruntime", "int8"),) if runner == "openvino" and machine.has("onnxruntime") else ())


__all__ = ["AUTO_PRECISION_RULE", "DEVICE_CHOICES", "EAGER", "Int8Option", "Machine", "PRECISIONS", "Plan",
           "Request", "auto_cpu_precision", "make_plan"]
