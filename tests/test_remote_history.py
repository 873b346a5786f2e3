"""A clone or fetch holds every commit and every tree its refs reach, in real dsv processes.

A clone hard-links the packs of a directory remote that pass their check; the
history in a pack that fails it must still be fetched (and a corrupt record
fail the clone).  A partial clone downloads every tree of the history, not
only the checked-out version's, so older versions can be listed and compared
without their data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsv import api
from dsv.api import remote as rapi
from dsv.errors import ExitCode
from dsv.objects import Kind
from dsv.repo import Repository
from dsv.store.pack import PackWriter, scan_pack

from .conftest import run_dsv, write


def _repo(path: Path) -> Repository:
    Repository.init(path)
    return Repository(path)


def _history(a: Repository, n: int = 3, start: int = 0) -> list[bytes]:
    """``n`` commits, each changing a file at the top and one in its own directory
    (``d<start>/`` first; files of 40 KB, so that a version's data outweighs its trees);
    the ids, oldest first."""
    ids = []
    for i in range(start, start + n):
        write(a.root / "top.bin", os.urandom(40_000))
        write(a.root / f"d{i}/x.bin", os.urandom(40_000))
        ids.append(api.commit(a, f"v{i}").id)
    return ids


def _trees(repo: Repository, commit: bytes) -> list[bytes]:
    out, stack = [], [repo.read_commit(commit).tree]
    while stack:
        tid = stack.pop()
        out.append(tid)
        stack.extend(oid for kind, oid in repo.tree_table(tid).kinds_and_ids() if kind == Kind.DIR)
    return out


def _missing_history(path: Path, commits: list[bytes], writer: Repository) -> list[str]:
    """Commits and trees of ``commits`` (as ``writer`` has them) missing from the store at
    ``path``."""
    r = Repository(path)
    try:
        return [
            oid.hex() for c in commits for oid in [c, *_trees(writer, c)] if not r.store.has(oid)
        ]
    finally:
        r.close()


def _flip(pack: Path, offset: int) -> None:
    raw = bytearray(pack.read_bytes())
    raw[offset] ^= 0xFF
    pack.write_bytes(bytes(raw))


def _pack_of(url: Path, oid: bytes) -> tuple[Path, int, int]:
    """(pack, offset, stored length) of a record on a directory remote."""
    for pack in (url / "packs").glob("*.pack"):
        for rid, off, slen, *_ in scan_pack(pack)[1]:
            if rid == oid:
                return pack, off, slen
    raise AssertionError(f"{oid.hex()} is not on the remote")


def _split_out(url: Path, oid: bytes) -> Path:
    """Move one record of a directory remote into a pack of its own; that pack."""
    pack, _, _ = _pack_of(url, oid)
    algo, records, _ = scan_pack(pack)
    raw = pack.read_bytes()
    alone = PackWriter(url / "packs", algo, durable=False)
    rest = PackWriter(url / "packs", algo, durable=False)
    for rid, off, slen, rlen, kind, codec in records:
        (alone if rid == oid else rest).add(rid, kind, codec, rlen, raw[off : off + slen])
    path = alone.finish()
    assert path is not None and rest.finish() is not None
    pack.unlink()
    pack.with_suffix(".idx").unlink()
    return path


@pytest.mark.parametrize("what", ["commit", "tree"])
def test_a_linked_clone_fetches_the_history_of_a_pack_that_fails_its_check(
    tmp_path: Path, what: str
) -> None:
    """Three pushes, three packs.  The middle commit, or a tree only older commits name
    (alone in its pack), is damaged on the remote: its pack is not linked, the newest
    commit is.  The clone reads the damaged record by range and fails (exit 6) leaving
    nothing, as the copying clone does, instead of succeeding without that history."""
    url = tmp_path / "remote"
    a = _repo(tmp_path / "a")
    rapi.remote_add(a, "origin", str(url))
    ids = []
    for i in range(3):
        ids += _history(a, 1, i)
        rapi.push(a)
    if what == "commit":
        victim = ids[1]
        pack, off, slen = _pack_of(url, victim)
    else:
        # d0's tree is named by the first three commits only (the fourth changes d0/x.bin)
        write(a.root / "d0/x.bin", os.urandom(10))
        ids += [api.commit(a, "v3").id]
        rapi.push(a)
        old = {t for c in ids[:1] for t in _trees(a, c)}
        new = {t for c in ids[-1:] for t in _trees(a, c)}
        (victim,) = [t for t in old - new if t != a.read_commit(ids[0]).tree]
        pack = _split_out(url, victim)
        _, off, slen = _pack_of(url, victim)
    _flip(pack, off + slen // 2)
    packs = len(list((url / "packs").glob("*.pack")))

    r = run_dsv("clone", str(url), "b", "--json", cwd=tmp_path)
    assert r.returncode == ExitCode.CORRUPT, (r.stdout, r.stderr)
    assert victim.hex().encode() in r.stderr and b"Traceback" not in r.stderr
    assert not (tmp_path / "b").exists()
    r = run_dsv("clone", "--no-link", str(url), "c", cwd=tmp_path)
    assert r.returncode == ExitCode.CORRUPT, r.stderr

    # repaired (the pack as it was), the linked clone holds the whole history
    _flip(pack, off + slen // 2)
    r = run_dsv("clone", str(url), "b", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f'"packs_linked": {packs}'.encode() in r.stdout
    assert _missing_history(tmp_path / "b", ids, a) == []


def test_a_linked_clone_with_one_pack_rejected_holds_every_commit_and_tree(
    tmp_path: Path,
) -> None:
    """A pack whose trailer is damaged (its records are whole) is not linked: the commits
    and trees in it are read record by record, and the clone is complete."""
    url = tmp_path / "remote"
    a = _repo(tmp_path / "a")
    rapi.remote_add(a, "origin", str(url))
    ids = []
    for i in range(3):
        ids += _history(a, 1, i)
        rapi.push(a)
    pack, _, _ = _pack_of(url, ids[1])
    raw = bytearray(pack.read_bytes())
    raw[-20] ^= 0x01  # the record count in the trailer: no record is damaged
    pack.write_bytes(bytes(raw))

    r = run_dsv("clone", str(url), "b", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert b'"packs_linked": 2' in r.stdout
    assert _missing_history(tmp_path / "b", ids, a) == []
    url.rename(tmp_path / "away")  # what follows reads the clone only
    r = run_dsv("log", "--json", cwd=tmp_path / "b")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(b'"id"') == 3
    r = run_dsv("ls-tree", "-r", "HEAD~1", cwd=tmp_path / "b")
    assert r.returncode == 0, r.stderr
    assert b"d1/x.bin" in r.stdout and b"d2/x.bin" not in r.stdout


@pytest.fixture(params=["local", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[str]]:
    """A remote URL, and the options a clone of it takes (--no-link: a copying clone)."""
    if request.param == "local":
        return str(tmp_path / "remote"), ["--no-link"]
    bucket = request.getfixturevalue("s3_bucket")
    server = request.getfixturevalue("s3_server")
    return f"s3://{bucket}/hist", ["--endpoint-url", server.endpoint]


def _offline(tmp_path: Path, url: str) -> Path | None:
    """Take a directory remote away (nothing can be read from it); None for S3."""
    if url.startswith("s3://"):
        return None
    away = tmp_path / "away"
    Path(url).rename(away)
    return away


def _published(
    tmp_path: Path, remote: tuple[str, list[str]], commits: int
) -> tuple[Repository, list[bytes]]:
    """A repository ``a`` with ``commits`` commits, pushed to the remote; its commit ids."""
    url, opts = remote
    a = _repo(tmp_path / "a")
    ids = _history(a, commits)
    rapi.remote_add(a, "origin", url, endpoint_url=opts[1] if opts[0] != "--no-link" else None)
    rapi.push(a)
    return a, ids


def test_a_partial_clone_lists_and_compares_every_version(
    tmp_path: Path, remote: tuple[str, list[str]]
) -> None:
    url, opts = remote
    a, ids = _published(tmp_path, remote, 3)

    r = run_dsv("clone", *opts, url, "b", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    b = tmp_path / "b"
    assert _missing_history(b, ids, a) == []
    # still partial: the data of the older versions was not downloaded
    old = a.flatten(a.read_commit(ids[0]).tree)
    r0 = Repository(b)
    assert not r0.store.has(old["top.bin"].id) and r0.store.has(old["d0/x.bin"].id)
    r0.close()
    away = _offline(tmp_path, url)
    r = run_dsv("ls-tree", "-r", "HEAD~1", cwd=b)
    assert r.returncode == 0, r.stderr
    assert [line.split(b"\t")[1] for line in r.stdout.splitlines()] == [
        b"d0/x.bin",
        b"d1/x.bin",
        b"top.bin",
    ]
    r = run_dsv("diff", "--name-status", "HEAD~2", "HEAD~1", cwd=b)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [b"A\td1/x.bin", b"M\ttop.bin"]
    r = run_dsv("show", "HEAD~2", cwd=b)
    assert r.returncode == 0 and b"v0" in r.stdout, r.stderr
    if away is not None:
        away.rename(url)


def test_a_fetch_into_a_partial_clone_brings_the_trees_of_every_new_commit(
    tmp_path: Path, remote: tuple[str, list[str]]
) -> None:
    url, opts = remote
    a, ids = _published(tmp_path, remote, 1)
    r = run_dsv("clone", *opts, url, "b", "--", "d0", cwd=tmp_path)  # with paths, too
    assert r.returncode == 0, r.stderr
    b = tmp_path / "b"
    ids += _history(a, 3)  # d0..d2 again, then: only the tip's trees were fetched before
    rapi.push(a)

    r = run_dsv("fetch", "--json", cwd=b)
    assert r.returncode == 0, r.stderr
    assert _missing_history(b, ids, a) == []
    away = _offline(tmp_path, url)
    r = run_dsv("ls-tree", "-r", "origin/main~1", cwd=b)
    assert r.returncode == 0, r.stderr
    assert b"d1/x.bin" in r.stdout and b"d2/x.bin" not in r.stdout
    r = run_dsv("diff", "--name-status", "origin/main~3", "origin/main~2", cwd=b)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [b"M\td0/x.bin", b"M\ttop.bin"]
    if away is not None:
        away.rename(url)
    # nothing new: a fetch reads no record
    r = run_dsv("fetch", "--json", cwd=b)
    assert r.returncode == 0, r.stderr
    assert b'"objects": 0' in r.stdout
