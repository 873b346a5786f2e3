"""The object store on real files: round trips, dedup, packs, indexes and corruption."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dsv.store
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
from dsv.hashing import BLAKE3, XXH3_128, HashAlgo, checksum
from dsv.store import Store
from dsv.store.pack import (
    CODEC_NONE,
    CODEC_ZSTD,
    IDX_VERSION,
    KIND_CHUNKLIST,
    KIND_LITERAL,
    PACK_VERSION,
    RECORD_HEAD,
    PackCheck,
    PackFile,
    SortedIndex,
    check_pack_file,
    scan_pack,
)

SMALL = ChunkParams(min=64, avg=256, max=1024)
ALGOS = [XXH3_128, BLAKE3]
# Offsets in the 16-byte file header shared by packs and indexes (docs/format.md):
# magic[8], version u16, algo code u8, digest size u8, reserved u32.
VERSION_AT = 8
ALGO_CODE_AT = 10

Record = tuple[bytes, int, int, int, int, int]  # id, payload offset, stored, raw, kind, codec


def text_data(n: int) -> bytes:
    """Compressible bytes."""
    out = b"".join(b"row %d,value %d,label cat\n" % (i, i % 7) for i in range(n // 20 + 1))
    return out[:n]


def rand(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture(params=ALGOS, ids=lambda a: a.name)
def algo(request: pytest.FixtureRequest) -> HashAlgo:
    return request.param


@pytest.fixture
def objects_dir(tmp_path: Path) -> Path:
    return tmp_path / "objects"


@pytest.fixture
def new_store(objects_dir: Path, algo: HashAlgo) -> Iterator[Callable[..., Store]]:
    """Open a Store on the same directory (a fresh instance reads only what is on disk)."""
    opened: list[Store] = []

    def make(params: ChunkParams = SMALL) -> Store:
        s = Store(objects_dir, algo, params)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.reload()  # close pack fds; unflushed data is discarded with the tmp dir


def pack_paths(store: Store) -> list[Path]:
    return sorted(store.pack_dir.glob("pack-*.pack"))


def all_records(store: Store) -> dict[bytes, tuple[Path, Record]]:
    out = {}
    for p in pack_paths(store):
        for rec in scan_pack(p)[1]:
            out[rec[0]] = (p, rec)
    return out


def overwrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)  # packs are created read-only
    path.write_bytes(data)


def flip(path: Path, pos: int, mask: int = 0xFF) -> bytes:
    """Flip bits of one byte of a file in place; returns the original content."""
    orig = path.read_bytes()
    b = bytearray(orig)
    b[pos] ^= mask
    overwrite(path, bytes(b))
    return orig


def temp_files(store: Store) -> list[str]:
    return [p.name for p in store.pack_dir.iterdir() if p.name.startswith(TEMP_MARK)]


def runs_content(store: Store, oid: bytes) -> bytes:
    # each run's views are only valid until the next run is asked for
    return b"".join(b"".join(bytes(x) for x in run) for run in store.iter_content_runs(oid))


def assert_content(store: Store, oid: bytes, data: bytes) -> None:
    assert store.has(oid)
    assert store.get_bytes(oid) == data
    assert b"".join(store.iter_content(oid)) == data
    assert runs_content(store, oid) == data
    assert store.info(oid).size == len(data)
    ids, lengths = store.chunk_table(oid)
    assert sum(lengths) == len(data)
    assert b"".join(store.read_chunk(c) for c in ids) == data


# ------------------------------------------------------------------ round trips


data_st = st.one_of(
    st.binary(max_size=3000),
    st.builds(rand, st.integers(0, 12_000), st.integers(0, 2**32)),
    st.builds(text_data, st.integers(0, 12_000)),
)


@settings(max_examples=40, deadline=None)
@given(data=data_st, algo_=st.sampled_from(ALGOS), stream_first=st.booleans())
def test_put_get_round_trip(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, algo_: HashAlgo, stream_first: bool
) -> None:
    root = tmp_path_factory.mktemp("store")
    s = Store(root, algo_, SMALL)
    if stream_first:
        oid, n = s.put_stream(io.BytesIO(data))
        assert n == len(data)
        assert s.put_bytes(data) == oid
    else:
        oid = s.put_bytes(data)
        assert s.put_stream(io.BytesIO(data)) == (oid, len(data))
    assert oid == algo_.digest(data)
    assert_content(s, oid, data)  # served from the pack being written
    s.flush()
    assert_content(s, oid, data)
    fresh = Store(root, algo_, SMALL)
    assert_content(fresh, oid, data)
    assert fresh.all_ids() == s.all_ids()
    s.reload()
    fresh.reload()


def test_large_objects_readable_before_flush(new_store) -> None:
    s = new_store(ChunkParams())
    big = rand(3 << 20, 20)  # chunks of 16-256 KiB: most are written straight to the file
    oid = s.put_bytes(big)
    assert s.get_bytes(oid) == big
    single = rand(200_000, 21)  # one literal record of 200 KB
    assert s.get_bytes(s.put_bytes(single)) == single


@pytest.mark.parametrize("size", [0, 1, 1000, 1024, 1025, 20_000])
def test_put_file_matches_put_bytes(new_store, tmp_path: Path, size: int) -> None:
    data = rand(size, size)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    s = new_store()
    with open(path, "rb") as f:
        oid, n = s.put_file(f, size)
    assert (oid, n) == (s.algo.digest(data), size)
    assert s.put_bytes(data) == oid
    s.flush()
    assert_content(new_store(), oid, data)
    # A file that grew after its size was taken: the count read tells.
    with open(path, "rb") as f:
        _, n = new_store().put_file(f, size - 1 if size else 0)
    assert n == size


def test_multi_chunk_object_is_a_chunk_list(new_store, algo: HashAlgo) -> None:
    s = new_store()
    data = rand(50_000, 1)
    oid = s.put_bytes(data)
    s.flush()
    ids, lengths = s.chunk_table(oid)
    assert len(ids) > 20
    assert all(len(c) == algo.digest_size for c in ids)
    assert all(n <= SMALL.max for n in lengths)
    assert s.info(oid).chunked
    assert all(algo.digest(s.read_chunk(c)) == c for c in ids)
    # The chunk list is stored under the object's id; the chunks under theirs.
    recs = all_records(s)
    assert recs[oid][1][4] == KIND_CHUNKLIST
    assert all(recs[c][1][4] == KIND_LITERAL for c in ids)
    with pytest.raises(CorruptObjectError):
        s.read_chunk(oid)  # a chunk list is not a chunk
    with pytest.raises(FormatError):
        s.get_bytes(oid, limit=len(data) - 1)
    assert s.get_bytes(oid, limit=len(data)) == data


def test_empty_object(new_store, algo: HashAlgo) -> None:
    s = new_store()
    oid = s.put_bytes(b"")
    assert oid == algo.digest(b"")
    assert s.put_stream(io.BytesIO(b"")) == (oid, 0)
    s.flush()
    fresh = new_store()
    assert fresh.get_bytes(oid) == b""
    assert list(fresh.iter_content(oid)) == [b""]
    assert fresh.info(oid).size == 0


def test_missing_object_raises_not_found(new_store, algo: HashAlgo) -> None:
    s = new_store()
    s.put_bytes(b"something")
    s.flush()
    missing = algo.digest(b"never stored")
    assert not s.has(missing)
    with pytest.raises(NotFoundError, match=missing.hex()):
        s.get_bytes(missing)
    with pytest.raises(NotFoundError):
        list(s.iter_content(missing))


def test_many_packs_stay_readable(new_store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dsv.store, "PACK_TARGET", 4096)
    s = new_store()
    rng = random.Random(5)
    objects = {}
    for i in range(60):
        data = rand(rng.randint(1, 5000), i) if i % 2 else text_data(rng.randint(1, 5000))
        objects[s.put_bytes(data)] = data
    # Packs sealed on the way are on disk already: a fresh store sees them.
    before_flush = new_store().all_ids()
    assert before_flush and before_flush < s.all_ids()
    s.flush()
    packs = pack_paths(s)
    assert len(packs) > 5
    assert all(p.with_suffix(".idx").is_file() for p in packs)
    assert temp_files(s) == []
    for st_ in (s, new_store()):
        for oid, data in objects.items():
            assert_content(st_, oid, data)
    assert new_store().all_ids() == s.all_ids()
    # Each object is in exactly one pack.
    per_pack = [{rec[0] for rec in scan_pack(p)[1]} for p in packs]
    assert sum(len(x) for x in per_pack) == len(set().union(*per_pack))


def test_full_packs_are_sealed_on_threads_and_read_meanwhile(
    new_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full pack is sealed on a thread while the next one fills; its objects
    stay readable (a read waits for the seal) and all end up on disk."""
    import threading

    monkeypatch.setattr(dsv.store, "PACK_TARGET", 4096)
    gate = threading.Event()
    real_finish = dsv.store.PackWriter.finish

    def slow_finish(self: dsv.store.PackWriter, *args: Any) -> Path | None:
        gate.wait(5)  # held until the test has looked at the objects mid-seal
        return real_finish(self, *args)

    monkeypatch.setattr(dsv.store.PackWriter, "finish", slow_finish)
    s = new_store()
    first = {s.put_bytes(rand(3000, i)): rand(3000, i) for i in range(2)}
    while not s._sealing:  # the first pack filled up and waits to be sealed
        s.put_bytes(rand(3000, 100 + len(first)))
    assert all(s.has(oid) for oid in first)
    gate.set()
    for oid, data in first.items():
        assert s.get_bytes(oid) == data  # waits for its pack's seal
    s.flush()
    assert s._sealing == [] and temp_files(s) == []
    assert new_store().all_ids() == s.all_ids() >= set(first)


