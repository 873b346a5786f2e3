"""Content-defined chunking: completeness, size bounds, stream/buffer agreement, stability."""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import random
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dsv.chunking
from dsv.chunking import Chunker, ChunkParams
from dsv.errors import UnsupportedFormatError

# Small sizes keep every example cheap while still producing many chunks.
SMALL = ChunkParams(min=64, avg=256, max=1024)
# Small enough that inputs of a few KiB span several stream blocks.
SMALL_READ = 4096


def chunks_of_buf(chunker: Chunker, data: bytes) -> list[bytes]:
    return [bytes(c) for c in chunker.cut_buf(data)]


def chunks_of_stream(chunker: Chunker, stream) -> list[bytes]:
    # Views from cut_stream are only valid until the next one: copy at once.
    return [bytes(c) for c in chunker.cut_stream(stream)]


def digests(chunks: list[bytes]) -> list[bytes]:
    return [hashlib.sha256(c).digest() for c in chunks]


class TrickleStream(io.RawIOBase):
    """A stream whose reads return fewer bytes than asked (like a pipe or socket)."""

    def __init__(self, data: bytes, rng: random.Random) -> None:
        self._data = data
        self._pos = 0
        self._rng = rng

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = min(len(b), len(self._data) - self._pos, self._rng.randint(1, 700))
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


# Mixes random bytes with long runs, where no content cut is found and the max
# size forces boundaries.
data_st = st.one_of(
    st.binary(max_size=20_000),
    st.builds(
        lambda seed, n: random.Random(seed).randbytes(n),
        st.integers(0, 2**32),
        st.integers(0, 40_000),
    ),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=3), st.integers(0, 15_000)),
)


