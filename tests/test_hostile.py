"""Hostile and damaged input: crafted trees, symlink tricks, remote damage, concurrent writers."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsv import api
from dsv.api import remote as rapi
from dsv.errors import ConflictError, DsvError, ExitCode, UnsafePathError
from dsv.objects import Commit, Kind, encode_tree_rows
from dsv.repo import Repository

from .conftest import run_dsv, write


def _raw_tree(entries: list[tuple[bytes, int, bytes]], ds: int = 16) -> bytes:
    """A tree encoded by hand, bypassing encode_tree's checks (names in given order)."""
    out = bytearray(struct.pack("<4sB3xI", b"DSVT", 1, len(entries)))
    for name, kind, oid in entries:
        out += struct.pack("<BHQ", kind, 0o644, 1) + oid + struct.pack("<H", len(name)) + name
    return bytes(out)


def _branch_with_tree(repo: Repository, tree: bytes, name: str) -> bytes:
    tid = repo.store.put_bytes(tree)
    c = Commit(tid, (), "X <x@y>", 1, 0, "crafted")
    cid = repo.write_object(c)
    repo.store.flush()
    with repo.lock("test"):
        repo.refs.update(f"refs/heads/{name}", cid, message="crafted")
    return cid


@pytest.mark.parametrize(
    "name",
    [b"..", b".", b".dsv", b"a/b", b"/etc", b"x\0y"],
)
def test_checkout_refuses_unsafe_names_and_writes_nothing(
    repo: Repository, tmp_path: Path, name: bytes
) -> None:
    write(repo.root / "keep.txt", "keep")
    api.commit(repo, "base")
    blob = repo.store.put_bytes(b"evil payload")
    _branch_with_tree(repo, _raw_tree([(name, int(Kind.FILE), blob)]), "evil")
    before = sorted(p.name for p in tmp_path.rglob("*") if ".dsv" not in p.parts)
    r = run_dsv("checkout", "evil", cwd=repo.root)
    assert r.returncode == ExitCode.CORRUPT, r.stderr
    assert b"unsafe name" in r.stderr or b"reserved" in r.stderr
    after = sorted(p.name for p in tmp_path.rglob("*") if ".dsv" not in p.parts)
    assert after == before
    assert not any(
        p.read_bytes() == b"evil payload"
        for p in tmp_path.rglob("*")
        if p.is_file() and ".dsv" not in p.parts
    )


def test_duplicate_names_in_a_tree_are_refused(repo: Repository) -> None:
    blob = repo.store.put_bytes(b"x")
    tree = _raw_tree([(b"a", int(Kind.FILE), blob), (b"a", int(Kind.FILE), blob)])
    _branch_with_tree(repo, tree, "dup")
    with pytest.raises(DsvError, match="sorted or duplicated"):
        api.checkout(Repository(repo.root), "dup")


