"""Pack files and their indexes (byte layouts in docs/format.md).

A pack is an append-only sequence of records (one object each), written once
under a temp name, fsynced, then renamed to ``pack-<checksum>.pack``.  Its
index is written after it: readers only use packs that have an index, so a
crash leaves at worst an unindexed pack (garbage), never a dangling entry.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import sys
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dsv.atomic import TEMP_MARK, fsync_dir, write_atomic
from dsv.directio import Buffer as Buffer
from dsv.directio import DirectAppender, open_direct
from dsv.errors import CorruptObjectError, FormatError, UnsupportedFormatError, io_error
from dsv.hashing import ALGO_CODES, HashAlgo, algo_from_code, checksum, checksum_hasher
from dsv.records import Record

PACK_MAGIC = b"DSVPACK\0"
PACK_END = b"DSVPEND\0"
PACK_VERSION = 1
IDX_MAGIC = b"DSVIDX\0\0"
IDX_VERSION = 1

_FILE_HEADER = struct.Struct("<8sHBBI")  # magic, version, algo code, digest size, reserved
_REC = struct.Struct("<BBHII")  # kind, codec, reserved, raw length, stored length (after the id)
RECORD_HEAD = _REC
_PACK_TRAILER = struct.Struct("<8sQ16s")  # end magic, record count, checksum of all before
_IDX_ENTRY = struct.Struct("<QIIBB2x")  # payload offset, stored len, raw len, kind, codec
_FANOUT = struct.Struct("<256I")

KIND_LITERAL = 0  # payload is the object's bytes
KIND_CHUNKLIST = 1  # payload is an encoded chunk list (objects.encode_chunklist)
CODEC_NONE = 0
CODEC_ZSTD = 1

# Hard limits that bound what a hostile or corrupt pack can make us allocate.
MAX_LITERAL = 16 << 20
MAX_RECORD = 1 << 30


class Entry(Record):
    """Where one object's record lives (``pack`` None: the pack being written)."""

    __slots__ = ("codec", "kind", "offset", "pack", "raw_len", "stored_len")

    def __init__(
        self,
        pack: PackFile | None,
        offset: int,
        stored_len: int,
        raw_len: int,
        kind: int,
        codec: int,
    ) -> None:
        self.pack = pack
        self.offset = offset  # of the payload
        self.stored_len = stored_len
        self.raw_len = raw_len
        self.kind = kind
        self.codec = codec


def _check_header(data: bytes, magic: bytes, version: int, what: str, path: Path) -> HashAlgo:
    if len(data) < _FILE_HEADER.size:
        raise FormatError(f"{what} {path.name}: truncated header")
    m, ver, code, dsize, _ = _FILE_HEADER.unpack_from(data, 0)
    if m != magic:
        raise FormatError(f"{what} {path.name}: bad magic")
    if ver != version:
        raise UnsupportedFormatError(
            f"{what} {path.name}: format version {ver} is not supported (this dsv reads {version})"
        )
    algo = algo_from_code(code)
    if dsize != algo.digest_size:
        raise FormatError(f"{what} {path.name}: digest size {dsize} does not match {algo.name}")
    return algo


# Lookups in an index before its prefix keys are built (30 ms for a million
# ids): a command that reads a commit and a tree or two never pays for them.
SEARCHES_BEFORE_KEYS = 16


