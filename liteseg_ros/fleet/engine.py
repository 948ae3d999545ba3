"""Where pieces of recordings are worked on: in this process (``local``, the default: no Ray needed, as on a robot)
or on a Ray cluster (``ray``), by one worker class either way, so both give the same answer.

A worker is built once per process (one Segmenter: its plan made once, the network cache and an INT8 model read once)
and called once per piece. On Ray the pieces are a Ray Data dataset mapped by an actor pool (``map_batches`` with a
class: one worker per actor, ``--workers`` of them, each with ``--worker-cpus`` / ``--worker-gpus``); an actor that
dies is restarted and its piece runs again (``max_restarts`` / ``max_task_retries``), so a killed worker costs
time, not results. The cluster follows Ray's own convention: ``--address`` (host:port or ``auto``), else
``RAY_ADDRESS``, else a local Ray started for the run and stopped after it. Nothing here schedules, queues or talks
to workers itself: Ray does.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from liteseg_ros.errors import ConfigError
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)
ENGINES = ("local", "ray")
RAY_INSTALL = "pip install 'liteseg_ros[fleet]' (Ray)"
LOCAL_OBJECT_STORE_BYTES = 512 << 20  # a local Ray for one run: results are small


@dataclass(frozen=True)
class EngineOptions:
    """``--engine``, ``--address``, ``--workers`` (0: the cores), ``--worker-cpus``, ``--worker-gpus``."""

    engine: str = "local"
    address: str | None = None
    workers: int = 0
    worker_cpus: float = 1.0
    worker_gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers < 0 or self.worker_cpus <= 0 or self.worker_gpus < 0:
            raise ConfigError("--workers must be >= 0 (0: the cores), --worker-cpus > 0 and --worker-gpus >= 0")
        if self.engine == "local" and (self.address or self.workers or self.worker_gpus):
            raise ConfigError("--address, --workers and --worker-gpus are for --engine ray")


@dataclass(frozen=True)
class WorkerSpec:
    """How to build a worker: ``build(**arguments)`` returns a callable ``piece -> result``; both must pickle (a
    module-level function and plain values), as Ray sends them to its actors."""

    build: Callable[..., Callable[[Any], Any]]
    arguments: dict


def run_pieces(pieces: list[Any], spec: WorkerSpec, options: EngineOptions,
               on_result: Callable[[Any], None] = lambda result: None) -> list[Any]:
    """Every piece's result, in the pieces' order, each also given to ``on_result`` as it comes (progress, the
    score store)."""
    if not pieces:
        return []
    results = run_local(pieces, spec, on_result) if options.engine == "local" else run_ray(pieces, spec, options,
                                                                                           on_result)
    return [results[index] for index in range(len(pieces))]


def run_local(pieces: list[Any], spec: WorkerSpec, on_result: Callable[[Any], None]) -> dict[int, Any]:
    worker = spec.build(**spec.arguments)
    results = {}
    for index, piece in enumerate(pieces):
        results[index] = worker(piece)
        on_result(results[index])
    return results


def run_ray(pieces: list[Any], spec: WorkerSpec, options: EngineOptions,
            on_result: Callable[[Any], None]) -> dict[int, Any]:
    import ray.data

    with ray_cluster(options):
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // options.worker_cpus))
        if options.worker_gpus:  # one CUDA worker per GPU
            workers = max(1, int(ray.cluster_resources().get("GPU", 0) // options.worker_gpus))
        items = [{"index": index, "piece": pickle.dumps(piece)} for index, piece in enumerate(pieces)]
        # Ray Data restarts an actor that died (max_restarts -1) and runs its piece again (max_task_retries -1)
        mapped = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ray_worker_class(spec, options), batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))), num_cpus=options.worker_cpus,
            num_gpus=options.worker_gpus or None, batch_format="numpy", zero_copy_batch=True)
        results = {}
        for row in mapped.iter_rows():
            results[int(row["index"])] = result = pickle.loads(row["result"])
            on_result(result)
        return results


def ray_worker_class(spec: WorkerSpec, options: EngineOptions) -> type:
    """The actor class Ray Data maps the pieces with: it builds the worker once, with ``worker_cpus`` threads."""
    threads = max(1, int(options.worker_cpus))

    class PieceWorker:
        def __init__(self) -> None:
            import torch

            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
            torch.set_num_threads(threads)
            self.worker = spec.build(**spec.arguments)

        def __call__(self, batch: dict) -> dict:
            import numpy as np

            results = [pickle.dumps(self.worker(pickle.loads(piece))) for piece in batch["piece"]]
            return {"index": batch["index"], "result": np.array(results, dtype=object)}

    return PieceWorker


@contextmanager
def ray_cluster(options: EngineOptions) -> Iterator[str]:
    """Ray connected for the run: ``--address``, else ``RAY_ADDRESS``, else a local Ray (``--workers`` x
    ``--worker-cpus`` CPUs) started here and stopped after it; yields where it runs."""
    import logging

    try:
        import ray
    except ImportError:
        raise ConfigError(f"--engine ray needs Ray: {RAY_INSTALL}") from None
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    address = options.address or os.environ.get("RAY_ADDRESS") or None
    started = time.monotonic()
    if address:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {str(error).splitlines()[0]} (start "
                              "one with 'ray start --head', or leave --address and RAY_ADDRESS unset for a local "
                              "Ray)") from None
    else:
        cpus = (options.workers or os.cpu_count() or 1) * options.worker_cpus
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)  # a new one, never another's
    where = address or "a local Ray for this run"
    LOG.info("Ray: %s (%.1f s to connect), %s CPUs", where, time.monotonic() - started,
             ray.cluster_resources().get("CPU", 0))
    try:
        yield where
    finally:
        ray.shutdown()


def alive_workers() -> int | None:
    """How many of this job's piece workers are alive on the cluster (None outside a Ray run, or unknown), read
    from Ray's control store (no dashboard needed)."""
    try:
        import ray
        from ray._private.state import actors

        if not ray.is_initialized():
            return None
        return sum(info.get("State") == "ALIVE" and "PieceWorker" in info.get("ActorClassName", "")
                   for info in actors().values())
    except Exception:  # progress only: Ray's internal state API may change
        return None