def test_no_write_through_a_symlink(repo: Repository, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write(repo.root / "a/inner.txt", "v1")
    c1 = api.commit(repo, "v1").id
    write(repo.root / "a/inner.txt", "v2")
    api.commit(repo, "v2")
    # the user replaces the directory by a link that points outside the tree
    (repo.root / "a/inner.txt").unlink()
    (repo.root / "a").rmdir()
    os.symlink(outside, repo.root / "a")
    with pytest.raises(ConflictError):
        api.checkout(Repository(repo.root), c1.hex())
    with pytest.raises(UnsafePathError):
        api.checkout(Repository(repo.root), c1.hex(), force=True)
    assert list(outside.iterdir()) == []


def test_symlink_in_tree_is_recorded_not_followed(repo: Repository, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of the dataset")
    os.symlink(secret, repo.root / "link")
    api.commit(repo, "a link")
    flat = repo.flatten(repo.read_commit(repo.head_commit() or b"").tree)
    assert flat["link"].kind == Kind.SYMLINK
    assert (
        b"".join(api.cat(repo, "HEAD:link")) == str(secret).encode()
    )  # the target, not the content


def test_decompression_bomb_is_refused_before_allocating(repo: Repository) -> None:
    import zstandard

    oid = repo.store.put_bytes(b"small")
    repo.store.flush()
    pack = next(repo.store.pack_dir.glob("*.pack"))
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (64 << 20))
    with pytest.raises(DsvError):
        repo.store.decode_record(oid, 0, 1, 5, bomb, pack.name)  # declares 5, frame says 64 MiB
    with pytest.raises(DsvError, match="too large"):
        repo.store.decode_record(oid, 0, 1, 1 << 40, bomb, pack.name)


def test_concurrent_commits_both_land_or_one_is_told(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    assert run_dsv("init", cwd=d).returncode == 0
    write(d / "big.bin", os.urandom(20 << 20))
    write(d / "small.txt", "x")
    env = {**os.environ, "DSV_LOCK_TIMEOUT": "60"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dsv", "commit", "-q", "-m", f"c{i}"],
            cwd=d,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    results = [(p.wait(), p.stderr.read() if p.stderr else b"") for p in procs]
    codes = sorted(c for c, _ in results)
    # the second waits for the lock, then finds nothing left to commit
    assert codes == [0, ExitCode.CONFLICT], results
    log = json.loads(run_dsv("log", "--json", cwd=d).stdout)
    assert len(log) == 1
    assert run_dsv("fsck", cwd=d).returncode == 0


def test_lock_timeout_gives_a_clear_message(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    run_dsv("init", cwd=d)
    write(d / "f.txt", "x")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,os,time,sys; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT);"
            " fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'pid 1: gc'); print('locked', flush=True);"
            " time.sleep(30)",
            str(d / ".dsv" / "lock"),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    try:
        t0 = time.monotonic()
        r = run_dsv("commit", "-m", "x", cwd=d, env={"DSV_LOCK_TIMEOUT": "1"})
        assert r.returncode == ExitCode.LOCKED
        assert b"another dsv process" in r.stderr and b"gc" in r.stderr
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()
    assert run_dsv("commit", "-m", "x", cwd=d).returncode == 0


def test_gc_and_commit_concurrently_lose_nothing(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    run_dsv("init", cwd=d)
    env = {**os.environ, "DSV_LOCK_TIMEOUT": "60"}
    for i in range(4):
        write(d / f"f{i}.bin", os.urandom(3 << 20))
        gc = subprocess.Popen(
            [sys.executable, "-m", "dsv", "gc", "-q", "--prune-reflogs"], cwd=d, env=env
        )
        assert (
            run_dsv("commit", "-q", "-m", f"v{i}", cwd=d, env={"DSV_LOCK_TIMEOUT": "60"}).returncode
            == 0
        )
        assert gc.wait() == 0
    assert run_dsv("fsck", cwd=d).returncode == 0
    for i in range(4):
        (d / f"f{i}.bin").unlink()
    assert run_dsv("checkout", "-q", "-f", "HEAD", cwd=d).returncode == 0
    assert all((d / f"f{i}.bin").stat().st_size == 3 << 20 for i in range(4))


def test_fsck_remote_finds_damage_without_downloading_data(tmp_path: Path) -> None:
    url = tmp_path / "remote"
    Repository.init(tmp_path / "a")
    a = Repository(tmp_path / "a")
    write(a.root / "big.bin", os.urandom(2 << 20))
    write(a.root / "d/small.txt", "hello")
    api.commit(a, "v1")
    rapi.remote_add(a, "origin", str(url))
    rapi.push(a)
    light = rapi.fsck_remote(a, "origin")
    assert light.ok and light.commits == 1 and light.files == 2
    assert light.bytes_read < 100_000  # commits, trees and chunk lists only
    full = rapi.fsck_remote(a, "origin", full=True)
    assert full.ok and full.bytes_read > 2 << 20

    pack = next((url / "packs").glob("*.pack"))
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 3] ^= 0x40  # inside big.bin's chunks
    pack.write_bytes(bytes(raw))
    assert rapi.fsck_remote(a, "origin").ok  # a light check does not read chunk data
    bad = rapi.fsck_remote(a, "origin", full=True)
    assert not bad.ok and any("big.bin" in " ".join(p.where) for p in bad.problems)
    r = run_dsv("fsck", "--remote", "origin", "--full", "--json", cwd=a.root)
    assert r.returncode == ExitCode.FAILURE and json.loads(r.stdout)["ok"] is False

    pack.unlink()
    gone = rapi.fsck_remote(a, "origin")
    assert any(p.kind == "bad-pack" for p in gone.problems)


@pytest.mark.parametrize("special", [0o4000, 0o2000, 0o1000])
def test_setuid_setgid_and_sticky_bits_are_neither_recorded_nor_restored(
    repo: Repository, tmp_path: Path, special: int
) -> None:
    """A version from anywhere must not make a program that runs as its owner: a commit
    records a file's rwx bits only, and a tree that holds more (crafted, or from another
    tool) is checked out, got and materialized without them."""
    root = repo.root
    write(root / "tool", "#!/bin/sh\necho hi\n", mode=0o755 | special)
    if not os.stat(root / "tool").st_mode & special:
        pytest.skip("this file system drops the bit")
    api.commit(repo, "v1")
    [(_, e)] = api.ls_tree(repo, "HEAD", "tool")
    assert e.mode == 0o755
    assert api.status(repo).clean  # the bit on disk is not a change either
    # a crafted version that holds the bit
    blob = repo.store.put_bytes(b"#!/bin/sh\necho pwned\n")
    tree = encode_tree_rows([(b"tool", int(Kind.FILE), 0o755 | special, 21, blob)])
    _branch_with_tree(repo, tree, "crafted")
    os.unlink(root / "tool")
    api.checkout(repo, "crafted")
    st = os.stat(root / "tool")
    assert (root / "tool").read_bytes() == b"#!/bin/sh\necho pwned\n"
    assert st.st_mode & 0o7777 == 0o755
    # through a remote: dsv get writes the same mode
    remote = tmp_path / "remote"
    rapi.remote_add(repo, "origin", str(remote))
    rapi.push(repo, "origin", ["refs/heads/crafted"])
    out = tmp_path / "got"
    r = run_dsv("get", str(remote), "tool", "--rev", "crafted", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = out / "tool" if out.is_dir() else out
    assert got.read_bytes() == b"#!/bin/sh\necho pwned\n"
    assert os.stat(got).st_mode & 0o7777 == 0o755
