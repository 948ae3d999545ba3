"""The network a :class:`~liteseg_ros.inference.plan.Plan` describes, built from its
:class:`~liteseg_ros.inference.sources.Source` and warmed up.

A weights file on an ONNX runner comes from the network cache, prepared and stored by a helper process the first time
(:mod:`liteseg_ros.inference.prepare`); a network given as a module, and the other runners, are prepared in this
process (:mod:`liteseg_ros.inference.export`: BatchNorm folded, cast, in their memory format, then traced or
exported). A runner that cannot be set up is logged as one warning and the plan's next fallback is built instead:
the plan returned says what runs, and why. A plan with a pending switch to INT8 gets its switch here too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from liteseg_ros.errors import LiteSegError, OptimizationError, first_line
from liteseg_ros.inference.cache import BLOB_FILE, NETWORK_FILE, CacheKey, Entry, NetworkCache, cache_key
from liteseg_ros.inference.export import PreUpsampleLogits, example_input, prepared_module
from liteseg_ros.inference.onnx_runners import OnnxRuntimeNetwork, OpenVinoNetwork
from liteseg_ros.inference.plan import EAGER, Plan
from liteseg_ros.inference.prepare import PrepareJob, prepare_here, prepare_in_helper
from liteseg_ros.inference.runners import EXPORT_PACKAGE, RUNNERS, package_available
from liteseg_ros.inference.sources import Source
from liteseg_ros.logs import get_logger
from liteseg_ros.model import LiteSeg

LOG = get_logger(__name__)
Network = Callable[[torch.Tensor], torch.Tensor]


class Int8Refused(LiteSegError):
    """An INT8 version of the weights that its check refused on this machine (the plan runs fp32 instead)."""


@dataclass
class BuiltNetwork:
    """What :func:`build_network` made: the network (``x -> logits``), the plan carried out, the preparation's
    report (its cache entry under ``entry``; empty for a network prepared here), whether the network stops before
    its final upsampling (the CPU path fuses that with the argmax), and the pending INT8 switch, if any."""

    network: Network
    plan: Plan
    report: dict
    pre_upsample: bool
    switch: Any = None


def build_network(source: Source, plan: Plan, cache: NetworkCache | None) -> BuiltNetwork:
    """``source``'s network run as ``plan`` says, at ``source.input_size``, warmed up. ``cache`` None: no cache (a
    helper still prepares a weights file, into a temporary folder)."""
    pre_upsample = not plan.is_cuda and (source.kind in ("int8", "weights") or isinstance(source.module, LiteSeg))
    while True:
        try:
            network, plan, report = _runner(source, plan, pre_upsample, cache)
            # an ONNX runner compiles ahead (nothing to profile): one pass sets up its buffers; the CUDA graph capture
            # warms the network up itself
            one = plan.options.cuda_graphs or RUNNERS[plan.runner].onnx
            passes = min(plan.options.warmup, 1) if one else plan.options.warmup
            network = warmed_up(network, example_input(plan, source.input_size), passes)
            break
        except Exception as error:  # an optimisation must never stop start-up; a plan without fallbacks re-raises
            if not plan.fallbacks:
                raise
            failed, plan = plan, plan.fell_back(first_line(error))
            instead = "eager PyTorch" if plan.runner == EAGER else plan.runner
            if isinstance(error, Int8Refused):
                LOG.info("INT8 refused on this machine (%s); running %s %s", first_line(error), plan.precision,
                         instead)
            else:
                LOG.warning("optimize: %s could not be set up (%s); using %s (%s) instead", failed.runner,
                            first_line(error), instead, plan.precision)
    if RUNNERS[plan.runner].cacheable:
        source.release()
    if source.int8_model is not None:
        log_quantized_report(source, plan.runner)
    switch = _int8_switch(source, plan, pre_upsample, report, cache) if plan.pending else None
    return BuiltNetwork(network, plan, report, pre_upsample, switch)


def _runner(source: Source, plan: Plan, pre_upsample: bool, cache: NetworkCache | None) -> tuple[Network, Plan, dict]:
    if source.path is not None and RUNNERS[plan.runner].cacheable:
        entry = cached_entry(source, plan, pre_upsample, cache)
        if entry.report.get("without fold_bn"):
            plan = plan.without("fold_bn", entry.report["without fold_bn"])
        return load_entry(entry, plan), plan, {**entry.report, "entry": str(entry.path) if cache else None}
    if source.kind == "int8":
        raise OptimizationError(f"{plan.runner} cannot run an INT8 model (OpenVINO or onnxruntime can)")
    model = source.model()
    module, plan = prepared_module(PreUpsampleLogits(model) if pre_upsample else model, plan, source.input_size)
    return module_runner(plan.runner, module, example_input(plan, source.input_size), plan), plan, {}


def entry_key(source: Source, plan: Plan, pre_upsample: bool) -> CacheKey:
    """The cache key of ``source`` prepared as ``plan`` says."""
    int8 = "model" if source.kind == "int8" else (source.int8_key if plan.precision == "int8" else "")
    return cache_key(source.digest(), plan.runner, plan.precision, source.input_size, int8=int8,
                     fold_bn=plan.options.fold_bn and source.kind != "int8", pre_upsample=pre_upsample)


def cached_entry(source: Source, plan: Plan, pre_upsample: bool, cache: NetworkCache | None) -> Entry:
    """The cache entry of ``source`` for ``plan``: read, or prepared by the helper process the first time.
    Raises Int8Refused for an INT8 twin its check refused, OptimizationError when the helper failed."""
    key = entry_key(source, plan, pre_upsample)
    if not key.int8 and not package_available(EXPORT_PACKAGE) and (cache is None or cache.lookup(key) is None):
        raise OptimizationError("onnx is not installed; pip install onnx")
    if cache is None:  # cache: false, prepared in this process (and its exporter stays loaded)
        entry = prepare_here(_job(source, plan, key, ""))
    else:
        entry = cache.lookup(key)
        if entry is not None:
            LOG.info("network cache: %s %s from %s", plan.runner, plan.precision, entry.path)
        else:
            entry = _prepared(source, plan, key, cache)
    if entry.report.get("refused"):
        raise Int8Refused(entry.report["refused"])
    return entry


def _job(source: Source, plan: Plan, key: CacheKey, root: str | Path) -> PrepareJob:
    twin = str(source.twin) if key.int8.startswith("twin:") else None
    return PrepareJob(source=str(source.path), key=key.to_dict(), cache_root=str(root), threads=plan.threads,
                      twin=twin)


def _prepared(source: Source, plan: Plan, key: CacheKey, cache: NetworkCache) -> Entry:
    job = _job(source, plan, key, cache.root)
    what = "checking its INT8 twin against fp32 on this CPU, " if job.twin else ""
    return prepare_in_helper(job, f"preparing {Path(source.path).name} for {plan.runner} {plan.precision} in a "
                                  f"helper process ({what}first start with these weights here); later starts read "
                                  f"it from the network cache {cache.root}")


def load_entry(entry: Entry, plan: Plan) -> Network:
    """The runner of a cache entry: OpenVINO imports its compiled blob, onnxruntime reads its ONNX file."""
    data = {name: item.get("data") for name, item in entry.files.items()}
    if plan.runner == "openvino":
        return OpenVinoNetwork.from_blob(data.get(BLOB_FILE) or entry.file(BLOB_FILE), precision=plan.precision,
                                         threads=plan.threads)
    return OnnxRuntimeNetwork(data.get(NETWORK_FILE) or entry.file(NETWORK_FILE), plan.threads)


def log_quantized_report(source: Source, runner: str) -> None:
    """An INT8 model's report; a warning when it runs on another runner than the one it was timed with."""
    model = source.int8_model
    LOG.info("INT8 model %s: %s", model.path.name, model.report.get("summary", "no report"))
    timed_with = model.report.get("int8_runner") or model.report.get("int8_runtime")  # older files: runtime
    if timed_with and timed_with != runner:
        LOG.warning("INT8 model %s was timed with %s by liteseg-quantize but runs on %s here, where INT8 can be "
                    "slower than fp32: check with liteseg-quantize --runner %s", model.path.name, timed_with,
                    runner, runner)