def test_a_pack_that_cannot_be_sealed_fails_the_write_and_loses_only_itself(
    new_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dsv.store, "PACK_TARGET", 4096)
    real_finish = dsv.store.PackWriter.finish
    calls = []

    def failing_second(self: dsv.store.PackWriter, *args: Any) -> Path | None:
        calls.append(self)
        if len(calls) == 2:
            self.abort()  # as finish does when its fsync fails
            raise DsvIOError("cannot write pack: [Errno 5] Input/output error")
        return real_finish(self, *args)

    monkeypatch.setattr(dsv.store.PackWriter, "finish", failing_second)
    s = new_store()
    written = {}
    with pytest.raises(DsvIOError, match="Input/output error"):
        for i in range(40):
            data = rand(3000, i)
            written[s.put_bytes(data)] = data
        s.flush()
    lost = set(calls[1].index)
    assert lost and not any(s.has(oid) for oid in lost)
    s.abort()  # what a failed commit does: the pack being written goes, sealed ones stay
    assert temp_files(s) == [] and s._sealing == []
    fresh = new_store()
    assert all(fresh.has(oid) for oid in calls[0].index)  # the pack sealed before stays
    assert not any(fresh.has(oid) for oid in lost)
    kept = [oid for oid in written if fresh.has(oid)]
    assert kept
    for oid in kept:
        assert fresh.get_bytes(oid) == written[oid]


