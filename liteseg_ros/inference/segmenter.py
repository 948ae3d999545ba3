"""The real-time inference core: uint8 image in, trainId mask / colour image / overlay out. No ROS imports.

>>> seg = Segmenter("liteseg-mobilenetv2.pt")  # input_size=(360, 640), the bundled models'
>>> res = seg.segment(image, encoding="rgb8", outputs=("mask", "overlay"))
>>> res.mask, res.overlay, res.timings["total"], seg.classes.names

The masks hold the ids of the model's class set (:class:`~liteseg_ros.classes.ClassSet`, read from the weights
file), or of a class map's merged classes (``class_map=``, :mod:`liteseg_ros.class_map`); the colour mask uses
its colours, and ``confidence`` is the probability of each pixel's class x 255.

The image is resized to ``input_size`` for the network (bilinear, half-pixel centres, antialiased when
shrinking) and the prediction mapped back to the image's resolution: ``upsample="logits"`` resizes the class
logits bilinearly and takes the argmax; ``upsample="mask"`` takes the argmax at the network's resolution and
resizes the mask by nearest neighbour (faster for large images, agreement in docs/benchmarks.md). ``output_size``
puts the outputs at another resolution (the network's, or any) instead of the image's.
A Segmenter is not thread-safe: call ``segment`` from one thread at a time. On the CPU the network runs on
``threads`` threads in its runtime, and the pre- and post-processing in row bands on as many threads
(:mod:`liteseg_ros.inference.bands`: dynamic bands, so a core taken by another process slows a frame down a
little instead of stalling it). A weights file ending in ``.onnx`` is an INT8 model made by ``liteseg-quantize``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from liteseg_ros.class_map import ClassMap, LogitMerge, load_class_map
from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.bands import BandPool
from liteseg_ros.inference.cpu import CpuPipeline
from liteseg_ros.inference.cuda import CudaPipeline
from liteseg_ros.inference.networks import build_network, example_input
from liteseg_ros.inference.optimize import OptimizeOptions
from liteseg_ros.inference.pipeline import PipelineStages, SegmentationResult
from liteseg_ros.inference.plan import Machine, Plan, Request, make_plan
from liteseg_ros.inference.quantized import QuantizedModel, is_quantized_model
from liteseg_ros.inference.resampling import AxisMap, bilinear_map, identity_map
from liteseg_ros.inference.sources import check_int8_input_size, load_source, log_quantized_report
from liteseg_ros.inference.stages import PreUpsampleLogits, normalization_constants, opencv_blend_is_exact
from liteseg_ros.inference.validation import check_input_size, check_output_size, validate_image, wanted_outputs
from liteseg_ros.labels import default_class_set
from liteseg_ros.logs import get_logger
from liteseg_ros.model import LiteSeg
from liteseg_ros.model.bundled import DEFAULT_INPUT_SIZE
from liteseg_ros.outputs import OUTPUTS

LOG = get_logger(__name__)

UPSAMPLE_MODES = ("logits", "mask")
MAX_CLASSES = 255  # trainIds 0..254 fit the uint8 mask (resize_argmax uses 255 internally)


def plan_for(source: nn.Module | str | os.PathLike, *, device: str = "auto", precision: str = "auto",
             optimize: Any = "auto", threads: int | None = None, postprocess_threads: int | None = None,
             machine: Machine | None = None, **other_keywords: Any) -> Plan:
    """The plan a Segmenter of ``source`` built with these keywords would carry out on ``machine`` (default: this
    one), without loading the network: what ``liteseg-info --plan`` prints. Other Segmenter keywords are ignored."""
    int8_model = Path(source).name if isinstance(source, (str, os.PathLike)) and is_quantized_model(source) else None
    request = Request(device=device, precision=precision, optimize=optimize, threads=threads,
                      postprocess_threads=postprocess_threads, int8_model=int8_model)
    return make_plan(request, machine or Machine.detect())


class Segmenter:
    """Runs a LiteSeg network on single images; see the module docstring.

    Args:
        model_or_checkpoint: a network (``x -> logits``, e.g. LiteSeg), a weights file for ``load_weights`` or
            an INT8 model (``.onnx``, from liteseg-quantize; CPU only, its own input size); a file's
            metadata (mean/std, class set) sets the normalisation and classes, a bare network is ImageNet-normalised.
        device: ``auto`` (CUDA when present, else CPU with a warning), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto`` (:data:`~liteseg_ros.inference.plan.AUTO_PRECISION_RULE`; the plan says which and
            why), ``fp32``, ``fp16`` or ``bf16``.
        input_size: (height, width) of the network input; must suit the backbone.
        overlay_alpha: weight of the colour image in the overlay, in [0, 1] (settable later).
        upsample: ``logits`` or ``mask`` (see the module docstring).
        optimize: ``auto``, ``none``, an :class:`OptimizeOptions`, a mapping or a comma-separated list.
        backbone: with a weights file, refuse one of another backbone (IncompatibleWeightsError).
        threads: CPU threads for the network and the pre/post-processing (default: torch's count; a number
            also sets torch's, process-wide).
        postprocess_threads: CPU threads for the pre/post-processing alone (default: ``threads``; 1 runs
            them in one piece on the calling thread).
        output_size: (height, width) of the outputs: None (the image's resolution), ``"input"`` (the
            network's input size) or two integers. Less detail for less CPU and bandwidth.
        class_map: a class map file (or :class:`ClassMap`) merging the model's classes into the published
            ones (:mod:`liteseg_ros.class_map`); None publishes the model's own class set.

    Raises ClassSetError for a class map that does not fit the model, ConfigError (InputSizeError for a size
    the backbone cannot take) and WeightsError for bad weights.
    """

    def __init__(self, model_or_checkpoint: nn.Module | str | os.PathLike, *, device: str = "auto",
                 precision: str = "auto", input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
                 overlay_alpha: float = 0.5, upsample: str = "logits", optimize: Any = "auto",
                 backbone: str | None = None, threads: int | None = None, postprocess_threads: int | None = None,
                 output_size: Any = None, class_map: str | os.PathLike | ClassMap | None = None,
                 machine: Machine | None = None):
        """Load the model, plan how to run it on ``machine`` (default: this one) and carry the plan out."""
        model, mean, std, model_classes = load_source(model_or_checkpoint, backbone)
        quantized = model if isinstance(model, QuantizedModel) else None
        self.input_size = check_input_size(input_size, None if quantized else model)
        if quantized is not None:
            check_int8_input_size(quantized, self.input_size)
        if upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
        self.upsample = upsample
        self.output_size = check_output_size(output_size, self.input_size)
        self.plan: Plan = plan_for(quantized.path if quantized else model, device=device, precision=precision,
                                   optimize=optimize, threads=threads, postprocess_threads=postprocess_threads,
                                   machine=machine)
        for warning in self.plan.warnings:
            LOG.warning("%s", warning)
        LOG.info("planned: %s; preparing the network", self.plan.summary())
        if threads and not self.plan.is_cuda:  # the TorchScript/eager runners use torch's own threads
            torch.set_num_threads(self.plan.threads)
        self.backbone = quantized.backbone if quantized else getattr(getattr(model, "config", None), "backbone",
                                                                      type(model).__name__)
        self._device = torch.device(self.plan.device)
        # On CPU a LiteSeg's final bilinear upsampling is fused with the argmax (cpu.CpuPipeline).
        self._pre_upsample = not self.plan.is_cuda and isinstance(model, (LiteSeg, QuantizedModel))
        network, source_maps = self._network(model)
        network = self._set_classes(network, model_classes, class_map)
        self.stages = self._stages(network, mean, std)
        self._path: CpuPipeline | CudaPipeline = (
            CudaPipeline(self.stages, self._device, self.plan.options, self._cuda_graphs_failed) if self.plan.is_cuda
            else CpuPipeline(self.stages, BandPool(self.plan.postprocess_threads), source_maps))
        self.overlay_alpha = overlay_alpha
        LOG.info("segmenter ready: %s", self.description)
        LOG.info("plan:\n%s", self.plan.describe())

    @classmethod
    def from_weights(cls, path: str | os.PathLike, *, backbone: str | None = None, **options: Any) -> "Segmenter":
        """A Segmenter for a weights file (ours or the authors'): the constructor with a path, spelled out.

        ``backbone`` refuses a file of another backbone; ``options`` are the constructor's keywords (device,
        precision, input_size, ...).
        """
        return cls(path, backbone=backbone, **options)

    def _stages(self, network: Any, mean: tuple, std: tuple) -> PipelineStages:
        scale, shift = normalization_constants(tuple(mean), tuple(std), self._device)
        self._alpha_tensor = torch.zeros((), dtype=torch.float32, device=self._device)
        return PipelineStages(
            network=network, input_size=self.input_size, dtype=self.plan.input_dtype,
            channels_last=self.plan.options.channels_last, scale=scale, shift=shift,
            palette=torch.from_numpy(self.classes.palette()).to(self._device), alpha=self._alpha_tensor,
            upsample=self.upsample, float_resize=self.plan.is_cuda, output_size=self.output_size,
        )

    def _cuda_graphs_failed(self, reason: str) -> None:
        self.plan = self.plan.without("cuda_graphs", reason)

    def _set_classes(self, network: Any, model_classes: ClassSet | None, class_map: Any) -> Any:
        """Set ``model_classes`` (the network's), ``class_map`` and ``classes`` (the published ones); return the
        network, merging its logits when there is a class map."""
        count = self._network_classes  # probed by _prepare
        self.model_classes = model_classes or default_class_set(count)
        if len(self.model_classes) != count:
            raise ConfigError(f"the network predicts {count} classes but its class set names "
                              f"{len(self.model_classes)}")
        if class_map is not None and not isinstance(class_map, ClassMap):
            class_map = load_class_map(class_map, self.model_classes)
        elif class_map is not None and class_map.source != self.model_classes:
            raise ConfigError("the class map was made for another class set than this model's")
        self.class_map: ClassMap | None = class_map
        self.classes: ClassSet = class_map.classes if class_map else self.model_classes
        if class_map is None:
            return network
        merge = LogitMerge(class_map.groups, self._device)
        LOG.info("class map %s: %s", class_map.path, class_map.describe())
        return lambda x: merge(network(x))

    # ------------------------------------------------------------------------------------------- properties
    @property
    def device(self) -> str:
        return self.plan.device

    @property
    def precision(self) -> str:
        return self.plan.precision

    @property
    def options(self) -> OptimizeOptions:
        """The optimisations in effect (the plan's)."""
        return self.plan.options

    @property
    def threads(self) -> int:
        return self.plan.threads

    @property
    def overlay_alpha(self) -> float:
        return self._overlay_alpha

    @overlay_alpha.setter
    def overlay_alpha(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"overlay_alpha must be a number in [0, 1], got {value!r}")
        self._overlay_alpha = float(value)
        self._alpha_tensor.fill_(self._overlay_alpha)
        if isinstance(self._path, CpuPipeline):
            self._path.overlay_alpha = self._overlay_alpha
            self._path.opencv_blend = opencv_blend_is_exact(self._overlay_alpha)  # same bytes, 7x faster

    @property
    def description(self) -> str:
        """E.g. ``mobilenetv2 fp16 cuda:0 360x640 (bn-folded, channels-last, cuda-graph)``."""
        tags = self.plan.options.tags()
        suffix = f" ({', '.join(tags)})" if tags else " (eager)"
        return f"{self.backbone} {self.precision} {self.device} {self.input_size[0]}x{self.input_size[1]}{suffix}"

    @property
    def network(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The optimised network as ``segment`` runs it: ``x -> logits``, x like :meth:`example_input`.

        On CPU a LiteSeg returns its logits before the final bilinear upsampling, which ``segment`` fuses with the
        argmax.
        """
        return self.stages.network

    def example_input(self, seed: int = 0) -> torch.Tensor:
        """A random network input of the deployed shape, dtype, device and memory format."""
        return example_input(self.plan, self.input_size, seed)

    # ---------------------------------------------------------------------------------------------- running
    def segment(
        self, image: np.ndarray, encoding: str = "rgb8", outputs: Iterable[str] = OUTPUTS
    ) -> SegmentationResult:
        """Segment one H x W x 3 (rgb8, bgr8) or H x W / H x W x 1 (mono8) uint8 image.

        Raises ImageError for an image of the wrong type, dtype, shape or size, ConfigError for unknown outputs.
        """
        start = time.perf_counter()
        wanted = wanted_outputs(outputs)
        pixels = validate_image(image, encoding)
        result = self._path.run(pixels, encoding, wanted, start)
        result.timings["total"] = time.perf_counter() - start
        return result

    seg = segment  # the name of releases before 0.2; kept for existing code

    def _network(self, model: nn.Module | QuantizedModel) -> tuple[Any, tuple[AxisMap, AxisMap]]:
        """The planned network (the plan updated with any fallback taken) and the maps from its output to the
        network input's resolution."""
        module = PreUpsampleLogits(model) if self._pre_upsample and not isinstance(model, QuantizedModel) else model
        network, self.plan = build_network(module, self.plan, self.input_size)
        if isinstance(model, QuantizedModel):
            log_quantized_report(model, self.plan.runner)
        with torch.inference_mode():
            classes, low_height, low_width = network(self.example_input()).shape[1:]
        if classes > MAX_CLASSES:
            raise ConfigError(f"the network predicts {classes} classes; the uint8 mask holds at most {MAX_CLASSES}")
        self._network_classes = int(classes)
        height, width = self.input_size
        if not self._pre_upsample:
            return network, (identity_map(height), identity_map(width))
        return network, (bilinear_map(low_height, height, align_corners=True),
                         bilinear_map(low_width, width, align_corners=True))
