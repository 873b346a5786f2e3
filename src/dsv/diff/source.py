"""Reading the bytes of one side of a diff: from the store (a version) or from disk (the working tree).

Table readers need random access (Parquet reads its footer, then only the
column chunks it needs), so store content is exposed as a seekable file that
reads, verifies and caches one chunk at a time: memory stays bounded however
large the file.
"""

from __future__ import annotations

import bisect
import io
import os
import threading
from typing import BinaryIO, Protocol

from dsv.objects import TreeEntry
from dsv.store import Store

__all__ = ["DiskSource", "Source", "StoreFile", "StoreSource"]


class Source(Protocol):
    """Where the bytes of one side come from."""

    def open(self, path: str, entry: TreeEntry) -> BinaryIO:
        """A seekable binary file with the content of ``entry`` (at ``path``)."""
        ...

    def local_path(self, path: str, entry: TreeEntry) -> str | None:
        """A file on disk with that content, if there is one (readers can memory-map it)."""
        ...


class StoreFile(io.RawIOBase):
    """A read-only, seekable view of a stored object; each chunk is verified when read.

    The object's whole-content id is only checked by a full sequential read
    (``Store.iter_content``); random access verifies every chunk it touches
    against its own id, which is what a diff needs.
    """

    def __init__(self, store: Store, oid: bytes) -> None:
        super().__init__()
        self._store = store
        self._oid = oid
        self._ids, self._starts = store.offsets(oid)
        self._size = self._starts[-1]
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        self._lock = threading.Lock()  # pyarrow may read from several threads

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def _chunk(self, i: int) -> bytes:
        c = self._cached
        if c is not None and c[0] == i:
            return c[1]
        cid = self._ids[i]
        if len(self._ids) == 1:
            data = self._store.read_chunk(cid)
        else:
            data = self._store.read_listed_chunk(self._oid, cid)
        self._cached = (i, data)
        return data

    def readinto(self, b: memoryview | bytearray) -> int:  # type: ignore[override]
        with self._lock:
            view = memoryview(b).cast("B")
            want = len(view)
            pos = self._pos
            done = 0
            while done < want and pos < self._size:
                i = bisect.bisect_right(self._starts, pos) - 1
                data = self._chunk(i)
                lo = pos - self._starts[i]
                n = min(len(data) - lo, want - done)
                view[done : done + n] = memoryview(data)[lo : lo + n]
                done += n
                pos += n
            self._pos = pos
            return done

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self._size - self._pos)
        buf = bytearray(left if size is None or size < 0 else min(size, left))
        n = self.readinto(buf)
        return bytes(buf[:n])

    def readall(self) -> bytes:
        return self.read(-1)

    @property
    def size(self) -> int:
        return self._size


class StoreSource:
    """Content of a committed version, read from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open(self, path: str, entry: TreeEntry) -> BinaryIO:
        return io.BufferedReader(StoreFile(self.store, entry.id), buffer_size=1 << 20)

    def local_path(self, path: str, entry: TreeEntry) -> str | None:
        return None


class DiskSource:
    """Content of the working tree, read from disk."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)

    def open(self, path: str, entry: TreeEntry) -> BinaryIO:
        return open(os.path.join(self.root, path), "rb")

    def local_path(self, path: str, entry: TreeEntry) -> str | None:
        return os.path.join(self.root, path)
