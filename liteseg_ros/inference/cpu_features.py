"""What the CPU executes natively, read from its flags (Linux ``/proc/cpuinfo``), for ``precision=auto``.

``LITESEG_CPU_FLAGS`` (space-separated flags) replaces what the probe reads: to see the plan another CPU class
would get (``LITESEG_CPU_FLAGS="avx2 fma" liteseg-info --plan``) or to measure one class on a CPU of another
(hiding ``avx512_bf16 amx_bf16`` on a Xeon measures what a CPU without native bf16 would run). Flags a CPU lacks
can be added to rehearse a class's plan (the suite's CPU-class guard does, :data:`CPU_CLASSES`): OpenVINO then runs
the bf16 it is asked for as fp32, with a warning, so the plan is the class's and the speed is this machine's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
FLAGS_OVERRIDE = "LITESEG_CPU_FLAGS"
# x86 flags (Linux names) under which bfloat16 matrix products run in hardware: AVX-512 BF16 (Cooper Lake,
# Zen 4 and later) and AMX-BF16 (Sapphire Rapids and later). Without them bf16 is emulated and slower than fp32.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_AVX2 = ("sse4_2", "avx2", "fma")
_AVX512 = _AVX2 + ("avx512f", "avx512bw", "avx512_vnni")
# The CPU classes the plan tells apart, poorest first: name -> the flags LITESEG_CPU_FLAGS gives to rehearse it, the
# last of which marks the class.
CPU_CLASSES: dict[str, tuple[str, ...]] = {
    "avx2": _AVX2,  # AMD Zen 3, Intel Core without AVX-512: INT8 on OpenVINO
    "avx512-vnni": _AVX512,  # Intel Xeon without bf16 exposed (Cascade Lake, some cloud guests)
    "avx512-bf16": _AVX512 + ("avx512_bf16",),  # AMD Zen 4 and later
    "amx": _AVX512 + ("avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"),  # Intel Xeon Sapphire Rapids and later
}


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (default: this machine's ``/proc/cpuinfo``).

    Reads the x86 ``flags`` line or the Arm ``Features`` line; an unreadable or unknown format gives no flags.
    For this machine, :data:`FLAGS_OVERRIDE` replaces them when it is set.
    """
    if cpuinfo is None and os.environ.get(FLAGS_OVERRIDE) is not None:
        return frozenset(os.environ[FLAGS_OVERRIDE].split())
    return frozenset(_first_value(cpuinfo, ("flags", "Features")).split())


def hardware_flags() -> frozenset[str]:
    """This CPU's own flags, whatever :data:`FLAGS_OVERRIDE` says."""
    return cpu_flags(_cpuinfo_text())


def rehearsed_flags() -> frozenset[str]:
    """The flags :data:`FLAGS_OVERRIDE` claims that this CPU lacks (empty without the override)."""
    if os.environ.get(FLAGS_OVERRIDE) is None:
        return frozenset()
    return cpu_flags() - hardware_flags()


def cpu_class(flags: frozenset[str] | None = None) -> str:
    """The :data:`CPU_CLASSES` name of these flags (default: this machine's, as the plan sees them): the richest
    class whose mark they have; ``other`` without AVX2."""
    present = cpu_flags() if flags is None else flags
    return next((name for name in reversed(CPU_CLASSES) if CPU_CLASSES[name][-1] in present), "other")


def cpu_identity() -> str:
    """A digest of this CPU's model name and flags (the network cache keys what it compiled for by it)."""
    text = cpu_model() + "|" + " ".join(sorted(cpu_flags()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def native_bf16_flags(flags: frozenset[str] | None = None) -> tuple[str, ...]:
    """The flags (of :data:`NATIVE_BF16_FLAGS`) that make bf16 native on this CPU; empty when it has none."""
    present = cpu_flags() if flags is None else flags
    return tuple(flag for flag in NATIVE_BF16_FLAGS if flag in present)


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``model name`` in /proc/cpuinfo), else what ``platform`` says."""
    import platform

    return _first_value(cpuinfo, ("model name",)) or platform.processor() or platform.machine() or "unknown"


def _cpuinfo_text() -> str:
    try:
        return CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _first_value(cpuinfo: str | None, keys: tuple[str, ...]) -> str:
    """The value of the first ``key: value`` line of ``cpuinfo`` (default: /proc/cpuinfo) with one of ``keys``."""
    cpuinfo = _cpuinfo_text() if cpuinfo is None else cpuinfo
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return ""
