"""INT8 made while segmenting: the pending switch of a Segmenter that runs fp32 weights on a CPU without native bf16
(the node's ``precision=auto``, when the weights have no INT8 version yet).

1. *collecting*: the network inputs of the first frames, one every :data:`EVERY_S` seconds (consecutive frames of a
   camera are nearly the same), are saved until :data:`CALIBRATION_FRAMES` are kept;
2. *quantizing*: a helper process (:mod:`.quantizer`, at a lower priority) calibrates an INT8
   model on them;
3. *loading*: OpenVINO compiles it on a background thread;
4. *checking*: on the next :data:`CHECK_FRAMES` frames the INT8 network runs on the same input as fp32, right after
   it (both warm, so that their times compare fairly): pixel agreement of their masks and both networks' times
   (:class:`~.check.Int8Check`, whose rule decides);
5. the INT8 network replaces fp32's when it passed, and the verdict (the model, or the refusal and why) is kept in
   the network cache, so the next start runs INT8 at once, or plans fp32 without calibrating again.

Every frame is segmented by fp32 meanwhile and published as usual; :meth:`Int8Switch.observe` is called by the
thread that runs the network, after it, and never waits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from liteseg_ros.errors import first_line
from liteseg_ros.inference.cache import BLOB_FILE, NETWORK_FILE, CacheKey, NetworkCache
from liteseg_ros.inference.int8.check import Int8Check
from liteseg_ros.inference.onnx_runners import OpenVinoNetwork
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)
CALIBRATION_FRAMES = 32
CHECK_FRAMES = 16
EVERY_S = 0.2  # seconds between two kept frames
HELPER_NICENESS = 10


@dataclass(frozen=True)
class Outcome:
    """The end of a pending switch: the INT8 network that replaces fp32's (None: fp32 stays), and why."""

    network: Callable[[torch.Tensor], torch.Tensor] | None
    reason: str


