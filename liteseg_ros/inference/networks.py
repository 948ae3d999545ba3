"""The network a :class:`~liteseg_ros.inference.plan.Plan` describes, built and warmed up.

A weights file on an ONNX runner comes from the network cache, prepared by a helper process the first time
(:mod:`liteseg_ros.inference.prepare`); a network given as a module, and the other runners, are prepared in this
process (BatchNorm folded, cast, in their memory format, traced or exported). A runner that cannot be set up is
logged as one warning and the plan's next fallback is built instead: the plan returned says what runs, and why.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from liteseg_ros.errors import LiteSegError, OptimizationError, first_line
from liteseg_ros.inference.batchnorm import fold_batchnorm, small_probe
from liteseg_ros.inference.cache import CacheKey, Entry, NetworkCache
from liteseg_ros.inference.onnx_runners import OnnxRuntimeNetwork, OpenVinoNetwork, export_onnx
from liteseg_ros.inference.optimize import OptimizeOptions
from liteseg_ros.inference.plan import EAGER, Plan
from liteseg_ros.inference.prepare import (
    BLOB_FILE,
    NETWORK_FILE,
    PrepareJob,
    cache_key,
    prepare_in_helper,
    write_entry,
)
from liteseg_ros.inference.runners import EXPORT_PACKAGE, RUNNERS, package_available
from liteseg_ros.inference.sources import Source
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)
Network = Callable[[torch.Tensor], torch.Tensor]


class Int8Refused(LiteSegError):
    """An INT8 version of the weights that its check refused on this machine (the plan runs fp32 instead)."""


class PreUpsampleLogits(nn.Module):
    """A copy of a LiteSeg that returns its decoder's logits before the final bilinear upsampling (1/s_low size).

    A forward hook on ``last_conv`` keeps its output. The final upsampling still runs in eager mode (its result
    is dropped); TorchScript freezing, Inductor and the ONNX export remove it as dead code. The caller does that
    upsampling fused with the argmax (:mod:`liteseg_ros.inference.resize_argmax`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model)
        self._kept: list[torch.Tensor] = []
        self.model.last_conv.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._kept.append(output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._kept.clear()
        self.model(x)
        return self._kept[-1]


def example_input(plan: Plan, input_size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A random network input of the plan's device, input dtype and memory format at ``input_size``."""
    memory_format = torch.channels_last if plan.options.channels_last else torch.contiguous_format
    x = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(seed))
    return x.to(device=plan.device, dtype=plan.input_dtype).contiguous(memory_format=memory_format)


def build_network(source: Source, plan: Plan, input_size: tuple[int, int], pre_upsample: bool,
                  cache: NetworkCache | None) -> tuple[Network, Plan, dict]:
    """``source``'s network run as ``plan`` says, warmed up; the plan that was carried out (fallbacks taken); and
    the preparation's report (empty for a network prepared here). ``cache`` None: no cache (a helper still
    prepares a weights file, into a temporary folder)."""
    while True:
        try:
            network, plan, report = _runner(source, plan, input_size, pre_upsample, cache)
            # an ONNX runner compiles ahead (nothing to profile): one pass sets up its buffers; the CUDA graph capture
            # warms the network up itself
            one = plan.options.cuda_graphs or RUNNERS[plan.runner].onnx
            passes = min(plan.options.warmup, 1) if one else plan.options.warmup
            return warmed_up(network, example_input(plan, input_size), passes), plan, report
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


def _runner(source: Source, plan: Plan, input_size: tuple[int, int], pre_upsample: bool,
            cache: NetworkCache | None) -> tuple[Network, Plan, dict]:
    if source.path is not None and RUNNERS[plan.runner].cacheable:
        entry = cached_entry(source, plan, input_size, pre_upsample, cache)
        if entry.report.get("without fold_bn"):
            plan = plan.without("fold_bn", entry.report["without fold_bn"])
        return load_entry(entry, plan), plan, {**entry.report, "entry": str(entry.path) if cache else None}
    if source.kind == "int8":
        raise OptimizationError(f"{plan.runner} cannot run an INT8 model (OpenVINO or onnxruntime can)")
    model = source.model()
    module, plan = prepared_module(PreUpsampleLogits(model) if pre_upsample else model, plan, input_size)
    return module_runner(plan.runner, module, example_input(plan, input_size), plan), plan, {}


def entry_key(source: Source, plan: Plan, input_size: tuple[int, int], pre_upsample: bool) -> CacheKey:
    """The cache key of ``source`` prepared as ``plan`` says."""
    int8 = "model" if source.kind == "int8" else (source.int8_key if plan.precision == "int8" else "")
    return cache_key(source.digest(), plan.runner, plan.precision, input_size, int8=int8,
                     fold_bn=plan.options.fold_bn and source.kind != "int8", pre_upsample=pre_upsample)


def cached_entry(source: Source, plan: Plan, input_size: tuple[int, int], pre_upsample: bool,
                 cache: NetworkCache | None) -> Entry:
    """The cache entry of ``source`` for ``plan``: read, or prepared by the helper process the first time.
    Raises Int8Refused for an INT8 twin its check refused, OptimizationError when the helper failed."""
    key = entry_key(source, plan, input_size, pre_upsample)
    if not key.int8 and not package_available(EXPORT_PACKAGE) and (cache is None or cache.lookup(key) is None):
        raise OptimizationError("onnx is not installed; pip install onnx")
    if cache is None:  # cache: false, prepared in this process (and its exporter stays loaded)
        with tempfile.TemporaryDirectory(prefix="liteseg-network.") as folder:
            job = _job(source, plan, key, folder)
            entry = _in_memory(NetworkCache(folder).store(key, lambda staging: write_entry(job, staging)))
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


def _in_memory(entry: Entry) -> Entry:
    """An entry of a temporary folder, its files read into memory before the folder goes (cache: false)."""
    return Entry(path=entry.path, key=entry.key, files={name: {"data": entry.file(name).read_bytes()}
                                                        for name in entry.files}, report=entry.report)


def load_entry(entry: Entry, plan: Plan) -> Network:
    """The runner of a cache entry: OpenVINO imports its compiled blob, onnxruntime reads its ONNX file."""
    data = {name: item.get("data") for name, item in entry.files.items()}
    if plan.runner == "openvino":
        return OpenVinoNetwork.from_blob(data.get(BLOB_FILE) or entry.file(BLOB_FILE), precision=plan.precision,
                                         threads=plan.threads)
    return OnnxRuntimeNetwork(data.get(NETWORK_FILE) or entry.file(NETWORK_FILE), plan.threads)


def export_prepared(weights: Path, key: CacheKey, target: Path) -> dict:
    """The fp32 weights' network as the Segmenter runs it (BatchNorm folded, up to the last upsampling when the
    key says so), exported to ONNX at ``target``; the report (a fold that failed, why)."""
    from liteseg_ros.model import load_weights

    model, _ = load_weights(weights)
    plan = Plan(device="cpu", precision="fp32", threads=1, postprocess_threads=1,
                 options=OptimizeOptions(runner=key.runner, fold_bn=key.fold_bn, channels_last=False))
    module, done = prepared_module(PreUpsampleLogits(model) if key.network == "pre-upsample" else model, plan,
                                   key.input_size)
    export_onnx(module, example_input(done, key.input_size), str(target))
    return {"without fold_bn": done.history[0].split(": ", 1)[1]} if done.history else {}


def prepared_module(model: nn.Module, plan: Plan, input_size: tuple[int, int]) -> tuple[nn.Module, Plan]:
    """A copy of ``model`` as the plan's runner takes it (BatchNorm folded, cast, in its memory format), and the
    plan, without folding when that failed."""
    if plan.options.malloc_tuning:
        keep_freed_memory()
    network = copy.deepcopy(model).eval().to(device=plan.device, dtype=torch.float32)
    if plan.options.fold_bn:  # a small input finds the BatchNorm pairs faster than the deployment-sized one
        probe = small_probe(network, torch.device(plan.device))
        probe = probe if probe is not None else example_input(plan, input_size).float().contiguous()
        try:
            network = fold_batchnorm(network, probe.float())
        except OptimizationError as error:
            LOG.warning("optimize: fold_bn could not be set up (%s); using unfolded BatchNorm instead", error)
            plan = plan.without("fold_bn", first_line(error))
    network = network.to(plan.input_dtype if RUNNERS[plan.runner].onnx else plan.dtype)
    if plan.options.channels_last:
        network = network.to(memory_format=torch.channels_last)
    return network, plan


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


_MALLOC_TUNED = False
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(limit_bytes: int = 1 << 30) -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory (mallopt), once per process.

    Without it every large tensor is a fresh mmap whose pages fault in on first touch: a few milliseconds per
    frame on CPU. The process keeps its peak memory instead. Returns whether the setting is in effect.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        LOG.info("malloc tuning unavailable (no glibc mallopt); continuing without it")
        return False
    _MALLOC_TUNED = bool(mallopt(_M_MMAP_THRESHOLD, limit_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, limit_bytes))
    return _MALLOC_TUNED


def release_freed_memory() -> bool:
    """Give the memory glibc keeps after start-up (freed by the network's preparation) back to the system
    (malloc_trim); False where there is no glibc."""
    trim = _libc_function("malloc_trim")
    return bool(trim(0)) if trim is not None else False


def _libc_function(name: str) -> Any:
    path = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(path), name, None) if path else None
    except OSError:
        return None
