"""The labelled point cloud of a depth image: one point per depth pixel, projected as depth_image_proc projects it,
with the class, colour and confidence of the mask computed at the depth image's resolution.

Fields (sensor_msgs/PointField, little-endian): ``x``, ``y``, ``z`` float32 metres in the depth image's optical frame;
``rgb`` float32 holding the class colour packed as depth_image_proc and PCL pack it (bytes b, g, r, 0: the uint32
``r << 16 | g << 8 | b``); ``label`` uint8 class id; ``confidence`` float32 in [0, 1] when the frame's confidence
was computed. The arithmetic is depth_image_proc's, in float32: ``x = (u - cx) * d * (unit / fx)``,
``y = (v - cy) * d * (unit / fy)``, ``z = d * unit`` with ``d`` the raw value (millimetres for 16UC1, unit 0.001;
metres for 32FC1, unit 1), so its clouds and ours agree bit for bit.

A cloud is organised (the depth image's rows x columns, every ``stride``-th of each) with NaN x, y, z where the
depth is invalid or beyond ``max_range``; with ``classes`` it keeps only the valid points of those classes, as an
unorganised cloud (height 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from liteseg_ros.depth.camera import Intrinsics
from liteseg_ros.depth.images import DepthImage
from liteseg_ros.errors import DepthError
from liteseg_ros.sizes import format_size

FLOAT32, UINT8 = 7, 2  # sensor_msgs/PointField datatypes
UNIT_METRES = {"16UC1": np.float32(0.001), "32FC1": np.float32(1.0)}  # depth_image_proc's DepthTraits::toMeters(1)
ROWS_PER_BLOCK = 32  # rows made together: 1280-wide blocks of 20-byte points stay in a 1 MiB cache
CONFIDENCE_SCALE = (np.arange(256, dtype=np.float32) / np.float32(255.0)).astype(np.float32)


@dataclass(frozen=True)
class CloudField:
    """One sensor_msgs/PointField: name, byte offset in a point, datatype, count."""

    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass(frozen=True)
class PointLayout:
    """The fields of a point; ``confidence`` adds the confidence field."""

    confidence: bool

    @cached_property
    def fields(self) -> tuple[CloudField, ...]:
        base = (CloudField("x", 0, FLOAT32), CloudField("y", 4, FLOAT32), CloudField("z", 8, FLOAT32),
                CloudField("rgb", 12, FLOAT32), CloudField("label", 16, UINT8))
        return base + ((CloudField("confidence", 20, FLOAT32),) if self.confidence else ())

    @property
    def point_step(self) -> int:
        return 24 if self.confidence else 20

    @cached_property
    def dtype(self) -> np.dtype:
        """The numpy layout of a point (``rgb`` as the uint32 of its bits)."""
        kinds = {"x": "<f4", "y": "<f4", "z": "<f4", "rgb": "<u4", "label": "u1", "confidence": "<f4"}
        return np.dtype({"names": [f.name for f in self.fields], "formats": [kinds[f.name] for f in self.fields],
                         "offsets": [f.offset for f in self.fields], "itemsize": self.point_step})


@dataclass(frozen=True)
class CloudOptions:
    """What a cloud keeps: every ``stride``-th row and column, points up to ``max_range`` metres from the camera
    (0: all), only the class ids ``classes`` (None: all; then the cloud is unorganised)."""

    stride: int = 1
    max_range: float = 0.0
    classes: frozenset[int] | None = None


@dataclass
class Cloud:
    """A labelled cloud: ``points`` (structured, rows x columns; 1 x N unorganised), its layout and whether it holds
    no invalid (NaN) point."""

    points: np.ndarray
    layout: PointLayout
    is_dense: bool

    @property
    def height(self) -> int:
        return int(self.points.shape[0])

    @property
    def width(self) -> int:
        return int(self.points.shape[1])


def packed_colours(palette: np.ndarray) -> np.ndarray:
    """256 uint32 ``r << 16 | g << 8 | b`` of an N x 3 uint8 palette (missing ids black)."""
    rgb = np.zeros((256, 3), dtype=np.uint32)
    rgb[: len(palette)] = np.asarray(palette, dtype=np.uint32)[:256]
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


class CloudMaker:
    """Makes the labelled clouds of one camera (keeps the projection's row and column factors of its last
    intrinsics)."""

    def __init__(self, palette: np.ndarray, options: CloudOptions = CloudOptions()):
        self.options = options
        self.colours = packed_colours(palette)
        self._wanted = None
        if options.classes is not None:
            self._wanted = np.zeros(256, dtype=bool)
            self._wanted[sorted(options.classes)] = True
        self._factors: tuple[tuple, tuple[np.ndarray, np.ndarray]] | None = None  # (key, column and row offsets)

    def make(self, depth: DepthImage, intrinsics: Intrinsics, labels: np.ndarray, confidence: np.ndarray | None = None,
             out: Callable[[tuple[int, int], np.dtype], np.ndarray] | None = None) -> Cloud:
        """The cloud of ``depth`` with ``labels`` (H x W uint8 class ids at the depth image's resolution) and
        ``confidence`` (H x W uint8 probability x 255, or None). An organised cloud is written into
        ``out(shape, dtype)``'s array where given. DepthError when the sizes disagree."""
        intrinsics.check_shape(depth.shape)
        if tuple(labels.shape) != depth.shape or (confidence is not None and confidence.shape != labels.shape):
            raise DepthError(f"the mask is {format_size(labels.shape)} but the depth image is "
                             f"{format_size(depth.shape)} (HxW): the labels must be computed at the depth's size")
        step = self.options.stride
        layout = PointLayout(confidence is not None)
        values, labels = depth.values[::step, ::step], labels[::step, ::step]
        confidence = confidence[::step, ::step] if confidence is not None else None
        organised = self._wanted is None
        points = out(values.shape, layout.dtype) if organised and out is not None else \
            np.zeros(values.shape, dtype=layout.dtype)  # zeros: no stray bytes in the padding
        column_offsets, row_offsets = self._offsets(intrinsics, values.shape)
        dense = True
        for first in range(0, values.shape[0], ROWS_PER_BLOCK):  # blocks that stay in the cache for every pass
            rows = slice(first, first + ROWS_PER_BLOCK)
            block = points[rows]
            self._project(values[rows], depth.encoding, intrinsics, block, column_offsets, row_offsets[rows])
            block["label"] = labels[rows]
            block["rgb"] = self.colours[labels[rows]]
            if confidence is not None:
                block["confidence"] = CONFIDENCE_SCALE[confidence[rows]]
            dense = dense and not np.isnan(block["z"]).any()
        if not organised:
            kept = points[~np.isnan(points["z"]) & self._wanted[labels]]
            return Cloud(kept.reshape(1, -1), layout, is_dense=True)
        return Cloud(points, layout, is_dense=dense)

    def _project(self, values: np.ndarray, encoding: str, intrinsics: Intrinsics, points: np.ndarray,
                 column_offsets: np.ndarray, row_offsets: np.ndarray) -> None:
        """x, y, z of every pixel of ``values`` (NaN where invalid or beyond the range) into ``points``."""
        unit = UNIT_METRES[encoding]
        depth = values.astype(np.float32)
        if encoding == "16UC1":
            depth[values == 0] = np.nan
        else:
            depth[~(depth > 0) | np.isinf(depth)] = np.nan  # NaN > 0 is False: NaN, inf and <= 0 are invalid
        x_scale, y_scale = (np.float32(float(unit) / focal) for focal in (intrinsics.fx, intrinsics.fy))
        x = np.multiply(column_offsets, depth)  # contiguous, then one strided write per field (faster)
        x *= x_scale
        y = np.multiply(row_offsets, depth)
        y *= y_scale
        z = depth if unit == 1 else np.multiply(depth, unit)
        if self.options.max_range > 0:
            far = (np.square(x) + np.square(y) + np.square(z)) > np.float32(self.options.max_range ** 2)
            x[far] = y[far] = z[far] = np.nan
        points["x"], points["y"], points["z"] = x, y, z

    def _offsets(self, intrinsics: Intrinsics, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(u - cx) of every kept column (1 x W) and (v - cy) of every kept row (H x 1), float32 as depth_image_proc
        computes them (its ``center_x`` is a float); kept for the last intrinsics."""
        key = (intrinsics, shape, self.options.stride)
        if self._factors is None or self._factors[0] != key:
            step = self.options.stride
            columns = np.arange(0, intrinsics.width, step, dtype=np.float32)
            rows = np.arange(0, intrinsics.height, step, dtype=np.float32)
            self._factors = (key, ((columns - np.float32(intrinsics.cx))[None, :],
                                   (rows - np.float32(intrinsics.cy))[:, None]))
        return self._factors[1]
