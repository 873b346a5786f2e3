"""Packs written with direct I/O (dsv.directio): the same bytes as through the page cache,
readable before they are finished, and a clear error with nothing left behind when a write
fails or the file system refuses direct I/O."""

from __future__ import annotations

import errno
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dsv.directio as directio
from dsv.directio import DirectAppender, open_direct
from dsv.errors import DsvIOError
from dsv.hashing import XXH3_128
from dsv.store.pack import KIND_LITERAL, PackFile, PackWriter, scan_pack

SMALL_BLOCK = 64 << 10


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Blocks of 64 KiB, so that a few hundred KiB cross several of them."""
    monkeypatch.setattr(directio, "BLOCK", SMALL_BLOCK)
    monkeypatch.setattr(directio, "_pool", [])  # blocks of this size only
    monkeypatch.setenv("DSV_DIRECT_IO", "1")
    yield


def _parts(seed: int, total: int) -> list[bytes]:
    rng = random.Random(seed)
    out, n = [], 0
    while n < total:
        size = rng.choice([1, 7, 100, 4095, 4096, 4097, 30_000, SMALL_BLOCK, 3 * SMALL_BLOCK + 5])
        out.append(rng.randbytes(size))
        n += size
    return out


def _direct_supported(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    fd, direct = open_direct(probe, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    probe.unlink()
    return direct


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_appended_bytes_are_the_file_and_readable_at_every_stage(
    tmp_path: Path, small_blocks: None, seed: int
) -> None:
    path = tmp_path / "f"
    fd, direct = open_direct(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    app = DirectAppender(path, fd, direct)
    rng = random.Random(seed)
    expect = bytearray()
    try:
        for part in _parts(seed, 700_000):
            app.write([part])
            expect += part
            # a read anywhere: on disk, in the block being filled, or across both
            a = rng.randrange(len(expect))
            b = rng.randrange(a, min(len(expect), a + 200_000) + 1)
            assert app.read(a, b - a) == expect[a:b]
        app.finish()
        assert app.read(0, len(expect)) == expect
    finally:
        app.close()
        os.close(fd)
    assert path.read_bytes() == expect  # length exact: the last block's padding is cut off


def _write_pack(pack_dir: Path, blobs: list[bytes]) -> Path:
    w = PackWriter(pack_dir, XXH3_128)
    for b in blobs:
        w.add(XXH3_128.digest(b), KIND_LITERAL, 0, len(b), b)
    path = w.finish()
    assert path is not None
    return path


def test_a_pack_written_direct_is_the_pack_written_through_the_cache(
    tmp_path: Path, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = _parts(7, 1_000_000)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    direct = _write_pack(tmp_path / "a", blobs)
    monkeypatch.setenv("DSV_DIRECT_IO", "0")
    cached = _write_pack(tmp_path / "b", blobs)
    assert direct.name == cached.name  # named by the checksum of its bytes
    assert direct.read_bytes() == cached.read_bytes()
    p = PackFile(direct, XXH3_128)
    try:
        assert [p.read_stored(p.find(XXH3_128.digest(b))) for b in blobs[:20]] == blobs[:20]
    finally:
        p.close()
    _, records, _ = scan_pack(direct)
    assert len(records) == len(set(map(XXH3_128.digest, blobs)))


def test_records_read_back_before_the_pack_is_finished(tmp_path: Path, small_blocks: None) -> None:
    w = PackWriter(tmp_path, XXH3_128)
    blobs = _parts(11, 500_000)
    try:
        for b in blobs:
            w.add(XXH3_128.digest(b), KIND_LITERAL, 0, len(b), b)
        for b in blobs:
            off, stored, *_ = w.index[XXH3_128.digest(b)]
            assert w.read_stored(off, stored) == b
    finally:
        w.abort()
    assert list(tmp_path.iterdir()) == []


def _refuse_direct_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.open

    def fake(path: Any, flags: int, *a: Any, **kw: Any) -> int:
        if flags & os.O_DIRECT:
            fd = real(path, flags & ~os.O_DIRECT, *a, **kw)  # created, as Linux does
            os.close(fd)
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", fake)


def test_a_file_system_without_direct_io_gets_ordinary_writes(
    tmp_path: Path, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_direct_at_open(monkeypatch)
    blobs = _parts(5, 300_000)
    path = _write_pack(tmp_path, blobs)
    _, records, _ = scan_pack(path)  # checks the checksum
    assert len(records) == len(set(map(XXH3_128.digest, blobs)))
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".idx", ".pack"]  # no leftover


def test_a_file_system_wanting_another_alignment_gets_ordinary_writes(
    tmp_path: Path, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _direct_supported(tmp_path):
        pytest.skip("this file system refuses direct I/O")
    real = os.pwrite
    refused = []

    def fake(fd: int, data: Any, offset: int) -> int:
        import fcntl

        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(offset)
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", fake)
    blobs = _parts(6, 400_000)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = _write_pack(tmp_path / "a", blobs)
    assert refused  # it did try a direct write first
    monkeypatch.setenv("DSV_DIRECT_IO", "0")
    assert path.read_bytes() == _write_pack(tmp_path / "b", blobs).read_bytes()


def test_a_failing_direct_write_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _direct_supported(tmp_path):
        pytest.skip("this file system refuses direct I/O")
    real = os.pwrite
    calls = [0]

    def fake(fd: int, data: Any, offset: int) -> int:
        calls[0] += 1
        if calls[0] > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", fake)
    w = PackWriter(tmp_path, XXH3_128)
    with pytest.raises(DsvIOError, match="No space left"):
        for b in _parts(8, 2_000_000):
            w.add(XXH3_128.digest(b), KIND_LITERAL, 0, len(b), b)
        w.finish()
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_unexpected_error_in_the_writer_thread_is_raised_not_a_hang(
    tmp_path: Path, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread keeps taking blocks after any error, so the caller never waits on a
    full queue forever; the error comes out of the caller's next call."""
    if not _direct_supported(tmp_path):
        pytest.skip("this file system refuses direct I/O")

    def broken(fd: int, data: Any, offset: int) -> int:
        raise RuntimeError("broken write")

    monkeypatch.setattr(os, "pwrite", broken)
    w = PackWriter(tmp_path, XXH3_128)
    raised: list[BaseException] = []

    def fill() -> None:
        try:
            for b in _parts(9, 3_000_000):  # far more blocks than the queue holds
                w.add(XXH3_128.digest(b), KIND_LITERAL, 0, len(b), b)
            w.finish()
        except BaseException as exc:
            raised.append(exc)

    t = threading.Thread(target=fill, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the writer hung on a full queue"
    assert len(raised) == 1 and "broken write" in str(raised[0])
    w.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_child_forked_while_the_block_pool_is_locked_can_still_write() -> None:
    import time

    lock = directio._pool_lock
    lock.acquire()  # as if another thread were taking a block at the moment of the fork
    try:
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                directio._give(directio._take())
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        assert done[0] == pid, "the child hung on the pool's lock"
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        lock.release()
