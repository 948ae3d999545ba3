"""The real-time inference core: uint8 image in, trainId mask / colour image / overlay out. No ROS imports.

>>> seg = Segmenter("liteseg-mobilenetv2.pt", input_size=(360, 640))
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

import logging
import os
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from liteseg_ros.class_map import ClassMap, LogitMerge, load_class_map
from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.arguments import (  # noqa: F401  (resolve_precision, validate_image: public names here)
    ENCODINGS,
    PRECISIONS,
    as_tensor,
    check_input_size,
    check_output_size,
    check_threads,
    resolve_device,
    resolve_precision,
    single_torch_thread,
    small_probe,
    validate_image,
    wanted_outputs,
)
from liteseg_ros.inference.bands import BandPool
from liteseg_ros.inference.confidence import ConfidenceRows
from liteseg_ros.inference.cuda import CudaPipeline
from liteseg_ros.inference.optimize import OptimizeOptions, prepare_network, resolve_optimize, warmed_up
from liteseg_ros.inference.pipeline import PipelineStages, SegmentationResult
from liteseg_ros.inference.quantized import QuantizedModel
from liteseg_ros.inference.resampling import AxisMap, bilinear_map, compose, identity_map, nearest_map
from liteseg_ros.inference.resize_argmax import ResizeArgmax
from liteseg_ros.inference.sources import (
    load_source,
    log_quantized_report,
    quantized_options,
    quantized_settings,
)
from liteseg_ros.inference.stages import (
    NearestBands,
    PreUpsampleLogits,
    image_to_batch,
    normalization_constants,
    opencv_blend,
    opencv_blend_is_exact,
    rgb_view,
)
from liteseg_ros.labels import default_class_set
from liteseg_ros.model import LiteSeg
from liteseg_ros.outputs import OUTPUTS

LOG = logging.getLogger(__name__)

UPSAMPLE_MODES = ("logits", "mask")
MAX_CACHED_SIZES = 4  # image sizes whose resampling maps are kept
MAX_CLASSES = 255  # trainIds 0..254 fit the uint8 mask (resize_argmax uses 255 internally)


class Segmenter:
    """Runs a LiteSeg network on single images; see the module docstring.

    Args:
        model_or_checkpoint: a network (``x -> logits``, e.g. LiteSeg), a weights file for ``load_weights`` or
            an INT8 model (``.onnx``, from liteseg-quantize; CPU only, its own input size); a file's
            metadata (mean/std, class set) sets the normalisation and classes, a bare network is ImageNet-normalised.
        device: ``auto`` (CUDA when present, else CPU with a warning), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto`` (fp16 on CUDA; on the CPU bf16 where it is native and OpenVINO is installed,
            else fp32; the log says which and why), ``fp32``, ``fp16`` or ``bf16``.
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
                 precision: str = "auto", input_size: tuple[int, int] = (360, 640), overlay_alpha: float = 0.5,
                 upsample: str = "logits", optimize: Any = "auto", backbone: str | None = None,
                 threads: int | None = None, postprocess_threads: int | None = None, output_size: Any = None,
                 class_map: str | os.PathLike | ClassMap | None = None):
        """Load the model and prepare its network for ``device`` (see the class docstring)."""
        model, mean, std, model_classes = load_source(model_or_checkpoint, backbone)
        quantized = model if isinstance(model, QuantizedModel) else None
        self._decide_how_to_run(quantized, device, precision, optimize, threads, input_size)
        self.input_size = check_input_size(input_size, None if quantized else model)
        if upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
        self.upsample = upsample
        self.output_size = check_output_size(output_size, self.input_size)
        self.backbone = quantized.backbone if quantized else getattr(getattr(model, "config", None), "backbone",
                                                                      type(model).__name__)
        self._alpha_tensor = torch.zeros((), dtype=torch.float32, device=self._device)
        self.overlay_alpha = overlay_alpha
        cpu = self._device.type == "cpu"
        # On CPU a LiteSeg's final bilinear upsampling is fused with the argmax (stages.ResizeArgmax).
        self._pre_upsample = cpu and isinstance(model, (LiteSeg, QuantizedModel))
        self._bands = BandPool(check_threads(postprocess_threads or self.threads)) if cpu else None
        network, self._source_maps = self._prepare(model)
        network = self._set_classes(network, model_classes, class_map)
        scale, shift = normalization_constants(tuple(mean), tuple(std), self._device)
        self.stages = PipelineStages(
            network=network, input_size=self.input_size, dtype=self._input_dtype,
            channels_last=self.options.channels_last,
            scale=scale, shift=shift, palette=torch.from_numpy(self.classes.palette()).to(self._device),
            alpha=self._alpha_tensor, upsample=upsample, float_resize=self._device.type == "cuda",
            output_size=self.output_size,
        )
        self._maps: OrderedDict[tuple[int, int], tuple[AxisMap, AxisMap]] = OrderedDict()
        self._cuda = CudaPipeline(self.stages, self._device, self.options) if self._device.type == "cuda" else None
        why = f" ({self.precision_reason})" if self.precision_reason else ""
        LOG.info("segmenter ready: %s%s", self.description, why)

    def _decide_how_to_run(self, quantized: QuantizedModel | None, device: str, precision: str, optimize: Any,
                           threads: int | None, input_size: Any) -> None:
        """Set the device, threads, precision (with its reason) and optimisations asked for."""
        if quantized is not None:
            device = quantized_settings(quantized, device, precision, input_size)
        self._device = resolve_device(device)
        self.threads = check_threads(threads)
        if threads and self._device.type == "cpu":  # the TorchScript/eager runners use torch's own threads
            torch.set_num_threads(self.threads)
        if quantized is None:
            self._precision, self._dtype, self.precision_reason = resolve_precision(precision, self._device, optimize)
            self.options: OptimizeOptions = resolve_optimize(optimize, self._device, self._dtype)
        else:
            self._precision, self._dtype, self.precision_reason = "int8", torch.float32, ""
            self.options = quantized_options(optimize)

    @classmethod
    def from_weights(cls, path: str | os.PathLike, *, backbone: str | None = None, **options: Any) -> "Segmenter":
        """A Segmenter for a weights file (ours or the authors'), normalising with the file's own mean/std.

        ``backbone`` refuses a file of another backbone; ``options`` are the constructor's keywords (device,
        precision, input_size, ...).
        """
        return cls(path, backbone=backbone, **options)

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
        return str(self._device)

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def overlay_alpha(self) -> float:
        return self._overlay_alpha

    @overlay_alpha.setter
    def overlay_alpha(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"overlay_alpha must be a number in [0, 1], got {value!r}")
        self._overlay_alpha = float(value)
        self._alpha_tensor.fill_(self._overlay_alpha)
        self._opencv_blend = opencv_blend_is_exact(self._overlay_alpha)  # same bytes, 7x faster on the CPU

    @property
    def description(self) -> str:
        """E.g. ``mobilenetv2 fp16 cuda:0 360x640 (bn-folded, channels-last, cuda-graph)``."""
        tags = self.options.tags()
        suffix = f" ({', '.join(tags)})" if tags else " (eager)"
        return f"{self.backbone} {self._precision} {self.device} {self.input_size[0]}x{self.input_size[1]}{suffix}"

    @property
    def network(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The optimised network as ``segment`` runs it: ``x -> logits``, x like :meth:`example_input`.

        On CPU a LiteSeg returns its logits before the final bilinear upsampling, which ``segment`` fuses with the
        argmax.
        """
        return self.stages.network

    def example_input(self, seed: int = 0) -> torch.Tensor:
        """A random network input of the deployed shape, dtype, device and memory format."""
        memory_format = torch.channels_last if self.options.channels_last else torch.contiguous_format
        x = torch.randn(1, 3, *self.input_size, generator=torch.Generator().manual_seed(seed))
        return x.to(device=self._device, dtype=self._input_dtype).contiguous(memory_format=memory_format)

    @property
    def _input_dtype(self) -> torch.dtype:
        """The network input's dtype: the precision's, except for the ONNX runtimes, which take fp32."""
        return torch.float32 if self.options.openvino or self._precision == "int8" else self._dtype

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
        if self._cuda is not None:
            result = self._cuda.run(pixels, encoding, wanted, start)
        else:
            with torch.inference_mode():
                result = self._run_cpu(pixels, encoding, wanted, start)
        result.timings["total"] = time.perf_counter() - start
        return result

    seg = segment  # the name of releases before 0.2; kept for existing code

    def _run_cpu(self, pixels: np.ndarray, encoding: str, wanted: frozenset[str], start: float) -> SegmentationResult:
        # Pre/post-processing run in row bands on the band pool's threads, each band's torch ops on one thread:
        # torch's own intra-op threads would stall in OpenMP barriers when another process holds a core.
        image = as_tensor(pixels)
        with single_torch_thread():
            network_input = self.stages.network_input(image_to_batch(image, encoding), self._bands)
        preprocessed = time.perf_counter()
        logits = self.stages.network(network_input)[0]
        inferred = time.perf_counter()
        with single_torch_thread():
            result = self._postprocess(logits, image, encoding, wanted)
        result.timings.update(
            preprocess=preprocessed - start,
            inference=inferred - preprocessed,
            postprocess=time.perf_counter() - inferred,
        )
        return result

    def _postprocess(self, logits: torch.Tensor, image: torch.Tensor, encoding: str,
                     wanted: frozenset[str]) -> SegmentationResult:
        """C x h x w network logits -> the wanted outputs at the output size, in row bands (CPU)."""
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
                if overlay is not None and self._opencv_blend:
                    rgb = rgb_view(image[first:end], encoding).contiguous().numpy()
                    opencv_blend(rgb, color[first:end].numpy(), self._overlay_alpha, out=overlay[first:end].numpy())
                elif overlay is not None:
                    overlay[first:end] = self.stages.overlay(image[first:end], encoding, color[first:end])

        self._bands.run(rows, height)
        return SegmentationResult(
            mask=mask.numpy() if "mask" in wanted else None,
            color=color.numpy() if "color" in wanted else None,
            overlay=overlay.numpy() if overlay is not None else None,
            confidence=certainty.numpy() if certainty is not None else None,
        )

    def _class_rows(self, logits: torch.Tensor, height: int, width: int, confidence: bool
                    ) -> tuple[ResizeArgmax | NearestBands, ConfidenceRows | NearestBands | None]:
        """The class ids at the output resolution, computable band by band: the CPU fusion of resize and argmax
        (``logits``), or the argmax at the network's resolution resampled by nearest neighbour (``mask``); and,
        when ``confidence``, the confidence's rows alike."""
        rows, cols = self._resampling_maps(height, width)
        if self.upsample == "logits":
            classes = ResizeArgmax(logits, rows, cols, self._bands)
            return classes, ConfidenceRows(classes) if confidence else None
        at_input = ResizeArgmax(logits, *self._source_maps, self._bands)
        confidence_at_input = ConfidenceRows(at_input) if confidence else None
        classes = torch.empty(self.input_size, dtype=torch.uint8)
        certainty = torch.empty(self.input_size, dtype=torch.uint8)

        def input_rows(first: int, end: int) -> None:
            classes[first:end] = at_input.band(first, end)
            if confidence_at_input is not None:
                certainty[first:end] = confidence_at_input.band(first, end, classes[first:end])

        self._bands.run(input_rows, self.input_size[0])
        return (NearestBands(classes, rows, cols),
                NearestBands(certainty, rows, cols) if confidence else None)

    def _resampling_maps(self, height: int, width: int) -> tuple[AxisMap, AxisMap]:
        """Row and column maps to the image's pixels (cached per image size): from the network's logits for
        ``upsample="logits"``; nearest neighbour from the network's resolution for ``"mask"``."""
        key = (height, width)
        if key not in self._maps:
            net_height, net_width = self.input_size
            if self.upsample == "mask":
                self._maps[key] = (nearest_map(net_height, height), nearest_map(net_width, width))
            else:
                source_rows, source_cols = self._source_maps
                self._maps[key] = (
                    compose(source_rows, bilinear_map(net_height, height, align_corners=False)),
                    compose(source_cols, bilinear_map(net_width, width, align_corners=False)),
                )
            if len(self._maps) > MAX_CACHED_SIZES:
                self._maps.popitem(last=False)
        return self._maps[key]

    def _prepare(self, model: nn.Module | QuantizedModel) -> tuple[Any, tuple[AxisMap, AxisMap]]:
        """The optimised network and the maps from its output to the network input's resolution."""
        height, width = self.input_size
        example = self.example_input()
        if isinstance(model, QuantizedModel):
            chosen = "openvino" if self.options.openvino else "onnxruntime" if self.options.onnxruntime else None
            network, runtime = model.runner(self.threads, chosen)
            self.options = replace(self.options, openvino=runtime == "openvino", onnxruntime=runtime == "onnxruntime")
            network = warmed_up(network, example, self.options.warmup)
        else:
            network = self._optimised_network(model, example)
        with torch.inference_mode():
            classes, low_height, low_width = network(example).shape[1:]
        if classes > MAX_CLASSES:
            raise ConfigError(f"the network predicts {classes} classes; the uint8 mask holds at most {MAX_CLASSES}")
        self._network_classes = int(classes)
        if not self._pre_upsample:
            return network, (identity_map(height), identity_map(width))
        if self._precision == "int8":
            log_quantized_report(model, self.options)
        return network, (
            bilinear_map(low_height, height, align_corners=True),
            bilinear_map(low_width, width, align_corners=True),
        )

    def _optimised_network(self, model: nn.Module, example: torch.Tensor) -> Any:
        """The network with ``self.options`` applied; an optimisation that fell back is dropped from them."""
        probe = small_probe(model, self._device) if self.options.fold_bn else None
        network_module = PreUpsampleLogits(model) if self._pre_upsample else model
        options = replace(self.options, warmup=1) if self.options.cuda_graphs else self.options  # the capture warms up
        network, applied = prepare_network(network_module, options, example, probe_input=probe,
                                           precision=self._precision)
        if self.options.openvino and not applied.openvino and self._precision == "bf16":
            self._precision, self._dtype = "fp32", torch.float32  # its fallback runtimes run fp32
            self.precision_reason = "fp32: OpenVINO, which runs bf16, could not be set up"
        self.options = replace(applied, warmup=self.options.warmup)  # without the optimisations that fell back
        return network
