"""What keeps big working trees cheap: chunked huge trees, a stat cache that mirrors trees.

Timings are for bench/scale.py; these tests check the mechanisms with counts
that would be different if they did not work.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from dsv import api
from dsv.chunking import ChunkParams
from dsv.objects import TreeTable
from dsv.repo import Repository
from dsv.worktree import snapshot as snap
from dsv.worktree.statcache import MAGIC

from .conftest import run_dsv, snapshot, write


def _pack_bytes(root: Path) -> int:
    d = root / ".dsv" / "objects" / "pack"
    return sum(p.stat().st_size for p in d.iterdir() if p.suffix in (".pack", ".idx"))


def test_one_file_change_in_a_huge_directory_stores_a_few_chunks(tmp_path: Path) -> None:
    root = tmp_path / "data"
    Repository.init(root, chunking=ChunkParams(min=1024, avg=4096, max=16384)).close()
    big = root / "big"
    big.mkdir()
    n = 20_000
    for i in range(n):
        fd = os.open(big / f"e{i:05d}.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"%05d\n" % i)
        os.close(fd)
    r = run_dsv("commit", "-q", "-m", "v1", cwd=root)
    assert r.returncode == 0, r.stderr
    repo = Repository(root)
    entry = api.lookup(repo, repo.read_commit(repo.refs.head().commit or b"").tree, "big")
    assert entry is not None
    tree_size = repo.store.info(entry.id).size
    assert tree_size > 20 * n  # one entry is ~40 bytes
    assert repo.store.is_chunked(entry.id)  # cut by the chunker like a file
    repo.close()

    before = _pack_bytes(root)
    write(big / "e10000.bin", b"changed\n")
    r = run_dsv("commit", "--json", "-m", "v2", cwd=root)
    assert r.returncode == 0, r.stderr
    stored = json.loads(r.stdout)["summary"]["stored_bytes"]
    growth = _pack_bytes(root) - before
    # a few chunks of the tree and its chunk list, not the 800 KB tree again
    assert stored < tree_size // 20, (stored, tree_size)
    assert growth < tree_size // 10, (growth, tree_size)

    r = run_dsv("show", "HEAD:big/e10000.bin", cwd=root)
    assert r.returncode == 0 and r.stdout == b"changed\n"
    r = run_dsv("ls-tree", "--json", "HEAD", "big/e12345.bin", cwd=root)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["path"] == "big/e12345.bin" and row["size"] == 6
    r = run_dsv("status", "--json", cwd=root)
    assert json.loads(r.stdout)["clean"] is True


class Counts:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trees: list[bytes] = []
        self.hashed: list[str] = []
        self.encoded = 0
        self.patched = 0
        real_read, real_hash = Repository.tree_table, snap.hash_path
        real_encode, real_patch = snap.encode_tree_rows, snap.patch_tree
        real_columns = snap.encode_tree_files

        def read(repo: Repository, tid: bytes) -> TreeTable:
            self.trees.append(tid)
            return real_read(repo, tid)

        def hash_path(repo: Repository, rel: str, st: os.stat_result) -> bytes:
            self.hashed.append(rel)
            return real_hash(repo, rel, st)

        def encode(rows: list[tuple[bytes, int, int, int, bytes]]) -> bytes:
            self.encoded += 1
            return real_encode(rows)

        def columns(*a: Any) -> bytes | None:
            data = real_columns(*a)
            self.encoded += data is not None
            return data

        def patch(
            data: bytes, ds: int, edits: list[tuple[int, bytes, int, int, int, bytes]]
        ) -> bytes | None:
            self.patched += 1
            return real_patch(data, ds, edits)

        monkeypatch.setattr(snap, "patch_tree", patch)
        monkeypatch.setattr(Repository, "tree_table", read)
        monkeypatch.setattr(snap, "hash_path", hash_path)
        monkeypatch.setattr(snap, "encode_tree_rows", encode)
        monkeypatch.setattr(snap, "encode_tree_files", columns)

    def reset(self) -> None:
        self.trees.clear()
        self.hashed.clear()
        self.encoded = 0
        self.patched = 0


def _tree_of_dirs(root: Path) -> None:
    for a in range(3):
        for b in range(3):
            for i in range(5):
                write(root / f"a{a}" / f"b{b}" / f"f{i}.txt", f"{a}{b}{i}\n")
    write(root / "top.txt", "top\n")
    _age(root)


def _age(root: Path, *paths: str) -> None:
    """Files (all, or ``paths``) written a minute ago: not racily clean in the next cache."""
    t = int((time.time() - 60) * 1e9)
    for dirpath, dirs, files in os.walk(root):
        if ".dsv" in dirs:
            dirs.remove(".dsv")
        for f in files:
            full = os.path.join(dirpath, f)
            if not paths or os.path.relpath(full, root) in paths:
                os.utime(full, ns=(t, t))


def test_status_and_commit_use_the_trees_the_cache_mirrors(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree_of_dirs(repo.root)
    api.commit(repo, "v1")
    n = Counts(monkeypatch)

    assert api.status(repo).clean
    assert n.trees == [] and n.hashed == []  # the cache stands for every tree

    # another size: modified without reading the file or any tree
    write(repo.root / "a1/b2/f3.txt", "longer content\n")
    _age(repo.root, "a1/b2/f3.txt")
    n.reset()
    assert api.status(repo).modified == ["a1/b2/f3.txt"]
    assert n.trees == [] and n.hashed == []

    # the same size: hashed once, then remembered
    write(repo.root / "a0/b0/f0.txt", "XYZ\n")
    _age(repo.root, "a0/b0/f0.txt")
    n.reset()
    assert api.status(repo).modified == ["a0/b0/f0.txt", "a1/b2/f3.txt"]
    assert n.hashed == ["a0/b0/f0.txt"] and n.trees == []
    n.reset()
    assert api.status(repo).modified == ["a0/b0/f0.txt", "a1/b2/f3.txt"]
    assert n.hashed == [] and n.trees == []

    # a commit builds the trees of the changed directories and of their parents,
    # no others; each has the same names as before: patched, not encoded anew
    n.reset()
    res = api.commit(repo, "v2")
    assert n.patched == 5 and n.encoded == 0  # a0/b0, a0, a1/b2, a1, the root
    assert res.commit.summary["files"]["modified"] == 2
    assert res.commit.summary["files"]["total"] == 46
    n.reset()
    assert api.status(repo).clean
    assert n.trees == [] and n.hashed == []


def test_patched_trees_are_the_trees_a_fresh_commit_encodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same files committed with a cache (trees patched) and without one (encoded)
    a, b = tmp_path / "a", tmp_path / "b"
    ids = []
    n = Counts(monkeypatch)
    for root, keep_cache in ((a, True), (b, False)):
        repo = Repository.init(root)
        for i in range(40):
            write(root / "d" / f"f{i:02d}", f"{i}\n")
            write(root / "d" / f"f{i:02d}.sub" / "x", f"x{i}\n")  # subtrees between the files
        write(root / "d" / "a-b", "names that sort around '/'\n")
        write(root / "d" / "a" / "b", "b\n")
        _age(root)
        api.commit(repo, "v1")
        write(root / "d" / "f07", "seven, longer\n")
        write(root / "d" / "f31.sub" / "x", "x31 changed\n")
        write(root / "d" / "a" / "b", "B\n")
        os.chmod(root / "d" / "f20", 0o755)
        _age(root, "d/f07", "d/f31.sub/x", "d/a/b", "d/f20")
        if not keep_cache:
            (root / ".dsv" / "index").unlink()
        n.reset()
        ids.append(api.commit(repo, "v2").commit.tree)
        repo.close()
        if keep_cache:
            assert (n.patched, n.encoded) == (4, 0)  # d/f31.sub, d/a, d, the root
        else:
            assert n.patched == 0 and n.encoded > 40
    assert ids[0] == ids[1]


def test_a_lost_or_old_cache_costs_one_slow_status(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree_of_dirs(repo.root)
    api.commit(repo, "v1")
    index = repo.dsv_dir / "index"
    # an index of the previous format version is ignored, not misread
    old = bytearray(index.read_bytes())
    old[8:10] = (1).to_bytes(2, "little")
    index.write_bytes(bytes(old))
    n = Counts(monkeypatch)
    assert api.status(repo).clean
    assert len(n.hashed) == 46 and len(n.trees) == 13  # everything, once
    assert index.read_bytes()[:8] == MAGIC
    n.reset()
    write(repo.root / "a2/b1/f4.txt", "!!!\n")
    _age(repo.root, "a2/b1/f4.txt")
    st = api.status(repo)
    assert st.modified == ["a2/b1/f4.txt"] and not st.added and not st.deleted
    assert n.hashed == ["a2/b1/f4.txt"] and n.trees == []


def test_deleted_directory_added_directory_and_type_changes(repo: Repository) -> None:
    _tree_of_dirs(repo.root)
    api.commit(repo, "v1")
    import shutil

    shutil.rmtree(repo.root / "a1")
    write(repo.root / "a3/new.txt", "new\n")
    (repo.root / "top.txt").unlink()
    write(repo.root / "top.txt/inside.txt", "now a directory\n")
    (repo.root / "a2/b0").rename(repo.root / "a2/b0.tmp")
    write(repo.root / "a2/b0", "now a file\n")
    st = api.status(repo)
    assert st.added == [
        "a2/b0",
        "a2/b0.tmp/f0.txt",
        "a2/b0.tmp/f1.txt",
        "a2/b0.tmp/f2.txt",
        "a2/b0.tmp/f3.txt",
        "a2/b0.tmp/f4.txt",
        "a3/new.txt",
        "top.txt/inside.txt",
    ]
    assert st.deleted == sorted(
        [f"a1/b{b}/f{i}.txt" for b in range(3) for i in range(5)]
        + [f"a2/b0/f{i}.txt" for i in range(5)]
        + ["top.txt"]
    )
    assert not st.modified
    want = snapshot(repo.root)
    c2 = api.commit(repo, "v2").id
    assert api.status(repo).clean
    api.checkout(repo, "HEAD~1")
    assert api.status(repo).clean
    assert (repo.root / "top.txt").read_text() == "top\n"
    api.checkout(repo, c2.hex())
    assert snapshot(repo.root) == want
    assert api.status(repo).clean


def test_names_that_are_not_utf8_keep_tree_order(repo: Repository) -> None:
    # bytes 0xff (U+DCFF by surrogateescape) sort after U+E000 as bytes, before it as text
    d = os.fsencode(repo.root / "d")
    os.mkdir(d)
    names = [b"\xff", "\ue000".encode(), b"a", b"B", b"z\xfe"]
    for i, raw in enumerate(names):
        with open(os.path.join(d, raw), "wb") as f:
            f.write(b"%d" % i)
    os.mkdir(os.path.join(d, b"\xfe"))
    with open(os.path.join(d, b"\xfe", b"x"), "wb") as f:
        f.write(b"x")
    api.commit(repo, "v1")
    assert api.status(repo).clean
    with open(os.path.join(d, b"\xff"), "wb") as f:
        f.write(b"changed")
    assert api.status(repo).modified == [os.fsdecode(b"d/\xff")]
    api.commit(repo, "v2")
    before = snapshot(repo.root)
    api.checkout(repo, "HEAD~1")
    api.checkout(repo, "main")
    assert snapshot(repo.root) == before and api.status(repo).clean


def test_commit_of_some_paths_keeps_the_rest_and_the_cache_right(repo: Repository) -> None:
    _tree_of_dirs(repo.root)
    api.commit(repo, "v1")
    write(repo.root / "a0/b1/f2.txt", "one\n!")
    write(repo.root / "a2/b2/f0.txt", "two\n!")
    res = api.commit(repo, "only a0", paths=["a0/b1/f2.txt"])
    assert res.commit.summary["files"] == {
        "added": 0,
        "removed": 0,
        "modified": 1,
        "total": 46,
    }
    assert api.status(repo).modified == ["a2/b2/f0.txt"]
    api.commit(repo, "the rest")
    assert api.status(repo).clean
    flat = repo.flatten(repo.read_commit(repo.refs.head().commit or b"").tree)
    assert len(flat) == 46