def test_ids_with_prefix(new_store) -> None:
    s = new_store()
    for i in range(300):
        s.put_bytes(b"object %d" % i)
    s.flush()
    ids = s.all_ids()
    assert len(ids) == 300
    for oid in list(ids)[:20]:
        for n in (1, 2, 3):
            prefix = oid[:n]
            assert s.ids_with_prefix(prefix) == {i for i in ids if i.startswith(prefix)}
    assert s.ids_with_prefix(b"\xff" * 6) == {i for i in ids if i.startswith(b"\xff" * 6)}


class _Index(SortedIndex):
    """A bare sorted index over ``ids`` (the layout of a pack index without its entries)."""

    def __init__(self, ids: list[bytes], ds: int) -> None:
        ids = sorted(set(ids))
        fan = [0] * 256
        for oid in ids:
            fan[oid[0]] += 1
        fan = list(itertools.accumulate(fan))
        head = b"#" * 5  # an odd offset: the ids need no alignment
        self._set_table(head + b"".join(ids), tuple(fan), len(head), ds)
        self.sorted_ids = ids

    def _entry(self, i: int) -> Any:
        return i


@settings(max_examples=200, deadline=None)
@given(
    ds=st.sampled_from([16, 32, 20]),  # 20: no hash dsv knows, the keys built by slicing
    heads=st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=6),
    tails=st.lists(st.binary(min_size=1, max_size=24), min_size=1, max_size=40),
    probes=st.lists(st.binary(min_size=1, max_size=32), max_size=20),
)
def test_sorted_index_lookups_match_a_sorted_list(
    ds: int, heads: list[bytes], tails: list[bytes], probes: list[bytes]
) -> None:
    """Ids that share their first 8 bytes (searched by those 8 bytes first) are still told apart."""
    import bisect

    ids = [(heads[i % len(heads)] + t).ljust(ds, b"\0")[:ds] for i, t in enumerate(tails)]
    by_keys = _Index(ids, ds)
    by_keys._prefix_keys()  # as after SEARCHES_BEFORE_KEYS lookups
    by_ids = _Index(ids, ds)
    by_ids._lookups = -(10**9)  # as for a command that makes a few lookups
    ref = by_keys.sorted_ids
    assert by_keys.ids() == ref
    near = [oid[:k] for oid in ref for k in (1, 7, 8, 9, ds)]
    flipped = [oid[:-1] + bytes([oid[-1] ^ 1]) for oid in ref]
    for index in (by_keys, by_ids):
        for key in [*probes, *near, *flipped]:
            assert index._lower_bound(key) == bisect.bisect_left(ref, key), key
            if len(key) == ds:
                assert index.position(key) == (ref.index(key) if key in ref else -1)
                assert (index.find(key) is not None) == (key in ref)
            assert index.ids_with_prefix(key) == [x for x in ref if x.startswith(key)]
    assert by_ids._keys is None


def test_concurrent_puts_from_threads(new_store) -> None:
    s = new_store()
    blobs = [rand(3000, i % 10) for i in range(40)]  # every blob written 4 times
    with ThreadPoolExecutor(8) as ex:
        oids = list(ex.map(s.put_bytes, blobs))
    s.flush()  # the index writer refuses duplicate ids
    fresh = new_store()
    for oid, data in zip(oids, blobs):
        assert_content(fresh, oid, data)
    assert len(set(oids)) == 10


# ------------------------------------------------------------------ dedup and compression


def test_same_content_is_stored_once(new_store) -> None:
    s = new_store()
    data = rand(20_000, 2)
    oid = s.put_bytes(data)
    written, objects = s.written_bytes, s.written_objects
    assert written >= len(data) and objects > 1
    assert s.put_bytes(data) == oid
    assert s.put_stream(io.BytesIO(data)) == (oid, len(data))
    assert (s.written_bytes, s.written_objects) == (written, objects)
    s.flush()
    packs = pack_paths(s)
    fresh = new_store()
    assert fresh.put_bytes(data) == oid
    fresh.flush()
    assert (fresh.written_bytes, fresh.written_objects) == (0, 0)
    assert pack_paths(fresh) == packs  # nothing new to seal: no new pack


def test_shared_chunks_are_stored_once(new_store) -> None:
    s = new_store()
    base = rand(30_000, 3)
    s.put_bytes(base)
    before = s.written_bytes
    s.put_bytes(base + b"appended tail")
    # Only the last chunk or two and the new chunk list are new.
    assert s.written_bytes - before < 2 * SMALL.max + 2000


def test_edit_in_the_middle_stores_only_a_few_new_chunks(new_store, algo: HashAlgo) -> None:
    params = ChunkParams()
    s = new_store(params)
    rng = random.Random(11)
    data = rng.randbytes(12 << 20)
    edit = 1 << 20
    oid = s.put_bytes(data)
    before_bytes, before_objects = s.written_bytes, s.written_objects
    mid = len(data) // 2
    edited = data[:mid] + rng.randbytes(edit) + data[mid + edit :]
    oid2 = s.put_bytes(edited)
    new_bytes = s.written_bytes - before_bytes
    new_objects = s.written_objects - before_objects
    chunks1, chunks2 = s.chunks(oid), s.chunks(oid2)
    chunklist_size = 16 + len(chunks2) * (algo.digest_size + 4)
    # The edited MiB, at most one partly-edited chunk on either side, the new chunk list.
    assert edit <= new_bytes <= edit + 2 * params.max + chunklist_size
    assert new_objects <= edit // params.min + 3
    assert len(set(chunks1) & set(chunks2)) >= len(chunks1) - new_objects
    assert b"".join(s.iter_content(oid2)) == edited