def _int8_switch(source: Source, plan: Plan, pre_upsample: bool, report: dict, cache: NetworkCache | None) -> Any:
    """The pending switch to INT8 of fp32 weights: calibrated on the frames segmented, kept under the INT8 plan's
    cache key."""
    from liteseg_ros.inference.int8.switch import Int8Switch

    int8_plan = plan.switched("int8", "openvino", "the switch's key")
    entry = report.get("entry")
    return Int8Switch(weights=source.path, meta=source.meta.to_dict(), source_digest=source.digest(),
                      key=entry_key(source, int8_plan, pre_upsample), cache=cache, threads=plan.threads,
                      fp32_onnx=Path(entry) / NETWORK_FILE if entry else None)


def module_runner(runner: str, network: nn.Module, example: torch.Tensor, plan: Plan) -> Network:
    """``network`` run by ``runner`` (in this process) for ``example``'s shape. Raises what the runner raises."""
    if runner == "openvino":
        return OpenVinoNetwork.from_network(network, example, precision=plan.precision, threads=plan.threads)
    if runner == "onnxruntime":
        return OnnxRuntimeNetwork.from_network(network, example, threads=plan.threads)
    if runner == "torchscript_freeze":
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still shipped
            return torch.jit.freeze(torch.jit.trace(network, example, check_trace=False))
    if runner == "compile":
        return torch.compile(network, dynamic=False, options={"freezing": True})
    return network


def warmed_up(runner: Network, example: torch.Tensor, passes: int) -> Network:
    """``runner`` after ``passes`` forward passes on ``example`` (JIT profiling, allocator, caches)."""
    with torch.inference_mode():
        for _ in range(passes):
            runner(example)
    return runner
