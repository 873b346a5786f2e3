"""Push, fetch, pull and clone end to end, on a local directory, memory:// and S3 (moto server)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from pathlib import Path

import pytest

from dsv import api
from dsv.api import remote as rapi
from dsv.backends import BackendError, open_backend
from dsv.backends.faults import FaultInjectingBackend, Rule
from dsv.backends.retry import RetryingBackend
from dsv.errors import CorruptObjectError, ExitCode, RejectedError
from dsv.repo import Repository
from dsv.store.pack import PackWriter, scan_pack
from dsv.sync import Remote, get_remote_config, transfer

from .conftest import Invoke, run_dsv, snapshot, write


@pytest.fixture(params=["local", "memory", "s3"])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    if request.param == "local":
        return str(tmp_path / "remote"), {}
    if request.param == "memory":
        return f"memory://dsv-remote-{uuid.uuid4().hex}", {}
    bucket = request.getfixturevalue("s3_bucket")
    server = request.getfixturevalue("s3_server")
    return f"s3://{bucket}/team/cifar", {"endpoint_url": server.endpoint}


def _dataset(root: Path, n: int = 40) -> None:
    for i in range(n):
        write(root / f"train/c{i % 4}/{i:03d}.png", os.urandom(2000 + i * 37))
    write(root / "labels.csv", "id,label\n" + "".join(f"{i},c{i % 4}\n" for i in range(n)))
    write(root / "big.bin", os.urandom(1_500_000))


def _repo(path: Path) -> Repository:
    Repository.init(path)
    return Repository(path)


def test_push_clone_pull_round_trip(tmp_path: Path, remote_url: tuple[str, dict[str, str]]) -> None:
    url, opts = remote_url
    a = _repo(tmp_path / "a")
    _dataset(a.root)
    api.commit(a, "v1")
    rapi.remote_add(a, "origin", url, **opts)
    r1 = rapi.push(a)
    assert r1.refs == {"refs/heads/main": a.head_commit().hex()}  # type: ignore[union-attr]
    assert r1.objects > 40 and r1.packs == 1

    b, commit_id, branch, _ = rapi.clone(url, tmp_path / "b", **opts)
    assert (commit_id, branch) == (a.head_commit(), "main")
    assert snapshot(b.root) == snapshot(a.root)
    assert api.status(b).clean

    # a second version, pulled into the clone
    (a.root / "train/c0/000.png").rename(a.root / "train/c1/000.png")
    data = bytearray((a.root / "big.bin").read_bytes())
    data[700_000:700_010] = b"0123456789"
    (a.root / "big.bin").write_bytes(bytes(data) + os.urandom(50_000))
    api.commit(a, "v2")
    r2 = rapi.push(a)
    assert r2.bytes < 500_000  # the edit and the append, not the whole file again
    pulled = rapi.pull(b)
    assert pulled.fast_forward and pulled.new == a.head_commit()
    assert pulled.fetch.whole == 1  # v2's pack: all of it new here
    assert snapshot(b.root) == snapshot(a.root)
    assert api.fsck(Repository(b.root)).ok

    # pushing again changes nothing
    again = rapi.push(a)
    assert again.up_to_date == ["refs/heads/main"] and again.objects == 0


def test_push_requests_grow_with_packs_not_files(
    tmp_path: Path, s3_server: object, s3_bucket: str
) -> None:
    a = _repo(tmp_path / "a")
    for i in range(2000):
        write(a.root / f"d{i % 20}/{i}.txt", f"sample {i}\n" * (1 + i % 7))
    api.commit(a, "v1")
    rapi.remote_add(a, "origin", f"s3://{s3_bucket}/x", endpoint_url=s3_server.endpoint)  # type: ignore[attr-defined]
    s3_server.reset()  # type: ignore[attr-defined]
    r = rapi.push(a)
    served = s3_server.total()  # type: ignore[attr-defined]
    assert r.requests == served  # our count agrees with the server's
    assert served <= 2000 // 100  # at most 1% of the number of files
    s3_server.reset()  # type: ignore[attr-defined]
    b, _, _, _ = rapi.clone(f"s3://{s3_bucket}/x", tmp_path / "b", endpoint_url=s3_server.endpoint)  # type: ignore[attr-defined]
    assert s3_server.total() <= 2000 // 100  # type: ignore[attr-defined]
    assert snapshot(b.root) == snapshot(a.root)


def test_concurrent_pushes_exactly_one_wins(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    base = _repo(tmp_path / "base")
    write(base.root / "a.txt", "base")
    api.commit(base, "base")
    rapi.remote_add(base, "origin", url)
    rapi.push(base)
    clones = [rapi.clone(url, tmp_path / f"c{i}")[0] for i in range(4)]
    for i, c in enumerate(clones):
        write(c.root / "a.txt", f"diverging change {i}")
        api.commit(c, f"change {i}")
    outcomes: list[object] = []
    barrier = threading.Barrier(len(clones))

    def go(c: Repository) -> None:
        barrier.wait()
        try:
            outcomes.append(rapi.push(Repository(c.root)))
        except RejectedError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=go, args=(c,)) for c in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, RejectedError)]
    assert len(winners) == 1 and len(losers) == 3
    assert all("fetch first" in str(e) for e in losers)
    # the remote names the winner's commit, and it is complete
    fresh, head, _, _ = rapi.clone(url, tmp_path / "check")
    assert head.hex() in [next(iter(w.refs.values())) for w in winners]  # type: ignore[attr-defined]
    assert api.fsck(fresh).ok


def test_diverged_pull_is_refused(tmp_path: Path, dsv: Invoke) -> None:
    url = str(tmp_path / "remote")
    a = _repo(tmp_path / "a")
    write(a.root / "f", "1")
    api.commit(a, "1")
    rapi.remote_add(a, "origin", url)
    rapi.push(a)
    b = rapi.clone(url, tmp_path / "b")[0]
    write(a.root / "f", "2a")
    api.commit(a, "2a")
    rapi.push(a)
    write(b.root / "f", "2b")
    api.commit(b, "2b")
    with pytest.raises(RejectedError):
        rapi.push(b)
    r = dsv("pull", cwd=b.root)
    assert r.exit_code == ExitCode.REJECTED and "diverged" in r.output
    assert (b.root / "f").read_text() == "2b"


def _faulty_remote(repo: Repository, rules: list[Rule]) -> Remote:
    cfg = get_remote_config(repo, "origin")
    inner = open_backend(cfg.url)
    return Remote(
        repo,
        cfg,
        backend=RetryingBackend(FaultInjectingBackend(inner, rules), sleep=lambda s: None),
    )


def test_interrupted_push_rerun_sends_only_what_is_missing(tmp_path: Path) -> None:
    import dsv.store as store_mod

    url = str(tmp_path / "remote")
    a = _repo(tmp_path / "a")
    _dataset(a.root, 200)
    old_target = store_mod.PACK_TARGET
    store_mod.PACK_TARGET = transfer.PACK_TARGET = 200_000  # several packs
    try:
        api.commit(a, "v1")
        rapi.remote_add(a, "origin", url)
        broken = _faulty_remote(a, [Rule("put", "error", key_contains=".idx", calls={2})])
        with pytest.raises(BackendError, match="injected permanent error"):
            transfer.push(a, broken, ["refs/heads/main"])
        remote_files = open_backend(url).list("packs/")
        assert not open_backend(url).list("refs/")  # the ref did not move
        first_bytes = sum(remote_files.values())
        assert first_bytes > 0
        r = rapi.push(a)
        assert r.bytes_sent < sum(open_backend(url).list("packs/").values())
    finally:
        transfer.PACK_TARGET = old_target
        store_mod.PACK_TARGET = old_target
    b = rapi.clone(url, tmp_path / "b")[0]
    assert snapshot(b.root) == snapshot(a.root)


def _names(repo: Repository) -> dict[bytes, list[bytes]]:
    """Every object of the history that names others (commits, trees, chunk lists) -> what it names."""
    from dsv.objects import Kind

    out: dict[bytes, list[bytes]] = {}
    commits = [repo.refs.read("refs/heads/main")]
    while commits:
        c = commits.pop()
        if c is None or c in out:
            continue
        commit = repo.read_commit(c)
        out[c] = [commit.tree, *commit.parents]
        commits.extend(commit.parents)
        trees = [commit.tree]
        while trees:
            t = trees.pop()
            if t in out:
                continue
            kids = out[t] = []
            for kind, oid in repo.tree_table(t).kinds_and_ids():
                kids.append(oid)
                if kind == Kind.DIR:
                    trees.append(oid)
                elif repo.store.is_chunked(oid):
                    out[oid] = list(repo.store.chunks(oid))
    return out


def test_push_sends_local_packs_whole_and_any_crash_leaves_every_visible_object_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first push sends the local packs as they are (the same pack names on the remote);
    whichever index upload fails, every object visible on the remote has what it names there
    too, and the re-run completes the remote."""
    import dsv.store as store_mod

    monkeypatch.setattr(store_mod, "PACK_TARGET", 300_000)  # local packs of ~300 KB
    url = str(tmp_path / "remote")
    a = _repo(tmp_path / "a")
    _dataset(a.root, 300)
    api.commit(a, "v1")
    write(a.root / "train/c1/extra.png", os.urandom(5000))
    api.commit(a, "v2")
    rapi.remote_add(a, "origin", url)
    names = _names(a)
    local = [p.path.name for p in a.store.packs]
    assert len(local) >= 5
    n_idx = 0
    while True:
        n_idx += 1
        shutil.rmtree(url, ignore_errors=True)  # each cut from an empty remote
        broken = _faulty_remote(a, [Rule("put", "error", key_contains=".idx", calls={n_idx})])
        try:
            transfer.push(a, broken, ["refs/heads/main"])
            break  # fewer index uploads than n_idx: the push went through
        except BackendError:
            pass
        remote = Remote(a, get_remote_config(a, "origin"))
        visible = [p for p in names if remote.has(p)]
        for parent in visible:
            assert all(remote.has(k) for k in names[parent]), (n_idx, parent.hex())
        assert not open_backend(url).list("refs/")
    assert n_idx > len(local)  # every index upload was made to fail once
    on_remote = {k.rpartition("/")[2] for k in open_backend(url).list("packs/")}
    assert set(local) <= on_remote  # a first push of a whole history: every pack as it is
    # a push cut short half way, then run again, completes the remote
    shutil.rmtree(url)
    broken = _faulty_remote(a, [Rule("put", "error", key_contains=".idx", calls={n_idx // 2})])
    with pytest.raises(BackendError):
        transfer.push(a, broken, ["refs/heads/main"])
    rapi.push(a)
    b = rapi.clone(url, tmp_path / "b")[0]
    assert snapshot(b.root) == snapshot(a.root)


def test_a_commit_packs_objects_after_what_they_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trees go through the compressing thread behind the files queued before them, so no
    pack of a commit names an object of a pack that names one of its own (a push can send
    every pack of it as it is)."""
    import dsv.store as store_mod

    monkeypatch.setattr(store_mod, "PACK_TARGET", 1 << 20)
    a = _repo(tmp_path / "a")
    for d in range(60):
        for i in range(30):
            write(a.root / f"d{d:02d}/{i:02d}.bin", os.urandom(8000))
    api.commit(a, "v1")
    packs = a.store.packs
    assert len(packs) >= 4
    everything = {i: n for n, i in enumerate({i for p in packs for i in p.ids()})}
    chosen = transfer.whole_pack_order([p.iter_ids for p in packs], _names(a), everything)[0]
    assert len(chosen) == len(packs)


def test_whole_pack_order_follows_what_records_name() -> None:
    """Packs go whole only after the packs holding what their records name; a pack naming an
    object of a new pack, one in a cycle, and one waiting for either, are repacked."""
    a, b, c, r, t1, t2, t3, old = (bytes([i]) * 16 for i in range(8))
    wanted = {x: i for i, x in enumerate([a, b, c, r, t1, t2, t3])}

    def order(
        packs: list[list[bytes]], names: dict[bytes, list[bytes]], at: dict[bytes, int]
    ) -> list[int]:
        return transfer.whole_pack_order([ids.__iter__ for ids in packs], names, at)[0]

    assert order([[a], [b]], {}, wanted) == [0, 1]  # file contents only: as they are
    assert order([[t1, c], [a, b]], {t1: [a, b, old]}, wanted) == [1, 0]
    # a cycle (each pack names the other's file), and a pack of leaves beside it
    cyc = {t1: [b], t2: [a]}
    assert order([[a, t1], [b, t2], [c]], cyc, wanted) == [2]
    # t1 names r, which no candidate holds (it goes into a new pack); t2 waits for t1's pack
    assert order([[t1], [t2, a], [c]], {t1: [r], t2: [t1]}, wanted) == [2]
    assert order([[t3, a]], {t3: [a, t3]}, wanted) == [0]  # names within its own pack


def test_transient_faults_during_fetch_are_retried(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _repo(tmp_path / "a")
    _dataset(a.root)
    api.commit(a, "v1")
    rapi.remote_add(a, "origin", url)
    rapi.push(a)
    b = _repo(tmp_path / "b")
    rapi.remote_add(b, "origin", url)
    rules = [
        Rule("get_range", "transient", calls={1}),
        Rule("get_range", "truncate", calls={2}),
        Rule("get_range", "flip", calls={3}),
        Rule("list", "throttle", calls={1}),
    ]
    r = transfer.fetch(b, _faulty_remote(b, rules))
    assert r.objects > 40
    assert api.fsck(Repository(b.root)).ok
    api.checkout(Repository(b.root), "origin/main")
    assert snapshot(b.root) == snapshot(a.root)


def test_corrupt_pack_on_remote_is_rejected_and_nothing_bad_is_stored(tmp_path: Path) -> None:
    url = tmp_path / "remote"
    a = _repo(tmp_path / "a")
    write(a.root / "data.bin", os.urandom(400_000))
    api.commit(a, "v1")
    rapi.remote_add(a, "origin", str(url))
    rapi.push(a)
    pack = next((url / "packs").glob("*.pack"))
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0x10  # inside some chunk's payload
    pack.write_bytes(bytes(raw))

    r = run_dsv("clone", str(url), str(tmp_path / "b"), cwd=tmp_path)
    assert r.returncode == ExitCode.CORRUPT, r.stderr
    assert b"Traceback" not in r.stderr
    assert not (tmp_path / "b").exists()  # a failed clone leaves nothing behind
    b = _repo(tmp_path / "c")
    rapi.remote_add(b, "origin", str(url))
    with pytest.raises(CorruptObjectError):
        transfer.fetch(b, Remote(b, get_remote_config(b, "origin")))
    assert api.fsck(Repository(b.root)).ok  # whatever was stored is verified and consistent


def test_partial_clone_downloads_only_that_version_and_those_paths(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _repo(tmp_path / "a")
    write(a.root / "images/a.bin", os.urandom(300_000))
    write(a.root / "tables/t.csv", "id\n1\n")
    api.commit(a, "v1")
    api.tag_create(a, "v1")
    write(a.root / "images/b.bin", os.urandom(300_000))
    write(a.root / "tables/t.csv", "id\n1\n2\n")
    api.commit(a, "v2")
    rapi.remote_add(a, "origin", url)
    rapi.push(a, refs=["main", "v1"])

    # (--no-link: a clone from a directory would otherwise link every pack)
    b, _, _, got = rapi.clone(url, tmp_path / "b", paths=["tables"], link=False)
    assert got.bytes_received < 100_000  # no image data
    assert (
        got.linked == 0
        and got.whole == 0
        and not b.store.has(a.flatten(a.read_commit(a.head_commit()).tree)["images/b.bin"].id)
    )
    assert sorted(p for p in snapshot(b.root) if not p.endswith("/") and "." in p) == [
        "tables/t.csv"
    ]
    assert api.status(b).clean
    write(b.root / "tables/t.csv", "id\n1\n2\n3\n")
    api.commit(b, "v3 tables only")
    rapi.push(b)
    # the commit kept the images of v2 it never downloaded
    c, _, _, _ = rapi.clone(url, tmp_path / "c")
    assert (c.root / "images/b.bin").read_bytes() == (a.root / "images/b.bin").read_bytes()
    assert (c.root / "tables/t.csv").read_text() == "id\n1\n2\n3\n"

    # checking out an older version fetches just its data
    d, _, _, _ = rapi.clone(url, tmp_path / "d", rev="v1", link=False)
    assert not (d.root / "images/b.bin").exists()
    api.checkout(d, "main")
    assert (d.root / "images/b.bin").read_bytes() == (a.root / "images/b.bin").read_bytes()


def test_a_clone_reads_a_version_in_the_order_of_the_remote_packs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v2 moves half of the files to another directory (same bytes): in tree order its files
    alternate between far-apart places of v1's pack; read in the pack's order, a clone of v2
    takes no more requests than one of v1, whose tree order is the pack's."""
    url = str(tmp_path / "remote")
    a = _repo(tmp_path / "a")
    for i in range(120):
        write(a.root / f"{'am'[i % 2]}/{i:03d}.bin", os.urandom(20_000 + i))
    api.commit(a, "v1")
    api.tag_create(a, "v1")
    for i in range(0, 120, 4):  # every other file of a/ goes to m/, between m/'s own files
        (a.root / f"a/{i:03d}.bin").rename(a.root / f"m/{i:03d}.bin")
    api.commit(a, "v2")
    rapi.remote_add(a, "origin", url)
    rapi.push(a, refs=["main", "v1"])
    # batches far smaller than the data, as 16 MiB are against a big version's; every
    # record read by range (a clone would take this one pack whole)
    monkeypatch.setattr(transfer, "BATCH_BYTES", 64 << 10)
    monkeypatch.setattr(transfer, "WHOLE_PACK_SHARE", 2.0)

    _, _, _, v1 = rapi.clone(url, tmp_path / "v1", rev="v1", link=False)
    b, _, _, v2 = rapi.clone(url, tmp_path / "v2", link=False)
    assert v2.bytes_received >= 120 * 20_000 and v1.bytes_received >= 120 * 20_000
    assert v2.requests <= v1.requests
    assert snapshot(b.root) == snapshot(a.root)
    assert api.status(b).clean


def test_cli_remote_commands(tmp_path: Path, dsv: Invoke, work: Path) -> None:
    write(work / "f.txt", "hello")
    assert dsv("commit", "-m", "v1").exit_code == 0
    url = str(tmp_path / "remote")
    assert dsv("remote", "add", "origin", url).exit_code == 0
    assert dsv("remote", "add", "origin", url).exit_code == ExitCode.CONFLICT
    listed = json.loads(dsv("remote", "list", "--json").output)
    assert listed == [{"name": "origin", "url": url}]
    out = json.loads(dsv("push", "--json").output)
    assert out["refs"] == {"refs/heads/main": json.loads(dsv("log", "--json").output)[0]["id"]}
    assert out["requests"] > 0 and out["bytes_sent"] > 0
    refs = json.loads(dsv("ls-remote", "--json").output)
    assert [r["ref"] for r in refs] == ["refs/heads/main"]
    r = dsv("clone", url, str(tmp_path / "copy"), "--json", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["branch"] == "main"
    assert (tmp_path / "copy" / "f.txt").read_text() == "hello"
    assert dsv("push", "nowhere").exit_code == ExitCode.NOT_FOUND
    assert (
        dsv("clone", str(tmp_path / "not-a-remote"), str(tmp_path / "x"), cwd=tmp_path).exit_code
        == ExitCode.NOT_FOUND
    )
    assert dsv("remote", "remove", "origin").exit_code == 0
    assert json.loads(dsv("remote", "list", "--json").output) == []


def test_clone_from_a_directory_hard_links_its_packs(tmp_path: Path, dsv: Invoke) -> None:
    url = tmp_path / "remote"
    a = _repo(tmp_path / "a")
    _dataset(a.root)
    api.commit(a, "v1")
    write(a.root / "labels.csv", "id,label\n")
    api.commit(a, "v2")
    rapi.remote_add(a, "origin", str(url))
    rapi.push(a)
    write(a.root / "extra.bin", os.urandom(300_000))
    api.commit(a, "v3")
    rapi.push(a)  # another pack
    remote_packs = sorted((url / "packs").glob("*.pack"))
    n = len(remote_packs)
    assert n >= 2

    r = dsv("clone", str(url), str(tmp_path / "b"), "--json", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["packs_linked"] == n and out["objects"] == 0
    b = Repository(tmp_path / "b")
    for p in remote_packs:
        assert (b.store.pack_dir / p.name).stat().st_ino == p.stat().st_ino
    assert snapshot(b.root) == snapshot(a.root)
    assert api.fsck(b).ok
    # every version's data came along: an older version checks out with the remote gone
    url.rename(tmp_path / "away")
    api.checkout(Repository(b.root), "HEAD~2")
    assert (b.root / "labels.csv").read_bytes().count(b"\n") == 41
    (tmp_path / "away").rename(url)

    # --no-link copies, and a pack that fails its checksum is not linked
    c = dsv("clone", str(url), str(tmp_path / "c"), "--json", "--no-link", cwd=tmp_path)
    assert json.loads(c.output)["packs_linked"] == 0
    for p in (tmp_path / "c/.dsv/objects/pack").glob("*.pack"):
        assert p.stat().st_nlink == 1
    victim = remote_packs[0]
    raw = bytearray(victim.read_bytes())
    raw[-20] ^= 0x01  # the record count in the trailer: no object is damaged
    victim.write_bytes(bytes(raw))
    d = dsv("clone", str(url), str(tmp_path / "d"), "--json", cwd=tmp_path)
    assert d.exit_code == 0, d.output
    assert json.loads(d.output)["packs_linked"] == n - 1
    assert not (tmp_path / "d/.dsv/objects/pack" / victim.name).exists()
    assert snapshot(tmp_path / "d") == snapshot(a.root)


def test_a_linked_clone_of_a_remote_that_lost_data_fails_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """Every pack of a directory remote is linked, but the remote lost a chunk that its
    newest version needs: the clone fails naming what is missing, as the copying clone
    does, and leaves no directory behind."""
    url = tmp_path / "remote"
    a = _repo(tmp_path / "a")
    _dataset(a.root)
    api.commit(a, "v1")
    rapi.remote_add(a, "origin", str(url))
    rapi.push(a)
    write(a.root / "extra.bin", os.urandom(300_000))
    api.commit(a, "v2")
    rapi.push(a)  # a second pack, rewritten without its largest record (a chunk of extra.bin)
    newest = max((url / "packs").glob("*.pack"), key=lambda p: p.stat().st_mtime_ns)
    algo, records, _ = scan_pack(newest)
    raw = newest.read_bytes()
    lost = max(records, key=lambda r: r[2])
    w = PackWriter(url / "packs", algo, durable=False)
    for oid, off, slen, rlen, kind, codec in records:
        if oid != lost[0]:
            w.add(oid, kind, codec, rlen, raw[off : off + slen])
    assert w.finish() is not None
    newest.unlink()
    newest.with_suffix(".idx").unlink()
    for link in ([], ["--no-link"]):
        r = run_dsv("clone", str(url), "b", *link, cwd=tmp_path)
        assert r.returncode in (ExitCode.NOT_FOUND, ExitCode.CORRUPT), r.stderr
        assert b"Traceback" not in r.stderr and lost[0].hex().encode() in r.stderr
        assert not (tmp_path / "b").exists()


def test_clone_at_a_commit_id(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _repo(tmp_path / "a")
    write(a.root / "f.txt", "one")
    c1 = api.commit(a, "v1").id
    write(a.root / "f.txt", "two")
    api.commit(a, "v2")
    rapi.remote_add(a, "origin", url)
    rapi.push(a)
    b, commit_id, branch, _ = rapi.clone(url, tmp_path / "b", rev=c1.hex()[:12])
    assert commit_id == c1 and branch is None
    assert (b.root / "f.txt").read_text() == "one"
    assert b.refs.head().branch is None


def test_a_clone_from_s3_downloads_whole_the_packs_it_wants(
    tmp_path: Path, s3_server: object, s3_bucket: str
) -> None:
    """A real `dsv clone` over HTTP takes each pack it wants most of in one request and
    keeps it as the remote has it; a pack damaged on the remote is not taken whole, and the
    records read one by one then fail on the damaged one: the clone fails, leaving nothing."""
    endpoint = s3_server.endpoint  # type: ignore[attr-defined]
    url = f"s3://{s3_bucket}/whole"
    a = _repo(tmp_path / "a")
    _dataset(a.root)
    api.commit(a, "v1")
    rapi.remote_add(a, "origin", url, endpoint_url=endpoint)
    rapi.push(a)
    write(a.root / "extra.bin", os.urandom(300_000))
    api.commit(a, "v2")
    rapi.push(a)  # a second pack
    backend = open_backend(url, {"endpoint-url": endpoint})
    packs = sorted(k for k in backend.list("packs/") if k.endswith(".pack"))
    assert len(packs) == 2

    r = run_dsv("clone", url, "b", "--endpoint-url", endpoint, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["packs_whole"] == 2 and out["packs_linked"] == 0
    # the packs, and what was read by range before the walk reached most of a pack
    # (commits, trees, the small files of v1's pack before big.bin's chunks)
    whole = sum(backend.list("packs/")[k] for k in packs)
    assert out["objects"] >= 40 and whole <= out["bytes"] < whole + 200_000
    b = Repository(tmp_path / "b")
    for key in packs:  # byte for byte the remote's, under the same names
        assert (b.store.pack_dir / key.removeprefix("packs/")).read_bytes() == backend.get(key)
    assert not [p for p in b.store.pack_dir.iterdir() if p.name.startswith(".dsv-tmp-")]
    assert snapshot(b.root) == snapshot(a.root)
    assert api.fsck(b).ok and api.status(b).clean

    # the same clone with every record read by range: the same files
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transfer, "WHOLE_PACK_SHARE", 2.0)
        c, _, _, ranged = rapi.clone(url, tmp_path / "c", endpoint_url=endpoint)
    assert ranged.whole == 0 and ranged.bytes < whole
    assert snapshot(c.root) == snapshot(a.root)

    # a bit flipped in the middle of v2's pack (the smaller: extra.bin, its trees, commit)
    sizes = backend.list("packs/")
    victim = min(packs, key=lambda k: sizes[k])
    raw = bytearray(backend.get(victim))
    raw[len(raw) // 2] ^= 0x10
    backend.put(victim, bytes(raw))
    r = run_dsv("clone", url, "d", "--endpoint-url", endpoint, cwd=tmp_path)
    assert r.returncode == ExitCode.CORRUPT, r.stderr
    assert b"Traceback" not in r.stderr and b"object" in r.stderr
    assert not (tmp_path / "d").exists()
