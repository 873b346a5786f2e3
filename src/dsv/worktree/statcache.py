"""The stat cache (``.dsv/index``): stat fields and content id of every file, by directory.

It lets ``status`` and ``commit`` cost one ``lstat`` per unchanged file.  It is
a cache: deleting it is always safe, a damaged or unknown-version one is
ignored and rebuilt.  Layout in docs/format.md.

One :class:`Block` per directory holds that directory's files in tree order:
their names (one NUL-joined string), their stat records and their ids (two
byte strings).  A scan of an unchanged directory packs the same bytes, so it
is compared with two ``memcmp`` instead of a lookup per file.  A block may
also name the tree its files mirror (git's "cache tree"): then its files are
exactly that tree's files, each of its subdirectories has a block that mirrors
the corresponding subtree, and a commit reuses the tree without encoding it.
Files whose content was found to differ from such a tree are kept beside it,
in ``loose``, so that the block goes on mirroring its tree.

Racily clean entries.  A file rewritten within the same timestamp tick as the
moment it was hashed keeps its size and mtime, so a plain stat comparison
would miss the change.  The cache records when its scan started (``ref_ns``);
an entry whose mtime is not at least ``granularity`` older than that instant
is not trusted and gets re-hashed on the next run (git's racy-git rule, with
the tick made explicit).
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from dsv.atomic import atomic_writer
from dsv.errors import DsvError
from dsv.hashing import ALGO_CODES, HashAlgo, checksum_hasher
from dsv.worktree.scan import STAT, dir_key, join, pack_stat, tree_order

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

MAGIC = b"DSVINDEX"
VERSION = 2
# magic, version, algo, digest size, block count, ref_ns, granularity_ms, loose count
_HEADER = struct.Struct("<8sHBBIqII")
# path length, file count, names length, reserved, total size, newest mtime (+ tree id)
_BLOCK = struct.Struct("<IIIIQq")

# Timestamp granularity assumed for file systems with sub-second timestamps
# (the kernel's coarse clock ticks every 1-10 ms) and for those without.
FINE_GRANULARITY_NS = 50_000_000
COARSE_GRANULARITY_NS = 2_500_000_000

_REC = STAT.size


def granularity_for(mtimes_ns: list[int]) -> int:
    """Coarse (2.5 s) unless some mtime shows sub-millisecond precision."""
    for m in mtimes_ns[:256]:
        if m % 1_000_000:
            return FINE_GRANULARITY_NS
    return COARSE_GRANULARITY_NS if mtimes_ns else FINE_GRANULARITY_NS


def _split_names(blob: bytes) -> list[str]:
    return blob.decode("utf-8", "surrogateescape").split("\0") if blob else []


def names_blob(names: list[str]) -> bytes:
    return "\0".join(names).encode("utf-8", "surrogateescape")


class Block:
    """The cached files of one directory, in tree order.

    ``tree``: the tree these files (and the blocks of the subdirectories)
    mirror exactly, or None.  ``size``: total bytes of the files at and
    below this directory (meaningful with ``tree``).  Treat as immutable.
    """

    __slots__ = ("_index", "_names", "blob", "ids", "max_mtime", "size", "stats", "tree")

    def __init__(
        self,
        blob: bytes,
        stats: bytes,
        ids: bytes,
        tree: bytes | None = None,
        size: int = 0,
        max_mtime: int = 0,
        names: list[str] | None = None,
    ) -> None:
        self.blob = blob
        self.stats = stats
        self.ids = ids
        self.tree = tree
        self.size = size
        self.max_mtime = max_mtime
        self._names = names
        self._index: dict[str, int] | None = None

    @classmethod
    def of(
        cls,
        names: list[str],
        stats: bytes,
        ids: bytes,
        tree: bytes | None = None,
        size: int = 0,
        max_mtime: int | None = None,
    ) -> Block:
        if max_mtime is None:
            max_mtime = max((r[1] for r in STAT.iter_unpack(stats)), default=0)
        return cls(names_blob(names), stats, ids, tree, size, max_mtime)

    @classmethod
    def from_entries(
        cls, entries: dict[str, tuple[bytes, bytes]], tree: bytes | None = None, size: int = 0
    ) -> Block:
        """A block of ``name -> (stat record, id)`` entries (put in tree order here)."""
        names = tree_order(list(entries))
        return cls.of(
            names,
            b"".join(entries[n][0] for n in names),
            b"".join(entries[n][1] for n in names),
            tree,
            size,
        )

    def entries(self, ds: int) -> Iterator[tuple[str, tuple[bytes, bytes]]]:
        for i, n in enumerate(self.names):
            yield n, (self.stat(i), self.id(i, ds))

    @property
    def names(self) -> list[str]:
        if self._names is None:
            self._names = _split_names(self.blob)
        return self._names

    def __len__(self) -> int:
        return len(self.stats) // _REC

    def index(self, name: str) -> int:
        """Position of ``name`` in this block, or -1."""
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names)}
        return self._index.get(name, -1)

    def stat(self, i: int) -> bytes:
        return self.stats[i * _REC : (i + 1) * _REC]

    def id(self, i: int, ds: int) -> bytes:
        return self.ids[i * ds : (i + 1) * ds]

    def with_tree(self, tree: bytes | None, size: int | None = None) -> Block:
        b = Block(self.blob, self.stats, self.ids, tree, self.size if size is None else size)
        b.max_mtime = self.max_mtime
        b._names = self._names
        return b


class _Reader:
    """Reads a cache file in pieces, checksumming what it reads (trailer: 16 bytes)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.left = size - 16
        self.hash = checksum_hasher()
        if self.left < 0:
            raise ValueError("truncated")

    def read(self, n: int) -> bytes:
        if n > self.left:
            raise ValueError("truncated")
        data = self.f.read(n)
        if len(data) != n:
            raise ValueError("truncated")
        self.left -= n
        self.hash.update(data)
        return data

    def finish(self) -> None:
        if self.left or self.f.read(16) != self.hash.digest():
            raise ValueError("bad checksum")


