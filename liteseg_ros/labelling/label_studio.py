"""Label Studio brush annotations: its RLE (thi.ng's rle-pack, as Label Studio's frontend and label-studio-sdk's
``brush`` module write and read it), tasks with the model's masks as predictions, and the labelling config.

An RLE holds the flattened RGBA image of one brush layer (4 values per pixel; a pixel of the layer is 255 in all
four, else 0): 32 bits value count, 5 bits word size - 1, four 4-bit run-length field sizes - 1 (3, 4, 8, 16 as the
SDK writes them), then per run a repeat bit, 2 bits choosing the length field, the length - 1, and the value(s);
bits are packed most significant first and the stream is padded with zero bits to a whole byte (a whole extra byte
when it already was one, as the SDK does). :func:`encode_rle` gives the SDK's ``encode_rle`` bytes exactly.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from liteseg_ros.classes import ClassSet

WORD_SIZE = 8
RUN_SIZES = (3, 4, 8, 16)  # bits of the run length field, chosen by 2 bits
LONGEST_RUN = 2 ** 16
FROM_NAME, TO_NAME = "label", "image"


def encode_rle(values: np.ndarray) -> list[int]:
    """The rle-pack bytes of a flat uint8 array, as label-studio-sdk's ``encode_rle`` writes them."""
    values = np.asarray(values, dtype=np.uint8).reshape(-1)
    fields: list[tuple[int, int]] = [(values.size, 32), (WORD_SIZE - 1, 5)] + [(size - 1, 4) for size in RUN_SIZES]
    if values.size:
        ends = np.append(np.flatnonzero(values[1:] != values[:-1]), values.size - 1)
        lengths = np.diff(np.append(-1, ends))
        for length, value in zip(lengths.tolist(), values[ends].tolist()):
            fields += _run_fields(length, value)
    return _pack(fields)


def _run_fields(length: int, value: int) -> list[tuple[int, int]]:
    """The (value, bits) fields of one run, split into runs of at most LONGEST_RUN as the SDK splits them."""
    if length == 1:
        return [(0, 1), (0, 2), (0, 3), (value, WORD_SIZE)]
    choice = next((index for index, bits in enumerate(RUN_SIZES[:-1]) if length <= 2 ** bits), len(RUN_SIZES) - 1)
    fields = []
    while length > LONGEST_RUN:  # the longest field's runs, then the rest in that field too (however short)
        fields += [(1, 1), (choice, 2), (LONGEST_RUN - 1, RUN_SIZES[choice]), (value, WORD_SIZE)]
        length -= LONGEST_RUN
    return fields + [(1, 1), (choice, 2), (length - 1, RUN_SIZES[choice]), (value, WORD_SIZE)]


def _pack(fields: list[tuple[int, int]]) -> list[int]:
    values = np.array([value for value, _ in fields], dtype=np.uint64)
    widths = np.array([bits for _, bits in fields], dtype=np.int64)
    shifts = np.concatenate([np.arange(width - 1, -1, -1) for width in widths.tolist()])
    bits = (np.repeat(values, widths) >> shifts.astype(np.uint64)) & np.uint64(1)
    padding = 8 - bits.size % 8  # 8 when already whole: the SDK adds a zero byte then
    bits = np.concatenate([bits.astype(np.uint8), np.zeros(padding, dtype=np.uint8)])
    return np.packbits(bits).tolist()


class _Bits:
    """A stream's bits, most significant first, read field by field."""

    def __init__(self, data: list[int] | bytes):
        self.bits = (np.unpackbits(np.asarray(bytearray(data), dtype=np.uint8)) + ord("0")).tobytes().decode()
        self.position = 0

    def read(self, width: int) -> int:
        end = self.position + width
        if end > len(self.bits):
            raise ValueError("the RLE ends inside a field")
        value, self.position = int(self.bits[self.position:end], 2), end
        return value


def decode_rle(rle: list[int] | bytes) -> np.ndarray:
    """The flat values of an rle-pack stream (any run layout rle-pack writes); ValueError for a malformed one."""
    stream = _Bits(rle)
    count, word_size = stream.read(32), stream.read(5) + 1
    sizes = [stream.read(4) + 1 for _ in range(4)]
    out = np.zeros(count, dtype=np.uint8 if word_size <= 8 else np.uint32)
    index = 0
    while index < count:
        repeat = stream.read(1)
        end = index + 1 + stream.read(sizes[stream.read(2)])
        if end > count:
            raise ValueError("a run goes past the RLE's value count")
        if repeat:
            out[index:end] = stream.read(word_size)
        else:
            out[index:end] = [stream.read(word_size) for _ in range(end - index)]
        index = end
    return out


def mask_rle(layer: np.ndarray) -> list[int]:
    """The RLE of one brush layer (H x W bool): RGBA 255 where set."""
    return encode_rle(np.repeat(np.where(layer, 255, 0).astype(np.uint8).reshape(-1), 4))


def layer_of_rle(rle: list[int], height: int, width: int) -> np.ndarray:
    """The H x W bool layer of an RLE (its alpha channel, as the SDK reads brush results)."""
    return decode_rle(rle).reshape(height, width, 4)[:, :, 3] > 0


def labelling_config(classes: ClassSet) -> str:
    """The labelling interface (XML) to paste into a Label Studio project: one brush label per class."""
    labels = "\n".join(f"    <Label value={quoteattr(name)} background={quoteattr('#%02x%02x%02x' % tuple(color))}/>"
                       for name, color in zip(classes.names, classes.colors))
    return (f'<View>\n  <Image name="{TO_NAME}" value="${TO_NAME}" zoom="true"/>\n'
            f'  <BrushLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n  </BrushLabels>\n</View>\n')


def prediction(mask: np.ndarray, classes: ClassSet, model_version: str, score: float) -> dict[str, Any]:
    """A task's prediction: one brush result per class present in ``mask`` (H x W class ids)."""
    height, width = mask.shape
    results = [{"id": f"c{class_id}", "from_name": FROM_NAME, "to_name": TO_NAME, "type": "brushlabels",
                "original_width": width, "original_height": height, "image_rotation": 0,
                "value": {"format": "rle", "rle": mask_rle(mask == class_id),
                          "brushlabels": [classes.names[class_id]]}}
               for class_id in np.unique(mask).tolist()]
    return {"model_version": model_version, "score": round(float(score), 6), "result": results}


def task(image_url: str, mask: np.ndarray, classes: ClassSet, model_version: str, score: float,
         meta: dict[str, Any]) -> dict[str, Any]:
    """One Label Studio task: the image, the model's masks as its prediction, and ``meta`` (where it came from)."""
    return {"data": {TO_NAME: image_url, **meta}, "predictions": [prediction(mask, classes, model_version, score)]}