class Int8Switch:
    """See the module docstring. ``fp32_onnx`` is fp32's exported network when there is one (else the helper
    exports ``weights`` itself); ``key`` is the cache key the INT8 model is kept under."""

    def __init__(self, *, weights: Path, meta: dict, source_digest: str, key: CacheKey, cache: NetworkCache | None,
                 threads: int, fp32_onnx: Path | None = None, frames: int = CALIBRATION_FRAMES,
                 check_frames: int = CHECK_FRAMES, every_s: float = EVERY_S):
        self.weights, self.meta, self.source_digest, self.key, self.cache = weights, meta, source_digest, key, cache
        self.threads, self.fp32_onnx = threads, fp32_onnx
        self.frames, self.check_frames, self.every_s = frames, check_frames, every_s
        self.folder = Path(tempfile.mkdtemp(prefix="liteseg-calibration."))
        self.state, self.kept, self.check = "collecting", 0, Int8Check()
        self._last = -float("inf")
        self._helper: subprocess.Popen | None = None
        self._loader: threading.Thread | None = None
        self._int8: OpenVinoNetwork | None = None
        self._load_error: str | None = None

    def status(self) -> str:
        """Where the switch stands, for the plan's ``pending`` line in /diagnostics."""
        if self.state == "collecting":
            return f"int8: collecting calibration frames ({self.kept}/{self.frames})"
        if self.state == "checking":
            return f"int8: checking against fp32 ({self.check.frames}/{self.check_frames} frames)"
        return f"int8: {self.state}"

    def observe(self, network_input: torch.Tensor, fp32_logits: torch.Tensor, fp32_seconds: float,
                classes_of: Callable[[torch.Tensor], np.ndarray]) -> Outcome | None:
        """Take part of one frame (its fp32 network input, logits and network time; ``classes_of`` maps logits to
        the frame's mask); return the outcome once the switch is decided, else None."""
        now = time.monotonic()
        if self.state == "collecting" and now - self._last >= self.every_s:
            self._last = now
            np.save(self.folder / f"{self.kept:04d}.npy", network_input.float().contiguous().numpy())
            self.kept += 1
            if self.kept == self.frames:
                self._start_helper()
        elif self.state == "quantizing":
            return self._helper_done()
        elif self.state == "loading" and not self._loader.is_alive():
            if self._int8 is None:
                return self._stay(f"OpenVINO could not load the INT8 model: {self._load_error}", record=False)
            self.state = "checking"
        elif self.state == "checking":
            return self._check_one(network_input, fp32_logits, fp32_seconds, classes_of)
        return None

    def close(self) -> None:
        """Stop the helper, if it runs, and remove the calibration frames."""
        if self._helper is not None and self._helper.poll() is None:
            self._helper.kill()
            self._helper.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _start_helper(self) -> None:
        job = {"inputs": str(self.folder), "out": str(self.folder / NETWORK_FILE), "meta": self.meta,
               "input_size": list(self.key.input_size), "source_sha256": self.source_digest,
               "fp32": str(self.fp32_onnx) if self.fp32_onnx else None, "weights": str(self.weights),
               "report": {"calibration": f"{self.frames} frames of this robot, one every {self.every_s:g} s"}}
        self._helper = subprocess.Popen([sys.executable, "-m", "liteseg_ros.inference.int8.quantizer", json.dumps(job)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            os.setpriority(os.PRIO_PROCESS, self._helper.pid, HELPER_NICENESS)  # the node's frames come first
        except OSError:
            pass
        self.state = "quantizing"
        LOG.info("INT8: calibrating on %d frames in a helper process (fp32 keeps running meanwhile)", self.frames)

    def _helper_done(self) -> Outcome | None:
        if self._helper.poll() is None:
            return None
        errors = self._helper.stderr.read().strip().splitlines()
        if self._helper.returncode != 0:
            reason = errors[-1].split("error: ", 1)[-1] if errors else f"exit status {self._helper.returncode}"
            return self._stay(f"quantizing failed: {reason}", record=False)
        self.state = "loading"
        self._loader = threading.Thread(target=self._load, name="liteseg-int8-load", daemon=True)
        self._loader.start()
        return None

    def _load(self) -> None:
        try:
            network = OpenVinoNetwork(self.folder / NETWORK_FILE, precision="int8", threads=self.threads)
            with torch.inference_mode():
                network(torch.zeros(1, 3, *self.key.input_size))  # its first pass sets up what the rest reuse
            self._int8 = network
        except Exception as error:  # reported by observe, on the network's thread
            self._load_error = first_line(error)

    def _check_one(self, network_input: torch.Tensor, fp32_logits: torch.Tensor, fp32_seconds: float,
                   classes_of: Callable[[torch.Tensor], np.ndarray]) -> Outcome | None:
        start = time.perf_counter()
        with torch.inference_mode():
            int8_logits = self._int8(network_input)[0]
        int8_seconds = time.perf_counter() - start
        self.check.add(classes_of(fp32_logits), classes_of(int8_logits), fp32_seconds, int8_seconds)
        if self.check.frames < self.check_frames:
            return None
        refused = self.check.refusal()
        if refused:
            return self._stay(f"INT8 refused: {refused}", record=True)
        made = time.strftime("%Y-%m-%d %H:%M")
        report = {"made": made, "check": self.check.summary(), "agreement": self.check.agreement,
                  "speedup": self.check.speedup, "calibration_frames": self.frames}
        self._record(report, with_files=True)
        self.state = "switched"
        return Outcome(self._int8, f"switched to INT8 at {made}, calibrated on {self.frames} frames: "
                                   f"{self.check.summary()}")

    def _stay(self, reason: str, record: bool) -> Outcome:
        if record:
            self._record({"refused": reason, "made": time.strftime("%Y-%m-%d %H:%M")}, with_files=False)
        self.state = "refused"
        self.close()
        return Outcome(None, f"stays fp32: {reason}")

    def _record(self, report: dict, with_files: bool) -> None:
        """Keep the verdict (and the model) in the network cache (nothing without a cache)."""
        if self.cache is None:
            return

        def write(folder: Path) -> dict:
            if with_files:
                shutil.copyfile(self.folder / NETWORK_FILE, folder / NETWORK_FILE)
                self._int8.export_blob(folder / BLOB_FILE)
            return report

        try:
            self.cache.store(self.key, write)
        except Exception as error:  # a full disk must not stop the node: it only means calibrating again
            LOG.warning("INT8: could not keep the result in the network cache (%s)", first_line(error))
        finally:
            if with_files:
                self.close()
