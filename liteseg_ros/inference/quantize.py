"""The INT8 quantizer, one for the node and ``liteseg-quantize``: network inputs in, an INT8 model out
(onnxruntime's static QDQ quantizer: INT8 weights per channel, uint8 activations, MinMax calibration); and the
checks that decide whether it runs: pixel agreement with fp32 (:class:`Int8Check`) and speed against fp32 on this
machine (:func:`compare_speed`).

The node runs :func:`main` in a helper process (``python -m liteseg_ros.inference.quantize JOB``): quantizing imports
onnx and onnxruntime's quantization tools, which a node's process never needs again.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteseg_ros.errors import EXIT_ERROR, LiteSegError, first_line

MIN_AGREEMENT = 0.98  # of the pixels equal to fp32's (liteseg-quantize's --min-agreement)
MIN_SPEEDUP = 1.0  # INT8 network time against fp32's on this machine (liteseg-quantize's --min-speedup)


def quantize(fp32_model: bytes | str | Path, inputs: Iterable[np.ndarray], workdir: str | Path) -> Any:
    """The INT8 ModelProto of an fp32 ONNX model (bytes or a file), calibrated on ``inputs`` (1 x 3 x h x w
    float32 network inputs, as the Segmenter prepares them)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.iterator = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.iterator, None)
            return None if item is None else {"input": np.ascontiguousarray(item, dtype=np.float32)}

    workdir = Path(workdir)
    fp32_path, prepared, int8_path = workdir / "fp32.onnx", workdir / "prepared.onnx", workdir / "int8.onnx"
    fp32_path.write_bytes(fp32_model if isinstance(fp32_model, bytes) else Path(fp32_model).read_bytes())
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return onnx.load(str(int8_path))


@dataclass
class Int8Check:
    """Pixel agreement of INT8 masks with fp32's, and both networks' times, over the frames checked."""

    equal: int = 0
    total: int = 0
    frames: int = 0
    fp32_seconds: list[float] = field(default_factory=list)
    int8_seconds: list[float] = field(default_factory=list)

    def add(self, mask_fp32: np.ndarray, mask_int8: np.ndarray, fp32_seconds: float | None = None,
            int8_seconds: float | None = None) -> None:
        self.equal += int(np.count_nonzero(mask_fp32 == mask_int8))
        self.total += mask_fp32.size
        self.frames += 1
        if fp32_seconds is not None and int8_seconds is not None:
            self.fp32_seconds.append(fp32_seconds)
            self.int8_seconds.append(int8_seconds)

    @property
    def agreement(self) -> float:
        return self.equal / self.total if self.total else 0.0

    @property
    def speedup(self) -> float:
        return float(np.median(self.fp32_seconds) / np.median(self.int8_seconds)) if self.int8_seconds else 0.0

    def refusal(self, min_agreement: float = MIN_AGREEMENT, min_speedup: float = MIN_SPEEDUP) -> str | None:
        """Why the INT8 model must not run (None when it passed)."""
        if self.agreement < min_agreement:
            return f"only {self.agreement:.2%} of its pixels equal fp32's over {self.frames} frames (required " \
                   f"{min_agreement:.0%})"
        if self.int8_seconds and self.speedup < min_speedup:
            return f"its network is not faster than fp32's here ({np.median(self.int8_seconds) * 1e3:.1f} ms vs " \
                   f"{np.median(self.fp32_seconds) * 1e3:.1f} ms)"
        return None

    def summary(self) -> str:
        int8_ms, fp32_ms = (float(np.median(times)) * 1e3 if times else 0.0
                            for times in (self.int8_seconds, self.fp32_seconds))
        speed = f", network {int8_ms:.1f} ms vs fp32 {fp32_ms:.1f} ms ({self.speedup:.2f}x)" if self.int8_seconds \
            else ""
        return f"{self.agreement:.2%} of pixels equal to fp32 over {self.frames} frames{speed}"


def compare_speed(fp32_file: str | Path, int8_file: str | Path, input_size: tuple[int, int], threads: int,
                  passes: int = 15, rounds: int = 3) -> dict:
    """Median network milliseconds of an fp32 ONNX file on onnxruntime (fp32's runner) and an INT8 one on
    OpenVINO (INT8's), interleaved in rounds on a random input."""
    import torch

    from liteseg_ros.inference.onnx_runners import OnnxRuntimeNetwork, OpenVinoNetwork

    networks = {"fp32": OnnxRuntimeNetwork(fp32_file, threads), "int8": OpenVinoNetwork(int8_file, precision="int8",
                                                                                         threads=threads)}
    x = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(0))
    seconds: dict[str, list[float]] = {name: [] for name in networks}
    for network in networks.values():
        network(x)
    for _ in range(rounds):
        for name, network in networks.items():
            for _ in range(passes // rounds):
                start = time.perf_counter()
                network(x)
                seconds[name].append(time.perf_counter() - start)
    fp32_ms, int8_ms = (float(np.median(seconds[name])) * 1e3 for name in ("fp32", "int8"))
    return {"fp32_ms": round(fp32_ms, 2), "int8_ms": round(int8_ms, 2), "speedup": round(fp32_ms / int8_ms, 3),
            "fp32_runner": "onnxruntime", "int8_runner": "openvino"}


def main(argv: list[str] | None = None) -> int:
    """``python -m liteseg_ros.inference.quantize JOB_JSON``: quantize the job's fp32 ONNX with its calibration
    inputs (``.npy`` files) and write the INT8 model with its metadata; one error line and status 2 when not."""
    try:
        job = json.loads((argv or sys.argv[1:])[0])
        from liteseg_ros.inference.quantized import write_quantized_model
        from liteseg_ros.model.checkpoint import CheckpointMeta

        inputs = (np.load(path) for path in sorted(Path(job["inputs"]).glob("*.npy")))
        with tempfile.TemporaryDirectory(prefix="liteseg-quantize.") as workdir:
            fp32 = Path(job["fp32"]) if job.get("fp32") else _export_fp32(job, Path(workdir) / "exported.onnx")
            proto = quantize(fp32, inputs, workdir)
        meta = CheckpointMeta.from_dict(job["meta"], "the weights")
        write_quantized_model(proto, meta, tuple(job["input_size"]), job.get("report", {}), job["out"],
                              source_digest=job["source_sha256"])
    except (LiteSegError, OSError, ValueError, KeyError, RuntimeError) as error:
        print(f"liteseg-quantize-helper: error: {first_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _export_fp32(job: dict, target: Path) -> Path:
    from liteseg_ros.inference.networks import export_prepared
    from liteseg_ros.inference.prepare import cache_key

    key = cache_key(job["source_sha256"], "onnxruntime", "fp32", tuple(job["input_size"]))
    export_prepared(Path(job["weights"]), key, target)
    return target


if __name__ == "__main__":
    sys.exit(main())
