"""The real-time inference core: uint8 image in, class mask / colour image / overlay / confidence out. No ROS.

>>> seg = Segmenter("liteseg-mobilenetv2.pt")  # input_size: the one the weights were trained at
>>> res = seg.segment(image, encoding="rgb8", outputs=("mask", "overlay"))
>>> res.mask, res.overlay, res.timings["total"], seg.classes.names

The masks hold the ids of the model's class set (:class:`~liteseg_ros.classes.ClassSet`, read from the weights
file), or of a class map's merged classes (``class_map=``, :mod:`liteseg_ros.class_map`); the colour mask uses
its colours, and ``confidence`` is the probability of each pixel's class x 255. ``segment()`` computes
:data:`~liteseg_ros.outputs.DEFAULT_OUTPUTS` (mask, colour, overlay) unless told otherwise: the confidence is a dense
softmax at the output's resolution and costs as much again as the rest of the post-processing (+5 ms at 640x360,
+17 ms at 1280x720 on 2 Xeon cores; docs/benchmarks.md), so it is computed only when asked for.

The image is resized to ``input_size`` for the network (bilinear, half-pixel centres, antialiased when
shrinking) and the prediction mapped back to the image's resolution: ``upsample="logits"`` resizes the class
logits bilinearly and takes the argmax; ``upsample="mask"`` takes the argmax at the network's resolution and
resizes the mask by nearest neighbour (faster for large images, agreement in docs/benchmarks.md). ``output_size``
puts the outputs at another resolution (the network's, or any) instead of the image's.

:meth:`Segmenter.segment` is :meth:`Segmenter.infer` (pre-processing and network) then :meth:`Segmenter.finish`
(post-processing): one thread may run ``infer`` on a frame while another runs ``finish`` on the previous one (the
node overlaps them when frames queue); otherwise a Segmenter is used from one thread at a time. On the CPU the
network runs on ``threads`` threads in its runner, and the pre- and post-processing in row bands on as many
threads (:mod:`liteseg_ros.inference.bands`). A weights file ending in ``.onnx`` is an INT8 model.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from liteseg_ros.class_map import ClassMap, LogitMerge, load_class_map
from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.bands import BandPool
from liteseg_ros.inference.cache import NetworkCache
from liteseg_ros.inference.config import SegmenterConfig, check_overlay_alpha
from liteseg_ros.inference.cpu import CpuPath, Inference
from liteseg_ros.inference.cuda import CudaPath
from liteseg_ros.inference.export import example_input
from liteseg_ros.inference.memory import release_freed_memory
from liteseg_ros.inference.networks import BuiltNetwork, build_network
from liteseg_ros.inference.optimize import OptimizeOptions
from liteseg_ros.inference.plan import Machine, Plan, make_plan
from liteseg_ros.inference.resampling import AxisMap, bilinear_map, identity_map
from liteseg_ros.inference.sources import Source, load_source
from liteseg_ros.inference.stages import PipelineStages, SegmentationResult, normalization_constants
from liteseg_ros.inference.validation import check_frame_size, check_output_size, validate_image, wanted_outputs
from liteseg_ros.labels import default_class_set
from liteseg_ros.logs import get_logger
from liteseg_ros.outputs import DEFAULT_OUTPUTS

LOG = get_logger(__name__)

MAX_CLASSES = 255  # trainIds 0..254 fit the uint8 mask (resize_argmax uses 255 internally)


def network_cache(cache: bool | str | os.PathLike | NetworkCache) -> NetworkCache | None:
    """The network cache a Segmenter uses: True the default folder, a folder, a NetworkCache; False none."""
    if isinstance(cache, NetworkCache):
        return cache
    if cache is True:
        return NetworkCache()
    return NetworkCache(cache) if cache else None


def plan_for(model: nn.Module | str | os.PathLike | Source, config: SegmenterConfig | None = None, *,
             machine: Machine | None = None, **keywords: Any) -> Plan:
    """The plan a Segmenter of ``model`` with ``config`` (or these keywords, as the Segmenter takes them) would carry
    out on ``machine`` (default: this one), without preparing the network: what ``liteseg-info --plan`` prints."""
    config = SegmenterConfig.of(config, **keywords)
    source = model if isinstance(model, Source) else load_source(model, config, network_cache(config.cache))
    return make_plan(source.request, machine or Machine.detect())


class Segmenter:
    """Runs a LiteSeg network on single images; see the module docstring.

    ``config`` (a :class:`~liteseg_ros.inference.config.SegmenterConfig`) says how; keywords of its fields build one
    (or change the one given): ``Segmenter(path, device="cpu", input_size=(360, 640))``.

    Args:
        model_or_checkpoint: a network (``x -> logits``, e.g. LiteSeg), a weights file for ``load_weights`` or
            an INT8 model (``.onnx``, from liteseg-quantize; CPU only, its own input size); a file's
            metadata (mean/std, class set, training size) sets the normalisation, classes and default input size;
            a bare network is ImageNet-normalised.
        device: ``auto`` (CUDA when present, else CPU with a warning), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto`` (:data:`~liteseg_ros.inference.plan.AUTO_PRECISION_RULE`; the plan says which and
            why), ``fp32``, ``fp16`` or ``bf16``.
        input_size: (height, width) of the network input; None: the size the weights were trained at (their
            metadata), else 360x640.
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
        cache: the network cache (:mod:`liteseg_ros.inference.cache`): True its default folder, a folder, or
            False (prepare in a temporary folder, keep nothing).
        calibrate: with ``precision=auto`` on a CPU without native bf16, make an INT8 version of fp32 weights that
            have none from the frames segmented, and switch to it once it passed its check (the node does).
        machine: what this machine offers (default: detected; tests give their own).

    Raises ClassSetError for a class map that does not fit the model, ConfigError (InputSizeError for a size
    the backbone cannot take) and WeightsError for bad weights; TypeError for a keyword that is no option.
    """

    def __init__(self, model_or_checkpoint: nn.Module | str | os.PathLike, config: SegmenterConfig | None = None, *,
                 machine: Machine | None = None, **keywords: Any):
        """Read the source once, plan how to run it on ``machine`` (default: this one), build the network."""
        self.config = config = SegmenterConfig.of(config, **keywords)
        self._cache = network_cache(config.cache)
        source = load_source(model_or_checkpoint, config, self._cache)
        self.input_size, self.upsample, self.backbone = source.input_size, config.upsample, source.backbone
        self.output_size = check_output_size(config.output_size, self.input_size)
        plan = make_plan(source.request, machine or Machine.detect())
        built = self._built_network(source, plan)
        source_maps = self._geometry(built)
        self.model_classes, self.class_map, self.classes = resolve_classes(source.classes, self._class_count,
                                                                           config.class_map)
        self._merge = LogitMerge(self.class_map.groups, self._device) if self.class_map else None
        if self.class_map:
            LOG.info("class map %s: %s", self.class_map.path, self.class_map.describe())
        self.stages = self._stages(self._merged(built.network), source)
        self._path = self._make_path(source_maps, config.overlay_alpha)
        self._switch = built.switch
        release_freed_memory()
        LOG.info("segmenter ready: %s", self.description)
        LOG.info("plan:\n%s", self.plan.describe())

    def _built_network(self, source: Source, plan: Plan) -> BuiltNetwork:
        for warning in plan.warnings:
            LOG.warning("%s", warning)
        height, width = self.input_size
        LOG.info("planned: %s; network input %dx%d (%s); preparing the network", plan.summary(), height, width,
                 source.size_reason)
        if plan.threads and not plan.is_cuda:  # the TorchScript/eager runners use torch's own threads
            torch.set_num_threads(plan.threads)
        self._device = torch.device(plan.device)
        built = build_network(source, plan, self._cache)
        self.plan, self.preparation, self._pre_upsample = built.plan, built.report, built.pre_upsample
        return built

    def _geometry(self, built: BuiltNetwork) -> tuple[AxisMap, AxisMap]:
        """The network's class count, and the maps from its output to the network input's resolution."""
        with torch.inference_mode():
            classes, low_height, low_width = built.network(self.example_input()).shape[1:]
        if classes > MAX_CLASSES:
            raise ConfigError(f"the network predicts {classes} classes; the uint8 mask holds at most {MAX_CLASSES}")
        self._class_count = int(classes)
        height, width = self.input_size
        if not self._pre_upsample:
            return identity_map(height), identity_map(width)
        return (bilinear_map(low_height, height, align_corners=True),
                bilinear_map(low_width, width, align_corners=True))

    def _merged(self, network: Any) -> Any:
        """``network`` with the class map's merge of its logits, when there is a class map."""
        merge = self._merge
        return network if merge is None else (lambda x: merge(network(x)))

    def _stages(self, network: Any, source: Source) -> PipelineStages:
        scale, shift = normalization_constants(tuple(source.mean), tuple(source.std), self._device)
        return PipelineStages(
            network=network, input_size=self.input_size, dtype=self.plan.input_dtype,
            channels_last=self.plan.options.channels_last, scale=scale, shift=shift,
            palette=torch.from_numpy(self.classes.palette()).to(self._device), upsample=self.upsample,
            float_resize=self.plan.is_cuda, output_size=self.output_size)

    def _make_path(self, source_maps: tuple[AxisMap, AxisMap], overlay_alpha: float) -> CpuPath | CudaPath:
        alpha = check_overlay_alpha(overlay_alpha)
        if self.plan.is_cuda:
            return CudaPath(self.stages, self._device, self.plan.options, self._cuda_graphs_failed, alpha)
        return CpuPath(self.stages, BandPool(self.plan.postprocess_threads), source_maps, alpha)

    def _cuda_graphs_failed(self, reason: str) -> None:
        self.plan = self.plan.without("cuda_graphs", reason)

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
        return self._path.overlay_alpha

    @overlay_alpha.setter
    def overlay_alpha(self, value: float) -> None:
        self._path.overlay_alpha = check_overlay_alpha(value)

    @property
    def description(self) -> str:
        """E.g. ``mobilenetv2 fp16 cuda:0 360x640 (bn-folded, channels-last, cuda-graph)``."""
        tags = self.plan.options.tags()
        suffix = f" ({', '.join(tags)})" if tags else " (eager)"
        return f"{self.backbone} {self.precision} {self.device} {self.input_size[0]}x{self.input_size[1]}{suffix}"

    @property
    def pending(self) -> str | None:
        """Where a pending precision switch stands (None when there is none)."""
        return self._switch.status() if self._switch is not None else None

    @property
    def network(self) -> Any:
        """The optimised network as ``segment`` runs it: ``x -> logits``, x like :meth:`example_input`.

        On CPU a LiteSeg returns its logits before the final bilinear upsampling, which ``segment`` fuses with the
        argmax.
        """
        return self._path.network if isinstance(self._path, CpuPath) else self.stages.network

    def output_shape(self, height: int, width: int, output_size: tuple[int, int] | None = None) -> tuple[int, int]:
        """(height, width) of the outputs of an image of ``height`` x ``width``: the frame's ``output_size`` (see
        :meth:`infer`), else the Segmenter's, else the image's."""
        return tuple(output_size) if output_size is not None else self.stages.output_shape(height, width)

    def example_input(self, seed: int = 0) -> torch.Tensor:
        """A random network input of the deployed shape, dtype, device and memory format."""
        return example_input(self.plan, self.input_size, seed)

    # ---------------------------------------------------------------------------------------------- running
    def segment(self, image: np.ndarray, encoding: str = "rgb8", outputs: Iterable[str] = DEFAULT_OUTPUTS,
                output_size: tuple[int, int] | None = None,
                label_size: tuple[int, int] | None = None) -> SegmentationResult:
        """Segment one H x W x 3 (rgb8, bgr8) or H x W / H x W x 1 (mono8) uint8 image (the sizes: :meth:`infer`).

        Raises ImageError for an image of the wrong type, dtype, shape or size, ConfigError for unknown outputs
        or sizes.
        """
        return self.finish(self.infer(image, encoding, outputs, output_size, label_size))

    def infer(self, image: np.ndarray, encoding: str = "rgb8", outputs: Iterable[str] = DEFAULT_OUTPUTS,
              output_size: tuple[int, int] | None = None, label_size: tuple[int, int] | None = None) -> Inference:
        """The first half of :meth:`segment`: checks, pre-processing and the network.

        ``output_size`` (height, width) puts this frame's outputs at that size instead of the Segmenter's
        ``output_size``; ``label_size`` also computes the mask (and the confidence, when asked for) at that size, as
        the outputs are computed, into the result's ``labels`` and ``label_confidence`` (e.g. at a depth image's
        resolution, for its point cloud)."""
        start = time.perf_counter()
        wanted = wanted_outputs(outputs)
        sizes = (check_frame_size("output_size", output_size), check_frame_size("label_size", label_size))
        inference = self._path.infer(validate_image(image, encoding), encoding, wanted, start, sizes)
        inference.timings["start"] = start
        if self._switch is not None and isinstance(self._path, CpuPath):
            self._observe_switch(inference)
        return inference

    def finish(self, inference: Inference, out: dict[str, np.ndarray] | None = None) -> SegmentationResult:
        """The second half of :meth:`segment`: the outputs at the output size (written into ``out``'s arrays where
        given: C-contiguous uint8 of the output's shape)."""
        result = self._path.finish(inference, out)
        result.timings["total"] = time.perf_counter() - result.timings.pop("start")
        return result

    def _observe_switch(self, inference: Inference) -> None:
        height, width = inference.output_shape or self.stages.output_shape(*inference.image.shape[:2])
        outcome = self._switch.observe(inference.network_input, inference.logits, inference.timings["inference"],
                                       lambda logits: self._path.classes_at(logits, height, width))
        if outcome is None:
            return
        if outcome.network is not None:
            self._path.network = self._merged(outcome.network)
            self.plan = self.plan.switched("int8", "openvino", outcome.reason)
        else:
            self.plan = self.plan.switched(self.plan.precision, self.plan.runner, outcome.reason)
        self._switch = None
        LOG.info("precision: %s", outcome.reason)

    def close(self) -> None:
        """Stop what runs beside the Segmenter (a calibration helper, the post-processing threads)."""
        if self._switch is not None:
            self._switch.close()
        if isinstance(self._path, CpuPath):
            self._path.bands.close()


def resolve_classes(model_classes: ClassSet | None, count: int, class_map: Any
                    ) -> tuple[ClassSet, ClassMap | None, ClassSet]:
    """(the network's class set, the class map, the published class set) for a network of ``count`` classes."""
    model_classes = model_classes or default_class_set(count)
    if len(model_classes) != count:
        raise ConfigError(f"the network predicts {count} classes but its class set names {len(model_classes)}")
    if class_map is not None and not isinstance(class_map, ClassMap):
        class_map = load_class_map(class_map, model_classes)
    elif class_map is not None and class_map.source != model_classes:
        raise ConfigError("the class map was made for another class set than this model's")
    return model_classes, class_map, class_map.classes if class_map else model_classes
