"""Keep the agent's resident memory near its working set (glibc only; a no-op elsewhere).

A capture allocates a few screen-sized buffers (the X image, the Pillow image, the encoder's
picture). glibc raises its mmap threshold after the first large free, so later screen-sized
buffers come from the heap and stay resident after the capture; each thread may also get its own
arena. Fixing the threshold at 1 MiB keeps big buffers in mmap (returned to the system on free),
and two arenas are plenty for a handful of threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["release_free_memory", "skip_httpx_cli", "tune_allocator"]

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

_libc = None


def _load() -> object | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.mallopt  # noqa: B018 - absent on musl: fall back to doing nothing
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def tune_allocator() -> None:
    """Call once, before the agent starts its threads."""
    libc = _load()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)  # type: ignore[attr-defined]
        libc.mallopt(M_ARENA_MAX, 2)  # type: ignore[attr-defined]


def release_free_memory() -> None:
    """Give freed heap pages back to the system (after a capture)."""
    libc = _load()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)  # type: ignore[attr-defined]


def skip_httpx_cli() -> None:
    """Keep httpx from importing its command-line client in the agent's process.

    ``import httpx`` also imports ``httpx._main`` (click, rich, pygments: about 6 MB resident)
    whenever click happens to be installed, as it is in a development environment. The agent
    never uses that client. Marking click as absent makes httpx skip it; call this before the
    first import of httpx, and only in a process that needs no click (``vigil agent run``).
    """
    if "httpx" not in sys.modules and "click" not in sys.modules:
        sys.modules["click"] = None  # type: ignore[assignment]
