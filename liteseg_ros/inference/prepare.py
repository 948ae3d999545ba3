"""Preparing a weights file for an ONNX runner, in a helper process, into the network cache.

The export to ONNX imports torch.onnx and onnx (about 340 MiB that a process never gives back) and takes most of a
first start; OpenVINO's compilation most of the rest. So a Segmenter asks a helper process
(``python -m liteseg_ros.inference.prepare JOB``) to write the cache entry (:mod:`liteseg_ros.inference.cache`):
the network up to its last upsampling with BatchNorm folded, exported (``network.onnx``), and for OpenVINO its
compiled blob (``openvino.blob``), which the Segmenter's process imports in a tenth of a second. For an INT8 twin of
the weights (the file beside them made by liteseg-quantize) the helper checks that it was made from these weights
for this input size and that it is faster than fp32 on this CPU, and records the verdict; a refused twin leaves an
entry that says why, so the next start plans fp32 at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from liteseg_ros.errors import EXIT_ERROR, LiteSegError, OptimizationError, first_line
from liteseg_ros.inference.cache import BLOB_FILE, NETWORK_FILE, CacheKey, Entry, NetworkCache, StaleEntry
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)
HELPER_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class PrepareJob:
    """What the helper prepares: ``source`` (an fp32 weights file, or an INT8 model file when the key's
    ``int8`` is ``model``), an INT8 ``twin`` to check, the key, the cache's folder and the runner's threads."""

    source: str
    key: dict
    cache_root: str
    threads: int
    twin: str | None = None

    @property
    def cache_key(self) -> CacheKey:
        return CacheKey(**{**self.key, "input_size": tuple(self.key["input_size"])})


def prepare_in_helper(job: PrepareJob, progress: str) -> Entry:
    """Run the helper process for ``job`` and return the entry it wrote. Raises OptimizationError with the
    helper's one-line reason when it failed (the Segmenter then takes the plan's next fallback)."""
    LOG.info("%s", progress)
    try:
        run = subprocess.run([sys.executable, "-m", __name__, json.dumps(asdict(job))], capture_output=True,
                             text=True, timeout=HELPER_TIMEOUT_S, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except (OSError, subprocess.TimeoutExpired) as error:
        raise OptimizationError(f"the preparation helper did not run: {first_line(error)}") from None
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    if run.returncode != 0:
        reason = next((line.split("error: ", 1)[1] for line in reversed(lines) if "error: " in line),
                      lines[-1] if lines else f"exit status {run.returncode}")
        raise OptimizationError(f"preparing the network failed: {reason}")
    entry = NetworkCache(job.cache_root).lookup(job.cache_key)
    if entry is None:
        raise OptimizationError(f"the preparation helper wrote no usable entry to {job.cache_root}")
    return entry


def prepare_here(job: PrepareJob) -> Entry:
    """``job`` prepared in this process, into a temporary folder (``cache: false``): its entry with the files read
    into memory before the folder goes (the exporter stays loaded in this process)."""
    with tempfile.TemporaryDirectory(prefix="liteseg-network.") as folder:
        entry = NetworkCache(folder).store(job.cache_key, lambda staging: write_entry(job, staging))
        return Entry(path=entry.path, key=entry.key, files={name: {"data": entry.file(name).read_bytes()}
                                                            for name in entry.files}, report=entry.report)


def write_entry(job: PrepareJob, folder: Path) -> dict:
    """The helper's work: the entry's files in ``folder``; returns the report (what it did, how long, verdicts)."""
    key = job.cache_key
    report: dict = {"source": Path(job.source).name}
    if key.int8 == "model":
        shutil.copyfile(job.source, folder / NETWORK_FILE)
    elif key.int8.startswith("twin:"):
        from liteseg_ros.inference.int8.twin import check_twin

        refused = check_twin(Path(job.twin), Path(job.source), key, job.threads, folder, report)
        if refused:
            report["refused"] = refused
            return report
    else:
        from liteseg_ros.inference.export import export_prepared

        report.update(export_prepared(Path(job.source), key, folder / NETWORK_FILE))
    if key.runner == "openvino":
        from liteseg_ros.inference.onnx_runners import OpenVinoNetwork

        network = OpenVinoNetwork(folder / NETWORK_FILE, precision=key.precision, threads=job.threads)
        network.export_blob(folder / BLOB_FILE)
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m liteseg_ros.inference.prepare JOB_JSON``: write the job's cache entry; one error line and
    status 2 when it cannot."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        job = PrepareJob(**json.loads((argv or sys.argv[1:])[0]))
        NetworkCache(job.cache_root).store(job.cache_key, lambda folder: write_entry(job, folder))
    except (LiteSegError, StaleEntry, OSError, ValueError, RuntimeError) as error:
        print(f"liteseg-prepare: error: {first_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
