"""Remote storage backends: a handful of operations on keys, and the URLs that choose one.

A backend stores opaque byte strings under '/'-separated keys.  Everything a
remote needs is built from ``get``, ``get_range``, ``put``, the two
conditional writes (``put_if_absent`` and ``put_if_match``: the compare-and-swap
that ref updates rely on), ``list`` and ``delete``.  Retries, request counting
and fault injection are wrappers around any backend (see ``retry.py``), not
code inside each one.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from dsv.errors import DsvError, ExitCode, NotFoundError, RejectedError
from dsv.records import Record


class BackendError(DsvError):
    """A request failed.  ``transient`` errors may succeed when retried."""

    exit_code = ExitCode.IO

    def __init__(self, message: str, *, transient: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.transient = transient


class KeyNotFoundError(NotFoundError):
    """The key does not exist on the remote."""


class BucketNotFoundError(BackendError):
    """The S3 bucket of a remote does not exist (dsv does not create buckets)."""

    exit_code = ExitCode.NOT_FOUND


class PreconditionFailedError(RejectedError):
    """A conditional write lost: the key exists (if-absent) or changed (if-match)."""


class Stats(Record):
    """Requests and bytes, counted by every backend (thread-safe)."""

    __slots__ = ("_lock", "by_op", "bytes_received", "bytes_sent", "requests")

    def __init__(
        self,
        requests: int = 0,
        bytes_sent: int = 0,
        bytes_received: int = 0,
        by_op: dict[str, int] | None = None,
        _lock: threading.Lock | None = None,
    ) -> None:
        self.requests = requests
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received
        self.by_op: dict[str, int] = {} if by_op is None else by_op
        self._lock = threading.Lock() if _lock is None else _lock

    def __repr__(self) -> str:  # without the lock
        return (
            f"Stats(requests={self.requests!r}, bytes_sent={self.bytes_sent!r}, "
            f"bytes_received={self.bytes_received!r}, by_op={self.by_op!r})"
        )

    def count(self, op: str, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_sent += sent
            self.bytes_received += received
            self.by_op[op] = self.by_op.get(op, 0) + 1

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "by_op": dict(sorted(self.by_op.items())),
        }


# A whole value streamed into a Sink is read this much at a time.
DOWNLOAD_BLOCK = 4 << 20


class Sink(Protocol):
    """Where ``Backend.download`` streams a value."""

    def restart(self) -> None:
        """Drop what was written (a download starts, or starts over)."""

    def write(self, block: bytes) -> None:
        """The next bytes of the value."""


class Backend(ABC):
    """Byte strings under keys.  Implementations must be safe to call from several threads."""

    url: str
    stats: Stats

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole value; raises KeyNotFoundError."""

    @abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer only at the end of the value)."""

    @abstractmethod
    def get_with_tag(self, key: str) -> tuple[bytes, str]:
        """The value and its version tag (an ETag), for a later ``put_if_match``."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` (readers see the old value or the new one, never a mix)."""

    def put_file(self, key: str, path: Path) -> None:
        """Store a local file (backends may stream or split large ones)."""
        self.put(key, path.read_bytes())

    def download(self, key: str, sink: Sink) -> int:
        """Stream the whole value into ``sink`` in blocks (``sink.restart()`` first: a
        retried download starts over); returns its length.  Raises KeyNotFoundError."""
        src = self.local_file(key)
        if src is not None:
            try:
                f = open(src, "rb", buffering=0)  # noqa: SIM115 (closed below)
            except FileNotFoundError:
                pass  # reported as get() reports it
            else:
                n = 0
                with f:
                    sink.restart()
                    while block := f.read(DOWNLOAD_BLOCK):
                        sink.write(block)
                        n += len(block)
                self.stats.count("get", received=n)
                return n
        data = self.get(key)
        sink.restart()
        sink.write(data)
        return len(data)

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create ``key``; raises PreconditionFailedError if it exists.  Returns the new tag."""

    @abstractmethod
    def put_if_match(self, key: str, data: bytes, tag: str) -> str:
        """Replace ``key`` if its tag is still ``tag``; else PreconditionFailedError."""

    @abstractmethod
    def list(self, prefix: str) -> dict[str, int]:
        """Keys below ``prefix`` with their sizes."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (absent is not an error)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def local_file(self, key: str) -> Path | None:
        """The file holding ``key`` when the remote is a local directory (else None)."""
        return None


def open_backend(url: str, options: dict[str, str] | None = None) -> Backend:
    """The backend for a remote URL: a local path, ``file://``, ``s3://bucket/prefix`` or any fsspec URL."""
    opts = dict(options or {})
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and url[1:3] == ":\\"):
        from dsv.backends.local import LocalBackend

        path = parsed.path if scheme == "file" else url
        return LocalBackend(Path(path))
    if scheme == "s3":
        from dsv.backends.s3 import S3Backend

        return S3Backend(
            parsed.netloc,
            parsed.path.strip("/"),
            endpoint_url=opts.get("endpoint-url"),
            region=opts.get("region"),
            profile=opts.get("profile"),
        )
    from dsv.backends.fsspec_fs import FsspecBackend

    return FsspecBackend(url)


__all__ = [
    "Backend",
    "BackendError",
    "KeyNotFoundError",
    "PreconditionFailedError",
    "Stats",
    "open_backend",
]
