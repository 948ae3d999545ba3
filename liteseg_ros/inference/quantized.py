"""INT8 model files: an ONNX model quantized by ``liteseg-quantize``, with the metadata a Segmenter needs.

The file holds the network up to its decoder's logits (before the final upsampling, which the Segmenter fuses
with the argmax) for one input size, QDQ-quantized (INT8 weights per channel, uint8 activations), and in its
ONNX metadata (key ``liteseg_ros``) the checkpoint's metadata, the input size and the quantization report.
OpenVINO runs it where installed (fastest measured), else onnxruntime.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from liteseg_ros.errors import IncompatibleWeightsError, OptimizationError, WeightsError
from liteseg_ros.files import atomic_file
from liteseg_ros.inference.runtimes import OnnxRuntimeNetwork, OpenVinoNetwork
from liteseg_ros.logs import get_logger
from liteseg_ros.model.checkpoint import CheckpointMeta

LOG = get_logger(__name__)

QUANTIZED_SUFFIX = ".onnx"
METADATA_KEY = "liteseg_ros"
FORMAT = "liteseg_ros-int8-v1"


@dataclass
class QuantizedModel:
    """An INT8 model file read by :func:`read_quantized_model`."""

    path: Path
    meta: CheckpointMeta
    input_size: tuple[int, int]
    report: dict = field(default_factory=dict)

    @property
    def backbone(self) -> str:
        return self.meta.backbone

    def runner(self, runtime: str, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x -> logits`` on ``runtime`` (``openvino`` or ``onnxruntime``, as the plan says). Raises
        OptimizationError when the runtime is missing, WeightsError when it cannot read the file."""
        if runtime == "openvino":
            return OpenVinoNetwork(self.path, precision="fp32", threads=threads)
        try:
            return OnnxRuntimeNetwork(self.path, threads)
        except OptimizationError:
            raise
        except Exception as error:
            raise WeightsError(f"INT8 model {self.path} could not be loaded by onnxruntime: {error}") from None


def is_quantized_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an INT8 model file (by its suffix, ``.onnx``)."""
    return Path(path).suffix == QUANTIZED_SUFFIX


def read_quantized_model(path: str | os.PathLike, backbone: str | None = None) -> QuantizedModel:
    """Read an INT8 model file's metadata; WeightsError for a missing, corrupt or foreign file,
    IncompatibleWeightsError when its backbone is not ``backbone`` (if given)."""
    import onnx

    path = Path(path)
    what = f"INT8 model {path}"
    if not path.is_file() or path.stat().st_size == 0:
        raise WeightsError(f"{what} does not exist or is empty: check the path")
    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
    except Exception:
        raise WeightsError(f"{what} is not a readable ONNX file (truncated or corrupt?)") from None
    props = {prop.key: prop.value for prop in proto.metadata_props}
    if METADATA_KEY not in props:
        raise WeightsError(f"{what} has no liteseg_ros metadata: make INT8 models with liteseg-quantize")
    try:
        data = json.loads(props[METADATA_KEY])
        meta = CheckpointMeta.from_dict(data["meta"], what)
        input_size = (int(data["input_size"][0]), int(data["input_size"][1]))
        report = dict(data.get("report", {}))
    except (ValueError, KeyError, TypeError, IndexError):
        raise WeightsError(f"{what} has malformed liteseg_ros metadata: make it again with liteseg-quantize") from None
    if backbone is not None and meta.backbone != backbone:
        raise IncompatibleWeightsError(f"{what} is a {meta.backbone} model, but backbone={backbone}: "
                                       f"use backbone={meta.backbone}")
    return QuantizedModel(path=path, meta=meta, input_size=input_size, report=report)


def write_quantized_model(proto: Any, meta: CheckpointMeta, input_size: tuple[int, int], report: dict,
                          path: str | os.PathLike) -> Path:
    """Write an ONNX ModelProto with its liteseg_ros metadata to ``path`` (atomically)."""
    import onnx

    path = Path(path)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({"format": FORMAT, "meta": meta.to_dict(), "input_size": list(input_size),
                              "report": report})
    with atomic_file(path) as temporary:
        onnx.save(proto, str(temporary))
    return path
