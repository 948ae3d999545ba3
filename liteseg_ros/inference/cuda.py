"""The Segmenter's GPU path: pinned upload of the uint8 image, everything else on the device, uint8 download.

With ``cuda_graphs`` the device part (normalise, resize, network, resize + argmax, palette, blend) is one CUDA
graph per (image shape, encoding, outputs). Written for CUDA but not run on a GPU in this project's
development (no GPU was available; see docs/benchmarks.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from liteseg_ros.inference.optimize import CudaGraphRunner
from liteseg_ros.inference.stages import blend, image_to_batch, nearest_map, rgb_view

if TYPE_CHECKING:
    from liteseg_ros.inference.segmenter import SegmentationResult, Segmenter

OUTPUTS = ("mask", "color", "overlay")
MAX_CACHED_SHAPES = 4


class CudaPipeline:
    """Runs ``Segmenter.seg`` on CUDA (see the module docstring)."""

    def __init__(self, segmenter: Segmenter):
        self.segmenter = segmenter
        self.graphs: OrderedDict[tuple, CudaGraphRunner] = OrderedDict()
        self.buffers: OrderedDict[tuple, dict[str, torch.Tensor]] = OrderedDict()
        self.nearest: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def run(self, pixels: np.ndarray, encoding: str, wanted: frozenset[str], start: float) -> SegmentationResult:
        key = (pixels.shape, encoding, wanted)
        buffers = self._buffers(key, pixels)
        np.copyto(buffers["host_image"].numpy(), pixels)
        buffers["device_image"].copy_(buffers["host_image"], non_blocking=True)
        preprocessed = time.perf_counter()
        with torch.inference_mode():
            if self.segmenter.options.cuda_graphs:
                outputs = self._graph(key, buffers["device_image"], encoding, wanted)()
            else:
                outputs = self.device_pipeline(buffers["device_image"], encoding, wanted)
        torch.cuda.current_stream().synchronize()
        inferred = time.perf_counter()
        from liteseg_ros.inference.segmenter import SegmentationResult

        result = SegmentationResult()
        for name in OUTPUTS:
            if name in wanted:
                buffers[name].copy_(outputs[name], non_blocking=True)
        torch.cuda.current_stream().synchronize()
        for name in wanted:
            setattr(result, name, buffers[name].numpy().copy())
        result.timings.update(preprocess=preprocessed - start, inference=inferred - preprocessed,
                              postprocess=time.perf_counter() - inferred)
        return result

    def device_pipeline(self, image: torch.Tensor, encoding: str, wanted: frozenset[str]) -> dict[str, torch.Tensor]:
        """H x W x C uint8 on the device -> the wanted uint8 outputs on the device (capturable: no host syncs)."""
        seg = self.segmenter
        height, width = image.shape[:2]
        logits = seg._network(seg._network_input(image_to_batch(image, encoding)))
        if seg.upsample == "logits":
            if tuple(logits.shape[2:]) != (height, width):
                logits = F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
            classes = logits[0].argmax(dim=0)
        else:
            rows, cols = self._nearest_indices(height, width)
            classes = logits[0].argmax(dim=0).index_select(0, rows).index_select(1, cols)
        outputs = {"mask": classes.to(torch.uint8)}
        if wanted & {"color", "overlay"}:
            outputs["color"] = seg._palette.index_select(0, classes.reshape(-1)).view(height, width, 3)
            if "overlay" in wanted:
                outputs["overlay"] = blend(rgb_view(image, encoding), outputs["color"], seg._alpha_tensor)
        return outputs

    def _nearest_indices(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Device index tensors of the nearest-neighbour mask resize (made before any graph capture)."""
        key = (height, width)
        if key not in self.nearest:
            device, (net_height, net_width) = self.segmenter._device, self.segmenter.input_size
            self.nearest[key] = (nearest_map(net_height, height).index[:, 0].to(device),
                                 nearest_map(net_width, width).index[:, 0].to(device))
        return self.nearest[key]

    def _graph(self, key: tuple, device_image: torch.Tensor, encoding: str, wanted: frozenset[str]) -> CudaGraphRunner:
        if key not in self.graphs:
            if self.segmenter.upsample == "mask":
                self._nearest_indices(*device_image.shape[:2])
            # the upload buffer is the graph's static input (both are cached under the same key)
            self.graphs[key] = CudaGraphRunner(lambda image: self.device_pipeline(image, encoding, wanted),
                                               [device_image], warmup=max(self.segmenter.options.warmup, 1),
                                               copy_inputs=False)
            if len(self.graphs) > MAX_CACHED_SHAPES:
                self.graphs.popitem(last=False)
        return self.graphs[key]

    def _buffers(self, key: tuple, pixels: np.ndarray) -> dict[str, torch.Tensor]:
        if key not in self.buffers:
            height, width = pixels.shape[:2]
            device = self.segmenter._device
            self.buffers[key] = {
                "host_image": torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True),
                "device_image": torch.empty(pixels.shape, dtype=torch.uint8, device=device),
                "mask": torch.empty((height, width), dtype=torch.uint8, pin_memory=True),
                "color": torch.empty((height, width, 3), dtype=torch.uint8, pin_memory=True),
                "overlay": torch.empty((height, width, 3), dtype=torch.uint8, pin_memory=True),
            }
            if len(self.buffers) > MAX_CACHED_SHAPES:
                self.buffers.popitem(last=False)
        return self.buffers[key]
