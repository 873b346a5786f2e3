"""Commit, status and checkout on real files: round trips, the stat cache, refusals."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from dsv import api
from dsv.errors import ConflictError, CorruptObjectError, DsvIOError, NothingToCommitError
from dsv.objects import Kind
from dsv.repo import Repository
from dsv.worktree import snapshot as snap
from dsv.worktree.scan import Listing, Scanner, pack_stat, scan_dir
from dsv.worktree.snapshot import STAGING
from dsv.worktree.statcache import FINE_GRANULARITY_NS, StatCache

from .conftest import assert_status_does_not_import, snapshot, write


def _v1(root: Path) -> None:
    write(root / "empty.txt", b"")
    write(root / "small.txt", "hello\n")
    write(root / "big.bin", os.urandom(3 << 20))  # many chunks
    write(root / "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    write(root / "ro.txt", "read only\n", mode=0o444)
    write(root / "train/cat/1.png", os.urandom(5000))
    write(root / "train/dog/2.png", os.urandom(7000))
    write(root / "naïve ünïcode/файл.txt", "unicode\n")
    os.symlink("small.txt", root / "link")


def _v2(root: Path) -> None:
    big = root / "big.bin"
    data = bytearray(big.read_bytes())
    data[1_000_000:1_000_100] = os.urandom(100)
    big.write_bytes(bytes(data) + os.urandom(200_000))
    (root / "train/cat/1.png").rename(root / "train/dog/1.png")
    (root / "small.txt").unlink()
    write(root / "small.txt/now-a-dir.txt", "type change\n")
    (root / "run.sh").chmod(0o644)
    (root / "link").unlink()
    os.symlink("train", root / "link")
    write(root / "new.txt", "new\n")


def test_commit_checkout_round_trip_bytes_and_modes(repo: Repository) -> None:
    root = repo.root
    _v1(root)
    c1 = api.commit(repo, "v1").id
    s1 = snapshot(root)
    _v2(root)
    c2 = api.commit(repo, "v2").id
    s2 = snapshot(root)
    assert s1 != s2

    api.checkout(repo, c1.hex())
    assert snapshot(root) == s1
    assert api.status(repo).clean
    api.checkout(repo, "main")
    assert snapshot(root) == s2
    assert repo.refs.head().branch == "refs/heads/main"
    assert repo.refs.head().commit == c2
    assert api.status(repo).clean


def test_small_edit_of_big_file_stores_little(repo: Repository) -> None:
    big = repo.root / "big.bin"
    write(big, os.urandom(8 << 20))
    api.commit(repo, "v1")
    data = bytearray(big.read_bytes())
    data[4_000_000:4_000_010] = b"0123456789"
    big.write_bytes(bytes(data) + os.urandom(100_000))
    res = api.commit(repo, "v2")
    stored = res.commit.summary["stored_bytes"]
    assert stored < 1 << 20, stored  # a few chunks, not another 8 MiB


def test_status_reports_each_kind_of_change(repo: Repository) -> None:
    root = repo.root
    _v1(root)
    api.commit(repo, "v1")
    (root / "train/dog/2.png").write_bytes(b"changed")
    (root / "empty.txt").unlink()
    write(root / "added.txt", "x")
    (root / "ro.txt").chmod(0o644)
    st = api.status(repo)
    assert st.added == ["added.txt"]
    assert st.deleted == ["empty.txt"]
    assert st.modified == ["ro.txt", "train/dog/2.png"]
    assert not st.clean


@pytest.mark.parametrize("same", [True, False])
@pytest.mark.parametrize("helper", ["1", "0"])
def test_directory_replaced_by_a_symlink_is_not_walked_through(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, same: bool, helper: str
) -> None:
    """A tracked directory that became a symlink to a directory (outside the working tree)
    holding files of the same names: the symlink is added and the files are deleted; no
    command reads what is behind the link, and the commit records exactly that."""
    monkeypatch.setenv("DSV_HELPER_PROCESS", helper)
    root = repo.root
    for i in range(3):
        write(root / f"d/sub{i}/f", f"v1 {i}\n")
    write(root / "d/f", "v1\n")
    write(root / "keep.txt", "keep\n")
    api.commit(repo, "v1")
    out = tmp_path / "outside"
    for rel in ("f", "sub0/f", "sub1/f", "sub2/f"):
        write(out / rel, (root / "d" / rel).read_bytes() if same else b"other\n")
    shutil.rmtree(root / "d")
    os.symlink(out, root / "d")
    st = api.status(repo)
    assert st.added == ["d"]
    assert st.deleted == ["d/f", "d/sub0/f", "d/sub1/f", "d/sub2/f"]
    assert st.modified == []
    res = api.commit(repo, "v2")
    assert res.commit.summary["files"] == {"added": 1, "removed": 4, "modified": 0, "total": 2}
    entries = dict(api.ls_tree(repo, "HEAD", recursive=True))
    assert sorted(entries) == ["d", "keep.txt"] and entries["d"].kind == Kind.SYMLINK
    assert api.status(repo).clean
    # and back: the directory is restored in place of the link, nothing written behind it
    before = snapshot(out)
    api.checkout(repo, "HEAD~1")
    assert not (root / "d").is_symlink() and (root / "d/sub1/f").read_text() == "v1 1\n"
    assert snapshot(out) == before


def test_scan_does_not_follow_a_symlink_in_place_of_a_directory(tmp_path: Path) -> None:
    """Made between the parent's listing and the directory's own (a race): not a directory."""
    write(tmp_path / "real/f", "x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert scan_dir(str(tmp_path / "link")) is None
    assert scan_dir(str(tmp_path / "real")) is not None
    # the root of a working tree may itself be reached through a symlink
    found = scan_dir(str(tmp_path / "link"), root=True)
    assert found is not None and found[0] == ["f"]


def test_noop_status_uses_only_stat(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    _v1(repo.root)
    api.commit(repo, "v1")
    time.sleep(FINE_GRANULARITY_NS / 1e9 * 2)  # let the entries age past the racy window
    api.status(repo)  # may re-hash entries that were racy at commit time

    calls: list[str] = []
    real = snap.hash_path
    monkeypatch.setattr(snap, "hash_path", lambda r, rel, st: calls.append(rel) or real(r, rel, st))
    st = api.status(repo)
    assert st.clean
    assert calls == []


def _slow_staging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkouts that take longer than a tick: the files they write are not racy."""
    from dsv.worktree import checkout as co

    real_stage = co._stage_all

    def slow_stage(*a: object) -> bytearray:
        out = real_stage(*a)  # type: ignore[arg-type]
        time.sleep(FINE_GRANULARITY_NS / 1e9 * 2)
        return out

    monkeypatch.setattr(co, "_stage_all", slow_stage)


