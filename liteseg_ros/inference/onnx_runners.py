"""The ONNX runners (:mod:`liteseg_ros.inference.runners`): onnxruntime (fp32, INT8) and OpenVINO (fp32, bf16,
INT8).

Each runs an ONNX model (bytes or a file; OpenVINO also its own compiled blob, kept in the network cache) as
``x -> logits`` on torch CPU tensors. Which one serves which precision was chosen by measurement
(docs/benchmarks.md): onnxruntime runs fp32 fastest; OpenVINO runs bf16 natively on CPUs with AVX-512 BF16 or
AMX, and INT8 fastest. The runtimes are imported only when a network of theirs is built.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from liteseg_ros.errors import ConfigError, OptimizationError
from liteseg_ros.inference.cpu_features import FLAGS_OVERRIDE, NATIVE_BF16_FLAGS, native_bf16_flags, rehearsed_flags
from liteseg_ros.inference.export import export_onnx_bytes
from liteseg_ros.inference.runners import OPENVINO_INSTALL, package_available
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)

OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # INT8: the layers left in float run f32


def _model_argument(model: bytes | str | os.PathLike) -> bytes | str:
    return model if isinstance(model, bytes) else os.fspath(model)


class OnnxRuntimeNetwork:
    """An ONNX model run by onnxruntime's CPU provider (fp32 or a quantized model), fixed input shape."""

    def __init__(self, model: bytes | str | os.PathLike, threads: int | None = None, spin: bool = False):
        if not package_available("onnxruntime"):
            raise OptimizationError("onnxruntime is not installed; pip install onnxruntime")
        import onnxruntime

        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = threads or torch.get_num_threads()
        session_options.inter_op_num_threads = 1
        session_options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle onnxruntime threads must not spin: the Segmenter's pre/post-processing runs right after
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.session = onnxruntime.InferenceSession(_model_argument(model), session_options,
                                                    providers=["CPUExecutionProvider"])
        self.output_name = self.session.get_outputs()[0].name

    @classmethod
    def from_network(cls, network: nn.Module, example_input: torch.Tensor, threads: int | None = None,
                     spin: bool = False) -> "OnnxRuntimeNetwork":
        """Export ``network`` at ``example_input``'s shape and run it (fp32 on the CPU only)."""
        if example_input.dtype != torch.float32 or example_input.device.type != "cpu":
            raise ConfigError("optimize: onnxruntime needs precision fp32 on the CPU")
        return cls(export_onnx_bytes(network, example_input), threads, spin)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run([self.output_name], {"input": x.contiguous().numpy()})[0])


_CORE: Any = None


def openvino_core() -> Any:
    """The process's OpenVINO Core (created once). Raises OptimizationError when OpenVINO is not installed."""
    global _CORE
    if _CORE is None:
        if not package_available("openvino"):
            raise OptimizationError(f"OpenVINO is not installed; {OPENVINO_INSTALL}")
        import openvino

        _CORE = openvino.Core()
    return _CORE


def openvino_config(precision: str = "fp32", threads: int | None = None) -> dict[str, Any]:
    """OpenVINO's CPU compile settings for a Segmenter's network: latency mode, one stream, not pinned."""
    return {
        "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision],
        "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        # Pinned threads (OpenVINO's default) wait for a core another process holds: with one core busy,
        # p95 latency 32.5 ms pinned vs 26.1 ms unpinned at 360x640 (docs/benchmarks.md); medians equal.
        "ENABLE_CPU_PINNING": False,
    }


_REHEARSAL_WARNED: list[bool] = []


def openvino_precision(precision: str, capabilities: Sequence[str] | None = None) -> str:
    """The precision OpenVINO compiles for ``precision`` on this CPU, as the flags the plan reads say
    (:mod:`~liteseg_ros.inference.cpu_features`): bf16 only where they make it native, else OptimizationError (the
    plan falls back to fp32); where LITESEG_CPU_FLAGS claims a native bf16 this CPU lacks (a rehearsal of that
    class), fp32 in its place, with one warning. ``capabilities``: OpenVINO's CPU capabilities (default: asked)."""
    if precision != "bf16":
        return precision
    if not native_bf16_flags():
        raise OptimizationError(f"this CPU has no native bf16 (neither {' nor '.join(NATIVE_BF16_FLAGS)})")
    if capabilities is None:
        capabilities = openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" in capabilities:
        return precision
    if not rehearsed_flags():
        raise OptimizationError("this CPU has no native bf16 (OpenVINO lists no BF16 capability)")
    if not _REHEARSAL_WARNED:
        _REHEARSAL_WARNED.append(True)
        LOG.warning("%s claims %s, which this CPU lacks: OpenVINO runs the planned bf16 as fp32 (a rehearsal of that "
                    "CPU class: its plan, this machine's speed)", FLAGS_OVERRIDE, ", ".join(sorted(rehearsed_flags())))
    return "fp32"


class OpenVinoNetwork:
    """An ONNX model compiled by OpenVINO for the CPU, latency mode, one stream; or that compiled model imported
    from its blob (:meth:`from_blob`, what the network cache keeps: a tenth of a second instead of a compilation).

    ``precision`` is the inference precision of the layers that are not quantized: ``fp32`` (exact), ``int8`` (an
    INT8 model: its float layers run fp32) or ``bf16`` (CPUs with AVX-512 BF16 or AMX only: elsewhere
    OptimizationError, and the caller falls back to fp32; see :func:`openvino_precision`). Input and output stay
    fp32.
    """

    def __init__(self, model: bytes | str | os.PathLike | None, *, precision: str = "fp32",
                 threads: int | None = None, compiled: Any = None):
        if precision not in OPENVINO_PRECISIONS:
            raise ConfigError(f"OpenVINO runs {', '.join(OPENVINO_PRECISIONS)} here, not {precision}")
        core = openvino_core()
        self.precision = precision
        self.compiled = compiled if compiled is not None else core.compile_model(
            core.read_model(_model_argument(model)), "CPU", openvino_config(openvino_precision(precision), threads))
        self.request = self.compiled.create_infer_request()

    @classmethod
    def from_network(cls, network: nn.Module, example_input: torch.Tensor, *, precision: str = "fp32",
                     threads: int | None = None) -> "OpenVinoNetwork":
        """Export ``network`` at ``example_input``'s shape (fp32 on the CPU) and compile it."""
        if example_input.device.type != "cpu":
            raise ConfigError("optimize: OpenVINO runs on the CPU here; on a GPU use cuda_graphs")
        return cls(export_onnx_bytes(network, example_input), precision=precision, threads=threads)

    @classmethod
    def from_blob(cls, blob: bytes | str | os.PathLike, *, precision: str,
                  threads: int | None = None) -> "OpenVinoNetwork":
        """The compiled model :meth:`export_blob` wrote (its bytes or its file), imported with ``threads``."""
        core = openvino_core()
        data = blob if isinstance(blob, bytes) else Path(blob).read_bytes()
        compiled = core.import_model(io.BytesIO(data), "CPU", openvino_config(openvino_precision(precision), threads))
        return cls(None, precision=precision, threads=threads, compiled=compiled)

    def export_blob(self, path: str | os.PathLike) -> None:
        """Write the compiled model (OpenVINO's own format, for this CPU and OpenVINO version) to ``path``."""
        blob = io.BytesIO()
        self.compiled.export_model(blob)
        Path(path).write_bytes(blob.getvalue())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        result = self.request.infer({0: x.contiguous().float().numpy()})
        return torch.from_numpy(result[0])
