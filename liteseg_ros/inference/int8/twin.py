"""The INT8 version of fp32 weights that ``precision=auto`` may run: the twin file beside them (``NAME.int8.onnx``,
made by ``liteseg-quantize``; the bundled model ships one), checked once on this machine by the preparation helper
(:func:`check_twin`: made from these weights, for this input size, and faster than fp32 here by :mod:`.check`'s
rule), or one the node calibrated on its frames earlier (:mod:`.switch`, kept in the network cache); with the
refusal its check recorded here, if any."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from liteseg_ros.inference.cache import NETWORK_FILE, CacheKey, NetworkCache, cache_key, file_digest
from liteseg_ros.inference.int8.models import read_quantized_model, twin_path
from liteseg_ros.inference.plan import Int8Option

CALIBRATED = "calibrated"  # the cache key's int8 for an INT8 model the node made from its frames


def int8_version(weights: Path, digest: str, input_size: tuple[int, int], cache: NetworkCache | None
                 ) -> tuple[Int8Option | None, str, Path | None]:
    """(the INT8 version of the weights for ``input_size``, or None; how the cache keys it: ``twin:<sha256>`` or
    ``calibrated``; the twin file, if there is one)."""
    twin = twin_path(weights)
    if twin.is_file():
        key = f"twin:{file_digest(twin)}"
        entry = cache.lookup(cache_key(digest, "openvino", "int8", input_size, int8=key)) if cache else None
        return Int8Option(f"the INT8 twin {twin.name} of these weights (checked against fp32 on this CPU)",
                          entry.report.get("refused") if entry is not None else None), key, twin
    entry = cache.lookup(cache_key(digest, "openvino", "int8", input_size, int8=CALIBRATED)) if cache else None
    if entry is None:
        return None, CALIBRATED, None
    made = entry.report.get("made", "earlier")
    return Int8Option(f"an INT8 model calibrated on this robot's frames ({made}; {entry.report.get('check', '')})",
                      entry.report.get("refused")), CALIBRATED, None


def check_twin(twin: Path, weights: Path, key: CacheKey, threads: int, folder: Path, report: dict) -> str | None:
    """Copy the INT8 twin into the entry's ``folder`` when it was made from these weights for this input size and is
    faster than fp32 here (its times into ``report``); else return why it is refused."""
    from liteseg_ros.inference.export import export_prepared
    from liteseg_ros.inference.int8.check import compare_speed

    model = read_quantized_model(twin)
    if model.source_digest != key.source:
        return f"{twin.name} was made from other weights (its source digest differs)"
    if model.input_size != key.input_size:
        return f"{twin.name} was made for input size {model.input_size[0]}x{model.input_size[1]}"
    shutil.copyfile(twin, folder / NETWORK_FILE)
    with tempfile.TemporaryDirectory(prefix="liteseg-fp32.") as scratch:
        fp32_file = Path(scratch) / NETWORK_FILE
        export_prepared(weights, key, fp32_file)
        speed = compare_speed(fp32_file, folder / NETWORK_FILE, key.input_size, threads)
    refused = speed.pop("refused")
    report.update(twin=twin.name, twin_report=model.report.get("summary", ""), **speed)
    if refused:
        (folder / NETWORK_FILE).unlink()
    return refused
