"""The content-addressed object store: chunks, chunk lists, trees and commits in packs.

An object is a byte string named by its digest.  Small objects are stored as
one literal record; larger ones are cut into content-defined chunks (each a
literal record) plus a chunk-list record under the object's own id, so equal
content is stored once wherever it appears and a small edit to a large file
stores only the chunks it touched.  Every read verifies what it returns.
"""

from __future__ import annotations

import contextlib
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dsv.atomic import TEMP_MARK
from dsv.chunking import Chunker, ChunkParams
from dsv.errors import (
    CorruptObjectError,
    DsvError,
    DsvIOError,
    FormatError,
    NotFoundError,
    UnsupportedFormatError,
)
from dsv.hashing import HashAlgo
from dsv.objects import decode_chunklist, encode_chunklist
from dsv.store.pack import (
    CODEC_NONE,
    CODEC_ZSTD,
    KIND_CHUNKLIST,
    KIND_LITERAL,
    MAX_LITERAL,
    MAX_RECORD,
    MIDX_NAME,
    RECORD_HEAD,
    Buffer,
    Entry,
    MultiPackIndex,
    PackFile,
    PackRange,
    PackWriter,
    write_multi_index,
)

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

__all__ = ["ChunkSink", "ObjectInfo", "Store"]

PACK_TARGET = 64 << 20
# Full packs being sealed on threads while the next one is written; one more waits.
SEALS_IN_FLIGHT = 2
# Files up to this size are read whole (put_file, put_read); larger ones stream.
SMALL_FILE = 8 << 20
# Packs outside the multi-pack index before a flush rewrites it (one search per
# loose pack on every lookup until then).
MIDX_AFTER = 8
# iter_content_runs: the pack is mapped (and a file's chunks yielded) up to this
# many bytes at a time
RUN_MAX = 8 << 20
# Small objects queued for compression: after this many batches in a row where
# no object shrank, only a sample of each batch is tried.
MISSES_BEFORE_SAMPLING = 2
# Compression is kept only when it saves at least this fraction.
_MIN_SAVING = 0.05
# Bytes of a chunk compressed to tell whether compressing all of it may pay.
_SAMPLE = 4096
_ZSTD_LEVEL = 1


# An object queued for _Background: id, bytes, and (codec, stored bytes) if compressed already.
_Queued = tuple[bytes, bytes, "tuple[int, Buffer] | None"]


class _Background:
    """One thread that compresses queued small objects and appends them to the pack.

    Objects are handed over in batches and a batch is compressed in one call
    (``multi_compress_to_buffer``, which releases the GIL for the whole batch):
    one hand-over and one GIL round trip per batch rather than per object,
    which for 10 KB files was what bounded a commit, not zstd itself.  When
    the thread is behind (its queue full), the caller compresses its batch
    itself before handing it over, instead of waiting: 20,000 images (which
    shrink 14 %) commit in 1.40-1.57 s instead of 1.57-1.74 s.
    """

    BATCH_ITEMS = 256
    BATCH_BYTES = 4 << 20

    def __init__(self, store: Store) -> None:
        import queue

        self.store = store
        # batches, each with its objects compressed by the caller or None
        self.q: queue.Queue[tuple[list[_Queued], list[tuple[int, Buffer]] | None] | None] = (
            queue.Queue(maxsize=4)
        )
        self.error: BaseException | None = None
        # Batches in a row where nothing shrank: incompressible data (media,
        # archives, random bytes) is common, and trying zstd on every object of
        # it cost 0.6-0.9 s of CPU per 100,000 small files (measured).
        self.misses = 0
        self._closed = False
        self._discard = False
        self._mu = threading.Lock()  # the batch being filled (callers may be threads)
        self._batch: list[_Queued] = []
        self._batch_bytes = 0
        self._thread = threading.Thread(target=self._run, name="dsv-compress", daemon=True)
        self._thread.start()

    def put(self, oid: bytes, data: bytes, stored: tuple[int, Buffer] | None = None) -> None:
        """Queue an object; ``stored``: its ``(codec, stored bytes)`` if already compressed."""
        if self.error is not None:
            raise self.error
        st = self.store
        if oid in st._session or st.has(oid):
            return
        # present from now on, for dedup; without the store's lock, which the
        # writer thread holds while it appends a batch (a race between two
        # callers queues one object twice, and the pack writer keeps one)
        st._session.add(oid)
        full = None
        with self._mu:
            self._batch.append((oid, data, stored))
            self._batch_bytes += len(data)
            if len(self._batch) >= self.BATCH_ITEMS or self._batch_bytes >= self.BATCH_BYTES:
                full = self._take()
        if full:
            self._queue(full)

    def _queue(self, batch: list[_Queued]) -> None:
        """Hand a batch over; compressed here first if the thread is behind (both cores work)."""
        if self.q.full():
            self.q.put((batch, self._compressed(batch)))
        else:
            self.q.put((batch, None))

    def _compressed(self, batch: list[_Queued]) -> list[tuple[int, Buffer]]:
        """``(codec, stored)`` of each object of a batch."""
        st = self.store
        datas = [data for _, data, pre in batch if pre is None]  # the rest came compressed
        if self.misses >= MISSES_BEFORE_SAMPLING:
            # only every 16th object is tried until one of them shrinks
            tried = st._compress_many(datas[::16])
            done: list[tuple[int, Buffer]] = [(CODEC_NONE, d) for d in datas]
            done[::16] = tried
        else:
            done = list(st._compress_many(datas))
        if datas:
            shrank = any(codec != CODEC_NONE for codec, _ in done)
            self.misses = 0 if shrank else self.misses + 1  # a race between threads is harmless
        if len(datas) == len(batch):
            return done
        fresh = iter(done)  # in the order of datas
        return [item[2] if item[2] is not None else next(fresh) for item in batch]

    def _take(self) -> list[_Queued]:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        return batch

    def _hand_over(self) -> None:
        with self._mu:
            batch = self._take()
        if batch:
            self.q.put((batch, None))

    def _run(self) -> None:
        st = self.store
        while True:
            item = self.q.get()
            try:
                if item is None:
                    return
                if self.error is not None or self._discard:
                    continue  # drain without work after a failure
                batch, done = item
                if done is None:
                    done = self._compressed(batch)
                with st._lock:
                    st.written_bytes += st._w().add_many(
                        (oid, KIND_LITERAL, codec, len(data), stored)
                        for (oid, data, _), (codec, stored) in zip(batch, done, strict=True)
                    )
                    st.written_objects += len(batch)
            except BaseException as exc:
                self.error = exc
            finally:
                self.q.task_done()

    def drain(self) -> None:
        self._hand_over()
        self.q.join()
        if self.error is not None:
            raise self.error

    def close(self, discard: bool = False) -> None:
        if self._closed:
            return
        if discard:
            self._discard = True
        else:
            self.drain()
        self._closed = True
        self.q.put(None)
        self._thread.join()


