"""Reading the bytes of one side of a diff: from the store (a version) or from disk (the working tree).

Table readers need random access, so store content is opened as a seekable
file (``dsv.store.reader.ObjectFile``) that reads and verifies one chunk at a
time.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Protocol

from dsv.objects import TreeEntry
from dsv.store import Store
from dsv.store.reader import ObjectFile

__all__ = ["DiskSource", "Source", "StoreFile", "StoreSource"]


class Source(Protocol):
    """Where the bytes of one side come from.

    ``verified``: every byte read is checked against the entry's id (so what
    is computed from them belongs to that id, and can be kept by it).
    """

    verified: bool

    def open(self, path: str, entry: TreeEntry) -> BinaryIO:
        """A seekable binary file with the content of ``entry`` (at ``path``)."""
        ...

    def local_path(self, path: str, entry: TreeEntry) -> str | None:
        """A file on disk with that content, if there is one (readers can memory-map it)."""
        ...


StoreFile = ObjectFile  # a stored object as a seekable file


class StoreSource:
    """Content of a committed version, read from the store."""

    verified = True

    def __init__(self, store: Store) -> None:
        self.store = store

    def open(self, path: str, entry: TreeEntry) -> BinaryIO:
        return io.BufferedReader(StoreFile(self.store, entry.id), buffer_size=1 << 20)

    def local_path(self, path: str, entry: TreeEntry) -> str | None:
        return None


class DiskSource:
    """Content of the working tree, read from disk (it may change while it is read)."""

    verified = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)

    def open(self, path: str, entry: TreeEntry) -> BinaryIO:
        return open(os.path.join(self.root, path), "rb")

    def local_path(self, path: str, entry: TreeEntry) -> str | None:
        return os.path.join(self.root, path)
