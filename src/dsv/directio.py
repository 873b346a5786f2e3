"""Appending to a new file with direct I/O (``O_DIRECT``), past the page cache.

Pack files are written once and seldom read soon after; through the page
cache each written byte first needs a page of its own.  On a virtual machine
whose host takes back free guest memory (free page reporting, common in
cloud VMs), every such page costs a host page fault: measured here, writing
1 GiB through the cache took 3.2-3.6 s of system time, with ``O_DIRECT``
0.12-0.4 s (docs/design.md, "Direct I/O for packs").  So a pack is written
from a few page-aligned blocks, allocated once per process and reused, on a
thread of its own that overlaps the disk with the caller's chunking and
hashing.

``DirectAppender`` falls back to ordinary writes when the file system refuses
direct I/O (at open, or at the first write: some need a larger alignment),
so callers need not care; ``DSV_DIRECT_IO=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import queue
import threading
from collections.abc import Iterable

Buffer = bytes | bytearray | memoryview

BLOCK = 4 << 20  # bytes per direct write
ALIGN = 4096  # offsets and lengths of direct writes (the largest logical block in use)
IN_FLIGHT = 2  # blocks queued for the writer thread per file, beside the one being filled

_pool: list[mmap.mmap] = []
_pool_lock = threading.Lock()


def _after_fork() -> None:  # a child of a process mid-write starts with no lock held
    global _pool_lock
    _pool_lock = threading.Lock()
    _pool.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def enabled() -> bool:
    """Whether new packs are written with direct I/O (``DSV_DIRECT_IO=0``: no)."""
    return hasattr(os, "O_DIRECT") and os.environ.get("DSV_DIRECT_IO", "1") != "0"


def _take() -> mmap.mmap:
    with _pool_lock:
        if _pool:
            return _pool.pop()
    return mmap.mmap(-1, BLOCK)  # page-aligned; its pages stay with the process once touched


def _give(block: mmap.mmap) -> None:
    with _pool_lock:
        _pool.append(block)


def open_direct(path: str | os.PathLike[str], flags: int, mode: int) -> tuple[int, bool]:
    """Open with ``O_DIRECT`` if enabled and the file system takes it; (fd, direct?)."""
    if enabled():
        try:
            return os.open(path, flags | os.O_DIRECT, mode), True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            if flags & os.O_EXCL:  # the file may exist now (created before the refusal)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    return os.open(path, flags, mode), False


class DirectAppender:
    """Writes a new file front to back through ``fd`` (opened by ``open_direct``).

    ``write`` copies into the current block; a full block goes to the writer
    thread.  ``read`` returns bytes already appended, whether on disk or still
    in memory.  ``finish`` writes the rest and truncates the file to its
    length; ``close`` returns the blocks to the pool (always call it).
    Errors of the writer thread are raised by the next call.
    """

    def __init__(self, path: str | os.PathLike[str], fd: int, direct: bool) -> None:
        self.path = path
        self.fd = fd
        self.direct = direct
        self.size = 0  # bytes appended
        self._base = 0  # file offset of the current block's first byte
        self._cur: mmap.mmap | None = None
        self._fill = 0
        self._error: BaseException | None = None
        self._todo: queue.Queue[tuple[mmap.mmap, int, int] | None] = queue.Queue(IN_FLIGHT)
        self._thread: threading.Thread | None = None
        self._read_fd = -1
        self._closing = False

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        while True:
            item = self._todo.get()
            try:
                if item is None:
                    return
                block, length, offset = item
                if self._error is None and not self._closing:
                    try:
                        self._pwrite_all(memoryview(block)[:length], offset)
                    except Exception as exc:  # the caller raises it; this thread goes on
                        self._error = exc
                _give(block)
            finally:
                self._todo.task_done()

    def _pwrite_all(self, view: memoryview, offset: int) -> None:
        while view:
            try:
                n = os.pwrite(self.fd, view, offset)
            except OSError as exc:
                if not (self.direct and exc.errno == errno.EINVAL):
                    raise
                self._buffered()  # a file system that wants another alignment
                continue
            if n <= 0:
                raise OSError(errno.EIO, "write made no progress")
            view, offset = view[n:], offset + n

    def _buffered(self) -> None:
        import fcntl

        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        self.direct = False

    def _submit(self, length: int) -> None:
        block, self._cur = self._cur, None
        assert block is not None
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dsv-direct-write", daemon=True)
            self._thread.start()
        self._todo.put((block, length, self._base))
        self._base += length
        self._fill = 0
        self._check()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        if self._thread is not None:
            self._todo.join()
        self._check()

    # ------------------------------------------------------------------ the caller's side

    def write(self, parts: Iterable[Buffer]) -> None:
        for part in parts:
            view = memoryview(part).cast("B")
            while view:
                if self._cur is None:
                    self._cur = _take()
                n = min(len(view), BLOCK - self._fill)
                self._cur[self._fill : self._fill + n] = view[:n]
                self._fill += n
                self.size += n
                view = view[n:]
                if self._fill == BLOCK:
                    self._submit(BLOCK)

    def read(self, offset: int, length: int) -> bytes:
        """Bytes ``offset .. offset+length`` of what was appended."""
        end = min(offset + length, self.size)
        out = b""
        if offset < self._base:
            self._drain()
            if not self.direct:
                fd = self.fd
            else:  # direct reads want alignment: read through the cache
                if self._read_fd < 0:
                    self._read_fd = os.open(self.path, os.O_RDONLY)
                fd = self._read_fd
            out = os.pread(fd, min(end, self._base) - offset, offset)
        if end > self._base and self._cur is not None:
            start = max(offset, self._base) - self._base
            out += self._cur[start : end - self._base]
        return out

    def finish(self) -> None:
        """Write what is left and set the file's length; the caller syncs."""
        if self._cur is not None and self._fill:
            length = self._fill
            padded = -(-length // ALIGN) * ALIGN if self.direct else length
            self._cur[length:padded] = bytes(padded - length)
            self._submit(padded)
        self._drain()
        os.ftruncate(self.fd, self.size)  # the padding of the last direct write

    def close(self) -> None:
        """Stop the writer thread and return the blocks (the caller closes ``fd``)."""
        if self._thread is not None:
            self._closing = True  # blocks still queued are not written
            self._todo.put(None)
            self._thread.join()
            self._thread = None
        if self._cur is not None:
            _give(self._cur)
            self._cur = None
        if self._read_fd >= 0:
            os.close(self._read_fd)
            self._read_fd = -1
