"""The stat cache (``.dsv/index``): path -> (stat fields, content id).

It lets ``status`` and ``commit`` cost one ``lstat`` per unchanged file.  It is a
cache: deleting it is always safe, a damaged or unknown-version one is ignored
and rebuilt.  Layout in docs/format.md.

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
import stat as stat_mod
import struct
from pathlib import Path

from dsv.atomic import write_atomic
from dsv.errors import DsvError
from dsv.hashing import ALGO_CODES, HashAlgo, checksum

MAGIC = b"DSVINDEX"
VERSION = 1
_HEADER = struct.Struct(
    "<8sHBBIqI"
)  # magic, version, algo, digest size, count, ref_ns, granularity_ms
_REC = "<QqqQI"  # size, mtime_ns, ctime_ns, ino, st_mode  (+ id)

# Timestamp granularity assumed for file systems with sub-second timestamps
# (the kernel's coarse clock ticks every 1-10 ms) and for those without.
FINE_GRANULARITY_NS = 50_000_000
COARSE_GRANULARITY_NS = 2_500_000_000


# One cached file: (size, mtime_ns, ctime_ns, inode, st_mode, id).
Entry = tuple[int, int, int, int, int, bytes]


def entry_from_stat(st: os.stat_result, oid: bytes) -> Entry:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode, oid)


def granularity_for(mtimes_ns: list[int]) -> int:
    """Coarse (2.5 s) unless some mtime shows sub-millisecond precision."""
    for m in mtimes_ns[:256]:
        if m % 1_000_000:
            return FINE_GRANULARITY_NS
    return COARSE_GRANULARITY_NS if mtimes_ns else FINE_GRANULARITY_NS


class StatCache:
    """In-memory view of ``.dsv/index``."""

    def __init__(self, path: Path, algo: HashAlgo) -> None:
        self.path = path
        self.algo = algo
        self.entries: dict[str, Entry] = {}
        self.ref_ns = 0
        self.granularity_ns = FINE_GRANULARITY_NS
        self.tree: bytes | None = None  # root tree the entries mirror exactly, if known

    # ------------------------------------------------------------------ checks

    def lookup(self, path: str, st: os.stat_result) -> bytes | None:
        """The cached id if ``st`` matches the entry and the entry is not racy."""
        # called once per file by status and commit: plain tuple indexing on purpose
        e = self.entries.get(path)
        if (
            e is None
            or e[1] != st.st_mtime_ns
            or e[0] != st.st_size
            or e[2] != st.st_ctime_ns
            or e[3] != st.st_ino
            or e[4] != st.st_mode
        ):
            return None
        if e[1] > self.ref_ns - self.granularity_ns:
            return None  # racily clean: could have changed within the same tick
        return e[5]

    # ------------------------------------------------------------------ I/O

    def load(self) -> StatCache:
        """Read the cache file; anything unreadable means an empty cache."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return self
        try:
            self._parse(data)
        except (ValueError, struct.error, UnicodeDecodeError):
            self.entries = {}
            self.tree = None
        return self

    def _parse(self, data: bytes) -> None:
        ds = self.algo.digest_size
        hs = _HEADER.size
        if len(data) < hs + ds + 16 or checksum(memoryview(data)[:-16]) != data[-16:]:
            raise ValueError("bad checksum")
        magic, version, code, dsize, count, ref_ns, gran_ms = _HEADER.unpack_from(data, 0)
        if (
            magic != MAGIC
            or version != VERSION
            or code != ALGO_CODES[self.algo.name]
            or dsize != ds
        ):
            raise ValueError("not this cache format")
        tree = data[hs : hs + ds]
        rec = struct.Struct(f"{_REC}{ds}s")
        start = hs + ds
        end = start + count * rec.size
        recs = list(rec.iter_unpack(data[start:end]))
        names = data[end:-16].decode("utf-8", "surrogateescape").split("\0") if count else []
        if len(names) != count:
            raise ValueError("name count")
        self.entries = dict(zip(names, recs))
        self.ref_ns = ref_ns
        self.granularity_ns = gran_ms * 1_000_000
        self.tree = tree if tree != bytes(ds) else None

    def save(self, ref_ns: int, granularity_ns: int) -> None:
        """Write the cache (atomic rename; not fsynced: it is disposable)."""
        ds = self.algo.digest_size
        items = sorted(self.entries.items())
        rec = struct.Struct(f"{_REC}{ds}s")
        out = bytearray(
            _HEADER.pack(
                MAGIC,
                VERSION,
                ALGO_CODES[self.algo.name],
                ds,
                len(items),
                ref_ns,
                max(1, granularity_ns // 1_000_000),
            )
        )
        out += self.tree or bytes(ds)
        for _, e in items:
            out += rec.pack(*e)
        out += "\0".join(n for n, _ in items).encode("utf-8", "surrogateescape")
        out += checksum(bytes(out))
        with contextlib.suppress(DsvError):  # a cache that cannot be written only costs speed
            write_atomic(self.path, bytes(out), durable=False)
        self.ref_ns = ref_ns
        self.granularity_ns = granularity_ns


def is_regular(st_mode: int) -> bool:
    return stat_mod.S_ISREG(st_mode)
