"""The Segmenter's CPU path: the image's pre-processing, the network on its runtime's threads, and the
post-processing at the output size in row bands (:mod:`liteseg_ros.inference.bands`), each band's torch ops on
one thread: torch's own intra-op threads would stall in OpenMP barriers when another process holds a core.

A LiteSeg's final bilinear upsampling is fused with the argmax (:class:`ResizeArgmax`): the network returns the
logits before it and ``source_maps`` map them to the network input's resolution.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
import torch

from liteseg_ros.inference.bands import BandPool, single_torch_thread
from liteseg_ros.inference.confidence import ConfidenceRows
from liteseg_ros.inference.pipeline import PipelineStages, SegmentationResult
from liteseg_ros.inference.resampling import AxisMap, bilinear_map, compose, nearest_map
from liteseg_ros.inference.resize_argmax import ResizeArgmax
from liteseg_ros.inference.stages import NearestBands, as_tensor, image_to_batch, opencv_blend, rgb_view

MAX_CACHED_SIZES = 4  # image sizes whose resampling maps are kept


class CpuPipeline:
    """Runs a Segmenter's :class:`PipelineStages` on the CPU (see the module docstring)."""

    def __init__(self, stages: PipelineStages, bands: BandPool, source_maps: tuple[AxisMap, AxisMap]):
        self.stages, self.bands, self.source_maps = stages, bands, source_maps
        self.overlay_alpha, self.opencv_blend = 0.5, False  # set by the Segmenter's overlay_alpha
        self._maps: OrderedDict[tuple[int, int], tuple[AxisMap, AxisMap]] = OrderedDict()

    def run(self, pixels: np.ndarray, encoding: str, wanted: frozenset[str], start: float) -> SegmentationResult:
        """Segment the checked ``pixels``; ``start`` is when the frame's timing began."""
        with torch.inference_mode():
            image = as_tensor(pixels)
            with single_torch_thread():
                network_input = self.stages.network_input(image_to_batch(image, encoding), self.bands)
            preprocessed = time.perf_counter()
            logits = self.stages.network(network_input)[0]
            inferred = time.perf_counter()
            with single_torch_thread():
                result = self._postprocess(logits, image, encoding, wanted)
        result.timings.update(preprocess=preprocessed - start, inference=inferred - preprocessed,
                              postprocess=time.perf_counter() - inferred)
        return result

    def _postprocess(self, logits: torch.Tensor, image: torch.Tensor, encoding: str,
                     wanted: frozenset[str]) -> SegmentationResult:
        """C x h x w network logits -> the wanted outputs at the output size, in row bands."""
        height, width = self.stages.output_shape(*image.shape[:2])
        if "overlay" in wanted:
            image = self.stages.overlay_image(image)
        classes, confidence = self._class_rows(logits, height, width, "confidence" in wanted)
        mask = torch.empty((height, width), dtype=torch.uint8)
        certainty = torch.empty((height, width), dtype=torch.uint8) if confidence is not None else None
        color = torch.empty((height, width, 3), dtype=torch.uint8) if wanted & {"color", "overlay"} else None
        overlay = torch.empty((height, width, 3), dtype=torch.uint8) if "overlay" in wanted else None

        def rows(first: int, end: int) -> None:
            mask[first:end] = classes.band(first, end)
            if certainty is not None:
                certainty[first:end] = confidence.band(first, end, mask[first:end])
            if color is not None:
                color[first:end] = self.stages.colour(mask[first:end])
                if overlay is not None and self.opencv_blend:
                    rgb = rgb_view(image[first:end], encoding).contiguous().numpy()
                    opencv_blend(rgb, color[first:end].numpy(), self.overlay_alpha, out=overlay[first:end].numpy())
                elif overlay is not None:
                    overlay[first:end] = self.stages.overlay(image[first:end], encoding, color[first:end])

        self.bands.run(rows, height)
        return SegmentationResult(
            mask=mask.numpy() if "mask" in wanted else None,
            color=color.numpy() if "color" in wanted else None,
            overlay=overlay.numpy() if overlay is not None else None,
            confidence=certainty.numpy() if certainty is not None else None,
        )

    def _class_rows(self, logits: torch.Tensor, height: int, width: int, confidence: bool
                    ) -> tuple[ResizeArgmax | NearestBands, ConfidenceRows | NearestBands | None]:
        """The class ids at the output resolution, computable band by band: the fusion of resize and argmax
        (``upsample=logits``), or the argmax at the network's resolution resampled by nearest neighbour
        (``mask``); and, when ``confidence``, the confidence's rows alike."""
        rows, cols = self._resampling_maps(height, width)
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

    def _resampling_maps(self, height: int, width: int) -> tuple[AxisMap, AxisMap]:
        """Row and column maps to the output's pixels (cached per size): from the network's logits for
        ``upsample=logits``; nearest neighbour from the network's resolution for ``mask``."""
        key = (height, width)
        if key not in self._maps:
            net_height, net_width = self.stages.input_size
            if self.stages.upsample == "mask":
                self._maps[key] = (nearest_map(net_height, height), nearest_map(net_width, width))
            else:
                source_rows, source_cols = self.source_maps
                self._maps[key] = (
                    compose(source_rows, bilinear_map(net_height, height, align_corners=False)),
                    compose(source_cols, bilinear_map(net_width, width, align_corners=False)),
                )
            if len(self._maps) > MAX_CACHED_SIZES:
                self._maps.popitem(last=False)
        return self._maps[key]
