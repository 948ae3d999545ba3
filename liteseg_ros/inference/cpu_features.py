"""What the CPU executes natively, read from its flags (Linux ``/proc/cpuinfo``), for ``precision=auto``."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# x86 flags (Linux names) under which bfloat16 matrix products run in hardware: AVX-512 BF16 (Cooper Lake,
# Zen 4 and later) and AMX-BF16 (Sapphire Rapids and later). Without them bf16 is emulated and slower than fp32.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (default: this machine's ``/proc/cpuinfo``).

    Reads the x86 ``flags`` line or the Arm ``Features`` line; an unreadable or unknown format gives no flags.
    """
    return frozenset(_first_value(cpuinfo, ("flags", "Features")).split())


def native_bf16_flags(flags: frozenset[str] | None = None) -> tuple[str, ...]:
    """The flags (of :data:`NATIVE_BF16_FLAGS`) that make bf16 native on this CPU; empty when it has none."""
    present = cpu_flags() if flags is None else flags
    return tuple(flag for flag in NATIVE_BF16_FLAGS if flag in present)


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``model name`` in /proc/cpuinfo), else what ``platform`` says."""
    import platform

    return _first_value(cpuinfo, ("model name",)) or platform.processor() or platform.machine() or "unknown"


def _first_value(cpuinfo: str | None, keys: tuple[str, ...]) -> str:
    """The value of the first ``key: value`` line of ``cpuinfo`` (default: /proc/cpuinfo) with one of ``keys``."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return ""
