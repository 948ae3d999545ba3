"""The Segmenter's GPU path: pinned upload of the uint8 image, everything else on the device (:meth:`CudaPath.infer`),
uint8 download (:meth:`CudaPath.finish`).

With ``cuda_graphs`` the device part (the stages of :class:`~liteseg_ros.inference.stages.PipelineStages`: normalise,
resize, network, resize + argmax, palette, blend) is one CUDA graph per (image shape, encoding, outputs). GPU
figures, where measured: docs/benchmarks.md.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from typing import Callable

import numpy as np
import torch

from liteseg_ros.errors import first_line
from liteseg_ros.inference.cpu import Inference
from liteseg_ros.inference.cuda_graphs import CudaGraphRunner
from liteseg_ros.inference.optimize import OptimizeOptions
from liteseg_ros.inference.resampling import nearest_map
from liteseg_ros.inference.stages import PipelineStages, SegmentationResult
from liteseg_ros.logs import get_logger
from liteseg_ros.outputs import OUTPUTS

LOG = get_logger(__name__)
MAX_CACHED_SHAPES = 4


class CudaPath:
    """Runs a Segmenter's :class:`PipelineStages` on CUDA: the transfers, and the CUDA graphs (see the module
    docstring). A graph that cannot be captured falls back to running the stages eagerly, with a warning, and
    ``on_fallback(reason)`` (the Segmenter's new plan)."""

    def __init__(self, stages: PipelineStages, device: torch.device, options: OptimizeOptions,
                 on_fallback: Callable[[str], None] = lambda reason: None, overlay_alpha: float = 0.5):
        self.stages, self.device, self.options, self.on_fallback = stages, device, options, on_fallback
        self.use_graphs = options.cuda_graphs
        self.alpha = torch.zeros((), dtype=torch.float32, device=device)  # captured by the graphs, set in place
        self.overlay_alpha = overlay_alpha
        self.graphs: OrderedDict[tuple, CudaGraphRunner] = OrderedDict()
        self.buffers: OrderedDict[tuple, dict[str, torch.Tensor]] = OrderedDict()
        self.nearest: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def overlay_alpha(self) -> float:
        return float(self.alpha)

    @overlay_alpha.setter
    def overlay_alpha(self, value: float) -> None:
        self.alpha.fill_(float(value))

    def infer(self, pixels: np.ndarray, encoding: str, wanted: frozenset[str], start: float,
              sizes: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None)) -> Inference:
        """Upload the checked ``pixels``, run every stage on the device and download the wanted outputs (so that
        the next frame may start while :meth:`finish` hands these over); ``start`` is when the frame's timing
        began; ``sizes`` the frame's output size (None: the Segmenter's) and labels' size (None: none)."""
        shape = sizes[0] or self.stages.output_shape(*pixels.shape[:2])
        key = (pixels.shape, encoding, wanted, shape, sizes[1])
        buffers = self._buffers(key, pixels, shape, sizes[1])
        np.copyto(buffers["host_image"].numpy(), pixels)
        buffers["device_image"].copy_(buffers["host_image"], non_blocking=True)
        preprocessed = time.perf_counter()
        downloads = [name for name in OUTPUTS if name in wanted]
        if sizes[1] is not None:
            downloads += ["labels", "label_confidence"] if "confidence" in wanted else ["labels"]
        with torch.inference_mode():
            outputs = self._device_outputs(key, buffers["device_image"], encoding, wanted)
            torch.cuda.current_stream().synchronize()
            inferred = time.perf_counter()
            for name in downloads:
                buffers[name].copy_(outputs[name], non_blocking=True)
            torch.cuda.current_stream().synchronize()
        downloaded = {name: buffers[name].numpy().copy() for name in downloads}
        timings = {"preprocess": preprocessed - start, "inference": inferred - preprocessed,
                   "download": time.perf_counter() - inferred}
        return Inference(buffers["device_image"], encoding, wanted, downloaded, timings, None, *sizes)

    def finish(self, inference: Inference, out: dict[str, np.ndarray] | None = None) -> SegmentationResult:
        """The downloaded outputs (copied into ``out``'s arrays where given)."""
        started, out, result = time.perf_counter(), out or {}, SegmentationResult()
        for name, array in inference.logits.items():
            if name in out:
                np.copyto(out[name], array)
            setattr(result, name, out.get(name, array))
        result.timings.update(inference.timings)
        result.timings["postprocess"] = result.timings.pop("download") + time.perf_counter() - started
        return result

    def _device_outputs(self, key: tuple, image: torch.Tensor, encoding: str,
                        wanted: frozenset[str]) -> dict[str, torch.Tensor]:
        shape, label_shape = key[3], key[4]
        nearest = self._nearest_indices(*shape) if self.stages.upsample == "mask" else None
        labels = None
        if label_shape is not None:
            labels = (label_shape, self._nearest_indices(*label_shape) if self.stages.upsample == "mask" else None)
        run = functools.partial(self.stages.run, encoding=encoding, wanted=wanted, alpha=self.alpha, nearest=nearest,
                                shape=shape, labels=labels)
        if self.use_graphs:
            try:
                return self._graph(key, image, run)()
            except Exception as error:  # an optimisation must never stop the node
                LOG.warning("optimize: cuda_graphs could not be set up (%s); running the stages eagerly",
                            first_line(error))
                self.use_graphs = False
                self.on_fallback(first_line(error))
        return run(image)

    def _nearest_indices(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Device index tensors of the nearest-neighbour mask resize (made before any graph capture)."""
        key = (height, width)
        if key not in self.nearest:
            net_height, net_width = self.stages.input_size
            self.nearest[key] = (nearest_map(net_height, height).index[:, 0].to(self.device),
                                 nearest_map(net_width, width).index[:, 0].to(self.device))
        return self.nearest[key]

    def _graph(self, key: tuple, device_image: torch.Tensor, run: Callable[[torch.Tensor], dict]
               ) -> CudaGraphRunner:
        if key not in self.graphs:
            # the upload buffer is the graph's static input (both are cached under the same key)
            self.graphs[key] = CudaGraphRunner(run, [device_image], warmup=max(self.options.warmup, 1),
                                               copy_inputs=False)
            if len(self.graphs) > MAX_CACHED_SHAPES:
                self.graphs.popitem(last=False)
        return self.graphs[key]

    def _buffers(self, key: tuple, pixels: np.ndarray, shape: tuple[int, int],
                 label_shape: tuple[int, int] | None) -> dict[str, torch.Tensor]:
        if key not in self.buffers:
            height, width = shape
            self.buffers[key] = {
                "host_image": torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True),
                "device_image": torch.empty(pixels.shape, dtype=torch.uint8, device=self.device),
                "mask": torch.empty((height, width), dtype=torch.uint8, pin_memory=True),
                "color": torch.empty((height, width, 3), dtype=torch.uint8, pin_memory=True),
                "overlay": torch.empty((height, width, 3), dtype=torch.uint8, pin_memory=True),
                "confidence": torch.empty((height, width), dtype=torch.uint8, pin_memory=True),
            }
            if label_shape is not None:
                self.buffers[key].update({name: torch.empty(label_shape, dtype=torch.uint8, pin_memory=True)
                                          for name in ("labels", "label_confidence")})
            if len(self.buffers) > MAX_CACHED_SHAPES:
                self.buffers.popitem(last=False)
        return self.buffers[key]