class StatCache:
    """In-memory view of ``.dsv/index``: blocks by directory path, plus loose entries."""

    def __init__(self, path: Path, algo: HashAlgo) -> None:
        self.path = path
        self.algo = algo
        self.blocks: dict[str, Block] = {}
        # path -> (stat record, id): files that differ from the tree their block mirrors
        self.loose: dict[str, tuple[bytes, bytes]] = {}
        self.ref_ns = 0
        self.granularity_ns = FINE_GRANULARITY_NS
        self._children: dict[str, list[str]] | None = None

    # ------------------------------------------------------------------ queries

    @property
    def cutoff(self) -> int:
        """Entries with an mtime above this are racily clean (not trusted)."""
        return self.ref_ns - self.granularity_ns

    @property
    def tree(self) -> bytes | None:
        """The root tree the whole cache mirrors, if any."""
        root = self.blocks.get("")
        return root.tree if root is not None else None

    def children(self, d: str) -> list[str]:
        """Names of the subdirectories of ``d`` that have blocks."""
        if self._children is None:
            kids: dict[str, list[str]] = {}
            for p in self.blocks:
                if p:
                    parent, _, name = p.rpartition("/")
                    kids.setdefault(parent, []).append(name)
            self._children = kids
        return self._children.get(d, [])

    def lookup(self, path: str, st: os.stat_result) -> bytes | None:
        """The cached id if ``st`` matches the entry and the entry is not racy."""
        rec = pack_stat(st)
        if st.st_mtime_ns > self.cutoff:
            return None  # racily clean: could have changed within the same tick
        d, _, name = path.rpartition("/")
        b = self.blocks.get(d)
        if b is not None:
            i = b.index(name)
            if i >= 0 and b.stat(i) == rec:
                return b.id(i, self.algo.digest_size)
        lo = self.loose.get(path)
        if lo is not None and lo[0] == rec:
            return lo[1]
        return None

    # ------------------------------------------------------------------ updates

    def set_block(self, d: str, block: Block | None) -> None:
        """Replace the block of ``d`` (None or an empty one without a tree: remove it).

        A parent whose tree names this directory no longer mirrors it once
        the block stops mirroring the same tree.
        """
        old = self.blocks.get(d)
        if (
            d
            and old is not None
            and old.tree is not None
            and (block is None or block.tree != old.tree)
        ):
            self.untrust(d.rpartition("/")[0])
        if block is None or (not len(block) and block.tree is None):
            if self.blocks.pop(d, None) is not None:
                self._children = None
            return
        if d not in self.blocks:
            self._children = None
        self.blocks[d] = block

    def untrust(self, d: str) -> None:
        """``d`` and its ancestors no longer mirror their trees."""
        while True:
            b = self.blocks.get(d)
            if b is not None and b.tree is not None:
                self.blocks[d] = b.with_tree(None)
            if not d:
                return
            d = d.rpartition("/")[0]

    def record(self, updates: dict[str, tuple[os.stat_result, bytes]]) -> None:
        """Remember the ids of files just hashed (path -> (stat, id)).

        A block that mirrors a tree goes on mirroring it: a file whose content
        and mode are the tree's gets its fresher stat there, any other one is
        kept in ``loose``.
        """
        ds = self.algo.digest_size
        by_dir: dict[str, dict[str, tuple[bytes, bytes]]] = {}
        for path, (st, oid) in updates.items():
            d, _, name = path.rpartition("/")
            rec = pack_stat(st)
            b = self.blocks.get(d)
            if b is None or b.tree is None:
                by_dir.setdefault(d, {})[name] = (rec, oid)
                continue
            i = b.index(name)
            old_mode = STAT.unpack_from(b.stats, i * _REC)[4] if i >= 0 else -1
            if i >= 0 and b.id(i, ds) == oid and old_mode == st.st_mode:
                stats = bytearray(b.stats)
                stats[i * _REC : (i + 1) * _REC] = rec
                newest = max(b.max_mtime, st.st_mtime_ns)
                self.blocks[d] = Block(
                    b.blob, bytes(stats), b.ids, b.tree, b.size, newest, b._names
                )
                self.loose.pop(path, None)
            else:
                self.loose[path] = (rec, oid)
        for d, new in by_dir.items():
            self.merge(d, new)

    def merge(self, d: str, new: dict[str, tuple[bytes, bytes]]) -> None:
        """Add or replace entries (name -> (stat record, id)) of the directory ``d``."""
        if not new:
            return
        for name in new:
            self.loose.pop(join(d, name), None)
        old = self.blocks.get(d)
        merged = dict(old.entries(self.algo.digest_size)) if old is not None else {}
        merged.update(new)
        self._rebuild(d, merged)

    def forget(self, paths: list[str]) -> None:
        """Drop the entries of these files."""
        by_dir: dict[str, set[str]] = {}
        for path in paths:
            d, _, name = path.rpartition("/")
            by_dir.setdefault(d, set()).add(name)
            self.loose.pop(path, None)
        ds = self.algo.digest_size
        for d, gone in by_dir.items():
            old = self.blocks.get(d)
            if old is None or not any(old.index(n) >= 0 for n in gone):
                continue
            self._rebuild(
                d,
                {n: (old.stat(i), old.id(i, ds)) for i, n in enumerate(old.names) if n not in gone},
            )

    def drop_newer(self, cutoff: int) -> None:
        """Drop the entries with an mtime above ``cutoff``: they get hashed again."""
        ds = self.algo.digest_size
        for d, b in list(self.blocks.items()):
            if b.max_mtime <= cutoff:
                continue
            keep = {n: e for n, e in b.entries(ds) if STAT.unpack(e[0])[1] <= cutoff}
            if len(keep) < len(b):
                self._rebuild(d, keep)
        for path, (rec, _oid) in list(self.loose.items()):
            if STAT.unpack(rec)[1] > cutoff:
                del self.loose[path]
                self.untrust(path.rpartition("/")[0])

    def _rebuild(self, d: str, entries: dict[str, tuple[bytes, bytes]]) -> None:
        self.untrust(d)
        self.set_block(d, Block.from_entries(entries))

    def dirs(self) -> list[str]:
        """Directory paths of the blocks, in tree order."""
        return sorted(self.blocks, key=dir_key)

    def files(self) -> Iterator[tuple[str, bytes, bytes]]:
        """(path, stat record, id) of every block entry."""
        ds = self.algo.digest_size
        for d in self.dirs():
            b = self.blocks[d]
            for i, n in enumerate(b.names):
                yield join(d, n), b.stat(i), b.id(i, ds)

    # ------------------------------------------------------------------ I/O

    def load(self) -> StatCache:
        """Read the cache file; anything unreadable means an empty cache.

        Read piece by piece (each block's arrays are their own byte strings),
        so that the file is never held twice in memory.
        """
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self._parse(_Reader(f, size))
        except OSError:
            self.blocks = {}
            self.loose = {}
        except (ValueError, struct.error, UnicodeDecodeError):
            self.blocks = {}
            self.loose = {}
        self._children = None
        # A racily clean entry is hashed again by whatever needs it; kept, it
        # would turn trusted once saved with a later reference time (say by a
        # command whose paths leave it out of its scan).
        self.drop_newer(self.cutoff)
        return self

    def _parse(self, r: _Reader) -> None:
        ds = self.algo.digest_size
        magic, version, code, dsize, nblocks, ref_ns, gran_ms, nloose = _HEADER.unpack(
            r.read(_HEADER.size)
        )
        if (
            magic != MAGIC
            or version != VERSION
            or code != ALGO_CODES[self.algo.name]
            or dsize != ds
        ):
            raise ValueError("not this cache format")
        blocks: dict[str, Block] = {}
        zero = bytes(ds)
        for _ in range(nblocks):
            plen, count, nlen, _r, size, newest = _BLOCK.unpack(r.read(_BLOCK.size))
            tree = r.read(ds)
            path = r.read(plen).decode("utf-8", "surrogateescape")
            stats = r.read(count * _REC)
            ids = r.read(count * ds)
            blob = r.read(nlen)
            if path in blocks or (count and blob.count(b"\0") != count - 1):
                raise ValueError("bad block")
            blocks[path] = Block(blob, stats, ids, None if tree == zero else tree, size, newest)
        loose: dict[str, tuple[bytes, bytes]] = {}
        if nloose:
            w = _REC + ds
            recs = r.read(nloose * w)
            (nlen,) = struct.unpack("<I", r.read(4))
            names = _split_names(r.read(nlen))
            if len(names) != nloose:
                raise ValueError("loose name count")
            for i, n in enumerate(names):
                loose[n] = (recs[i * w : i * w + _REC], recs[i * w + _REC : (i + 1) * w])
        r.finish()
        self.blocks = blocks
        self.loose = loose
        self.ref_ns = ref_ns
        self.granularity_ns = gran_ms * 1_000_000

    def save(self, ref_ns: int, granularity_ns: int | None = None) -> None:
        """Write the cache (atomic rename; not fsynced: it is disposable)."""
        if granularity_ns is None:
            granularity_ns = granularity_for(self._sample_mtimes())
        ds = self.algo.digest_size
        zero = bytes(ds)
        parts: list[bytes] = [
            _HEADER.pack(
                MAGIC,
                VERSION,
                ALGO_CODES[self.algo.name],
                ds,
                len(self.blocks),
                ref_ns,
                max(1, granularity_ns // 1_000_000),
                len(self.loose),
            )
        ]
        for d in self.dirs():
            b = self.blocks[d]
            path = d.encode("utf-8", "surrogateescape")
            parts.append(_BLOCK.pack(len(path), len(b), len(b.blob), 0, b.size, b.max_mtime))
            parts += (b.tree or zero, path, b.stats, b.ids, b.blob)
        if self.loose:
            names = sorted(self.loose)
            parts += [self.loose[n][0] + self.loose[n][1] for n in names]
            blob = names_blob(names)
            parts += (struct.pack("<I", len(blob)), blob)
        h = checksum_hasher()
        # a cache that cannot be written only costs speed
        with contextlib.suppress(DsvError), atomic_writer(self.path, durable=False) as f:
            for p in parts:
                h.update(p)
                f.write(p)
            f.write(h.digest())
        self.ref_ns = ref_ns
        self.granularity_ns = granularity_ns

    def _sample_mtimes(self) -> list[int]:
        out: list[int] = []
        for b in self.blocks.values():
            out += (r[1] for r in STAT.iter_unpack(b.stats[: 16 * _REC]))
            if len(out) >= 256:
                break
        return out
