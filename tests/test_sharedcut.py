"""Big files read and cut by the helper process into shared memory (dsv.worktree.sharedcut):
real forks, a real shared mapping, real files."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsv.chunking import READ_SIZE, Chunker
from dsv.errors import DsvIOError
from dsv.repo import Repository
from dsv.worktree import helper as helper_mod
from dsv.worktree import sharedcut
from dsv.worktree.helper import Helper
from dsv.worktree.sharedcut import SharedBlocks
from dsv.worktree.snapshot import _store_file
from tests.conftest import run_dsv

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


@pytest.fixture
def shared(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> Iterator[SharedBlocks]:
    # made even though this test process may run a server thread of another
    # test (idle: nothing the helper uses is locked by it)
    monkeypatch.setattr(helper_mod, "wanted", lambda: True)
    blocks = SharedBlocks(repo.store.chunk_params, os.open)
    h = Helper.start(repo.store, blocks.handlers(repo.store))
    assert h is not None
    blocks.helper = h
    yield blocks
    h.close()


def _random_file(path: Path, size: int, seed: int) -> bytes:
    import random

    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize(
    "size", [0, 1000, READ_SIZE, 2 * READ_SIZE + 70_001, 3 * READ_SIZE - 1], ids=str
)
def test_chunks_cut_by_the_helper_are_those_of_a_cutting_thread(
    repo: Repository, shared: SharedBlocks, size: int
) -> None:
    """Every third block the helper stores itself (its length comes instead of its bytes):
    those chunks are in the store once its packs are adopted."""
    path = repo.root / "big.bin"
    data = _random_file(path, size, seed=size)
    chunker = Chunker(repo.store.chunk_params)
    with path.open("rb", buffering=0) as f:
        expected = [bytes(c) for c in chunker.cut_stream(f)]
    # twice: the second cut starts clean after the first (answers past the end drained)
    for _ in range(2):
        with shared.cutting() as cut:
            assert cut is not None
            assert cut.open(str(path), "big.bin")
            # each view copied as it comes: its buffer is reused for a later block
            pairs = [
                (c if isinstance(c, int) else bytes(c), oid)
                for c, oid in cut.chunks(repo.algo.digest_size)
            ]
            stored = {oid: n for n, oid in pairs if isinstance(n, int)}
            got = [c for c, _ in pairs]
            assert len(got) == len(expected)
            assert got == [
                len(e) if isinstance(g, int) else e for g, e in zip(got, expected, strict=True)
            ]
            assert [oid for _, oid in pairs] == [repo.algo.digest(c) for c in expected]
            assert cut.whole() == repo.algo.digest(data)
            st = path.stat()
            assert cut.after == (st.st_mode, st.st_ino, size, st.st_mtime_ns, st.st_ctime_ns)
    assert shared.helper is not None and shared.helper.pending == 0
    blocks = -(-size // READ_SIZE) if size else 0
    assert bool(stored) == (blocks >= sharedcut.STORE_EVERY)
    shared.helper.finish()
    shared.helper.adopt()
    for c in expected:
        if repo.algo.digest(c) in stored:
            assert repo.store.get_bytes(repo.algo.digest(c)) == c


def test_one_file_at_a_time_goes_to_the_helper(repo: Repository, shared: SharedBlocks) -> None:
    with shared.cutting() as first:
        assert first is not None
        with shared.cutting() as second:
            assert second is None  # busy: the caller cuts on a thread of its own
    with shared.cutting() as again:
        assert again is not None


def test_a_big_file_stored_through_the_helper_has_the_id_of_a_local_store(
    repo: Repository, shared: SharedBlocks
) -> None:
    path = repo.root / "big.bin"
    data = _random_file(path, 9 << 20, seed=3)
    st = os.lstat(path)
    _, oid = _store_file(repo, "big.bin", st, shared)
    with path.open("rb", buffering=0) as f:
        local, size = repo.store.put_stream(f)
    assert (oid, size) == (local, len(data))
    repo.store.flush()
    assert b"".join(repo.store.iter_content(oid)) == data


def test_a_file_changed_while_the_helper_reads_it_is_refused(
    repo: Repository, shared: SharedBlocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = repo.root / "big.bin"
    _random_file(path, 30 << 20, seed=4)
    st = os.lstat(path)
    chunks = sharedcut.RemoteCut.chunks

    def append_after_the_first(
        self: sharedcut.RemoteCut, ds: int
    ) -> Iterator[tuple[memoryview, bytes]]:
        for k, pair in enumerate(chunks(self, ds)):
            yield pair
            if k == 0:
                with path.open("ab") as f:
                    f.write(b"more")

    monkeypatch.setattr(sharedcut.RemoteCut, "chunks", append_after_the_first)
    with pytest.raises(DsvIOError, match=r"big\.bin changed while it was being committed"):
        _store_file(repo, "big.bin", st, shared)


def test_a_file_gone_before_the_helper_opens_it_is_refused(
    repo: Repository, shared: SharedBlocks
) -> None:
    path = repo.root / "big.bin"
    _random_file(path, 9 << 20, seed=5)
    st = os.lstat(path)
    path.unlink()
    with pytest.raises(DsvIOError, match=r"big\.bin vanished while it was being committed"):
        _store_file(repo, "big.bin", st, shared)
    assert shared.helper is not None and shared.helper.pending == 0


def test_a_read_error_in_the_helper_is_raised_with_its_message(
    repo: Repository, shared: SharedBlocks
) -> None:
    (repo.root / "adir").mkdir()
    with shared.cutting() as cut, pytest.raises(DsvIOError, match="adir"):
        assert cut is not None
        assert cut.open(str(repo.root / "adir"), "adir")
        list(cut.chunks(repo.algo.digest_size))  # reading a directory fails in the helper


def test_commits_of_big_files_with_and_without_the_helper_agree(tmp_path: Path) -> None:
    ids = {}
    for helper in ("1", "0"):
        root = tmp_path / f"h{helper}"
        Repository.init(root)
        for k in range(3):  # more than one: the others cut on threads meanwhile
            # the first in three blocks or more: the helper stores one of them itself
            size = (20 << 20 if k == 0 else 9 << 20) + k * 123_457
            _random_file(root / f"big{k}.bin", size, seed=k)
        env = {"DSV_HELPER_PROCESS": helper}
        done = run_dsv("commit", "-m", "v1", cwd=root, env=env)
        assert done.returncode == 0, done.stderr
        ids[helper] = run_dsv("ls-tree", "HEAD", "--json", cwd=root).stdout
        assert run_dsv("fsck", cwd=root).returncode == 0
    assert ids["1"] == ids["0"]


def test_a_helper_killed_while_it_cuts_is_a_clear_error(
    repo: Repository, shared: SharedBlocks
) -> None:
    import signal

    path = repo.root / "big.bin"
    _random_file(path, 9 << 20, seed=6)
    assert shared.helper is not None
    os.kill(shared.helper.pid, signal.SIGKILL)
    with pytest.raises(DsvIOError, match="helper process stopped unexpectedly"):
        _store_file(repo, "big.bin", os.lstat(path), shared)


def test_a_commit_summary_reads_tables_the_helper_stored(tmp_path: Path) -> None:
    """The change summary reads tables from the store, also those in the helper's packs
    (added to the store when first needed): a big parquet file cut and partly stored by
    the helper, and a small CSV among a directory's files that the helper stored."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "ds"
    Repository.init(root)
    rows = 2_500_000  # about 20 MiB: three blocks or more
    ids = np.random.default_rng(1).integers(0, 1 << 62, rows)
    table = pa.table({"id": ids, "label": pa.array(np.arange(rows) % 5)})
    pq.write_table(table, root / "big.parquet", compression="none")
    assert (root / "big.parquet").stat().st_size > 2 * READ_SIZE + (1 << 20)
    small = root / "small"
    small.mkdir()
    for i in range(150):
        (small / f"f{i:03}.txt").write_text(f"file {i}")
    (small / "zz.csv").write_text("id,label\n" + "".join(f"{i},cat\n" for i in range(40)))
    done = run_dsv("commit", "-m", "v1", cwd=root, env={"DSV_HELPER_PROCESS": "1"})
    assert done.returncode == 0, done.stderr
    assert b"big.parquet: rows +2,500,000" in done.stdout, done.stdout
    for i in range(150):  # all changed: the helper stores the second half, the CSV with it
        (small / f"f{i:03}.txt").write_text(f"file {i} v2")
    (small / "zz.csv").write_text("id,label\n" + "".join(f"{i},dog\n" for i in range(40)))
    done = run_dsv("commit", "-m", "v2", cwd=root, env={"DSV_HELPER_PROCESS": "1"})
    assert done.returncode == 0, done.stderr
    assert b"small/zz.csv: rows +0 -0 ~40" in done.stdout, done.stdout
    assert run_dsv("fsck", cwd=root).returncode == 0
