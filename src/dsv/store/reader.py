"""Seekable, read-only file objects over stored content.

Table readers need random access (Parquet reads its footer, then only the
column chunks it needs), so content is exposed as a file that reads, verifies
and keeps one chunk at a time: memory stays bounded however large the file.
Subclasses of :class:`SeekableReader` say only how to read a range.
"""

from __future__ import annotations

import bisect
import io
import threading
from typing import Any

from dsv.store import Store

__all__ = ["ObjectFile", "SeekableReader"]


class SeekableReader(io.RawIOBase):
    """The file protocol (seek, tell, readinto, readall) over a ``pread`` of a subclass."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self._pos = 0

    def pread(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end); the position does not move."""
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.pread(self._pos, len(view))
        n = len(data)
        view[:n] = data
        self._pos += n
        return n

    def readall(self) -> bytes:
        out = bytearray()
        while data := self.pread(self._pos, 8 << 20):
            out += data
            self._pos += len(data)
        return bytes(out)


class ObjectFile(SeekableReader):
    """A stored object of the local store; each chunk is verified when read.

    The whole-content id is only checked by a full sequential read
    (``Store.iter_content``); random access verifies every chunk it touches
    against its own id, which is what a diff needs.
    """

    def __init__(self, store: Store, oid: bytes) -> None:
        self._store = store
        self._oid = oid
        self._ids, self._starts = store.offsets(oid)
        super().__init__(self._starts[-1])
        self._cached: tuple[int, bytes] = (-1, b"")
        self._lock = threading.Lock()  # pyarrow may read from several threads

    def _chunk(self, i: int) -> bytes:
        if self._cached[0] == i:
            return self._cached[1]
        cid = self._ids[i]
        if len(self._ids) == 1:
            data = self._store.read_chunk(cid)
        else:
            data = self._store.read_listed_chunk(self._oid, cid)
        self._cached = (i, data)
        return data

    def pread(self, offset: int, length: int) -> bytes:
        with self._lock:
            end = min(offset + max(0, length), self.size)
            parts = []
            while offset < end:
                i = bisect.bisect_right(self._starts, offset) - 1
                data = self._chunk(i)
                lo = offset - self._starts[i]
                n = min(len(data) - lo, end - offset)
                parts.append(memoryview(data)[lo : lo + n])
                offset += n
            return b"".join(parts)
