"""Row bands of an image processed on several threads, for the CPU pre- and post-processing.

The work is cut into more bands than threads and every thread (the caller included) takes the next band when it
finishes one. When another process holds a core, the thread on it simply takes fewer bands: the frame waits
for at most one band of a descheduled thread instead of a fixed share of the image, as it would with one chunk
per thread (or for an OpenMP barrier, which is why torch's own intra-op threads are not used here). Each band
runs its torch operations on one thread; NumPy and torch release the GIL in them.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import torch

BANDS_PER_THREAD = 4
MIN_BAND_ROWS = 64


def _one_torch_thread() -> None:
    torch.set_num_threads(1)  # per thread with OpenMP: the caller's count is not touched


class BandPool:
    """Runs ``work(first_row, end_row)`` over row bands on ``threads`` threads: the caller and ``threads - 1``
    helpers, started once. ``threads=1`` runs every band on the caller, in order."""

    def __init__(self, threads: int):
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._helpers = (
            ThreadPoolExecutor(threads - 1, thread_name_prefix="liteseg-bands", initializer=_one_torch_thread)
            if threads > 1 else None
        )

    def bands(self, rows: int) -> list[tuple[int, int]]:
        """The (first, end) row ranges ``rows`` is cut into."""
        if self.threads == 1:
            return [(0, rows)] if rows else []
        count = max(1, min(self.threads * BANDS_PER_THREAD, rows // MIN_BAND_ROWS))
        edges = [rows * i // count for i in range(count + 1)]
        return [(edges[i], edges[i + 1]) for i in range(count) if edges[i + 1] > edges[i]]

    def run(self, work: Callable[[int, int], None], rows: int) -> None:
        """Call ``work`` once per band of ``rows`` rows; returns when all are done, re-raising the first error."""
        bands = self.bands(rows)
        if self._helpers is None or len(bands) == 1:
            for first, end in bands:
                work(first, end)
            return
        claim = itertools.count()  # next() on it is atomic under the GIL
        failed = threading.Event()
        inference_mode = torch.is_inference_mode_enabled()  # thread-local: the helpers take the caller's

        def drain() -> None:
            with torch.inference_mode(inference_mode):
                for index in iter(lambda: next(claim), None):
                    if index >= len(bands) or failed.is_set():
                        return
                    try:
                        work(*bands[index])
                    except BaseException:
                        failed.set()
                        raise

        helpers = [self._helpers.submit(drain) for _ in range(min(self.threads - 1, len(bands) - 1))]
        try:
            drain()
        finally:
            for helper in helpers:
                helper.result()

    def close(self) -> None:
        """Stop the helper threads (idempotent)."""
        if self._helpers is not None:
            self._helpers.shutdown(wait=True)
            self._helpers = None


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run the enclosed torch CPU ops on one intra-op thread, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
