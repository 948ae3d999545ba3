"""The process's memory around a network's preparation: glibc asked to keep freed memory for the tensors of every
frame (no page faults per frame), and what the preparation freed given back once it is done."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)

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
