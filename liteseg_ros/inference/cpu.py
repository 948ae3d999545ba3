"""The Segmenter's CPU path: the image's pre-processing and the network (:meth:`CpuPath.infer`), then the
post-processing at the output size in row bands (:meth:`CpuPath.finish`; :mod:`liteseg_ros.inference.bands`), each
band's torch ops on one thread: torch's own intra-op threads would stall in OpenMP barriers when another process
holds a core. The two halves may run on two threads, one frame apart (the node overlaps them when frames queue).

A LiteSeg's final bilinear upsampling is fused with the argmax (:class:`ResizeArgmax`): the network returns the
logits before it and ``source_maps`` map them to the network input's resolution.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.bands import BandPool, single_torch_thread
from liteseg_ros.inference.confidence import ConfidenceRows
from liteseg_ros.inference.resampling import AxisMap, bilinear_map, compose, nearest_map
from liteseg_ros.inference.resize_argmax import ResizeArgmax
from liteseg_ros.inference.stages import PipelineStages, SegmentationResult, as_tensor, blend, image_to_batch, rgb_view

MAX_CACHED_SIZES = 4  # image sizes whose resampling maps are kept
OUTPUT_SHAPES = {"mask": (), "confidence": (), "color": (3,), "overlay": (3,)}


@dataclass
class Inference:
    """A frame after the network: what :meth:`CpuPath.finish` (or the CUDA path's) needs to make its outputs."""

    image: torch.Tensor  # H x W x C uint8
    encoding: str
    wanted: frozenset[str]
    logits: torch.Tensor | dict  # C x h x w on the CPU; the CUDA path's outputs, downloaded
    timings: dict[str, float] = field(default_factory=dict)
    network_input: torch.Tensor | None = None
    output_shape: tuple[int, int] | None = None  # (h, w) of the outputs; None: the Segmenter's output size
    label_shape: tuple[int, int] | None = None  # (h, w) of the extra labels (SegmentationResult.labels), if any


class CpuPath:
    """Runs a Segmenter's :class:`PipelineStages` on the CPU (see the module docstring)."""

    def __init__(self, stages: PipelineStages, bands: BandPool, source_maps: tuple[AxisMap, AxisMap],
                 overlay_alpha: float = 0.5):
        self.stages, self.bands, self.source_maps = stages, bands, source_maps
        self.network = stages.network  # replaced when the Segmenter switches precision
        self.overlay_alpha = overlay_alpha
        self._maps: OrderedDict[tuple[int, int], tuple[AxisMap, AxisMap]] = OrderedDict()
        self._maps_lock = threading.Lock()

    @property
    def overlay_alpha(self) -> float:
        return self._alpha

    @overlay_alpha.setter
    def overlay_alpha(self, value: float) -> None:
        self._alpha = float(value)
        self._alpha_tensor = torch.tensor(self._alpha, dtype=torch.float32)  # as the CUDA path blends

    def infer(self, pixels: np.ndarray, encoding: str, wanted: frozenset[str], start: float,
              sizes: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None)) -> Inference:
        """Pre-process the checked ``pixels`` and run the network; ``start`` is when the frame's timing began;
        ``sizes`` the frame's output size (None: the Segmenter's) and labels' size (None: none)."""
        with torch.inference_mode():
            image = as_tensor(pixels)
            with single_torch_thread():
                network_input = self.stages.network_input(image_to_batch(image, encoding), self.bands)
            preprocessed = time.perf_counter()
            logits = self.network(network_input)[0]
        inferred = time.perf_counter()
        return Inference(image, encoding, wanted, logits, {"preprocess": preprocessed - start,
                                                            "inference": inferred - preprocessed}, network_input,
                         *sizes)

    def finish(self, inference: Inference, out: dict[str, np.ndarray] | None = None) -> SegmentationResult:
        """The wanted outputs at the output size, written into ``out``'s arrays where given (each of the output's
        shape, e.g. buffers a message publishes without another copy)."""
        started = time.perf_counter()
        with torch.inference_mode(), single_torch_thread():
            result = self._postprocess(inference, out or {})
        result.timings.update(inference.timings, postprocess=time.perf_counter() - started)
        return result

    def _postprocess(self, inference: Inference, out: dict[str, np.ndarray]) -> SegmentationResult:
        """C x h x w network logits -> the wanted outputs at the output size, in row bands."""
        image, encoding, wanted = inference.image, inference.encoding, inference.wanted
        height, width = inference.output_shape or self.stages.output_shape(*image.shape[:2])
        if "overlay" in wanted:
            image = self.stages.overlay_image(image, (height, width))
        classes, confidence = self._class_rows(inference.logits, height, width, "confidence" in wanted)
        buffer = functools.partial(_output_buffer, out, height, width)
        mask = buffer("mask")
        certainty = buffer("confidence") if confidence is not None else None
        color = buffer("color") if wanted & {"color", "overlay"} else None
        overlay = buffer("overlay") if "overlay" in wanted else None
        alpha = self._alpha_tensor

        def rows(first: int, end: int) -> None:
            mask[first:end] = classes.band(first, end)
            if certainty is not None:
                certainty[first:end] = confidence.band(first, end, mask[first:end])
            if color is not None:
                color[first:end] = self.stages.colour(mask[first:end])
            if overlay is not None:
                overlay[first:end] = blend(rgb_view(image[first:end], encoding), color[first:end], alpha)

        self.bands.run(rows, height)
        result = SegmentationResult(
            mask=mask.numpy() if "mask" in wanted else None,
            color=color.numpy() if "color" in wanted else None,
            overlay=overlay.numpy() if overlay is not None else None,
            confidence=certainty.numpy() if certainty is not None else None,
        )
        if inference.label_shape == (height, width):  # the outputs' mask, in arrays of their own
            result.labels = mask.numpy().copy()
            result.label_confidence = certainty.numpy().copy() if certainty is not None else None
        elif inference.label_shape is not None:
            result.labels, result.label_confidence = self._labels(inference.logits, inference.label_shape,
                                                                  "confidence" in wanted)
        return result

    def _labels(self, logits: torch.Tensor, shape: tuple[int, int], confidence: bool
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """The mask (and the confidence) at ``shape``, computed as the outputs are, into new arrays."""
        classes, certainty = self._class_rows(logits, *shape, confidence)
        labels = torch.empty(shape, dtype=torch.uint8)
        label_confidence = torch.empty(shape, dtype=torch.uint8) if confidence else None

        def rows(first: int, end: int) -> None:
            labels[first:end] = classes.band(first, end)
            if label_confidence is not None:
                label_confidence[first:end] = certainty.band(first, end, labels[first:end])

        self.bands.run(rows, shape[0])
        return labels.numpy(), label_confidence.numpy() if label_confidence is not None else None

    def _class_rows(self, logits: torch.Tensor, height: int, width: int, confidence: bool
                    ) -> tuple[ResizeArgmax | NearestBands, ConfidenceRows | NearestBands | None]:
        """The class ids at the output resolution, computable band by band: the fusion of resize and argmax
        (``upsample=logits``), or the argmax at the network's resolution resampled by nearest neighbour
        (``mask``); and, when ``confidence``, the confidence's rows alike."""
        rows, cols = self.resampling_maps(height, width)
        if self.stages.upsample == "logits":
            classes = ResizeArgmax(logits, rows, cols, self.bands)
            return classes, ConfidenceRows(classes) if confidence else None
        at_input = ResizeArgmax(logits, *self.source_maps, self.bands)
        confidence_at_input = ConfidenceRows(at_input) if confidence else None
        classes = torch.empty(self.stages.input_size, dtype=torch.uint8)
        certainty = torch.empty(self.stages.input_size, dtype=torch.uint8)

        def input_rows(first: int, end: int) -> None:
            classes[first:end] = at_input.band(first, end)
            if confidence_at_input is not None:
                certainty[first:end] = confidence_at_input.band(first, end, classes[first:end])

        self.bands.run(input_rows, self.stages.input_size[0])
        return (NearestBands(classes, rows, cols),
                NearestBands(certainty, rows, cols) if confidence else None)

    def classes_at(self, logits: torch.Tensor, height: int, width: int) -> np.ndarray:
        """The mask ``logits`` give at ``height`` x ``width`` (bilinear logits, then argmax), on this thread."""
        rows, cols = self.resampling_maps(height, width) if self.stages.upsample == "logits" else \
            self._bilinear_maps(height, width)
        with torch.inference_mode(), single_torch_thread():
            return ResizeArgmax(logits, rows, cols).band(0, height).numpy()

    def resampling_maps(self, height: int, width: int) -> tuple[AxisMap, AxisMap]:
        """Row and column maps to the output's pixels (cached per size): from the network's logits for
        ``upsample=logits``; nearest neighbour from the network's resolution for ``mask``."""
        key = (height, width)
        with self._maps_lock:
            if key not in self._maps:
                self._maps[key] = self._new_maps(height, width)
                if len(self._maps) > MAX_CACHED_SIZES:
                    self._maps.popitem(last=False)
            return self._maps[key]

    def _new_maps(self, height: int, width: int) -> tuple[AxisMap, AxisMap]:
        if self.stages.upsample == "mask":
            net_height, net_width = self.stages.input_size
            return nearest_map(net_height, height), nearest_map(net_width, width)
        return self._bilinear_maps(height, width)

    def _bilinear_maps(self, height: int, width: int) -> tuple[AxisMap, AxisMap]:
        """From the network's logits to the output's pixels, bilinearly (through the network input's size)."""
        (source_rows, source_cols), (net_height, net_width) = self.source_maps, self.stages.input_size
        return (compose(source_rows, bilinear_map(net_height, height, align_corners=False)),
                compose(source_cols, bilinear_map(net_width, width, align_corners=False)))


def _output_buffer(out: dict[str, np.ndarray], height: int, width: int, name: str) -> torch.Tensor:
    """The tensor output ``name`` is written into: a view of ``out[name]`` when given, else a new one."""
    shape = (height, width, *OUTPUT_SHAPES[name])
    given = out.get(name)
    if given is None:
        return torch.empty(shape, dtype=torch.uint8)
    if given.shape != shape or given.dtype != np.uint8 or not given.flags.c_contiguous:
        raise ConfigError(f"the buffer for {name} must be a C-contiguous uint8 array of shape {shape}, "
                          f"got {given.dtype} {given.shape}")
    return torch.from_numpy(given)


class NearestBands:
    """Rows of a class map resampled by nearest neighbour (``upsample="mask"``), band by band like
    :class:`ResizeArgmax`."""

    def __init__(self, classes: torch.Tensor, rows: AxisMap, cols: AxisMap):
        self.classes, self.rows, self.cols = classes, rows, cols
        self.identity = rows.is_identity() and cols.is_identity()

    def band(self, first: int, end: int, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Output rows ``first:end`` as an (end - first) x W uint8 tensor (``classes``, the mask's rows, are not
        needed: the map is already per pixel)."""
        if self.identity:
            return self.classes[first:end]
        return self.classes.index_select(0, self.rows.index[first:end, 0]).index_select(1, self.cols.index[:, 0])