def test_compressible_data_is_stored_smaller(new_store) -> None:
    s = new_store(ChunkParams())
    data = text_data(200_000)
    oid = s.put_bytes(data)
    assert s.written_bytes < len(data) // 2
    s.flush()
    _, (_, _, stored, raw, kind, codec) = all_records(s)[oid]
    assert (raw, kind, codec) == (len(data), KIND_LITERAL, CODEC_ZSTD)
    assert stored < len(data) // 2
    assert new_store(ChunkParams()).get_bytes(oid) == data


def test_random_data_is_not_expanded(new_store) -> None:
    s = new_store()
    small, big = rand(1000, 4), rand(40_000, 5)
    oid_small, oid_big = s.put_bytes(small), s.put_bytes(big)
    s.flush()
    recs = all_records(s)
    _, (_, _, stored, raw, _, codec) = recs[oid_small]
    assert (stored, raw, codec) == (len(small), len(small), CODEC_NONE)
    chunk_ids = s.chunks(oid_big)
    chunk_recs = [recs[c][1] for c in chunk_ids]
    assert all(r[5] == CODEC_NONE and r[2] == r[3] for r in chunk_recs)
    assert sum(r[2] for r in chunk_recs) == len(big)


# ------------------------------------------------------------------ abort


def test_abort_discards_unflushed_objects(new_store) -> None:
    s = new_store()
    kept = rand(5000, 6)
    kept_id = s.put_bytes(kept)
    s.flush()
    lost = {s.put_bytes(rand(5000, 7)): 1, s.put_bytes(b"small"): 2}
    assert all(s.has(o) for o in lost)
    assert temp_files(s)  # the pack being written
    s.abort()
    assert temp_files(s) == []
    assert len(pack_paths(s)) == 1
    for st_ in (s, new_store()):
        assert_content(st_, kept_id, kept)
        for oid in lost:
            assert not st_.has(oid)
            with pytest.raises(NotFoundError):
                st_.get_bytes(oid)
    # The store is still usable after an abort.
    again = s.put_bytes(b"after abort")
    s.flush()
    assert new_store().get_bytes(again) == b"after abort"
    assert temp_files(s) == []


# ------------------------------------------------------------------ corruption


def _payload(store: Store, oid: bytes) -> tuple[Path, Record]:
    return all_records(store)[oid]


class Patcher:
    """Flips bytes of a file in place (no truncation, no reopening): open readers see it."""

    def __init__(self, path: Path) -> None:
        path.chmod(0o644)  # packs are created read-only
        self.fd = os.open(path, os.O_RDWR)

    @contextlib.contextmanager
    def flipped(self, pos: int, mask: int = 0xFF) -> Iterator[None]:
        orig = os.pread(self.fd, 1, pos)
        os.pwrite(self.fd, bytes([orig[0] ^ mask]), pos)
        try:
            yield
        finally:
            os.pwrite(self.fd, orig, pos)


@pytest.fixture
def patcher() -> Iterator[Callable[[Path], Patcher]]:
    opened: list[Patcher] = []

    def make(path: Path) -> Patcher:
        opened.append(Patcher(path))
        return opened[-1]

    yield make
    for p in opened:
        os.close(p.fd)


def sample_positions(size: int, step: int = 7) -> list[int]:
    """Every byte of the header and the trailer, and a spread of the bytes between."""
    return sorted({*range(min(64, size)), *range(64, size, step), *range(max(0, size - 48), size)})


def test_flipped_bit_in_raw_payload_is_detected(new_store, patcher) -> None:
    s = new_store()
    data = rand(200, 8)
    oid = s.put_bytes(data)
    s.flush()
    pack, (_, off, stored, _, _, codec) = _payload(s, oid)
    assert codec == CODEC_NONE
    reader = new_store()
    assert reader.get_bytes(oid) == data
    patch = patcher(pack)
    for pos in range(off, off + stored):
        for bit in (0, 7):
            with patch.flipped(pos, 1 << bit):
                with pytest.raises(CorruptObjectError, match=oid.hex()):
                    reader.get_bytes(oid)
                with pytest.raises(CorruptObjectError, match=oid.hex()):
                    b"".join(reader.iter_content(oid))
    assert reader.get_bytes(oid) == data


def _mixed_object(new_store, text_len: int, parts: int) -> tuple[Store, bytes, bytes, tuple]:
    """An object of chunks of random and of compressible bytes, neighbours in one pack:
    its store, content, id and chunk ids."""
    s = new_store()
    data = b"".join(rand(3000, i) + text_data(text_len) for i in range(parts))
    oid = s.put_bytes(data)
    s.flush()
    return s, data, oid, s.chunk_table(oid)[0]