def _clean_without_hashing(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    """Status is clean on stat calls alone: the cache holds the files' true stat records."""
    calls: list[str] = []
    real = snap.hash_path
    monkeypatch.setattr(snap, "hash_path", lambda r, rel, st: calls.append(rel) or real(r, rel, st))
    assert api.status(repo).clean
    assert calls == []


def test_files_a_checkout_wrote_are_trusted_on_stat(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first status after a checkout does not hash again what the checkout wrote."""

    for i in range(20):
        write(repo.root / f"d{i % 3}/f{i}.bin", os.urandom(100 + i))
    api.commit(repo, "v1")
    s1 = snapshot(repo.root)
    for i in range(20):
        (repo.root / f"d{i % 3}/f{i}.bin").unlink()

    _slow_staging(monkeypatch)
    api.checkout(repo, "HEAD", force=True)
    assert snapshot(repo.root) == s1
    _clean_without_hashing(repo, monkeypatch)
    # and a file changed since is still seen
    write(repo.root / "d0/f0.bin", os.urandom(100))
    assert api.status(repo).modified == ["d0/f0.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_checkout_into_missing_directories_keeps_modes_and_trusts_its_stats(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    """Directories not on disk are staged whole: modes exact whatever the umask, and
    the stat records taken before their rename let the next status hash nothing."""
    modes = [0o755, 0o644, 0o444, 0o600, 0o664, 0o700, 0o640]
    for i, mode in enumerate(modes * 3):
        write(repo.root / f"data/c{i % 4}/f{i}.bin", os.urandom(50 + i), mode=mode)
    os.symlink("f0.bin", repo.root / "data/c0/link")
    api.commit(repo, "v1")
    s1 = snapshot(repo.root)
    shutil.rmtree(repo.root / "data")
    _slow_staging(monkeypatch)
    old = os.umask(umask)
    try:
        api.checkout(repo, "HEAD", force=True)
    finally:
        os.umask(old)
    assert snapshot(repo.root) == s1
    _clean_without_hashing(repo, monkeypatch)
    os.chmod(repo.root / "data/c1/f1.bin", 0o600)  # a change of mode alone is still seen
    write(repo.root / "data/c2/f2.bin", os.urandom(52))  # and so is new content of that size
    assert api.status(repo).modified == ["data/c1/f1.bin", "data/c2/f2.bin"]


def test_checkout_does_not_trust_a_racy_entry_it_did_not_look_at(repo: Repository) -> None:
    """A paths-only checkout saves the cache later than its racily clean entries were seen."""
    from dsv.worktree.snapshot import load_cache

    a = write(repo.root / "a.txt", "aaaa")
    write(repo.root / "b.txt", "bbbb")
    c1 = api.commit(repo, "v1").id
    a_id = next(e.id for e in repo.read_tree(repo.read_commit(c1).tree) if e.name == "a.txt")
    # What a cache holds when a.txt was rewritten within the tick it was hashed in:
    # the old content's id beside the new stat, and a reference time that makes it racy.
    a.write_text("AAAA")
    st = a.stat()
    cache = load_cache(repo)
    cache.forget(["a.txt"])
    cache.loose["a.txt"] = (pack_stat(st), a_id)
    cache.save(st.st_mtime_ns + FINE_GRANULARITY_NS // 2, FINE_GRANULARITY_NS)
    assert load_cache(repo).lookup("a.txt", st) is None  # racy: not trusted
    time.sleep(FINE_GRANULARITY_NS / 1e9 * 2)
    api.checkout(repo, "HEAD", paths=["b.txt"], force=True)  # a.txt out of its scope
    assert api.status(repo).modified == ["a.txt"]


def test_rewrite_with_same_size_and_mtime_is_detected(repo: Repository) -> None:
    f = write(repo.root / "labels.csv", "id,label\n1,cat\n")
    api.commit(repo, "v1")
    before = f.stat()
    f.write_text("id,label\n1,dog\n")  # same size
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert f.stat().st_mtime_ns == before.st_mtime_ns
    assert api.status(repo).modified == ["labels.csv"]


def test_racily_clean_entry_is_not_trusted(tmp_path: Path) -> None:
    from dsv.hashing import XXH3_128

    f = write(tmp_path / "f", "abc")
    st = f.stat()
    cache = StatCache(tmp_path / "index", XXH3_128)
    cache.record({"f": (st, b"x" * 16)})
    # the cache was written within the timestamp granularity of the file's mtime
    cache.ref_ns = st.st_mtime_ns + FINE_GRANULARITY_NS // 2
    cache.granularity_ns = FINE_GRANULARITY_NS
    assert cache.lookup("f", st) is None
    # long after: trusted on stat alone
    cache.ref_ns = st.st_mtime_ns + 10 * FINE_GRANULARITY_NS
    assert cache.lookup("f", st) == b"x" * 16
    # and survives a save/load cycle
    cache.save(cache.ref_ns, FINE_GRANULARITY_NS)
    again = StatCache(tmp_path / "index", XXH3_128).load()
    assert again.lookup("f", st) == b"x" * 16


def test_corrupt_stat_cache_is_ignored(repo: Repository) -> None:
    write(repo.root / "a.txt", "a")
    api.commit(repo, "v1")
    idx = repo.dsv_dir / "index"
    idx.write_bytes(b"garbage" * 10)
    assert api.status(repo).clean
    write(repo.root / "a.txt", "b")
    assert api.status(repo).modified == ["a.txt"]


def test_checkout_refuses_to_overwrite_local_changes(repo: Repository) -> None:
    f = write(repo.root / "a.txt", "v1\n")
    c1 = api.commit(repo, "v1").id
    f.write_text("v2\n")
    api.commit(repo, "v2")
    f.write_text("local edit\n")
    with pytest.raises(ConflictError) as e:
        api.checkout(repo, c1.hex())
    assert "a.txt" in str(e.value)
    assert f.read_text() == "local edit\n"
    assert repo.refs.head().branch == "refs/heads/main"
    api.checkout(repo, c1.hex(), force=True)
    assert f.read_text() == "v1\n"


def test_checkout_refuses_untracked_file_in_the_way(repo: Repository) -> None:
    write(repo.root / "a.txt", "a")
    c1 = api.commit(repo, "v1").id
    write(repo.root / "b.txt", "committed b")
    api.commit(repo, "v2")
    api.checkout(repo, c1.hex())
    assert not (repo.root / "b.txt").exists()
    write(repo.root / "b.txt", "untracked, precious")
    with pytest.raises(ConflictError):
        api.checkout(repo, "main")
    assert (repo.root / "b.txt").read_text() == "untracked, precious"


def test_checkout_keeps_local_change_to_unchanged_path(repo: Repository) -> None:
    write(repo.root / "a.txt", "a")
    write(repo.root / "b.txt", "b")
    c1 = api.commit(repo, "v1").id
    write(repo.root / "b.txt", "b2")
    api.commit(repo, "v2")
    api.checkout(repo, c1.hex())
    write(repo.root / "a.txt", "local")
    out = api.checkout(repo, "main")
    assert out.result.kept == ["a.txt"]
    assert (repo.root / "a.txt").read_text() == "local"
    assert (repo.root / "b.txt").read_text() == "b2"


def test_checkout_paths_restores_only_those(repo: Repository) -> None:
    write(repo.root / "a.txt", "a1")
    write(repo.root / "d/b.txt", "b1")
    c1 = api.commit(repo, "v1").id
    write(repo.root / "a.txt", "a2")
    write(repo.root / "d/b.txt", "b2")
    api.commit(repo, "v2")
    api.checkout(repo, c1.hex(), paths=["d"])
    assert (repo.root / "d/b.txt").read_text() == "b1"
    assert (repo.root / "a.txt").read_text() == "a2"
    assert repo.refs.head().commit != c1  # a path checkout does not move HEAD


def test_commit_paths_commits_only_those(repo: Repository) -> None:
    write(repo.root / "a.txt", "a1")
    write(repo.root / "d/b.txt", "b1")
    api.commit(repo, "v1")
    write(repo.root / "a.txt", "a2")
    write(repo.root / "d/b.txt", "b2")
    res = api.commit(repo, "only d", paths=["d"])
    assert res.commit.summary["files"]["modified"] == 1
    assert b"".join(api.cat(repo, "HEAD:d/b.txt")) == b"b2"
    assert b"".join(api.cat(repo, "HEAD:a.txt")) == b"a1"
    assert api.status(repo).modified == ["a.txt"]


def test_nothing_to_commit(repo: Repository) -> None:
    write(repo.root / "a.txt", "a")
    api.commit(repo, "v1")
    with pytest.raises(NothingToCommitError):
        api.commit(repo, "again")
    res = api.commit(repo, "empty on purpose", allow_empty=True)
    assert res.commit.tree == repo.read_commit(res.commit.parents[0]).tree


def test_dsvignore_is_honoured(repo: Repository) -> None:
    write(repo.root / ".dsvignore", "*.tmp\ncache/\n!keep.tmp\n")
    write(repo.root / "a.tmp", "x")
    write(repo.root / "keep.tmp", "x")
    write(repo.root / "cache/x.bin", "x")
    write(repo.root / "data.csv", "x")
    api.commit(repo, "v1")
    paths = [p for p, _ in api.ls_tree(repo, "HEAD", recursive=True)]
    assert paths == [".dsvignore", "data.csv", "keep.tmp"]


def test_vanishing_file_fails_commit_and_leaves_repo_valid(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(repo.root / "a.txt", "a")
    api.commit(repo, "v1")
    write(repo.root / "b.txt", "b" * 1000)
    write(repo.root / "c.txt", "c" * 1000)
    real_listing = Scanner.listing

    def scan_then_delete(self: Scanner, d: str) -> Listing | None:
        out = real_listing(self, d)
        if d == "":
            (repo.root / "c.txt").unlink()
        return out

    monkeypatch.setattr(Scanner, "listing", scan_then_delete)
    head = repo.refs.head().commit
    with pytest.raises(DsvIOError) as e:
        api.commit(repo, "v2")
    assert "c.txt" in str(e.value) and "vanished" in str(e.value)
    assert repo.refs.head().commit == head
    assert not [p for p in repo.store.pack_dir.iterdir() if p.name.startswith(".dsv-tmp")]
    assert api.fsck(Repository(repo.root)).ok


@pytest.mark.parametrize("change", ["removed", "replaced"])
def test_directory_gone_after_scan_fails_commit_and_leaves_repo_valid(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, change: str
) -> None:
    """Files are read by name in their directory, opened once: a directory removed, or
    replaced by another holding files of the same names, after it was listed is an error."""
    write(repo.root / "a.txt", "a")
    api.commit(repo, "v1")
    for n in ("b", "c"):
        write(repo.root / f"sub/{n}.txt", n * 1000)
    other = tmp_path / "other"
    for n in ("b", "c"):
        write(other / f"{n}.txt", n * 1000)
    real_listing = Scanner.listing

    def scan_then_change(self: Scanner, d: str) -> Listing | None:
        out = real_listing(self, d)
        if d == "sub":
            shutil.rmtree(repo.root / "sub")
            if change == "replaced":
                shutil.copytree(other, repo.root / "sub")
        return out

    monkeypatch.setattr(Scanner, "listing", scan_then_change)
    head = repo.refs.head().commit
    with pytest.raises(DsvIOError) as e:
        api.commit(repo, "v2")
    assert "sub" in str(e.value)
    assert ("vanished" if change == "removed" else "changed") in str(e.value)
    assert repo.refs.head().commit == head
    assert not [p for p in repo.store.pack_dir.iterdir() if p.name.startswith(".dsv-tmp")]
    assert api.fsck(Repository(repo.root)).ok


@pytest.mark.parametrize("change", ["rewrite", "replace", "fifo"])
def test_file_changed_after_scan_fails_commit_and_leaves_repo_valid(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    write(repo.root / "a.txt", "a")
    api.commit(repo, "v1")
    write(repo.root / "b.txt", "b" * 1000)
    real_listing = Scanner.listing

    def scan_then_change(self: Scanner, d: str) -> Listing | None:
        out = real_listing(self, d)
        if d != "":
            return out
        if change == "rewrite":  # other bytes, other size
            write(repo.root / "b.txt", "B" * 999)
        elif change == "fifo":  # a FIFO in its place: opening it must not hang
            (repo.root / "b.txt").unlink()
            os.mkfifo(repo.root / "b.txt")
        else:  # the same size, but another file renamed over it
            write(repo.root / "b.new", "B" * 1000)
            os.replace(repo.root / "b.new", repo.root / "b.txt")
        return out

    monkeypatch.setattr(Scanner, "listing", scan_then_change)
    head = repo.refs.head().commit
    with pytest.raises(DsvIOError) as e:
        api.commit(repo, "v2")
    assert "b.txt" in str(e.value) and "changed while" in str(e.value)
    assert repo.refs.head().commit == head
    assert api.fsck(Repository(repo.root)).ok


def test_unreadable_file_fails_commit_cleanly(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(repo.root / "a.txt", "a")
    write(repo.root / "secret.txt", "s")
    real_open = open

    def fake_open(path: str, *args: object, **kw: object) -> object:
        if str(path).endswith("secret.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kw)  # type: ignore[call-overload]

    real_os_open = os.open

    def fake_os_open(path: str, *args: int, **kw: int) -> int:
        if str(path).endswith("secret.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_os_open(path, *args, **kw)

    # running as root, file modes do not refuse reads: refuse it in both read paths
    monkeypatch.setattr(snap, "open", fake_open, raising=False)
    monkeypatch.setattr(os, "open", fake_os_open)
    with pytest.raises(DsvIOError) as e:
        api.commit(repo, "v1")
    assert "secret.txt" in str(e.value) and "Permission denied" in str(e.value)
    assert repo.refs.head().commit is None


@pytest.mark.parametrize("pipelined", [False, True])
def test_flipped_byte_in_pack_fails_checkout_without_touching_files(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, pipelined: bool
) -> None:
    from dsv.worktree import checkout as co

    if pipelined:  # written by a second thread, raw chunks copied by the kernel
        monkeypatch.setattr(co, "PIPELINE_MIN", 1 << 16)
    payload = os.urandom(300_000)
    write(repo.root / "keep.txt", "keep")
    c1 = api.commit(repo, "v1").id
    write(repo.root / "victim.bin", payload)
    api.commit(repo, "v2")
    api.checkout(repo, c1.hex())
    assert not (repo.root / "victim.bin").exists()

    # flip one byte inside the first chunk of victim.bin
    fresh = Repository(repo.root)
    fid = fresh.flatten(fresh.read_commit(fresh.refs.read("refs/heads/main") or b"").tree)[
        "victim.bin"
    ].id
    cid = fresh.store.chunks(fid)[0]
    entry = next(e for p in fresh.store.packs if (e := p.find(cid)) is not None)
    assert entry.pack is not None
    pack_path = entry.pack.path
    pack_path.chmod(0o644)
    raw = bytearray(pack_path.read_bytes())
    raw[entry.offset + 10] ^= 0xFF
    pack_path.write_bytes(bytes(raw))

    fresh = Repository(repo.root)
    with pytest.raises(CorruptObjectError) as e:
        api.checkout(fresh, "main")
    assert cid.hex() in str(e.value)
    assert not (repo.root / "victim.bin").exists()  # nothing half-written
    assert fresh.refs.head().commit == c1
    assert not (fresh.dsv_dir / "tmp").exists() or not any((fresh.dsv_dir / "tmp").iterdir())
    result = api.fsck(fresh)
    assert not result.ok
    assert any(p.oid == cid.hex() or "victim.bin" in " ".join(p.where) for p in result.problems)


@pytest.mark.parametrize("kernel_copy", ["works", "refused"])
def test_big_files_are_copied_from_the_packs_exactly(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, kernel_copy: str
) -> None:
    """Chunks stored raw go from pack to file with copy_file_range, compressed ones
    are written from memory, in the right order; where the kernel refuses the
    copy (another file system) the bytes are read and written instead."""
    import errno
    import sys

    from dsv.worktree import checkout as co

    monkeypatch.setattr(co, "PIPELINE_MIN", 1 << 20)
    parts = [os.urandom(700_000), bytes(600_000), os.urandom(900_000), b"ab" * 400_000]
    write(repo.root / "mixed.bin", b"".join(parts), mode=0o640)
    write(repo.root / "small.txt", "small")
    api.commit(repo, "v1")
    s1 = snapshot(repo.root)
    for f in ("mixed.bin", "small.txt"):
        (repo.root / f).unlink()
    copies: list[int] = []
    spans: list[tuple[int, int, int]] = []  # pack fd, offset, length of each copy
    dropped: list[tuple[int, int, int]] = []
    real = os.copy_file_range

    def copy(src: int, dst: int, count: int, offset_src: int | None = None) -> int:
        copies.append(count)
        spans.append((src, offset_src or 0, count))
        if kernel_copy == "refused":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst, count, offset_src)

    monkeypatch.setattr(os, "copy_file_range", copy)
    monkeypatch.setattr(co, "drop_cached", lambda fd, o, n: dropped.append((fd, o, n)))
    interval = sys.getswitchinterval()
    api.checkout(repo, "HEAD", force=True)
    assert snapshot(repo.root) == s1
    assert sys.getswitchinterval() == interval  # put back after the file
    # the random parts were stored raw and go by copy (or are asked to), the others not
    assert 0 < sum(copies) < len(b"".join(parts))
    # every range of a pack copied is then dropped from the page cache (the file holds it)
    for fd, off, n in spans:
        assert any(d == fd and o <= off and off + n <= o + m for d, o, m in dropped)


def test_checkout_forgets_a_directory_of_another_version_gone_from_disk(repo: Repository) -> None:
    """The stat cache of a directory that only the version left behind had may
    not make it reappear: not in status, and not in the next commit."""
    write(repo.root / "keep", "k")
    c1 = api.commit(repo, "c1").id
    write(repo.root / "t/x", "x")
    api.commit(repo, "c2")
    for p in (repo.root / "t/x", repo.root / "t"):
        p.unlink() if p.is_file() else p.rmdir()
    api.checkout(Repository(repo.root), c1.hex(), force=True)
    s = api.status(Repository(repo.root))
    assert (s.added, s.modified, s.deleted) == ([], [], [])
    write(repo.root / "new", "n")
    api.commit(Repository(repo.root), "c3")
    paths = [p for p, _ in api.ls_tree(Repository(repo.root), "HEAD", recursive=True)]
    assert paths == ["keep", "new"]


def test_path_walks_of_a_commit_match_its_entries(repo: Repository) -> None:
    """The fast path-only walks (no entry objects) give what the full walks give."""
    from dsv.repo import TreeFiles

    _v1(repo.root)
    seen: list[snap.Changes] = []

    def keep(r: Repository, ch: snap.Changes) -> dict[str, object]:
        seen.append(ch)
        return {}

    snap.commit(repo, "v1", summarizer=keep)
    (added,) = (ch.added for ch in seen)
    pairs = list(added)
    on_disk = {
        str(p.relative_to(repo.root))
        for p in repo.root.rglob("*")
        if ".dsv" not in p.parts and (p.is_symlink() or p.is_file())
    }
    assert {p for p, _ in pairs} == on_disk
    assert list(added.paths()) == [p for p, _ in pairs]
    pngs = added.select(lambda p: p.endswith(".png"))
    assert pngs == [(p, e) for p, e in pairs if p.endswith(".png")] and len(pngs) == 2

    head = repo.head_commit()
    assert head is not None
    tree = repo.read_commit(head).tree
    files = TreeFiles(repo, tree)
    items = list(files.items())
    assert list(files) == [p for p, _ in items]
    assert sorted(files) == sorted(on_disk) and len(files) == len(on_disk)
    assert dict(items) == {p: e for p, e in pairs}
    # label counting by directory: the same from the trees, the added files and the paths
    from dsv.labels import DirCounts

    by_paths = DirCounts.of(sorted(on_disk)).dirs
    assert DirCounts.of(files).dirs == by_paths == DirCounts.of(added).dirs
    assert by_paths["train/cat"] == (1, 1) and by_paths[""][0] == 6


@pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="no O_NOATIME here")
def test_commit_reads_files_without_touching_their_access_time(repo: Repository) -> None:
    small = write(repo.root / "small.txt", "a few bytes\n")
    big = write(repo.root / "big.bin", os.urandom(300_000))
    for f in (small, big):
        st = f.stat()
        # older than the mtime: a read on a relatime mount would move it
        os.utime(f, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))
    before = {f: f.stat().st_atime_ns for f in (small, big)}
    api.commit(repo, "v1")
    assert {f: f.stat().st_atime_ns for f in (small, big)} == before


@pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="no O_NOATIME here")
def test_files_of_another_owner_are_read_with_plain_opens(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_NOATIME is refused (EPERM) for files one does not own: dsv reads them anyway."""
    monkeypatch.setattr(snap, "_noatime", os.O_NOATIME)
    real_open = os.open
    refused: list[str] = []

    def fake_open(path: str, flags: int, *a: object, **kw: object) -> int:
        if flags & os.O_NOATIME:
            refused.append(path)
            raise PermissionError(1, "Operation not permitted", path)
        return real_open(path, flags, *a, **kw)  # type: ignore[arg-type]

    write(repo.root / "a.txt", "a")
    write(repo.root / "b.txt", "b")

    def unreadable(path: str, flags: int, *a: object, **kw: object) -> int:
        if str(path).endswith("a.txt"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(snap.os, "open", unreadable)
    with pytest.raises(DsvIOError, match=r"a\.txt"):
        api.commit(repo, "v1")  # a file nobody may read: an error, and the flag stays
    assert snap._noatime == os.O_NOATIME
    monkeypatch.setattr(snap.os, "open", fake_open)
    api.commit(repo, "v1")
    assert len(refused) == 1 and snap._noatime == 0  # asked once, then plain opens
    monkeypatch.undo()
    assert api.status(repo).clean


def test_commit_objects_are_stored_uncompressed_and_status_needs_no_zstd(
    repo: Repository, work: Path
) -> None:
    """HEAD's commit reads without a decompressor: a no-op status never imports zstandard."""
    from dsv.objects import Commit
    from dsv.store.pack import CODEC_NONE, CODEC_ZSTD

    past = time.time() - 100  # not racily clean: the status trusts the stat cache
    for i in range(30):
        f = write(work / f"train/c{i % 3}/{i}.png", f"{i} " * 200)  # compressible, labelled
        os.utime(f, (past, past))
    oid = api.commit(repo, "v1").id
    _, codec, raw_len, stored = repo.store.raw_record(oid)
    assert codec == CODEC_NONE and len(stored) == raw_len
    blob = repo.store.put_bytes(b"other objects are compressed as before " * 100)
    repo.store.flush()
    assert repo.store.raw_record(blob)[1] == CODEC_ZSTD
    repo.close()
    assert_status_does_not_import(work, "zstandard")
    # commits stored compressed (by earlier versions) read as before
    r2 = Repository(work)
    try:
        c = r2.read_commit(oid)
        old_style = Commit(
            tree=c.tree,
            parents=(oid,),
            author=c.author,
            time=c.time,
            tz=c.tz,
            message="m " * 500,
            summary=c.summary,
            meta={},
        )
        cid = r2.store.put_bytes(old_style.encode())
        r2.store.flush()
        assert r2.store.raw_record(cid)[1] == CODEC_ZSTD
        assert r2.read_commit(cid) == old_style
    finally:
        r2.close()


def test_checkout_places_new_directories_whole(repo: Repository, monkeypatch) -> None:
    """Directories absent from disk are staged under their own names and
    renamed into place whole; files in existing directories one by one. Both
    give the version's bytes and modes, and a stat cache that trusts them."""
    import shutil

    from dsv.worktree import checkout as co

    write(repo.root / "data/old/x.bin", os.urandom(3000))
    write(repo.root / "data/keep.txt", "keep")
    c1 = api.commit(repo, "v1").id
    shutil.rmtree(repo.root / "data/old")
    for i in range(30):
        write(repo.root / f"data/new/deep/{i % 3}/f{i}.bin", os.urandom(100 + i))
    (repo.root / "data/new/deep/0/f0.bin").chmod(0o755)
    write(repo.root / "top/a.txt", "a")
    write(repo.root / "data/added.txt", "in an existing directory")
    c2 = api.commit(repo, "v2").id
    want = snapshot(repo.root)

    renamed: list[str] = []
    real_rename = os.rename

    def spy(src: str, dst: str) -> None:
        renamed.append(os.path.relpath(dst, repo.root))
        real_rename(src, dst)

    monkeypatch.setattr(co.os, "rename", spy)
    api.checkout(repo, c1.hex())
    assert (repo.root / "data/old/x.bin").exists() and not (repo.root / "data/new").exists()
    assert renamed == ["data/old"]  # the only directory v1 has that v2's disk lacks

    # v1 -> v2: data/old is deleted (data stays: keep.txt), data/new and top arrive whole
    renamed.clear()
    api.checkout(repo, c2.hex())
    assert sorted(renamed) == ["data/new", "top"]
    assert snapshot(repo.root) == want
    st = api.status(Repository(repo.root))
    assert st.clean

    # a workspace without any of its data: everything in one rename per top directory
    shutil.rmtree(repo.root / "data")
    shutil.rmtree(repo.root / "top")
    renamed.clear()
    api.checkout(Repository(repo.root), "HEAD", force=True)
    assert sorted(renamed) == ["data", "top"]
    assert snapshot(repo.root) == want
    assert api.status(Repository(repo.root)).clean
    assert not any((repo.dsv_dir / snap.STAGING).glob("*/*"))


def test_new_directory_under_a_directory_the_checkout_empties(repo: Repository) -> None:
    """v1 has only a/old/x, v2 only a/new/y: the checkout deletes x and prunes
    the directories it empties (a too) before a/new is renamed into place."""
    import shutil

    write(repo.root / "a/old/x", "x")
    c1 = api.commit(repo, "v1").id
    shutil.rmtree(repo.root / "a")
    write(repo.root / "a/new/y", "y")
    api.commit(repo, "v2")
    api.checkout(repo, c1.hex())
    assert sorted(p.name for p in (repo.root / "a").iterdir()) == ["old"]
    api.checkout(repo, "main")
    assert sorted(p.name for p in (repo.root / "a").iterdir()) == ["new"]
    assert (repo.root / "a/new/y").read_text() == "y"
    assert api.status(Repository(repo.root)).clean


# A checkout run in a fresh interpreter (no thread of pytest's in it), with the
# forked staging switched on for a handful of files: counts what happened.
_FORKED_CHECKOUT = r"""
import json, os, sys, time
from pathlib import Path
from dsv import api
from dsv.errors import DsvError
from dsv.progress import Progress
from dsv.repo import Repository
from dsv.worktree import checkout as co
from dsv.worktree.statcache import FINE_GRANULARITY_NS

co.FORK_MIN_FILES = 8
co.FORK_BLOCK = 3
case = sys.argv[2]
forks = []
real_fork = os.fork

def fork():
    if case == "fork fails":
        forks.append(-1)
        raise OSError(11, "Resource temporarily unavailable")
    pid = real_fork()
    if pid:
        forks.append(pid)
    return pid

os.fork = fork
parent = os.getpid()
real_stage_one = co._stage_one
mine = []

def stage_one(repo, tmp, p, f, umask):
    if os.getpid() != parent:
        mine.append(p)
        if case == "copy dies" and len(mine) > 4:  # after staging 4 files, reported
            os._exit(3)
        if case == "copy slow":
            time.sleep(0.05)
        return real_stage_one(repo, tmp, p, f, umask)
    else:
        mine.append(p)
        if case == "both write":
            time.sleep(0.002)  # the copy surely takes a part
    return real_stage_one(repo, tmp, p, f, umask)

co._stage_one = stage_one
real_stage_all = co._stage_all

def slow_stage_all(*a):  # files older than the checkout's last tick: trusted on stat
    out = real_stage_all(*a)
    time.sleep(FINE_GRANULARITY_NS / 1e9 * 2)
    return out

co._stage_all = slow_stage_all

class Count(Progress):
    items = nbytes = 0

    def advance(self, items=0, nbytes=0):
        Count.items += items
        Count.nbytes += nbytes

out = {}
try:
    api.checkout(Repository(Path(sys.argv[1])), "HEAD", force=True, progress=Count())
except DsvError as exc:
    out["error"] = type(exc).__name__
    out["message"] = str(exc)
out.update(forks=len(forks), items=Count.items, bytes=Count.nbytes, mine=len(mine))
print(json.dumps(out))
"""


def _forked_checkout(root: Path, case: str) -> dict[str, Any]:
    import json
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", _FORKED_CHECKOUT, str(root), case],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def _many_small(root: Path) -> tuple[int, int]:
    n = total = 0
    for i in range(40):
        data = os.urandom(100 + 37 * i)
        write(root / f"data/c{i % 5}/f{i:02}.bin", data, mode=(0o755, 0o644, 0o600)[i % 3])
        n, total = n + 1, total + len(data)
    os.symlink("f00.bin", root / "data/c0/link")
    return n + 1, total + len("f00.bin")


@pytest.mark.parametrize("case", ["both write", "copy slow", "copy dies", "fork fails"])
def test_many_small_files_are_staged_by_two_processes(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """A forked copy stages the blocks of files it takes from a queue, the command the
    others; its stat records and progress come back through shared memory, and if it
    dies (or cannot be forked) what it took is staged by the command."""
    count, total = _many_small(repo.root)
    api.commit(repo, "v1")
    s1 = snapshot(repo.root)
    shutil.rmtree(repo.root / "data")
    out = _forked_checkout(repo.root, case)
    assert "error" not in out, out
    assert out["forks"] == 1
    assert (out["items"], out["bytes"]) == (count, total)
    if case == "both write":  # the command is the slower one here: the copy takes more
        assert 0 < out["mine"] < count // 2, out
    elif case == "copy slow":  # the command takes what the copy does not get to
        assert count - 2 * 3 <= out["mine"] < count, out  # blocks of 3 files
    else:  # the copy wrote nothing that stays: it died or never was
        assert out["mine"] == count
    assert snapshot(repo.root) == s1
    _clean_without_hashing(repo, monkeypatch)  # the copy's records are the files' in place


def test_a_corrupt_object_in_the_forked_share_fails_the_checkout_cleanly(
    repo: Repository,
) -> None:
    """The copy cannot report an error's type: its share is staged again here, which
    raises it, and nothing of the checkout reaches the working tree."""
    _many_small(repo.root)
    c1 = api.commit(repo, "v1").id
    tree = repo.read_tree(repo.read_tree(repo.read_commit(c1).tree)[0].id)
    victim = next(e for e in repo.read_tree(tree[1].id) if e.name == "f06.bin")  # data/c1/
    data = (repo.root / "data/c1/f06.bin").read_bytes()
    repo.close()
    flipped = 0
    for pack in (repo.root / ".dsv/objects/pack").glob("*.pack"):
        raw = pack.read_bytes()
        at = raw.find(data[:64])
        if at >= 0:
            pack.chmod(0o644)
            pack.write_bytes(raw[: at + 10] + bytes([raw[at + 10] ^ 1]) + raw[at + 11 :])
            flipped += 1
    assert flipped == 1
    shutil.rmtree(repo.root / "data")
    out = _forked_checkout(repo.root, "both write")
    assert out["forks"] == 1
    assert out["error"] == "CorruptObjectError"
    assert "data/c1/f06.bin" in out["message"] and victim.id.hex() in out["message"]
    assert not (repo.root / "data").exists()
    assert not list((repo.root / ".dsv" / STAGING).glob("checkout-*"))


def test_the_staging_queue_keeps_small_directories_whole_and_biggest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a staging process takes at a time: a directory of at most an eighth of the
    files whole (two creating files in one directory wait on its lock), a bigger one by
    blocks; biggest first; every block once, also when units are merged to fit the queue."""
    from types import SimpleNamespace

    from dsv.worktree import checkout as co

    class Dir(list):  # type: ignore[type-arg]  # a _Writes: its length and its files
        def range(self, lo: int, hi: int) -> list[Any]:
            return self[lo:hi]

    def units(sizes: list[int]) -> tuple[list[Any], list[list[int]]]:
        plan = SimpleNamespace(writes=[Dir([None] * n) for n in sizes], count=sum(sizes))
        blocks = co._blocks(plan)  # type: ignore[arg-type]
        return blocks, co._units(plan, blocks)  # type: ignore[arg-type]

    def files(blocks: list[Any], unit: list[int]) -> int:
        return sum(blocks[b][2] - blocks[b][1] for b in unit)

    sizes = [1800, 1750, 1900, 1820, 1790, 1850, 1810, 1770, 1880, 1830]  # 20,000 images
    sizes += [200, 190, 210, 205, 195, 185, 215, 200, 198, 202]
    blocks, got = units(sizes)
    assert sorted(b for u in got for b in u) == list(range(len(blocks)))
    assert [files(blocks, u) for u in got] == sorted(sizes, reverse=True)
    for u in got:  # one directory each
        assert len({id(blocks[b][0]) for b in u}) == 1

    blocks, got = units([6000, 300, 400])  # most files in one directory: split by blocks
    big = [u for u in got if blocks[u[0]][0] is blocks[0][0]]
    assert len(big) == -(-6000 // co.FORK_BLOCK) and all(len(u) == 1 for u in big)
    sizes_seen = [files(blocks, u) for u in got]
    assert sizes_seen == sorted(sizes_seen, reverse=True)

    monkeypatch.setattr(co, "MAX_UNITS", 4)
    blocks, got = units([10] * 17)
    assert len(got) <= 4
    assert sorted(b for u in got for b in u) == list(range(len(blocks)))
