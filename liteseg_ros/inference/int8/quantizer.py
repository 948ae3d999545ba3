"""The INT8 quantizer, one for the node and ``liteseg-quantize``: network inputs in, an INT8 model out
(onnxruntime's static QDQ quantizer: INT8 weights per channel, uint8 activations, MinMax calibration). Whether the
model then runs is :mod:`.check`'s rule.

The node runs :func:`main` in a helper process (``python -m liteseg_ros.inference.int8.quantizer JOB``): quantizing
imports onnx and onnxruntime's quantization tools, which a node's process never needs again.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from liteseg_ros.errors import EXIT_ERROR, LiteSegError, first_line


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


def main(argv: list[str] | None = None) -> int:
    """``python -m liteseg_ros.inference.int8.quantizer JOB_JSON``: quantize the job's fp32 ONNX with its calibration
    inputs (``.npy`` files) and write the INT8 model with its metadata; one error line and status 2 when not."""
    try:
        job = json.loads((argv or sys.argv[1:])[0])
        from liteseg_ros.inference.int8.models import write_quantized_model
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
    from liteseg_ros.inference.cache import cache_key
    from liteseg_ros.inference.export import export_prepared

    key = cache_key(job["source_sha256"], "onnxruntime", "fp32", tuple(job["input_size"]))
    export_prepared(Path(job["weights"]), key, target)
    return target


if __name__ == "__main__":
    sys.exit(main())