def test_runs_name_the_corrupt_chunk_of_a_mixed_object(new_store, patcher) -> None:
    s, data, oid, ids = _mixed_object(new_store, 3000, 6)
    codecs = {_payload(s, c)[1][5] for c in ids}
    assert len(ids) > 4 and codecs == {CODEC_NONE, CODEC_ZSTD}
    reader = new_store()
    assert runs_content(reader, oid) == data
    for cid in ids:
        pack, (_, off, stored, _, _, _) = _payload(s, cid)
        with patcher(pack).flipped(off + stored // 2):
            with pytest.raises(CorruptObjectError) as e:
                runs_content(reader, oid)
            assert cid.hex() in str(e.value)
    assert runs_content(reader, oid) == data


def test_runs_without_chunk_checks_still_refuse_a_corrupt_object(new_store, patcher) -> None:
    """Hashing only the whole content (checkout's first try) catches a flipped
    byte in any chunk, raw or compressed, once the last chunk is read."""
    s, data, oid, ids = _mixed_object(new_store, 3000, 6)
    assert len(ids) > 4
    reader = new_store()

    def unchecked() -> bytes:
        runs = reader.iter_content_runs(oid, check_chunks=False)
        return b"".join(b"".join(bytes(x) for x in run) for run in runs)

    assert unchecked() == data
    for cid in ids:
        pack, (_, off, stored, _, _, _) = _payload(s, cid)
        with (
            patcher(pack).flipped(off + stored // 2),
            pytest.raises(CorruptObjectError, match=oid.hex()),
        ):
            unchecked()
    assert unchecked() == data


def test_runs_read_past_damaged_record_headers_by_the_index(new_store, patcher, algo) -> None:
    """Runs find a file's next chunk from the record header that follows a chunk;
    a damaged header (id, kind, codec, lengths) only sends them back to the index,
    and the content read is still exactly the file's."""
    s, data, oid, ids = _mixed_object(new_store, 2000, 5)
    assert len(ids) > 3
    reader = new_store()
    head = algo.digest_size + RECORD_HEAD.size
    for cid in ids[1:]:
        pack, (_, off, _, _, _, _) = _payload(s, cid)
        patch = patcher(pack)
        for pos in range(off - head, off):
            for mask in (0x01, 0x80):
                with patch.flipped(pos, mask):
                    assert runs_content(reader, oid) == data, (cid.hex(), pos - off, mask)


ZSTD_FRAME_HEADER_DESCRIPTOR = 4  # after the 4-byte magic


def _compressed_record(new_store) -> tuple[bytes, bytes, Path, Record]:
    s = new_store(ChunkParams())  # max chunk 256 KiB: 2000 bytes are one literal record
    data = text_data(2000)
    oid = s.put_bytes(data)
    s.flush()
    pack, rec = _payload(s, oid)
    assert rec[5] == CODEC_ZSTD
    return oid, data, pack, rec


def test_flipped_bit_in_compressed_payload_is_detected(new_store, patcher) -> None:
    oid, data, pack, (_, off, stored, _, _, _) = _compressed_record(new_store)
    reader = new_store(ChunkParams())
    patch = patcher(pack)
    outcomes = set()
    for pos in range(off, off + stored):
        if pos - off == ZSTD_FRAME_HEADER_DESCRIPTOR:
            continue  # see test_flipped_bit_in_zstd_frame_header_is_detected
        for bit in range(8):
            with patch.flipped(pos, 1 << bit):
                try:
                    got = reader.get_bytes(oid)
                except CorruptObjectError as exc:
                    assert oid.hex() in str(exc)
                    outcomes.add("corrupt")
                else:
                    assert got == data  # a bit zstd ignores (e.g. unused): still correct
                    outcomes.add("ok")
    assert "corrupt" in outcomes
    assert reader.get_bytes(oid) == data


def test_flipped_bit_in_zstd_frame_header_is_detected(new_store, patcher) -> None:
    oid, data, pack, (_, off, _, _, _, _) = _compressed_record(new_store)
    reader = new_store(ChunkParams())
    patch = patcher(pack)
    for bit in range(8):
        with patch.flipped(off + ZSTD_FRAME_HEADER_DESCRIPTOR, 1 << bit):
            try:
                assert reader.get_bytes(oid) == data
            except CorruptObjectError as exc:
                assert oid.hex() in str(exc)


def _chunklist_record(store: Store) -> tuple[bytes, bytes, Path, Record]:
    data = rand(8000, 9)
    oid = store.put_bytes(data)
    store.flush()
    pack, rec = _payload(store, oid)
    assert rec[4] == KIND_CHUNKLIST and rec[5] == CODEC_NONE
    return oid, data, pack, rec


def test_flipped_byte_in_chunk_list_never_returns_wrong_data(new_store, patcher) -> None:
    oid, data, pack, (_, off, stored, _, _, _) = _chunklist_record(new_store())
    reader = new_store()
    patch = patcher(pack)
    errors = 0
    for pos in range(off, off + stored):
        with patch.flipped(pos):
            try:
                got = reader.get_bytes(oid)
            except DsvError:
                errors += 1
                with pytest.raises(DsvError):
                    runs_content(reader, oid)
            else:
                assert got == data
                assert runs_content(reader, oid) == data
                assert 1 <= pos - off <= 3  # only the header's padding is not checked
    assert errors == stored - 3


def test_flipped_chunk_length_in_chunk_list_is_corruption(new_store, algo: HashAlgo) -> None:
    oid, _, pack, (_, off, _, _, _, _) = _chunklist_record(new_store())
    first_length_at = off + 16 + algo.digest_size
    flip(pack, first_length_at, 0x01)
    with pytest.raises(CorruptObjectError, match=oid.hex()):
        new_store().get_bytes(oid)


def test_flipped_version_in_chunk_list_is_corruption(new_store) -> None:
    oid, _, pack, (_, off, _, _, _, _) = _chunklist_record(new_store())
    flip(pack, off, 0x02)
    with pytest.raises(CorruptObjectError, match=oid.hex()):
        new_store().get_bytes(oid)


def test_flipped_chunk_id_in_chunk_list_is_corruption(new_store) -> None:
    oid, _, pack, (_, off, _, _, _, _) = _chunklist_record(new_store())
    flip(pack, off + 16)  # first byte of the first chunk id
    with pytest.raises(CorruptObjectError, match=oid.hex()):
        new_store().get_bytes(oid)


def test_flipped_byte_in_a_pack_fails_scan_pack(new_store, patcher) -> None:
    s = new_store()
    s.put_bytes(rand(300, 10))
    s.put_bytes(text_data(500))
    s.flush()
    (pack,) = pack_paths(s)
    assert len(scan_pack(pack)[1]) == 2
    patch = patcher(pack)
    for pos in sample_positions(pack.stat().st_size):
        with patch.flipped(pos, 1 << (pos % 8)):
            if VERSION_AT <= pos <= ALGO_CODE_AT:
                with pytest.raises((FormatError, UnsupportedFormatError)):
                    scan_pack(pack)
            else:
                with pytest.raises(CorruptObjectError):
                    scan_pack(pack)
    assert len(scan_pack(pack)[1]) == 2


def test_flipped_byte_in_index_is_detected(new_store, patcher, algo: HashAlgo) -> None:
    s = new_store()
    oid = s.put_bytes(b"indexed object")
    s.flush()
    (pack,) = pack_paths(s)
    idx = pack.with_suffix(".idx")
    patch = patcher(idx)
    for i, pos in enumerate(sample_positions(idx.stat().st_size)):
        if VERSION_AT <= pos <= ALGO_CODE_AT:
            # The header is read before the checksum: a damaged version or hash code
            # reads as an unknown format.
            expected: tuple[type[Exception], ...] = (FormatError, UnsupportedFormatError)
        else:
            expected = (CorruptObjectError,)  # FormatError is one too
        with patch.flipped(pos, 1 << (pos % 8)):
            with pytest.raises(expected):
                PackFile(pack, algo)
            if i % 8 == 0:
                with pytest.raises(expected):
                    new_store().has(oid)
    assert new_store().has(oid)


@pytest.mark.parametrize("cut", [1, 16, 32, 33, "into-last-record", "half"])
def test_truncated_pack(new_store, cut: int | str) -> None:
    s = new_store()
    first, last = rand(400, 12), rand(900, 13)
    first_id, last_id = s.put_bytes(first), s.put_bytes(last)
    s.flush()
    (pack,) = pack_paths(s)
    full = pack.read_bytes()
    last_off = all_records(s)[last_id][1][1]
    if cut == "into-last-record":
        size = last_off + 10
    elif cut == "half":
        size = len(full) // 2
    else:
        size = len(full) - int(cut)
    overwrite(pack, full[:size])
    reader = new_store()
    with pytest.raises(CorruptObjectError):
        reader.get_bytes(last_id)
    with contextlib.suppress(CorruptObjectError):
        assert reader.get_bytes(first_id) == first  # intact, and verified on read
    with pytest.raises(CorruptObjectError):
        scan_pack(pack)


@pytest.mark.parametrize("keep", [0, 15, 16, 1000, -1])
def test_truncated_index(new_store, keep: int) -> None:
    s = new_store()
    oid = s.put_bytes(b"x" * 100)
    s.flush()
    idx = pack_paths(s)[0].with_suffix(".idx")
    data = idx.read_bytes()
    overwrite(idx, data[:keep])
    with pytest.raises(CorruptObjectError):  # FormatError is a CorruptObjectError
        new_store().has(oid)


def _rewrite_version(path: Path, version: int) -> None:
    data = bytearray(path.read_bytes())
    assert checksum(bytes(data[:-16])) == bytes(data[-16:])  # the trailer is what we think
    struct.pack_into("<H", data, VERSION_AT, version)
    data[-16:] = checksum(bytes(data[:-16]))
    path.write_bytes(bytes(data))


def test_index_with_newer_version_is_unsupported(new_store) -> None:
    s = new_store()
    oid = s.put_bytes(b"versioned")
    s.flush()
    idx = pack_paths(s)[0].with_suffix(".idx")
    _rewrite_version(idx, IDX_VERSION)  # a no-op rewrite still opens
    assert new_store().get_bytes(oid) == b"versioned"
    _rewrite_version(idx, IDX_VERSION + 1)
    with pytest.raises(UnsupportedFormatError, match="version"):
        new_store().has(oid)


def test_pack_with_newer_version_is_unsupported(new_store) -> None:
    s = new_store()
    s.put_bytes(b"versioned")
    s.flush()
    (pack,) = pack_paths(s)
    _rewrite_version(pack, PACK_VERSION + 1)
    with pytest.raises(UnsupportedFormatError, match="version"):
        scan_pack(pack)


def test_index_of_another_hash_algorithm_is_refused(objects_dir: Path, algo: HashAlgo) -> None:
    s = Store(objects_dir, algo, SMALL)
    s.put_bytes(b"data")
    s.flush()
    other = BLAKE3 if algo is XXH3_128 else XXH3_128
    with pytest.raises(FormatError):
        Store(objects_dir, other, SMALL).has(other.digest(b"data"))
    s.reload()


def test_scan_pack_agrees_with_index(new_store, algo: HashAlgo) -> None:
    s = new_store()
    for i in range(30):
        s.put_bytes(rand(50 * i, i) if i % 3 else text_data(100 * i))
    s.flush()
    (pack,) = pack_paths(s)
    got_algo, records, digest = scan_pack(pack)
    assert got_algo == algo
    assert pack.name == f"pack-{digest.hex()}.pack"
    pf = PackFile(pack, algo)
    try:
        assert pf.count == len(records)
        assert pf.pack_checksum == digest
        assert sorted(pf.ids()) == pf.ids() == sorted(r[0] for r in records)
        for oid, off, stored, raw, kind, codec in records:
            e = pf.find(oid)
            assert e is not None
            assert (e.offset, e.stored_len, e.raw_len, e.kind, e.codec) == (
                off,
                stored,
                raw,
                kind,
                codec,
            )
        assert pf.find(b"\0" * algo.digest_size) is None
        # Records follow each other: the pack has no unaccounted bytes.
        ends = sorted((off, off + stored) for _, off, stored, *_ in records)
        assert all(a[1] + algo.digest_size + 12 == b[0] for a, b in itertools.pairwise(ends))
    finally:
        pf.close()


def test_pack_without_index_is_ignored(new_store) -> None:
    s = new_store()
    kept = s.put_bytes(b"kept")
    s.flush()
    orphan = s.put_bytes(b"orphan")
    s.flush()
    assert len(pack_paths(s)) == 2
    orphan_pack = all_records(s)[orphan][0]
    orphan_pack.with_suffix(".idx").unlink()
    fresh = new_store()
    assert fresh.has(kept)
    assert not fresh.has(orphan)
    assert fresh.all_ids() == {kept}
    assert [p.path for p in fresh.packs] == [all_records(s)[kept][0]]
    # A temp-named index (a crashed writer's) is ignored too.
    (s.pack_dir / f"{TEMP_MARK}{orphan_pack.stem}.idx").write_bytes(b"garbage")
    assert new_store().all_ids() == {kept}


def test_read_range_matches_slices_of_the_content(tmp_path: Path) -> None:
    import random as _random

    from dsv.chunking import ChunkParams as _CP
    from dsv.hashing import XXH3_128 as _X
    from dsv.store import Store as _S

    s = _S(tmp_path / "objects", _X, _CP(min=1024, avg=4096, max=16384))
    rng = _random.Random(5)
    data = rng.randbytes(300_000)
    oid = s.put_bytes(data)
    small = s.put_bytes(b"tiny object")
    s.flush()
    for _ in range(200):
        off = rng.randrange(0, len(data) + 10)
        n = rng.randrange(0, 50_000)
        assert s.read_range(oid, off, n) == data[off : off + n]
    assert s.read_range(small, 2, 3) == b"ny "
    assert s.read_range(small, 50, 3) == b""


def test_multi_pack_index_covers_many_packs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random as _random

    import dsv.store as store_mod
    from dsv.chunking import ChunkParams as _CP
    from dsv.hashing import XXH3_128 as _X
    from dsv.store import Store as _S
    from dsv.store.pack import MIDX_NAME

    monkeypatch.setattr(store_mod, "PACK_TARGET", 20_000)
    monkeypatch.setattr(store_mod, "MIDX_AFTER", 4)
    rng = _random.Random(3)
    s = _S(tmp_path / "objects", _X, _CP(min=1024, avg=4096, max=16384))
    blobs = {
        s.put_bytes(b): b for b in (rng.randbytes(rng.randrange(100, 9000)) for _ in range(120))
    }
    s.flush()
    midx = tmp_path / "objects" / "pack" / MIDX_NAME
    assert midx.exists()
    fresh = _S(tmp_path / "objects", _X, _CP(min=1024, avg=4096, max=16384))
    assert len(fresh.packs) >= 4
    assert fresh._midx is not None and not fresh._loose
    assert all(fresh.get_bytes(oid) == data for oid, data in blobs.items())
    assert not fresh.has(b"\x00" * 16)
    assert fresh.all_ids() >= set(blobs)
    # a later pack stays outside until the next rewrite, and is still found
    extra = fresh.put_bytes(b"one more object")
    fresh.flush()
    again = _S(tmp_path / "objects", _X, _CP(min=1024, avg=4096, max=16384))
    assert again.get_bytes(extra) == b"one more object"
    # a damaged multi-pack index is ignored: every object is still found
    raw = bytearray(midx.read_bytes())
    raw[40] ^= 0xFF
    midx.write_bytes(bytes(raw))
    damaged = _S(tmp_path / "objects", _X, _CP(min=1024, avg=4096, max=16384))
    assert damaged._midx is None
    assert all(damaged.get_bytes(oid) == data for oid, data in blobs.items())
    # searched pack by pack, the last pack hit first: in any order, every object is found
    order = list(blobs)
    rng.shuffle(order)
    assert all(damaged.has(o) and damaged.get_bytes(o) == blobs[o] for o in order)
    assert not damaged.has(b"\x01" * 16)
    # a stale one (a listed pack is gone) too
    s.write_multi_index(min_loose=1)
    first = _S(tmp_path / "objects", _X, _CP()).packs[0]
    gone, lost = first.path, set(first.ids())
    gone.with_suffix(".idx").unlink()
    gone.unlink()
    stale = _S(tmp_path / "objects", _X, _CP(min=1024, avg=4096, max=16384))
    assert stale._midx is None
    assert all(stale.get_bytes(oid) == data for oid, data in blobs.items() if oid not in lost)


def test_background_compression_samples_after_incompressible_batches(new_store) -> None:
    """Incompressible runs are sampled (every 16th object tried); a sample that shrinks
    turns full compression back on, and every object reads back either way."""
    s = new_store(ChunkParams())
    n = dsv.store._Background.BATCH_ITEMS
    noise = [rand(500, 1000 + i) for i in range(n * (dsv.store.MISSES_BEFORE_SAMPLING + 1))]
    # compressible objects at positions a sample does not try, then at the tried one
    text = [text_data(2000 + i) for i in range(n)]
    with s.background_compression():
        noise_ids = [s.put_read(d) for d in noise]
        s._background.drain()  # type: ignore[union-attr]
        # a batch whose sampled (first) object does not shrink: the rest is not tried
        mixed = [noise[0] + b"x", *text[1:16]]
        mixed_ids = [s.put_read(d) for d in mixed]
        s._background.drain()  # type: ignore[union-attr]
        s.put_read(text[0])  # sampled, shrinks: compression is back on
        s._background.drain()  # type: ignore[union-attr]
        later = [s.put_read(d) for d in text[16:]]
    s.flush()
    recs = all_records(s)
    assert all(recs[o][1][5] == CODEC_NONE for o in noise_ids + mixed_ids)
    assert recs[s.algo.digest(text[0])][1][5] == CODEC_ZSTD
    assert all(recs[o][1][5] == CODEC_ZSTD for o in later)
    fresh = new_store(ChunkParams())
    for oid, data in zip(noise_ids + mixed_ids + later, noise + mixed + text[16:]):
        assert fresh.get_bytes(oid) == data


def test_a_caller_compresses_batches_itself_while_the_thread_is_behind(
    new_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the queue full, the caller compresses its batch before handing it over
    (both cores work); the pack still gets every object once, in the order put."""
    import threading

    s = new_store(ChunkParams())
    n = dsv.store._Background.BATCH_ITEMS
    texts = [text_data(3000 + i) for i in range(n * 8)]
    gate = threading.Event()
    callers: list[str] = []
    real_compress = s._compress_many
    real_add = dsv.store.PackWriter.add_many

    def compress(datas: list[bytes]) -> Any:
        callers.append(threading.current_thread().name)
        if threading.current_thread() is threading.main_thread():
            gate.set()  # the caller did not wait: let the thread go on
        return real_compress(datas)

    def add(self: dsv.store.PackWriter, *a: Any) -> int:
        # the thread is held up until the caller, finding the queue full, compresses
        assert gate.wait(10), "the caller waited instead of compressing"
        return real_add(self, *a)

    monkeypatch.setattr(s, "_compress_many", compress)
    monkeypatch.setattr(dsv.store.PackWriter, "add_many", add)
    with s.background_compression():
        ids = [s.put_read(d) for d in texts]
    s.flush()
    assert "dsv-compress" in callers and gate.is_set()
    recs = all_records(s)
    assert all(recs[o][1][5] == CODEC_ZSTD for o in ids)
    # records in the pack in the order the objects were put
    offsets = [recs[o][1][1] for o in ids]
    assert offsets == sorted(offsets)
    fresh = new_store(ChunkParams())
    assert all(fresh.get_bytes(o) == d for o, d in zip(ids, texts, strict=True))


def test_a_pack_opened_by_several_threads_at_once_reads_on_each(
    new_store: Callable[..., Store],
) -> None:
    """Threads that read a pack nobody opened yet all get its bytes (clone and checkout read
    packs on several threads; one of them saw the descriptor before the pack's size)."""
    import sys
    import threading

    s = new_store()
    oid = s.put_bytes(os.urandom(5000), compress=False)
    s.flush()
    path = s.packs[0].path
    errors: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two statements
    try:
        for _ in range(300):
            pack = PackFile(path, s.algo)
            e = pack.find(oid)
            assert e is not None

            def read(pack: PackFile = pack, e: Any = e) -> None:
                try:
                    assert len(pack.read_stored(e)) == e.stored_len
                except BaseException as exc:  # collected for the assert below
                    errors.append(exc)

            threads = [threading.Thread(target=read) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            pack.close()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


def test_a_stream_turns_compression_back_on_after_incompressible_chunks(new_store) -> None:
    """After a run of chunks that did not shrink, every 16th chunk's head is tried; text
    after noise is found so and compressed again, and the stream reads back whole."""
    s = new_store(ChunkParams())
    noise, text = rand(2 << 20, 11), text_data(6 << 20)
    tried: list[int] = []
    compress = s._compress

    def counted(data: bytes | memoryview) -> tuple[int, bytes | memoryview]:
        tried.append(len(data))
        return compress(data)

    s._compress = counted  # type: ignore[method-assign]
    oid, size = s.put_stream(io.BytesIO(noise + text))
    s.flush()
    assert size == len(noise) + len(text)
    assert s.get_bytes(oid, limit=size) == noise + text
    # the noise is stored as it is, the text compressed: far less than the raw bytes
    assert len(noise) < s.written_bytes < len(noise) + len(text) // 2
    # in the noise, after the first misses, only samples of heads were compressed
    assert tried[:8] == [len(c) for c in Chunker(ChunkParams()).cut_buf(noise)][:8]
    assert dsv.store._SAMPLE in tried


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=12))
def test_pack_check_of_a_stream_agrees_with_the_file_check(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int]
) -> None:
    """A pack's bytes given to PackCheck in blocks of any sizes (empty ones, ones shorter
    than the trailer) give the checksum check_pack_file reads from the file; a flipped
    byte or a missing tail fails it as it fails the file check."""
    global _CHECKED_PACK
    if _CHECKED_PACK is None:
        d = tmp_path_factory.mktemp("packcheck")
        s = Store(d, XXH3_128, SMALL)
        for i in range(40):
            s.put_bytes(rand(97 * i + 1, i))
        s.flush()
        (path,) = pack_paths(s)
        _CHECKED_PACK = (path, path.read_bytes(), check_pack_file(path, s.algo))
        s.close()
    path, data, want = _CHECKED_PACK
    check = PackCheck(path, XXH3_128)

    def feed(raw: bytes, reused: bytearray | None = None) -> None:
        check.restart()
        at = 0
        for c in [*sorted(min(c, len(raw)) for c in cuts), len(raw)]:
            piece = raw[at:c]
            if reused is not None:  # a view of a buffer overwritten by the next block
                reused[: len(piece)] = piece
                check.update(memoryview(reused)[: len(piece)])
            else:
                check.update(piece)
            at = c

    feed(b"garbage from an attempt before" * 3)
    feed(data)
    assert check.finish() == want
    feed(data, bytearray(len(data)))
    assert check.finish() == want
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x04
    feed(bytes(flipped))
    with pytest.raises(CorruptObjectError):
        check.finish()
    feed(data[:-1])
    with pytest.raises((FormatError, CorruptObjectError)):
        check.finish()


_CHECKED_PACK: tuple[Path, bytes, bytes] | None = None
