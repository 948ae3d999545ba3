"""INT8 model files: an ONNX model quantized by ``liteseg-quantize`` (or by the node, from its first frames), with
the metadata a Segmenter needs.

The file holds the network up to its decoder's logits (before the final upsampling, which the Segmenter fuses
with the argmax) for one input size, QDQ-quantized (INT8 weights per channel, uint8 activations), and in its
ONNX metadata (key ``liteseg_ros``) the checkpoint's metadata, the input size, the SHA-256 of the fp32 weights
it was made from, and the quantization report. OpenVINO runs it where installed (fastest measured), else
onnxruntime. The metadata is read without the ``onnx`` package (a few protobuf fields: see
:func:`onnx_metadata`), so a node running an INT8 model never imports it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteseg_ros.errors import IncompatibleWeightsError, WeightsError
from liteseg_ros.files import atomic_file
from liteseg_ros.model.checkpoint import CheckpointMeta

QUANTIZED_SUFFIX = ".onnx"
TWIN_SUFFIX = ".int8.onnx"  # NAME.pt's INT8 twin is NAME.int8.onnx beside it
METADATA_KEY = "liteseg_ros"
FORMAT = "liteseg_ros-int8-v1"
_METADATA_FIELD, _KEY, _VALUE = 14, 1, 2  # ModelProto.metadata_props, StringStringEntryProto.key / .value


@dataclass
class QuantizedModel:
    """An INT8 model file read by :func:`read_quantized_model`."""

    path: Path
    meta: CheckpointMeta
    input_size: tuple[int, int]
    report: dict = field(default_factory=dict)
    source_digest: str = ""  # SHA-256 of the fp32 weights it was made from ("" for files made before it was kept)

    @property
    def backbone(self) -> str:
        return self.meta.backbone


def is_quantized_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an INT8 model file (by its suffix, ``.onnx``)."""
    return Path(path).suffix == QUANTIZED_SUFFIX


def twin_path(weights: str | os.PathLike) -> Path:
    """Where the INT8 twin of an fp32 weights file lies: ``NAME.int8.onnx`` beside ``NAME.pt``."""
    weights = Path(weights)
    return weights.with_name(weights.stem + TWIN_SUFFIX)


def read_quantized_model(path: str | os.PathLike, backbone: str | None = None) -> QuantizedModel:
    """Read an INT8 model file's metadata; WeightsError for a missing, corrupt or foreign file,
    IncompatibleWeightsError when its backbone is not ``backbone`` (if given)."""
    path = Path(path)
    what = f"INT8 model {path}"
    if not path.is_file() or path.stat().st_size == 0:
        raise WeightsError(f"{what} does not exist or is empty: check the path")
    try:
        props = onnx_metadata(path.read_bytes())
    except ValueError:
        raise WeightsError(f"{what} is not a readable ONNX file (truncated or corrupt?)") from None
    if METADATA_KEY not in props:
        raise WeightsError(f"{what} has no liteseg_ros metadata: make INT8 models with liteseg-quantize")
    try:
        data = json.loads(props[METADATA_KEY])
        meta = CheckpointMeta.from_dict(data["meta"], what)
        input_size = (int(data["input_size"][0]), int(data["input_size"][1]))
        report, source = dict(data.get("report", {})), str(data.get("source_sha256", ""))
    except (ValueError, KeyError, TypeError, IndexError):
        raise WeightsError(f"{what} has malformed liteseg_ros metadata: make it again with liteseg-quantize") from None
    if backbone is not None and meta.backbone != backbone:
        raise IncompatibleWeightsError(f"{what} is a {meta.backbone} model, but backbone={backbone}: "
                                       f"use backbone={meta.backbone}")
    return QuantizedModel(path=path, meta=meta, input_size=input_size, report=report, source_digest=source)


def write_quantized_model(proto: Any, meta: CheckpointMeta, input_size: tuple[int, int], report: dict,
                          path: str | os.PathLike, source_digest: str = "") -> Path:
    """Write an ONNX ModelProto with its liteseg_ros metadata to ``path`` (atomically)."""
    import onnx

    path = Path(path)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({"format": FORMAT, "meta": meta.to_dict(), "input_size": list(input_size),
                              "source_sha256": source_digest, "report": report})
    with atomic_file(path) as temporary:
        onnx.save(proto, str(temporary))
    return path


def onnx_metadata(data: bytes) -> dict[str, str]:
    """The ``metadata_props`` of a serialised ONNX ModelProto, read from its top-level protobuf fields (the
    graph is skipped by its length). ValueError for bytes that are not a well-formed message."""
    props, position = {}, 0
    while position < len(data):
        tag, position = _varint(data, position)
        number, wire = tag >> 3, tag & 7
        if wire == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ValueError("truncated")
            if number == _METADATA_FIELD:
                entry = _fields(data[position:position + length])
                props[entry.get(_KEY, b"").decode()] = entry.get(_VALUE, b"").decode()
            position += length
        else:
            position = _skip(data, position, wire)
    return props


def _fields(data: bytes) -> dict[int, bytes]:
    """The length-delimited fields of a small message (a StringStringEntryProto)."""
    found, position = {}, 0
    while position < len(data):
        tag, position = _varint(data, position)
        if tag & 7 != 2:
            position = _skip(data, position, tag & 7)
            continue
        length, position = _varint(data, position)
        found[tag >> 3], position = data[position:position + length], position + length
    return found


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if not byte & 0x80:
            return value, position


def _skip(data: bytes, position: int, wire: int) -> int:
    if wire == 0:
        return _varint(data, position)[1]
    if wire in (1, 5):
        return position + (8 if wire == 1 else 4)
    raise ValueError(f"unexpected wire type {wire}")