class SortedIndex:
    """Sorted ids with a 256-way fanout, binary-searched in place (pack and multi-pack indexes).

    Subclasses call ``_set_table`` with the raw file bytes and the layout, and
    implement ``_entry(i)``.
    """

    _data: bytes
    _ids_off: int
    _ent_off: int
    _ds: int
    _fanout: tuple[int, ...]
    count: int

    def _set_table(self, data: bytes, fan: tuple[int, ...], ids_off: int, ds: int) -> None:
        # Kept as bytes: slicing bytes gives comparable bytes (memoryviews only compare equal).
        self._data = data
        self._fanout = fan
        self.count = fan[255]
        self._ids_off = ids_off
        self._ent_off = ids_off + self.count * ds
        self._ds = ds
        self._keys: array[int] | None = None
        self._lookups = 0

    def _prefix_keys(self) -> array[int]:
        """The first 8 bytes of every id as integers, in the same order (built on first use).

        ``bisect`` searches them in C: a lookup in a pack of 10,000 objects
        took 6 us as a binary search over slices of the index in Python, and
        a clone or a checkout makes one per file.  8 bytes per id; the ids
        themselves stay in the index's bytes.
        """
        keys = array("Q")
        ids = memoryview(self._data)[self._ids_off : self._ent_off]
        if self._ds % 8 == 0:  # every hash dsv knows
            keys.frombytes(ids.cast("Q")[:: self._ds // 8].tobytes())
        else:
            keys.frombytes(b"".join(ids[p : p + 8] for p in range(0, len(ids), self._ds)))
        if sys.byteorder == "little":
            keys.byteswap()
        self._keys = keys
        return keys

    def _lower_bound(self, key: bytes) -> int:
        """First position whose id is >= ``key`` (a full id or a prefix)."""
        keys = self._keys
        if keys is None:
            self._lookups += 1
            if self._lookups <= SEARCHES_BEFORE_KEYS:
                return self._search_ids(key)
            keys = self._prefix_keys()
        b0 = key[0]
        k = int.from_bytes(key[:8].ljust(8, b"\0"), "big")
        i = bisect_left(keys, k, self._fanout[b0 - 1] if b0 else 0, self._fanout[b0])
        # ids sharing the first 8 bytes (never, in practice) are ordered by the rest
        ds = self._ds
        data = self._data
        base = self._ids_off
        while i < self.count and keys[i] == k and data[base + i * ds : base + (i + 1) * ds] < key:
            i += 1
        return i

    def _search_ids(self, key: bytes) -> int:
        """``_lower_bound`` by a binary search over the ids themselves (no keys built)."""
        ds = self._ds
        b0 = key[0]
        lo = self._fanout[b0 - 1] if b0 else 0
        hi = self._fanout[b0]
        data = self._data
        base = self._ids_off
        while lo < hi:
            mid = (lo + hi) >> 1
            p = base + mid * ds
            if data[p : p + ds] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def position(self, oid: bytes) -> int:
        """Where ``oid`` is in the index (-1: not there)."""
        i = self._lower_bound(oid)
        p = self._ids_off + i * self._ds
        return i if i < self.count and self._data[p : p + self._ds] == oid else -1

    def find(self, oid: bytes) -> Entry | None:
        i = self.position(oid)
        return None if i < 0 else self._entry(i)

    def _entry(self, i: int) -> Entry:
        raise NotImplementedError

    def ids(self) -> list[bytes]:
        return list(self.iter_ids())

    def iter_ids(self) -> Iterator[bytes]:
        """The ids in order, made one at a time (a search that stops early makes few)."""
        ds = self._ds
        d = self._data
        return (d[p : p + ds] for p in range(self._ids_off, self._ent_off, ds))

    def ids_with_prefix(self, prefix: bytes) -> list[bytes]:
        """Ids starting with ``prefix`` (at least one byte)."""
        ds = self._ds
        d = self._data
        out = []
        i = self._lower_bound(prefix)
        while i < self.count:
            p = self._ids_off + i * ds
            cand = d[p : p + ds]
            if not cand.startswith(prefix):
                break
            out.append(cand)
            i += 1
        return out

    def entries(self) -> list[tuple[bytes, Entry]]:
        return [(oid, self._entry(i)) for i, oid in enumerate(self.ids())]


def _check_fanout(data: bytes, ds: int, entry_size: int, extra: int, where: str) -> tuple[int, ...]:
    """Validate the fanout of an index and the total size it implies."""
    fan: tuple[int, ...] = _FANOUT.unpack_from(data, _FILE_HEADER.size + extra)
    count = fan[255]
    if any(fan[i] > fan[i + 1] for i in range(255)):
        raise FormatError(f"{where}: fanout not monotonic")
    if _FILE_HEADER.size + extra + _FANOUT.size + count * (ds + entry_size) + 32 != len(data):
        raise FormatError(f"{where}: size does not match its count")
    return fan


class PackFile(SortedIndex):
    """A finished pack and its index, opened for reads (the index loads on first use)."""

    def __init__(self, pack_path: Path, algo: HashAlgo, *, lazy: bool = False) -> None:
        self.path = pack_path
        self.idx_path = pack_path.with_suffix(".idx")
        self.algo = algo
        self._fd: int | None = None
        self._size = 0
        self._open_lock = threading.Lock()  # readers on several threads open it once
        self._loaded = False
        if not lazy:
            self._load()

    def _load(self) -> None:
        try:
            data = self.idx_path.read_bytes()
        except OSError as exc:
            raise io_error("read pack index", self.idx_path, exc) from exc
        self._load_index(data)
        self._loaded = True

    def __getattr__(self, name: str) -> object:
        # the index of a pack covered by a multi-pack index is read only when needed
        if name in (
            "_data",
            "_fanout",
            "count",
            "pack_checksum",
            "_ids_off",
            "_ent_off",
            "_ds",
            "_keys",
            "_lookups",
        ):
            with self._open_lock:  # threads that look up at once load it once
                if not self._loaded:
                    self._load()
            return getattr(self, name)
        raise AttributeError(name)

    def _load_index(self, data: bytes) -> None:
        ds = self.algo.digest_size
        got = _check_header(data, IDX_MAGIC, IDX_VERSION, "pack index", self.idx_path)
        if got.name != self.algo.name:
            raise FormatError(
                f"pack index {self.idx_path.name}: hash {got.name} is not the repository's"
            )
        if len(data) < _FILE_HEADER.size + _FANOUT.size + 32:
            raise FormatError(f"pack index {self.idx_path.name}: truncated")
        if checksum(memoryview(data)[:-16]) != data[-16:]:
            raise CorruptObjectError(f"pack index {self.idx_path.name}: checksum mismatch")
        fan = _check_fanout(data, ds, _IDX_ENTRY.size, 0, f"pack index {self.idx_path.name}")
        self.pack_checksum = data[-32:-16]
        self._set_table(data, fan, _FILE_HEADER.size + _FANOUT.size, ds)

    def _entry(self, i: int) -> Entry:
        off, slen, rlen, kind, codec = _IDX_ENTRY.unpack_from(
            self._data, self._ent_off + i * _IDX_ENTRY.size
        )
        return Entry(self, off, slen, rlen, kind, codec)

    # -- reads

    def _open(self) -> int:
        fd = self._fd
        if fd is not None:
            return fd
        with self._open_lock:
            if self._fd is None:
                try:
                    fd = os.open(self.path, os.O_RDONLY)
                    self._size = os.fstat(fd).st_size
                except OSError as exc:
                    if fd is not None:
                        os.close(fd)
                    raise io_error("open pack", self.path, exc) from exc
                # the size first: another thread that sees the descriptor reads it
                self._fd = fd
            return self._fd

    def read_stored(self, e: Entry) -> bytes:
        """The stored (possibly compressed) payload of a record."""
        self._open()
        assert self._fd is not None
        if (
            e.offset < _FILE_HEADER.size
            or e.offset + e.stored_len > self._size - _PACK_TRAILER.size
        ):
            raise FormatError(f"pack index {self.idx_path.name}: entry points outside its pack")
        try:
            data = os.pread(self._fd, e.stored_len, e.offset)
        except OSError as exc:
            raise io_error("read pack", self.path, exc) from exc
        if len(data) != e.stored_len:
            raise CorruptObjectError(f"pack {self.path.name}: truncated")
        return data

    def window(self, offset: int, length: int) -> tuple[memoryview, int]:
        """The pack's bytes from about ``offset`` on, mapped read-only: ``(view, base)``.

        ``base`` is the pack offset of ``view[0]`` (``offset`` rounded down to
        the page size); the view covers ``length`` bytes past ``offset`` or up
        to the trailer.  Pages are mapped at once (MAP_POPULATE) and unmapped
        when the last view of them goes away, so memory stays at one window
        per reader.  Reading through a mapping saves copying the data once
        more into a buffer before it is written out.
        """
        import mmap

        fd = self._open()
        end = min(offset + length, self._size - _PACK_TRAILER.size)
        if offset < _FILE_HEADER.size or end <= offset:
            raise FormatError(f"pack index {self.idx_path.name}: entry points outside its pack")
        base = offset - offset % mmap.ALLOCATIONGRANULARITY
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        try:
            m = mmap.mmap(fd, end - base, flags=flags, prot=mmap.PROT_READ, offset=base)
        except OSError as exc:
            raise io_error("read pack", self.path, exc) from exc
        return memoryview(m), base

    def fd(self) -> int:
        """The pack's open descriptor (valid until ``close``)."""
        return self._open()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


MIDX_MAGIC = b"DSVMIDX\0"
MIDX_VERSION = 1
MIDX_NAME = "multi-pack-index"
_MIDX_ENTRY = struct.Struct("<IQIIBB2x")  # pack number, offset, stored len, raw len, kind, codec


class MultiPackIndex(SortedIndex):
    """One sorted index over many packs (``objects/pack/multi-pack-index``).

    With many packs, a lookup is one binary search instead of one per pack.
    It covers the packs listed in it; packs written later are searched one by
    one until the next rewrite.  It is a cache: a damaged or stale one (a
    listed pack is gone) is ignored, and ``dsv gc`` rewrites it.
    """

    def __init__(self, path: Path, algo: HashAlgo, packs_by_name: dict[str, PackFile]) -> None:
        self.path = path
        data = path.read_bytes()
        ds = algo.digest_size
        where = f"multi-pack index {path.name}"
        got = _check_header(data, MIDX_MAGIC, MIDX_VERSION, "multi-pack index", path)
        if got.name != algo.name or len(data) < _FILE_HEADER.size + 32:
            raise FormatError(f"{where}: not for this repository")
        if checksum(memoryview(data)[:-16]) != data[-16:]:
            raise CorruptObjectError(f"{where}: checksum mismatch")
        npacks = struct.unpack_from("<I", data, 12)[0]
        table = _FILE_HEADER.size
        names = ["pack-" + data[table + 16 * i : table + 16 * i + 16].hex() for i in range(npacks)]
        missing = [n for n in names if n not in packs_by_name]
        if missing:
            raise FormatError(f"{where}: lists {missing[0]}, which is gone")
        self.packs = [packs_by_name[n] for n in names]
        self.names = set(names)
        fan = _check_fanout(data, ds, _MIDX_ENTRY.size, 16 * npacks, where)
        self._set_table(data, fan, table + 16 * npacks + _FANOUT.size, ds)

    def _entry(self, i: int) -> Entry:
        n, off, slen, rlen, kind, codec = _MIDX_ENTRY.unpack_from(
            self._data, self._ent_off + i * _MIDX_ENTRY.size
        )
        if n >= len(self.packs):
            raise FormatError(f"multi-pack index {self.path.name}: bad pack number {n}")
        return Entry(self.packs[n], off, slen, rlen, kind, codec)


def write_multi_index(path: Path, algo: HashAlgo, packs: list[PackFile]) -> None:
    """Merge the indexes of ``packs`` into one multi-pack index (atomic, not fsynced: a cache)."""
    import heapq

    packs = sorted(packs, key=lambda p: p.path.name)

    def records(n: int, p: PackFile) -> Iterator[tuple[bytes, int, bytes]]:
        ds, ids_off, ent_off, data = p._ds, p._ids_off, p._ent_off, p._data
        es = _IDX_ENTRY.size
        for i in range(p.count):
            yield (
                data[ids_off + i * ds : ids_off + (i + 1) * ds],
                n,
                data[ent_off + i * es : ent_off + (i + 1) * es],
            )

    streams = [records(n, p) for n, p in enumerate(packs)]
    ids = bytearray()
    ents = bytearray()
    fan = [0] * 256
    last = b""
    for oid, n, ent in heapq.merge(*streams):
        if oid == last:
            continue  # the same object in two packs: either copy will do
        last = oid
        fan[oid[0]] += 1
        off, slen, rlen, kind, codec = _IDX_ENTRY.unpack(ent)
        ids += oid
        ents += _MIDX_ENTRY.pack(n, off, slen, rlen, kind, codec)
    total = 0
    for i in range(256):
        total += fan[i]
        fan[i] = total
    table = b"".join(p.pack_checksum for p in packs)
    out = bytearray(
        _FILE_HEADER.pack(
            MIDX_MAGIC, MIDX_VERSION, ALGO_CODES[algo.name], algo.digest_size, len(packs)
        )
    )
    out += table
    out += _FANOUT.pack(*fan)
    out += ids
    out += ents
    out += checksum(table)
    out += checksum(bytes(out))
    write_atomic(path, bytes(out), durable=False)


def write_index(
    idx_path: Path,
    algo: HashAlgo,
    records: list[tuple[bytes, int, int, int, int, int]],
    pack_checksum: bytes,
    *,
    durable: bool = True,
) -> None:
    """Write the sorted index for records ``(id, offset, stored, raw, kind, codec)``."""
    records = sorted(records, key=lambda r: r[0])
    for a, b in itertools.pairwise(records):
        if a[0] == b[0]:
            raise ValueError("duplicate id in pack")
    fan = [0] * 256
    for r in records:
        fan[r[0][0]] += 1
    total = 0
    for i in range(256):
        total += fan[i]
        fan[i] = total
    out = bytearray(
        _FILE_HEADER.pack(IDX_MAGIC, IDX_VERSION, ALGO_CODES[algo.name], algo.digest_size, 0)
    )
    out += _FANOUT.pack(*fan)
    for r in records:
        out += r[0]
    for r in records:
        out += _IDX_ENTRY.pack(r[1], r[2], r[3], r[4], r[5])
    out += pack_checksum
    out += checksum(bytes(out))
    write_atomic(idx_path, bytes(out), durable=durable)


class PackRange(Record):
    """Bytes of a pack, by place: for ``os.copy_file_range`` (kernel to kernel)."""

    __slots__ = ("fd", "length", "offset")

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd = fd
        self.offset = offset
        self.length = length


class _Syncer:
    """Pushes written pack data to disk (``fdatasync``) on a thread of its own.

    Writes themselves stay in the caller's thread: measured here, a writer
    thread fed with views of the chunker's buffers cost 3-4x more system time
    (page faults and unmaps across threads) than it saved.  Syncing in the
    background only overlaps the disk's work with chunking, so the final
    ``fsync`` before a ref moves has little left to do.  An error is kept and
    reported by ``finish``; durability is never assumed, only started early.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.error: OSError | None = None
        self._want = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="dsv-pack-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._want.wait()
            self._want.clear()
            if self._stop:
                return
            try:
                os.fdatasync(self.fd)
            except OSError as exc:
                self.error = exc
                return

    def request(self) -> None:
        self._want.set()

    def stop(self) -> None:
        self._stop = True
        self._want.set()
        self._thread.join()


def _writev_all(fd: int, parts: list[Buffer]) -> None:
    total = sum(len(x) for x in parts)
    n = os.writev(fd, parts)
    if n != total:  # short write (rare): finish it piece by piece
        rest = memoryview(b"".join(bytes(x) for x in parts))[n:]
        while rest:
            rest = rest[os.write(fd, rest) :]


class PackWriter:
    """Appends records to a new pack; ``finish`` makes it durable and visible.

    Not thread-safe: the store serialises calls.
    """

    SMALL = 64 << 10  # records below this are gathered into 1 MiB writes
    SYNC_EVERY = 32 << 20

    def __init__(self, pack_dir: Path, algo: HashAlgo, *, durable: bool = True) -> None:
        self.dir = pack_dir
        self.algo = algo
        self.durable = durable  # False for packs that only exist to be uploaded
        self.tmp = pack_dir / f"{TEMP_MARK}pack-{os.getpid()}-{os.urandom(6).hex()}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL  # read-write: records may be read back
        self._direct: DirectAppender | None = None
        try:
            if durable:  # a pack kept in the store: past the page cache (dsv.directio)
                self._fd, direct = open_direct(self.tmp, flags, 0o444)
                if direct:
                    self._direct = DirectAppender(self.tmp, self._fd, True)
            else:  # a pack that is uploaded next: read back at once
                self._fd = os.open(self.tmp, flags, 0o444)
        except OSError as exc:
            raise io_error("create pack", self.tmp, exc) from exc
        self._hash = checksum_hasher()
        self._buf = bytearray()
        self._queued = 0  # bytes handed to the OS
        self._unsynced = 0
        self._syncer: _Syncer | None = None
        self.records: list[tuple[bytes, int, int, int, int, int]] = []
        self.index: dict[bytes, tuple[int, int, int, int, int]] = {}
        self._closed = False
        head = _FILE_HEADER.pack(
            PACK_MAGIC, PACK_VERSION, ALGO_CODES[algo.name], algo.digest_size, 0
        )
        self._buf += head
        self.size = len(head)

    def _enqueue(self, parts: list[Buffer], hashed: bool = True) -> None:
        """Hand ``parts`` to the OS; ``hashed``: they count in the pack's checksum (all
        but the checksum itself).  Hashed here, up to a MiB at a time, rather than in
        ``add``: two calls fewer per record."""
        n = 0
        for x in parts:
            n += len(x)
            if hashed:
                self._hash.update(x)
        try:
            if self._direct is not None:
                self._direct.write(parts)
            else:
                _writev_all(self._fd, parts)
        except OSError as exc:
            raise io_error("write pack", self.tmp, exc) from exc
        self._queued += n
        if self._direct is not None:
            return
        self._unsynced += n
        if self._unsynced >= self.SYNC_EVERY and self.durable:
            self._unsynced = 0
            if self._syncer is None:
                self._syncer = _Syncer(self._fd)
            self._syncer.request()

    def _flush_buf(self) -> None:
        if self._buf:
            buf, self._buf = self._buf, bytearray()
            self._enqueue([buf])

    def add(self, oid: bytes, kind: int, codec: int, raw_len: int, stored: Buffer) -> None:
        self.add_many(((oid, kind, codec, raw_len, stored),))

    def add_many(self, items: Iterable[tuple[bytes, int, int, int, Buffer]]) -> int:
        """``add`` each ``(id, kind, codec, raw length, stored bytes)``; returns the
        stored bytes of those added (not present before)."""
        index, records, small, pack = self.index, self.records, self.SMALL, _REC.pack
        added = 0
        for oid, kind, codec, raw_len, stored in items:
            if oid in index:
                continue
            n = len(stored)
            head = oid + pack(kind, codec, 0, raw_len, n)
            offset = self.size + len(head)
            if n < small:
                buf = self._buf
                buf += head
                buf += stored
                if len(buf) >= (1 << 20):
                    self._flush_buf()
            else:
                parts: list[Buffer] = [self._buf, head, stored] if self._buf else [head, stored]
                self._buf = bytearray()
                self._enqueue(parts)
            self.size = offset + n
            rec = (offset, n, raw_len, kind, codec)
            records.append((oid, *rec))
            index[oid] = rec
            added += n
        return added

    def read_stored(self, offset: int, length: int) -> bytes:
        """Read back a record of this unfinished pack."""
        if offset >= self._queued:
            start = offset - self._queued
            return bytes(self._buf[start : start + length])
        try:
            if self._direct is not None:
                return self._direct.read(offset, length)
            return os.pread(self._fd, length, offset)
        except OSError as exc:
            raise io_error("read pack", self.tmp, exc) from exc

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._syncer is not None:
            self._syncer.stop()
        if self._direct is not None:
            self._direct.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def finish(self, before_publish: Callable[[], None] | None = None) -> Path | None:
        """Seal, fsync, rename and index the pack.  Returns its path (None if empty).

        ``before_publish`` runs once the data is durable, before the pack gets
        its name: raising there removes the pack instead.
        """
        if not self.records:
            self.abort()
            return None
        self._buf += PACK_END + struct.pack("<Q", len(self.records))
        try:
            self._flush_buf()
            digest = self._hash.digest()
            self._enqueue([digest], hashed=False)
            if self._direct is not None:
                self._direct.finish()
            if self._syncer is not None:
                self._syncer.stop()
                if self._syncer.error is not None:
                    raise self._syncer.error
            if self.durable:
                os.fsync(self._fd)
            if before_publish is not None:
                before_publish()
            self._close()
            final = self.dir / f"pack-{digest.hex()}.pack"
            os.replace(self.tmp, final)
        except OSError as exc:
            self.abort()
            raise io_error("write pack", self.tmp, exc) from exc
        except BaseException:
            self.abort()
            raise
        if self.durable:
            fsync_dir(self.dir)
        write_index(
            final.with_suffix(".idx"), self.algo, self.records, digest, durable=self.durable
        )
        return final

    def abort(self) -> None:
        self._close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


def scan_pack(path: Path) -> tuple[HashAlgo, list[tuple[bytes, int, int, int, int, int]], bytes]:
    """Parse a whole pack file sequentially (fsck, re-indexing).  Verifies its checksum."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise io_error("read pack", path, exc) from exc
    algo = _check_header(data, PACK_MAGIC, PACK_VERSION, "pack", path)
    if len(data) < _FILE_HEADER.size + _PACK_TRAILER.size:
        raise FormatError(f"pack {path.name}: truncated")
    count, digest = _check_trailer(
        path, data[len(data) - _PACK_TRAILER.size :], checksum(memoryview(data)[:-16])
    )
    ds = algo.digest_size
    pos = _FILE_HEADER.size
    limit = len(data) - _PACK_TRAILER.size
    records = []
    while pos < limit:
        if pos + ds + _REC.size > limit:
            raise FormatError(f"pack {path.name}: truncated record header")
        oid = data[pos : pos + ds]
        kind, codec, _, rlen, slen = _REC.unpack_from(data, pos + ds)
        pos += ds + _REC.size
        if pos + slen > limit:
            raise FormatError(f"pack {path.name}: record runs past the end")
        records.append((oid, pos, slen, rlen, kind, codec))
        pos += slen
    if len(records) != count:
        raise FormatError(f"pack {path.name}: {len(records)} records but trailer says {count}")
    return algo, records, digest


def check_pack_file(path: Path, algo: HashAlgo) -> bytes:
    """A whole pack's checksum, verified against its trailer (and its header read).

    Reads the file in blocks through ``PackCheck`` (memory stays flat); raises
    FormatError or CorruptObjectError naming the pack.
    """
    view = memoryview(bytearray(8 << 20))
    check = PackCheck(path, algo)
    try:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                check.update(view[:n])
    except OSError as exc:
        raise io_error("read pack", path, exc) from exc
    return check.finish()


class PackCheck:
    """A pack's checks as its bytes stream by (a download, or ``check_pack_file``
    reading a file): its header, its trailer, and its checksum, which ``finish``
    returns.

    ``path`` names the pack in messages.  Memory stays flat: the checksum is
    taken block by block, holding back the trailer's bytes until the end; a
    block may be a view of a buffer that is reused once ``update`` returns.
    """

    def __init__(self, path: Path, algo: HashAlgo) -> None:
        self.path = path
        self.algo = algo
        self.restart()

    def restart(self) -> None:
        self._h = checksum_hasher()
        self._head = b""
        self._tail = b""  # the last bytes seen, not hashed yet (the trailer at the end)
        self.size = 0

    def update(self, block: bytes | memoryview) -> None:
        if len(self._head) < _FILE_HEADER.size:
            self._head += block[: _FILE_HEADER.size - len(self._head)]
        self.size += len(block)
        keep = _PACK_TRAILER.size
        if len(block) >= keep:
            self._h.update(self._tail)
            self._h.update(memoryview(block)[:-keep])
            self._tail = bytes(block[-keep:])
        else:
            data = self._tail + block
            self._h.update(data[:-keep])
            self._tail = data[-keep:]

    def finish(self) -> bytes:
        """The pack's checksum, once all of it went through ``update``; raises FormatError
        or CorruptObjectError naming the pack."""
        if self.size < _FILE_HEADER.size + _PACK_TRAILER.size:
            raise FormatError(f"pack {self.path.name}: truncated")
        got = _check_header(self._head, PACK_MAGIC, PACK_VERSION, "pack", self.path)
        if got.name != self.algo.name:
            raise FormatError(f"pack {self.path.name}: hash {got.name} is not the repository's")
        self._h.update(self._tail[:-16])  # all but the checksum itself
        return _check_trailer(self.path, self._tail, self._h.digest())[1]


def _check_trailer(path: Path, trailer: bytes, digest_of_rest: bytes) -> tuple[int, bytes]:
    """``(record count, checksum)`` of a pack's trailer, checked against the
    checksum of everything before its last 16 bytes."""
    if len(trailer) != _PACK_TRAILER.size:
        raise FormatError(f"pack {path.name}: truncated")
    end, count, digest = _PACK_TRAILER.unpack(trailer)
    if end != PACK_END:
        raise FormatError(f"pack {path.name}: missing trailer (truncated?)")
    if digest_of_rest != digest:
        raise CorruptObjectError(f"pack {path.name}: checksum mismatch")
    return count, bytes(digest)