class _Seal:
    """A full pack being finished (flushed, fsynced, renamed, indexed) on its own thread.

    Sealing a 64 MiB pack waits for the disk; a big commit fills one every
    ~0.1 s, so it goes on writing the next pack meanwhile.  The thread never
    takes the store's lock; the store picks up the result (``Store._reap``).
    """

    def __init__(self, writer: PackWriter, prev: _Seal | None) -> None:
        self.writer = writer
        self.prev = prev
        self.path: Path | None = None
        self.error: BaseException | None = None
        # not a daemon: an exiting process waits for a pack to be sealed (or removed)
        self.thread = threading.Thread(target=self._run, name="dsv-pack-seal")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.path = self.writer.finish(self._after_earlier_packs)
        except BaseException as exc:  # finish removed the temporary pack
            self.error = exc

    def _after_earlier_packs(self) -> None:
        """Packs get their names in the order they were filled, and none after a
        failed one: a later pack may hold chunk lists naming the lost chunks, and
        a visible chunk list is trusted to be complete."""
        prev = self.prev
        if prev is not None:
            prev.thread.join()
            if prev.error is not None:
                raise DsvIOError(
                    f"pack not kept: an earlier pack of this write failed ({prev.error})"
                )
            self.prev = None  # let the finished one go


class ChunkSink:
    """Stores the chunks of one stream, in order, compressing those that shrink.

    Incompressible data (media, archives) is common: after a run of chunks
    that did not shrink, only every 4th chunk is tried again, and only if a
    4 KiB sample of its head shrinks.  Measured: on 1 GiB of random bytes,
    trying every 16th chunk whole was 8 % of the storing thread's time (the
    samples compress a quarter as many bytes); the table data set (a parquet file and a
    CSV) is stored in 55.6 MiB instead of 59.1 MiB (every chunk sampled: 55.0).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._misses = 0
        self._count = 0

    def put(self, oid: bytes, chunk: memoryview) -> None:
        st = self._store
        try_it = self._misses < 8 or (self._count % 4 == 0 and st._shrinks(chunk[:_SAMPLE]))
        stored = st._put_literal(oid, chunk, compress=try_it)
        if stored >= 0:
            self._misses = self._misses + 1 if stored >= len(chunk) else 0
        self._count += 1


def _keep_smaller(data: bytes | memoryview, packed: Any) -> tuple[int, bytes | memoryview]:
    """``(codec, stored)``: the compressed bytes when they save at least _MIN_SAVING."""
    if len(packed) <= len(data) * (1 - _MIN_SAVING):
        # a segment of a batch's output is kept as a view, not copied out: the
        # batch's buffer lives until its objects are written
        return CODEC_ZSTD, packed if isinstance(packed, bytes) else memoryview(packed)
    return CODEC_NONE, data


def _zstd() -> Any:
    """The zstandard module, imported on first use (reads of uncompressed data never need it)."""
    import zstandard

    return zstandard


class ObjectInfo:
    __slots__ = ("chunked", "size")

    def __init__(self, size: int, chunked: bool) -> None:
        self.size = size
        self.chunked = chunked


class Store:
    """Packs under ``objects/pack``: reads verify, writes go to a new pack."""

    def __init__(self, objects_dir: Path, algo: HashAlgo, chunk_params: ChunkParams) -> None:
        self.dir = objects_dir
        self.pack_dir = objects_dir / "pack"
        self.algo = algo
        self.chunk_params = chunk_params
        self.max_chunk = chunk_params.max
        self._packs: list[PackFile] | None = None
        self._midx: MultiPackIndex | None = None
        self._loose: list[PackFile] = []  # packs on disk that the multi-pack index does not cover
        self._found = 0  # how many of them were on disk at load (the rest this process sealed)
        self._hit = 0  # the loose pack where the last lookup found its object
        self._writer: PackWriter | None = None
        self._sealing: list[_Seal] = []  # full packs being made durable on threads of their own
        self._lock = threading.RLock()
        # Packs another process wrote for this one, added when first needed
        # (``pending``); a lookup that misses runs it, then looks again.
        self.pending: Callable[[], None] | None = None
        self._pending_lock = threading.Lock()
        self._local = threading.local()
        self.written_bytes = 0  # stored bytes added by this process (for reports)
        self.written_objects = 0
        # Ids written by this process: answers has() without a search per pack.
        self._session: set[bytes] = set()
        self._background: _Background | None = None

    # ------------------------------------------------------------------ packs

    @property
    def packs(self) -> list[PackFile]:
        if self._packs is None:
            self._packs = self._load_packs()
        return self._packs

    def _load_packs(self) -> list[PackFile]:
        packs = []
        try:
            names = sorted(p.name for p in self.pack_dir.iterdir())
        except FileNotFoundError:
            return []
        nameset = set(names)
        for name in names:
            if name.endswith(".idx") and not name.startswith(TEMP_MARK):
                pack_name = name[:-4] + ".pack"
                if pack_name in nameset:
                    # indexes load on first use: with a multi-pack index most never do
                    packs.append(PackFile(self.pack_dir / pack_name, self.algo, lazy=True))
        self._midx = None
        if MIDX_NAME in nameset:
            try:
                self._midx = MultiPackIndex(
                    self.pack_dir / MIDX_NAME, self.algo, {p.path.stem: p for p in packs}
                )
            except (DsvError, OSError, struct.error):
                self._midx = None  # a cache: stale or damaged means unused
        covered = self._midx.names if self._midx is not None else set()
        self._loose = [p for p in packs if p.path.stem not in covered]
        self._found = len(self._loose)
        return packs

    def write_multi_index(self, min_loose: int = 0) -> bool:
        """Rewrite the multi-pack index if at least ``min_loose`` packs are outside it."""
        packs = self.packs
        if len(self._loose) < max(min_loose, 1) or len(packs) < 2:
            return False
        write_multi_index(self.pack_dir / MIDX_NAME, self.algo, packs)
        self.reload()
        return True

    def reload(self) -> None:
        with self._lock:
            self._reap(len(self._sealing))
        for p in self._packs or []:
            p.close()
        self._packs = None
        self._midx = None
        self._loose = []
        self._found = 0
        self._session.clear()

    def close(self) -> None:
        self.abort()
        self.reload()

    # ------------------------------------------------------------------ lookups

    def _locate(self, oid: bytes) -> Entry | None:
        w = self._writer
        if w is not None:
            rec = w.index.get(oid)
            if rec is not None:
                return Entry(None, *rec)
        for job in self._sealing:
            if oid in job.writer.index:
                with self._lock:  # wait for its pack, then read it like any other
                    if job in self._sealing:
                        self._reap(self._sealing.index(job) + 1)
                break
        _ = self.packs
        if self._midx is not None:
            e = self._midx.find(oid)
            if e is not None:
                return e
        e = self._find_loose(oid, len(self._loose))
        if e is None and self._run_pending():
            return self._locate(oid)
        return e

    def _run_pending(self) -> bool:
        """Add the packs ``pending`` stands for (once); False if there are none."""
        if self.pending is None:
            return False
        with self._pending_lock:
            hook, self.pending = self.pending, None
            if hook is not None:
                hook()
        return True

    def _find_loose(self, oid: bytes, n: int) -> Entry | None:
        """Search the first ``n`` packs outside the multi-pack index, the last one hit first.

        Objects read together were mostly written together: a checkout of a
        thousand files finds nearly all of them in the pack of the previous one.
        """
        k, i = self._search_loose(oid, n)
        return None if k < 0 else self._loose[k]._entry(i)

    def _search_loose(self, oid: bytes, n: int) -> tuple[int, int]:
        """(pack, position in its index) of ``oid`` in the first ``n`` loose packs; (-1, -1)."""
        loose = self._loose
        k = self._hit
        if k < n:
            i = loose[k].position(oid)
            if i >= 0:
                return k, i
        for j in range(n):
            if j != k:
                i = loose[j].position(oid)
                if i >= 0:
                    self._hit = j  # a hint only: a race between threads is harmless
                    return j, i
        return -1, -1

    def has(self, oid: bytes) -> bool:
        if oid in self._session:
            return True
        # Packs sealed by this process are covered by the session set: a big
        # commit seals one pack per 64 MiB and would otherwise search them all
        # for every chunk.
        _ = self.packs
        if self._midx is not None and self._midx.position(oid) >= 0:
            return True
        if self._search_loose(oid, self._found)[0] >= 0:
            return True
        return self._run_pending() and self.has(oid)

    def info(self, oid: bytes) -> ObjectInfo:
        e = self._require(oid)
        if e.kind == KIND_CHUNKLIST:
            return ObjectInfo(sum(self._chunklist(oid, e)[1]), True)
        return ObjectInfo(e.raw_len, False)

    def _require(self, oid: bytes) -> Entry:
        e = self._locate(oid)
        if e is None:
            raise NotFoundError(f"object {oid.hex()} is missing from the store")
        return e

    def all_ids(self) -> set[bytes]:
        ids: set[bytes] = set()
        _ = self.packs
        for src in [self._midx, *self._loose] if self._midx else self._loose:
            ids.update(src.ids())
        if self._writer is not None:
            ids.update(self._writer.index)
        for job in self._sealing:
            ids.update(job.writer.index)
        return ids

    def ids_with_prefix(self, prefix: bytes) -> set[bytes]:
        out: set[bytes] = set()
        _ = self.packs
        for src in [self._midx, *self._loose] if self._midx else self._loose:
            out.update(src.ids_with_prefix(prefix))
        # and what this process wrote and has not sealed yet
        out.update(oid for oid in self._session if oid.startswith(prefix))
        return out

    # ------------------------------------------------------------------ reads

    def _stored(self, e: Entry) -> bytes:
        if e.pack is None:
            with self._lock:  # the writer's buffer is shared with writing threads
                assert self._writer is not None
                return self._writer.read_stored(e.offset, e.stored_len)
        return e.pack.read_stored(e)

    def _decode(self, oid: bytes, e: Entry) -> bytes:
        where = e.pack.path.name if e.pack is not None else "the pack being written"
        self._check_size(oid, e.kind, e.raw_len, where)
        return self.decode_record(oid, e.kind, e.codec, e.raw_len, self._stored(e), where)

    @staticmethod
    def _check_size(oid: bytes, kind: int, raw_len: int, where: str) -> None:
        limit = MAX_LITERAL if kind == KIND_LITERAL else MAX_RECORD
        if raw_len > limit:
            raise FormatError(
                f"object {oid.hex()} in {where}: declared size {raw_len} is too large"
            )

    def decode_record(
        self, oid: bytes, kind: int, codec: int, raw_len: int, stored: bytes, where: str
    ) -> bytes:
        """The raw bytes of a record, decompressed (bounded) and, for literals, verified."""
        raw = self._decode_view(oid, kind, codec, raw_len, stored, where)
        assert isinstance(raw, bytes)  # stored bytes, or what zstd made of them
        return raw

    def _decode_view(
        self,
        oid: bytes,
        kind: int,
        codec: int,
        raw_len: int,
        stored: Buffer,
        where: str,
        check: bool = True,
    ) -> Buffer:
        """``decode_record`` for a view into a buffer: uncompressed, the view itself.

        ``check=False`` leaves out hashing a literal against its id, for a
        caller that verifies the whole content instead.
        """
        self._check_size(oid, kind, raw_len, where)
        if kind not in (KIND_LITERAL, KIND_CHUNKLIST):
            raise FormatError(f"object {oid.hex()} in {where}: unknown record kind {kind}")
        if codec == CODEC_NONE:
            raw = stored
        elif codec == CODEC_ZSTD:
            zstd = _zstd()
            # The frame states its own size: refuse a mismatch before allocating.
            try:
                declared = zstd.frame_content_size(stored)
                if declared != raw_len:
                    raise CorruptObjectError(
                        f"object {oid.hex()} in {where}: compressed frame declares {declared} bytes,"
                        f" index says {raw_len} (corrupt pack)"
                    )
                raw = self._dctx().decompress(stored, max_output_size=raw_len)
            except (zstd.ZstdError, MemoryError) as exc:
                raise CorruptObjectError(
                    f"object {oid.hex()} in {where}: cannot decompress ({exc})"
                ) from None
        else:
            raise FormatError(f"object {oid.hex()} in {where}: unknown codec {codec}")
        if len(raw) != raw_len:
            raise CorruptObjectError(f"object {oid.hex()} in {where}: length does not match")
        if check and kind == KIND_LITERAL and self.algo.digest(raw) != oid:
            raise CorruptObjectError(
                f"object {oid.hex()} in {where}: content does not match its id (corrupt pack)"
            )
        return raw

    def decode_chunklist(self, oid: bytes, raw: bytes) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        try:
            cl = decode_chunklist(raw, self.algo.digest_size, max(self.max_chunk, MAX_LITERAL))
        except (FormatError, UnsupportedFormatError) as exc:
            raise CorruptObjectError(f"object {oid.hex()}: bad chunk list ({exc})") from None
        return cl.ids, cl.lengths

    def raw_record(self, oid: bytes) -> tuple[int, int, int, bytes]:
        """A record as stored: (kind, codec, raw length, stored bytes).  Not verified."""
        e = self._require(oid)
        return e.kind, e.codec, e.raw_len, self._stored(e)

    def is_chunked(self, oid: bytes) -> bool:
        return self._require(oid).kind == KIND_CHUNKLIST

    def put_raw(self, oid: bytes, kind: int, codec: int, raw_len: int, stored: bytes) -> bool:
        """Add a record received from elsewhere, as it is.  The caller has verified it."""
        with self._lock:
            if oid in self._session or self.has(oid):
                return False
            self._w().add(oid, kind, codec, raw_len, stored)
            self._session.add(oid)
            self.written_bytes += len(stored)
            self.written_objects += 1
        return True

    def _chunker(self) -> Chunker:
        # FastCDC objects must not be shared between threads: one per thread
        c = getattr(self._local, "chunker", None)
        if c is None:
            c = self._local.chunker = Chunker(self.chunk_params)
        return c

    def _dctx(self) -> Any:
        d = getattr(self._local, "dctx", None)
        if d is None:
            d = self._local.dctx = _zstd().ZstdDecompressor()
        return d

    def _chunklist(self, oid: bytes, e: Entry) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        return self.decode_chunklist(oid, self._decode(oid, e))

    def chunks(self, oid: bytes) -> tuple[bytes, ...]:
        """Ids of the literal records that make up ``oid`` (itself if literal)."""
        e = self._require(oid)
        if e.kind == KIND_LITERAL:
            return (oid,)
        return self._chunklist(oid, e)[0]

    def chunk_lengths(self, oid: bytes) -> tuple[int, ...]:
        e = self._require(oid)
        if e.kind == KIND_LITERAL:
            return (e.raw_len,)
        return self._chunklist(oid, e)[1]

    def chunk_table(self, oid: bytes) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        e = self._require(oid)
        if e.kind == KIND_LITERAL:
            return (oid,), (e.raw_len,)
        return self._chunklist(oid, e)

    def read_chunk(self, cid: bytes) -> bytes:
        """One literal record, verified."""
        e = self._require(cid)
        if e.kind != KIND_LITERAL:
            raise CorruptObjectError(f"object {cid.hex()}: chunk list used as a chunk")
        return self._decode(cid, e)

    def read_listed_chunk(self, oid: bytes, cid: bytes) -> bytes:
        """A chunk named by the chunk list of ``oid``: a missing one means a damaged object."""
        try:
            return self.read_chunk(cid)
        except NotFoundError:
            raise CorruptObjectError(
                f"object {oid.hex()}: its chunk {cid.hex()} is missing from the store"
            ) from None

    def iter_content(self, oid: bytes) -> Iterator[bytes]:
        """The object's bytes, chunk by chunk.

        Each chunk is verified before it is yielded and the whole content is
        verified against ``oid`` after the last chunk: a consumer that commits
        its output only once the iterator is exhausted never commits bad data.
        """
        e = self._require(oid)
        if e.kind == KIND_LITERAL:
            yield self._decode(oid, e)
            return
        ids, _ = self._chunklist(oid, e)
        h = self.algo.new()
        for cid in ids:
            data = self.read_listed_chunk(oid, cid)
            h.update(data)
            yield data
        if h.digest() != oid:
            raise CorruptObjectError(f"object {oid.hex()}: chunks do not add up to its id")

    def iter_content_runs(
        self, oid: bytes, check_chunks: bool = True, ranges: bool = False
    ) -> Iterator[list[Buffer | PackRange]]:
        """The object's bytes as lists of chunks, verified like ``iter_content``.

        With ``check_chunks=False`` only the whole content is hashed, after
        the last chunk, which halves the hashing: for a consumer that commits
        its output only once the iterator is exhausted the guarantee is the
        same, but a mismatch then names the object, not the damaged chunk
        (read again with checks to find it).

        Chunks are read through a mapping of their pack, up to 8 MiB at a time
        (``PackFile.window``), with no copy before they are written out.  A
        commit writes a file's chunks one after the other, so after a chunk
        the record header that follows it is checked for the next id: a big
        file costs a few index lookups, not one per chunk.  (The header only
        says where to look; every chunk is still verified against its id.)
        Views stay valid while referenced: a consumer may hand them to another
        thread.

        ``ranges=True``: a chunk stored uncompressed in a pack comes as a
        ``PackRange`` (the pack's descriptor, offset, length) instead of its
        bytes, for ``os.copy_file_range``: the kernel copies it without it
        passing through this process.  It is hashed from the mapped pack all
        the same (packs are never modified).
        """
        e = self._require(oid)
        if e.kind == KIND_LITERAL:
            yield [self._decode(oid, e)]
            return
        ids, lengths = self._chunklist(oid, e)
        h = self.algo.new()
        ds = self.algo.digest_size
        head = ds + RECORD_HEAD.size
        unpack_head = RECORD_HEAD.unpack_from
        left = sum(lengths)  # stored bytes are at most the raw ones, plus headers
        i, n = 0, len(ids)
        while i < n:
            first = self._locate(ids[i])
            if first is None or first.pack is None or first.stored_len > RUN_MAX:
                data = self.read_listed_chunk(oid, ids[i])  # names what is wrong, if anything
                h.update(data)
                left -= len(data)
                yield [data]
                i += 1
                continue
            pack = first.pack
            where = pack.path.name
            want = max(first.stored_len, min(RUN_MAX, left + (n - i) * head))
            win, base = pack.window(first.offset, want)
            pack_fd = pack.fd() if ranges else -1
            size = len(win)
            r: Entry | None = first
            guessed = False  # r was read from the pack's record header, not its index
            out: list[Buffer | PackRange] = []
            while r is not None:
                cid = ids[i]
                at = r.offset - base
                end = at + r.stored_len
                try:
                    if r.kind != KIND_LITERAL:
                        raise CorruptObjectError(f"object {cid.hex()}: chunk list used as a chunk")
                    if end > size:
                        if not out:
                            raise FormatError(f"pack {where}: a record runs past its end")
                        break  # too far for this window: the next one starts with it
                    raw = self._decode_view(
                        cid, r.kind, r.codec, r.raw_len, win[at:end], where, check_chunks
                    )
                except (CorruptObjectError, FormatError):
                    if not guessed:
                        raise
                    break  # a damaged header: the index says where the chunk is
                h.update(raw)
                out.append(
                    PackRange(pack_fd, r.offset, len(raw))
                    if pack_fd >= 0 and r.codec == CODEC_NONE
                    else raw
                )
                left -= len(raw)
                i += 1
                r = None
                # the record after this one, if it is the next chunk
                if i < n and end + head <= size and win[end : end + ds] == ids[i]:
                    kind, codec, _, raw_len, stored_len = unpack_head(win, end + ds)
                    r = Entry(pack, base + end + head, stored_len, raw_len, kind, codec)
                    guessed = True
            if out:
                yield out
        if h.digest() != oid:
            raise CorruptObjectError(f"object {oid.hex()}: chunks do not add up to its id")

    def offsets(self, oid: bytes) -> tuple[tuple[bytes, ...], list[int]]:
        """Chunk ids of an object and the offset where each starts (plus the end)."""
        ids, lengths = self.chunk_table(oid)
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        return ids, starts

    def read_range(self, oid: bytes, offset: int, length: int) -> bytes:
        """``length`` bytes of an object from ``offset`` (fewer at its end).

        Only the chunks that overlap the range are read; each is verified
        against its own id.  (The object's whole-content id can only be
        checked by a full read: see iter_content.)
        """
        import bisect

        ids, starts = self.offsets(oid)
        end = min(offset + length, starts[-1])
        if offset >= end:
            return b""
        i = bisect.bisect_right(starts, offset) - 1
        out = bytearray()
        while i < len(ids) and starts[i] < end:
            data = self.read_listed_chunk(oid, ids[i]) if len(ids) > 1 else self.read_chunk(ids[i])
            lo = max(offset, starts[i]) - starts[i]
            hi = min(end, starts[i + 1]) - starts[i]
            out += data[lo:hi]
            i += 1
        return bytes(out)

    def get_bytes(self, oid: bytes, limit: int = MAX_RECORD) -> bytes:
        """A whole object in memory (trees, commits): refuses more than ``limit``."""
        e = self._require(oid)
        if e.kind == KIND_LITERAL:
            return self._decode(oid, e)
        _, lengths = self._chunklist(oid, e)
        if sum(lengths) > limit:
            raise FormatError(f"object {oid.hex()}: {sum(lengths)} bytes is larger than expected")
        return b"".join(self.iter_content(oid))

    # ------------------------------------------------------------------ writes

    def _w(self) -> PackWriter:
        w = self._writer
        if w is not None and w.size >= PACK_TARGET:
            # sealed on a thread while the next pack fills; the caller waits only
            # when more than SEALS_IN_FLIGHT are still being made durable
            self._writer = None
            self._sealing.append(_Seal(w, self._sealing[-1] if self._sealing else None))
            self._reap(len(self._sealing) - SEALS_IN_FLIGHT)
            w = None
        if w is None:
            _ = self.packs  # load the packs on disk before ours appear among them
            self.pack_dir.mkdir(parents=True, exist_ok=True)
            w = self._writer = PackWriter(self.pack_dir, self.algo)
        return w

    def _seal(self) -> None:
        self._reap(len(self._sealing))
        w = self._writer
        if w is None:
            return
        self._writer = None
        self._add_pack(w.finish())

    def _add_pack(self, path: Path | None) -> None:
        if path is not None:
            p = PackFile(path, self.algo)
            self.packs.append(p)
            self._loose.append(p)

    def _reap(self, n: int, *, raise_errors: bool = True) -> None:
        """Wait for the ``n`` oldest packs being sealed and add them to the store.

        A pack that could not be sealed is gone with its objects (the writer
        removed its temporary file): they leave the session set, and the
        first such error is raised once the others are reaped.
        """
        error: BaseException | None = None
        for job in self._sealing[: max(n, 0)]:
            job.thread.join()
            self._sealing.remove(job)
            if job.error is not None:
                self._session.difference_update(job.writer.index)
                error = error or job.error
            else:
                self._add_pack(job.path)
        if error is not None and raise_errors:
            raise error

    def _cctx(self) -> Any:
        """This thread's zstd compressor."""
        c = getattr(self._local, "cctx", None)
        if c is None:
            c = self._local.cctx = _zstd().ZstdCompressor(level=_ZSTD_LEVEL)
        return c

    def _compress(self, data: bytes | memoryview) -> tuple[int, bytes | memoryview]:
        if len(data) < 64:
            return CODEC_NONE, data
        return _keep_smaller(data, self._cctx().compress(data))

    def chunk_sink(self) -> ChunkSink:
        """Stores the chunks of one stream, in order (see ``ChunkSink``)."""
        return ChunkSink(self)

    def _shrinks(self, sample: memoryview) -> bool:
        """Whether ``sample`` (the head of a chunk) compresses enough to be worth it."""
        return self._compress(sample)[0] != CODEC_NONE

    def _compress_many(self, datas: list[bytes]) -> list[tuple[int, bytes | memoryview]]:
        """``_compress`` of each, in one call to zstd that releases the GIL throughout."""
        multi = getattr(self._cctx(), "multi_compress_to_buffer", None)  # the C backend has it
        if multi is None or len(datas) < 2:
            return [self._compress(d) for d in datas]
        packed = multi(datas, threads=1)
        return [
            _keep_smaller(data, packed[i]) if len(data) >= 64 else (CODEC_NONE, data)
            for i, data in enumerate(datas)
        ]

    def _put_literal(self, oid: bytes, data: bytes | memoryview, compress: bool = True) -> int:
        """Store a chunk unless present.  Returns -1 if present, else the stored size."""
        if self.has(oid):
            return -1
        if compress:
            codec, stored = self._compress(data)  # outside the lock: other threads go on
        else:
            codec, stored = CODEC_NONE, data
        with self._lock:
            if oid in self._session:
                return -1
            self._w().add(oid, KIND_LITERAL, codec, len(data), stored)
            self._session.add(oid)
            self.written_bytes += len(stored)
            self.written_objects += 1
        return len(stored)

    def put_bytes(self, data: bytes, compress: bool = True) -> bytes:
        """Store an in-memory object (tree, commit, small file) and return its id.

        ``compress=False``: a small object is stored as it is (one that needs
        chunking is compressed as usual).
        """
        bg = self._background
        if len(data) <= self.max_chunk:
            oid = self.algo.digest(data)
            if bg is None:
                self._put_literal(oid, data, compress)
            elif not self.has(oid):
                # Queued behind the files queued before it (a tree names them),
                # so that packs hold objects after what they name: a push can
                # then send them as they are (sync.transfer.whole_pack_order).
                bg.put(oid, data, self._compress(data) if compress else (CODEC_NONE, data))
            return oid
        ids, lengths = [], []
        for ch in self._chunker().cut_buf(data):
            cid = self.algo.digest(ch)
            self._put_literal(cid, ch)
            ids.append(cid)
            lengths.append(len(ch))
        oid = self.algo.digest(data)
        if bg is not None:
            bg.drain()  # the same order for an object made of chunks
        self._put_chunklist(oid, ids, lengths)
        return oid

    def _put_chunklist(self, oid: bytes, ids: list[bytes], lengths: list[int]) -> None:
        if self.has(oid):
            return
        raw = encode_chunklist(ids, lengths)
        codec, stored = self._compress(raw)
        with self._lock:
            if oid not in self._session:
                self._w().add(oid, KIND_CHUNKLIST, codec, len(raw), stored)
                self._session.add(oid)
                self.written_bytes += len(stored)
                self.written_objects += 1

    def put_file(self, f: BinaryIO, size: int) -> tuple[bytes, int]:
        """Store an open file whose size is known (from fstat); returns (id, bytes read).

        Small files are read in one call and skip the chunker's stream buffer;
        the bytes read are returned so that callers can detect a file that
        changed size while it was read.
        """
        if size > SMALL_FILE:
            return self.put_stream(f)
        data = f.read(size + 1)  # one byte more reveals a file that grew
        return self.put_read(data), len(data)

    def put_read(self, data: bytes) -> bytes:
        """Store the bytes of a small file, read whole; returns its id.

        With ``background_compression`` on, the bytes are handed to the
        compressing thread as they are (the caller must not change them).
        """
        if len(data) <= self.max_chunk:
            oid = self.algo.digest(data)
            bg = self._background
            if bg is not None:
                bg.put(oid, data)
            else:
                self._put_literal(oid, data)
            return oid
        return self.put_bytes(data)

    @contextlib.contextmanager
    def background_compression(self) -> Iterator[None]:
        """Compress and append small objects on a second thread while the caller reads on.

        zstd releases the GIL, so with many small files (where reading and
        bookkeeping in Python dominate) compression overlaps with them.  Objects
        queued here count as present for ``has`` at once; everything queued is
        written when the block ends (or ``flush``/``abort`` is called).
        """
        bg = _Background(self)
        self._background = bg
        try:
            yield
            bg.close()
        finally:
            self._background = None
            bg.close(discard=True)

    def put_stream(self, stream: BinaryIO) -> tuple[bytes, int]:
        """Chunk, hash and store a stream; returns (id, size).  Memory is bounded."""
        whole = self.algo.new()
        digest = self.algo.digest
        chunks = ((ch, digest(ch)) for ch in self._chunker().cut_stream(stream, whole))
        return self.put_chunks(chunks, whole.digest)

    def put_chunks(
        self, chunks: Iterable[tuple[memoryview | int, bytes]], whole: Callable[[], bytes]
    ) -> tuple[bytes, int]:
        """Store a stream cut into ``chunks``, each with its id (in order; a chunk's
        bytes may be reused once the next is asked for); ``whole()``: the id of all
        the bytes, asked for once the chunks are done.  Returns (id, size).

        A chunk given as its length instead of its bytes was stored elsewhere (a
        helper process's packs, which the caller adds before anything names them).
        """
        algo = self.algo
        ids: list[bytes] = []
        lengths: list[int] = []
        first: bytes | None = None
        sink = self.chunk_sink()
        for ch, cid in chunks:
            if isinstance(ch, int):
                n = ch
            else:
                n = len(ch)
                sink.put(cid, ch)
            if not ids:
                first = cid
            ids.append(cid)
            lengths.append(n)
        if len(ids) <= 1:
            if not ids:
                oid = algo.digest(b"")
                self._put_literal(oid, b"")
                return oid, 0
            assert first is not None
            return first, lengths[0]
        oid = whole()
        self._put_chunklist(oid, ids, lengths)
        return oid, sum(lengths)

    def flush(self) -> None:
        """Make everything written so far durable and visible to other processes."""
        self.seal()
        with self._lock:
            if len(self._loose) >= MIDX_AFTER:
                self.write_multi_index()

    def seal(self) -> None:
        """Make everything written so far durable, without a new multi-pack index
        (another process of the same command writes that)."""
        if self._background is not None:
            self._background.drain()
        with self._lock:
            self._seal()

    def adopt(self, paths: list[Path], written_bytes: int, written_objects: int) -> None:
        """Add packs another process sealed for this one (a commit's helper process)."""
        with self._lock:
            known = {p.path for p in self.packs}
            for path in paths:
                if path not in known:
                    self._add_pack(path)
            self.written_bytes += written_bytes
            self.written_objects += written_objects

    def add_packs(self, paths: list[Path]) -> None:
        """Add complete packs placed in the pack directory by this process from elsewhere
        (a clone's whole downloads): searched as the packs found at load are, since no
        session set covers their objects."""
        with self._lock:
            packs = self.packs
            known = {p.path for p in packs}
            for path in paths:
                if path not in known:
                    p = PackFile(path, self.algo)
                    packs.append(p)
                    self._loose.insert(self._found, p)
                    self._found += 1

    def abort(self) -> None:
        """Discard the pack being written (objects already sealed stay)."""
        with self._lock:
            self._reap(len(self._sealing), raise_errors=False)
            if self._writer is not None:
                self._session.difference_update(self._writer.index)
                self._writer.abort()
                self._writer = None