@contextlib.contextmanager
def small_read_size() -> Iterator[None]:
    """Shrink the stream block size (a context manager: hypothesis runs many examples per test)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dsv.chunking, "READ_SIZE", SMALL_READ)
        yield


@pytest.fixture
def small_reads() -> Iterator[None]:
    with small_read_size():
        yield


@settings(max_examples=150, deadline=None)
@given(data=data_st)
def test_cut_buf_chunks_concatenate_to_input_and_respect_sizes(data: bytes) -> None:
    chunks = chunks_of_buf(Chunker(SMALL), data)
    assert b"".join(chunks) == data
    assert all(len(c) > 0 for c in chunks)
    for c in chunks[:-1]:
        assert SMALL.min <= len(c) <= SMALL.max
    if chunks:
        assert len(chunks[-1]) <= SMALL.max


@settings(max_examples=150, deadline=None)
@given(data=data_st, seed=st.integers(0, 2**16))
def test_cut_stream_matches_cut_buf(data: bytes, seed: int) -> None:
    chunker = Chunker(SMALL)
    expected = chunks_of_buf(chunker, data)
    with small_read_size():
        assert dsv.chunking.READ_SIZE == SMALL_READ
        assert chunks_of_stream(chunker, io.BytesIO(data)) == expected
        assert chunks_of_stream(chunker, TrickleStream(data, random.Random(seed))) == expected


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(0, 6 * SMALL_READ))
def test_cut_stream_over_unbuffered_file_matches_cut_buf(
    tmp_path_factory: pytest.TempPathFactory, seed: int, n: int
) -> None:
    data = random.Random(seed).randbytes(n)
    path = tmp_path_factory.mktemp("chunk") / "data.bin"
    path.write_bytes(data)
    chunker = Chunker(SMALL)
    with small_read_size(), open(path, "rb", buffering=0) as f:
        got = chunks_of_stream(chunker, f)
    assert got == chunks_of_buf(chunker, data)
    assert b"".join(got) == data


@pytest.mark.parametrize(
    "n",
    [
        SMALL_READ - 1,
        SMALL_READ,
        SMALL_READ + 1,
        SMALL_READ + SMALL.max,
        SMALL_READ + SMALL.max + 1,
        3 * (SMALL_READ + SMALL.max),
    ],
)
@pytest.mark.parametrize("fill", ["zeros", "random"])
def test_cut_stream_at_block_boundaries(small_reads: None, n: int, fill: str) -> None:
    data = bytes(n) if fill == "zeros" else random.Random(n).randbytes(n)
    chunker = Chunker(SMALL)
    expected = chunks_of_buf(chunker, data)
    assert chunks_of_stream(chunker, io.BytesIO(data)) == expected
    assert b"".join(expected) == data


def test_cut_stream_with_default_read_size_matches_cut_buf() -> None:
    # Input larger than the real READ_SIZE, with the repository default sizes.
    data = random.Random(7).randbytes(dsv.chunking.READ_SIZE + 3 * ChunkParams().max + 12345)
    chunker = Chunker(ChunkParams())
    expected = chunks_of_buf(chunker, data)
    got = chunks_of_stream(chunker, io.BytesIO(data))
    assert digests(got) == digests(expected)
    assert len(expected) > dsv.chunking.READ_SIZE // ChunkParams().max


def test_empty_input_gives_no_chunks(tmp_path) -> None:
    chunker = Chunker(SMALL)
    assert list(chunker.cut_buf(b"")) == []
    assert list(chunker.cut_buf(memoryview(b""))) == []
    assert list(chunker.cut_stream(io.BytesIO(b""))) == []
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with open(empty, "rb", buffering=0) as f:
        assert list(chunker.cut_stream(f)) == []


def test_cut_buf_does_not_depend_on_buffer_type_or_position() -> None:
    data = random.Random(3).randbytes(30_000)
    chunker = Chunker(SMALL)
    expected = chunks_of_buf(chunker, data)
    padded = bytearray(b"x" * 999 + data + b"y" * 999)
    assert chunks_of_buf(chunker, memoryview(padded)[999:-999]) == expected
    assert chunks_of_buf(chunker, bytearray(data)) == expected


def common_prefix(a: list[bytes], b: list[bytes]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def common_suffix(a: list[bytes], b: list[bytes]) -> int:
    return common_prefix(a[::-1], b[::-1])


# Chunks after an edit until the cut points of the old and new versions meet
# again.  This is geometric (a few chunks typically, 11 the worst seen in 400
# trials): the bound makes a spurious failure vanishingly unlikely.
RESYNC = 24


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    insert=st.binary(min_size=1, max_size=2000),
    where=st.sampled_from(["start", "middle"]),
)
def test_local_insert_leaves_distant_chunks_unchanged(seed: int, insert: bytes, where: str) -> None:
    chunker = Chunker(SMALL)
    data = random.Random(seed).randbytes(200_000)
    pos = 0 if where == "start" else len(data) // 2
    edited = data[:pos] + insert + data[pos:]
    old = chunks_of_buf(chunker, data)
    new = chunks_of_buf(chunker, edited)
    ends = list(itertools.accumulate(len(c) for c in old))
    # old chunks that end before the insert (FastCDC 2020 tests two bytes per
    # step, so a cut right at the insert point may depend on the inserted byte)
    before = sum(1 for e in ends if e < pos)
    after = sum(1 for e, c in zip(ends, old) if e - len(c) >= pos)  # wholly after it
    assert after > 250
    # Cut points depend only on the bytes around them: nothing before the insert moves.
    assert common_prefix(old, new) >= before
    # After a few chunks the cut points fall where they did: the rest is shared.
    assert common_suffix(old, new) >= after - RESYNC
    old_d, new_d = set(digests(old)), set(digests(new))
    assert len(old_d - new_d) <= RESYNC + 1
    assert len(new_d - old_d) <= len(insert) // SMALL.min + RESYNC + 2


@pytest.mark.parametrize(
    ("lo", "avg", "hi"),
    [
        (63, 256, 1024),  # min below 64
        (0, 256, 1024),
        (-1, 256, 1024),
        (64, 255, 1024),  # avg below 256
        (300, 256, 1024),  # min > avg
        (64, 2048, 1024),  # avg > max
        (64, 256, 16 * 1024 * 1024 + 1),  # max above 16 MiB
    ],
)
def test_invalid_params_raise(lo: int, avg: int, hi: int) -> None:
    params = ChunkParams(min=lo, avg=avg, max=hi)
    with pytest.raises(UnsupportedFormatError):
        params.validate()
    with pytest.raises(UnsupportedFormatError):
        Chunker(params)


@pytest.mark.parametrize(
    ("lo", "avg", "hi"),
    [(64, 256, 1024), (1024, 1024, 1024), (64, 256, 16 * 1024 * 1024), (16384, 65536, 262144)],
)
def test_extreme_valid_params_are_accepted_and_honoured(lo: int, avg: int, hi: int) -> None:
    params = ChunkParams(min=lo, avg=avg, max=hi)
    assert params.validate() is params
    data = random.Random(lo + hi).randbytes(min(3 * hi, 2 << 20) + 17)
    chunks = chunks_of_buf(Chunker(params), data)
    assert b"".join(chunks) == data
    assert all(lo <= len(c) <= hi for c in chunks[:-1])


@pytest.mark.parametrize(
    ("lo", "avg", "hi"),
    [
        (64, 256, 256),  # max below pyfastcdc's 1024
        (256, 512, 1023),
        (2 << 20, 4 << 20, 16 << 20),  # min above pyfastcdc's 1 MiB
        (64, 8 << 20, 16 << 20),  # avg above pyfastcdc's 4 MiB
    ],
)
def test_params_accepted_by_validate_make_a_working_chunker(lo: int, avg: int, hi: int) -> None:
    params = ChunkParams(min=lo, avg=avg, max=hi)
    try:
        params.validate()
    except UnsupportedFormatError:
        return  # refused up front: consistent
    # validate() accepted them: the chunker must then work and honour them.
    chunker = Chunker(params)
    data = random.Random(hi).randbytes(2 * hi + 5)
    chunks = chunks_of_buf(chunker, data)
    assert b"".join(chunks) == data
    assert all(len(c) <= hi for c in chunks)


def cutting_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dsv-cut"]


class FailingStream(io.RawIOBase):
    """Serves ``good`` bytes, then fails the way a disk error does."""

    def __init__(self, good: bytes) -> None:
        self.data = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        n = self.data.readinto(b)
        if n == 0:
            raise OSError(5, "Input/output error")
        return n


def test_read_error_reaches_the_consumer_and_ends_the_thread(small_reads: None) -> None:
    data = random.Random(11).randbytes(3 * SMALL_READ)
    chunker = Chunker(SMALL)
    got = []
    with pytest.raises(OSError, match="Input/output error"):
        for c in chunker.cut_stream(FailingStream(data)):
            got.append(bytes(c))
    # every chunk handed over before the error was a whole chunk of the input
    assert got == chunks_of_buf(chunker, data)[: len(got)]
    assert not cutting_threads()


def test_abandoned_stream_stops_its_thread(small_reads: None) -> None:
    data = random.Random(12).randbytes(10 * SMALL_READ)
    it = Chunker(SMALL).cut_stream(io.BytesIO(data))
    first = bytes(next(it))
    assert cutting_threads()
    it.close()  # type: ignore[attr-defined]
    assert not cutting_threads()
    assert data.startswith(first)
