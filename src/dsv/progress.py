"""Progress reporting for long operations.

Core code calls a :class:`Progress`; the CLI passes a :class:`TerminalProgress`
when stderr is a terminal and a silent one otherwise, so scripts and pipes
get clean output.
"""

from __future__ import annotations

import sys
import threading
import time

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """Silent progress: the interface, doing nothing."""

    def start(
        self, label: str, total_items: int | None = None, total_bytes: int | None = None
    ) -> None:
        pass

    def advance(self, items: int = 0, nbytes: int = 0) -> None:
        pass

    def finish(self) -> None:
        pass


class TerminalProgress(Progress):
    """One self-overwriting status line, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO | None = None, min_seconds: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.min_seconds = min_seconds
        self._lock = threading.Lock()
        self._label = ""
        self._items = 0
        self._bytes = 0
        self._total_items: int | None = None
        self._total_bytes: int | None = None
        self._t0 = 0.0
        self._last = 0.0
        self._drawn = False

    def start(
        self, label: str, total_items: int | None = None, total_bytes: int | None = None
    ) -> None:
        with self._lock:
            self._label = label
            self._items = self._bytes = 0
            self._total_items = total_items
            self._total_bytes = total_bytes
            self._t0 = self._last = time.monotonic()

    def advance(self, items: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self._items += items
            self._bytes += nbytes
            now = time.monotonic()
            if now - self._last >= 0.1 and now - self._t0 >= self.min_seconds:
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._t0, 1e-9)
        parts = [self._label + ":"]
        if self._total_items:
            parts.append(f"{self._items:,}/{self._total_items:,}")
        elif self._items:
            parts.append(f"{self._items:,}")
        if self._bytes or self._total_bytes:
            tb = f"/{human_bytes(self._total_bytes)}" if self._total_bytes else ""
            parts.append(f"{human_bytes(self._bytes)}{tb}")
            parts.append(f"{human_bytes(self._bytes / elapsed)}/s")
            if self._total_bytes and self._bytes:
                eta = (self._total_bytes - self._bytes) / (self._bytes / elapsed)
                parts.append(f"ETA {eta:.0f}s")
        self.stream.write("\r\x1b[K" + " ".join(parts))
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        with self._lock:
            if self._drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._drawn = False
