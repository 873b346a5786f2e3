"""Training on exact versions: dsv.open, read_table, lineage, verify, get, pin/materialize."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dsv
from dsv import api
from dsv.api import training
from dsv.errors import ConflictError, CorruptObjectError, DsvError, NotFoundError
from dsv.repo import Repository

from . import training_data
from .conftest import Invoke, run_dsv, write

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSV_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def dataset(work: Path) -> dict[str, str]:
    return training_data.build(work)


@pytest.fixture
def pushed(tmp_path: Path, work: Path, dataset: dict[str, str]) -> str:
    """The dataset pushed (v1, v2, main) to a directory remote; returns its URL."""
    from dsv.api import remote as rapi

    url = str(tmp_path / "remote")
    repo = Repository(work)
    try:
        rapi.remote_add(repo, "origin", url)
        rapi.push(repo, "origin", ["main", "v1", "v2"])
    finally:
        repo.close()
    return url


# ---------------------------------------------------------------------- dsv.open


def test_open_reads_every_file_like_a_checkout(work: Path, dataset: dict[str, str]) -> None:
    for rev in ("v1", "v2"):
        want = training_data.checkout_files(work, rev)
        assert len(want) > 25
        for path, data in want.items():
            with dsv.open(path, rev, repo=work) as f:
                assert f.read() == data, (rev, path)
    # v1 and v2 differ where v2 changed them: the reads are of the version, not the disk
    with dsv.open("big/blob.bin", "v1", repo=work) as f:
        f.seek(1_500_000)
        assert f.read(10) != b"0123456789"


def test_open_seeks_into_the_middle_of_a_multi_chunk_file(
    work: Path, dataset: dict[str, str]
) -> None:
    want = training_data.checkout_files(work, "v2")["big/blob.bin"]
    repo = Repository(work)
    try:
        assert (
            len(
                repo.store.chunks(
                    bytes.fromhex(api.ls_tree(repo, "v2", "big/blob.bin")[0][1].id.hex())
                )
            )
            > 10
        )
    finally:
        repo.close()
    rng = random.Random(3)
    with dsv.open("big/blob.bin", "v2", repo=work) as f:
        assert f.seekable() and f.readable()
        for _ in range(200):
            off = rng.randrange(len(want) + 100)
            n = rng.choice([0, 1, 7, 4096, 65_537, 300_000])
            assert f.seek(off) == off
            assert f.read(n) == want[off : off + n]
            assert f.tell() == min(off + n, max(off, len(want))) or off > len(want)
        assert f.seek(-10, io.SEEK_END) == len(want) - 10
        assert f.read() == want[-10:]
        f.seek(1_000_000)
        f.seek(5, io.SEEK_CUR)
        buf = bytearray(1000)
        assert f.readinto(buf) == 1000 and bytes(buf) == want[1_000_005:1_001_005]


def test_open_text_mode_and_errors(work: Path, dataset: dict[str, str]) -> None:
    with dsv.open("tools/run.sh", "v1", repo=work, mode="r") as f:
        assert f.readline() == "#!/bin/sh\n"
    with pytest.raises(NotFoundError):
        dsv.open("nope.txt", "v1", repo=work)
    with pytest.raises(NotFoundError):
        dsv.open("images", "v1", repo=work)  # a directory
    with pytest.raises(NotFoundError):
        dsv.open("labels.parquet", "v9", repo=work)
    with pytest.raises(ValueError):
        dsv.open("labels.parquet", "v1", repo=work, mode="wb")


def test_open_never_reads_the_whole_file(work: Path, dataset: dict[str, str]) -> None:
    """A small read of a big file decodes only the chunks it overlaps."""
    from dsv.store import Store

    calls: list[bytes] = []
    orig = Store.read_chunk

    def counting(self: Store, cid: bytes) -> bytes:
        calls.append(cid)
        return orig(self, cid)

    Store.read_chunk = counting  # type: ignore[method-assign]
    try:
        with dsv.open("big/blob.bin", "v1", repo=work, buffering=4096) as f:
            f.seek(2_000_000)
            f.read(100)
    finally:
        Store.read_chunk = orig  # type: ignore[method-assign]
    assert 1 <= len(calls) <= 2


def test_whole_reads_are_verified_against_the_file_id(work: Path, dataset: dict[str, str]) -> None:
    """A damaged chunk list that still names good chunks (reordered) cannot pass a full read."""
    from dsv.api.versions import LocalSource, VersionFile

    src = LocalSource.discover(work)
    try:
        e = src.version("v1").require("big/blob.bin")
        ids, lengths = src.chunk_table(e.id, e.size)
        swapped = (ids[1], ids[0], *ids[2:]), (lengths[1], lengths[0], *lengths[2:])
        src.chunk_table = lambda oid, size: swapped  # type: ignore[method-assign]
        vf = VersionFile(src, e.id, e.size)
        with pytest.raises(CorruptObjectError):
            while vf.read(1 << 20):
                pass
        good = VersionFile(LocalSource(src.repo), e.id, e.size)
        assert len(good.readall()) == e.size and good.verified
    finally:
        src.close()


def test_read_table_parquet_csv_and_directory(work: Path, dataset: dict[str, str]) -> None:
    import pyarrow.parquet as pq

    t1 = dsv.read_table("labels.parquet", rev="v1", repo=work)
    t2 = dsv.read_table("labels.parquet", rev="v2", repo=work)
    assert t1.num_rows == 4000 and t2.num_rows == 4100
    assert t1.equals(training_data.labels_table(4000, 1))  # type: ignore[arg-type]
    csv = dsv.read_table("tables/labels.csv", rev="v1", repo=work, columns=["id", "label"])
    assert csv.column_names == ["id", "label"] and csv.num_rows == 4000
    only = dsv.read_table("labels.parquet", rev="v2", repo=work, columns=["label"])
    assert only.column_names == ["label"]
    # a directory of parquet files, read as a dataset
    (work / "parts").mkdir()
    pq.write_table(training_data.labels_table(10, 3), work / "parts" / "a.parquet")  # type: ignore[arg-type]
    pq.write_table(training_data.labels_table(20, 4), work / "parts" / "b.parquet")  # type: ignore[arg-type]
    repo = Repository(work)
    try:
        api.commit(repo, "parts")
    finally:
        repo.close()
    assert dsv.read_table("parts", repo=work).num_rows == 30
    with pytest.raises(DsvError, match="format"):
        dsv.read_table("tools/run.sh", rev="v1", repo=work)


# ---------------------------------------------------------------------- lineage


def test_lineage_of_the_working_tree(work: Path, dataset: dict[str, str]) -> None:
    lin = dsv.lineage(work)
    assert tuple(lin) == training.LINEAGE_KEYS
    assert lin["format"] == 1 and lin["dsv_version"] == dsv.__version__
    assert lin["source"] == "worktree" and lin["repo"] == str(work)
    assert lin["commit"] == dataset["v2"] and lin["branch"] == "main" and lin["tags"] == ["v2"]
    assert lin["tree"] == lin["path_id"] and lin["dirty"] is False
    assert lin["message"] == "v2: relabel, more cats"
    json.dumps(lin)  # plain values only

    write(work / "images" / "cat" / "0001.png", b"changed")
    write(work / "new.txt", b"x")
    lin = dsv.lineage(work)
    assert lin["dirty"] is True
    assert lin["changes"] == {
        "added": ["new.txt"],
        "modified": ["images/cat/0001.png"],
        "deleted": [],
    }
    # a path below the root: its own id, and only its own changes count
    sub = dsv.lineage(work / "tables")
    assert sub["path"] == "tables" and sub["dirty"] is False and sub["path_id"] != sub["tree"]
    # a version read without checkout is never dirty
    v1 = dsv.lineage(work, rev="v1")
    assert v1["source"] == "repository" and v1["commit"] == dataset["v1"] and not v1["dirty"]
    assert v1["tags"] == ["v1"] and v1["branch"] is None


def test_lineage_of_a_remote_version(work: Path, pushed: str, dataset: dict[str, str]) -> None:
    lin = dsv.lineage("labels.parquet", remote=pushed, rev="v1")
    assert tuple(lin) == training.LINEAGE_KEYS
    assert lin["source"] == "remote" and lin["remote"] == pushed and lin["repo"] is None
    assert lin["commit"] == dataset["v1"] and lin["tags"] == ["v1"]
    assert lin["path"] == "labels.parquet"
    with dsv.Repo(work) as r:
        e = r.ls("v1", "labels.parquet")[0]
    assert lin["path_id"] == e.id
    head = dsv.lineage(remote=pushed)
    assert head["commit"] == dataset["v2"] and head["branch"] == "main"


# ---------------------------------------------------------------------- the facade


def test_repo_facade(work: Path, dataset: dict[str, str]) -> None:
    r = dsv.Repo(work / "images")  # found from a subdirectory
    assert r.root == work
    assert r.rev_parse("v1") == dataset["v1"]
    assert r.rev_parse("HEAD~1") == dataset["v1"]
    assert len(r.rev_parse("v2", short=True)) >= 10
    log = r.log()
    assert [c.id for c in log] == [dataset["v2"], dataset["v1"]]
    assert log[0].parents == [dataset["v1"]] and log[0].as_dict()["message"].startswith("v2")
    assert r.tags() == {"v1": dataset["v1"], "v2": dataset["v2"]}
    assert r.status().clean
    names = {f.path: f for f in r.ls("v1", recursive=True)}
    assert names["tools/run.sh"].mode == 0o755 and names["link"].kind == "symlink"
    assert [f.path for f in r.ls("v1", "big")] == ["big/blob.bin", "big/zeros.bin"]
    write(work / "notes.txt", "hi")
    assert r.status().added == ["notes.txt"]
    c = r.commit("notes", meta={"run": "7"})
    assert c.meta == {"run": "7"} and r.rev_parse() == c.id
    out = r.checkout("v1")
    assert out.commit.hex() == dataset["v1"] and not (work / "notes.txt").exists()
    assert r.verify().ok
    with r.open("labels.parquet", "v2") as f:
        assert f.read(4) == b"PAR1"
    assert r.read_table("labels.parquet", "v2").num_rows == 4100
    assert r.lineage()["commit"] == dataset["v1"]
    assert r.filesystem().cat_file(f"{dataset['v1']}/empty.txt") == b""
    try:
        d = r.diff("v1", "v2")
    except DsvError as exc:  # a dsv without the diff module
        assert "diff" in exc.message
    else:
        files = d.as_dict()["files"]
        assert "images/cat/0100.png" in json.dumps(files)
    r.close()


def test_import_dsv_stays_light() -> None:
    code = (
        "import sys, dsv; assert 'dsv.api' not in sys.modules and 'pyarrow' not in sys.modules;"
        "import dsv.cli; assert 'dsv.api.training' not in sys.modules, 'cli imports training api';"
        "assert 'fsspec' not in sys.modules and 'pyarrow' not in sys.modules;"
        "dsv.Repo; assert 'dsv.api.training' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- verify


def _verify(work: Path, *args: str) -> tuple[int, dict[str, object]]:
    p = run_dsv("verify", "--json", *args, cwd=work)
    assert p.stderr == b"", p.stderr
    return p.returncode, json.loads(p.stdout)


def test_verify_detects_modified_missing_extra_and_accepts_touched(
    work: Path, dataset: dict[str, str]
) -> None:
    rc, out = _verify(work)
    assert rc == 0 and out["ok"] is True and out["checked"] == out["checked"] > 25

    # touched but equal: clean (and the stat cache takes over again afterwards)
    earlier = time.time() - 100  # (a time in the future would stay racily clean)
    os.utime(work / "big" / "blob.bin", (earlier, earlier))
    rc, out = _verify(work)
    assert rc == 0 and out["ok"] is True and out["hashed"] == 1
    rc, out = _verify(work)
    assert rc == 0 and out["hashed"] == 0

    # one byte changed, size and mtime kept: caught (ctime moved)
    p = work / "big" / "blob.bin"
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[2_000_000] ^= 1
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    rc, out = _verify(work)
    assert rc == 1 and out["modified"] == ["big/blob.bin"] and not out["ok"]

    # missing and extra, alongside
    (work / "images" / "dog" / "0001.png").unlink()
    write(work / "images" / "dog" / "stray.png", b"x")
    rc, out = _verify(work)
    assert rc == 1
    assert out["modified"] == ["big/blob.bin"]
    assert out["missing"] == ["images/dog/0001.png"]
    assert out["extra"] == ["images/dog/stray.png"]

    # paths limit the check; REV picks the version
    rc, out = _verify(work, "--", "tables", "labels.parquet")
    assert rc == 0 and out["paths"] == ["tables", "labels.parquet"] and out["checked"] == 2
    rc, out = _verify(work, "v1", "--", "labels.parquet")
    assert rc == 1 and out["modified"] == ["labels.parquet"]

    # ignored files do not count as extra
    write(work / ".dsvignore", "*.tmp\n")
    write(work / "scratch.tmp", "x")
    rc, out = _verify(work, "--", "scratch.tmp")
    assert rc == 0


def test_verify_mode_change_and_full(work: Path, dataset: dict[str, str], dsv: Invoke) -> None:
    (work / "tools" / "run.sh").chmod(0o644)
    r = dsv("verify")
    assert r.exit_code == 1
    assert "modified: tools/run.sh" in r.output.replace("  ", " ").replace("  ", " ")
    assert "does not match HEAD" in r.output
    (work / "tools" / "run.sh").chmod(0o755)
    r = dsv("verify")
    assert r.exit_code == 0 and r.output.startswith("verified ") and r.output.endswith(": ok\n")
    # --full hashes every file whatever the cache says
    r = dsv("verify", "--full", "--json")
    out = json.loads(r.output)
    assert r.exit_code == 0 and out["hashed"] == out["checked"]
    assert out["bytes_hashed"] > 4 << 20
    r = dsv("verify", "nope")
    assert r.exit_code == 4


def test_verify_compares_files_of_the_version_that_dsvignore_matches(work: Path) -> None:
    """A version can hold a file .dsvignore matches (committed before the rule, or kept by
    a commit of other PATHS): verify compares it like any other, in a real dsv process;
    only files the version does not have are judged by the ignore rules."""

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return run_dsv(*args, cwd=work)

    write(work / "logs/run.log", "kept\n")
    write(work / "data.log", "d\n")
    write(work / "keep.txt", "k\n")
    assert run("commit", "-q", "-m", "v1").returncode == 0
    write(work / ".dsvignore", "*.log\nlogs/\n")
    assert run("commit", "-q", "-m", "v2", ".dsvignore").returncode == 0
    assert run("checkout", "-q", "-f", "HEAD").returncode == 0
    write(work / "untracked.log", "ignored and not in the version: not extra\n")
    r = run("verify", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0, out
    assert out["checked"] == 4 and out["missing"] == [] and out["extra"] == []
    write(work / "data.log", "changed\n")
    (work / "logs/run.log").unlink()
    r = run("verify", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 1
    assert out["modified"] == ["data.log"] and out["missing"] == ["logs/run.log"]
    r = run("verify", "--json", "--", "data.log")  # a limited verify lists it the same way
    assert r.returncode == 1 and json.loads(r.stdout)["modified"] == ["data.log"]


# ---------------------------------------------------------------------- get


def test_get_file_and_folder_equal_a_checkout(
    tmp_path: Path, work: Path, pushed: str, dataset: dict[str, str]
) -> None:
    want = training_data.checkout_files(work, "v1")
    out = tmp_path / "out"
    out.mkdir()
    p = run_dsv("get", pushed, "big/blob.bin", "--rev", "v1", cwd=out)
    assert p.returncode == 0, p.stderr
    assert (out / "blob.bin").read_bytes() == want["big/blob.bin"]
    assert b"Copied 1 file" in p.stdout

    p = run_dsv("get", pushed, ".", "--rev", "v1", "-o", "all", "--json", cwd=out)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["commit"] == dataset["v1"] and info["files"] == len(want)
    got = {
        q.relative_to(out / "all").as_posix(): q.read_bytes()
        for q in (out / "all").rglob("*")
        if q.is_file()
    }
    assert got == want
    assert os.readlink(out / "all" / "link") == "images/cat/0001.png"
    assert (out / "all" / "tools" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert not (out / "all" / ".dsv").exists()

    # a folder, from v2 and into an existing name: refused, then forced
    p = run_dsv("get", pushed, "images", "-o", "all", cwd=out)
    assert p.returncode == 5 and b"already exists" in p.stderr
    p = run_dsv("get", pushed, "images/dog", "--no-cache", cwd=out)
    assert p.returncode == 0, p.stderr
    assert sorted(q.name for q in (out / "dog").iterdir()) == [
        f"{i:04d}.png" for i in range(12) if i != 3
    ]
    p = run_dsv("get", pushed, "nope", cwd=out)
    assert p.returncode == 4


# ---------------------------------------------------------------------- pin / materialize


def test_pin_and_materialize(tmp_path: Path, work: Path, pushed: str, dsv: Invoke) -> None:
    r = dsv("pin", "v1", "--", "images/cat", "labels.parquet")
    assert r.exit_code == 0, r.output
    text = r.output
    assert "format = 1" in text and f'commit = "{dsv("rev-parse", "v1").output.strip()}"' in text
    pin = training.Pin.loads(text)
    assert pin.paths == ["images/cat", "labels.parquet"] and pin.rev == "v1"
    assert pin.remote == pushed
    assert training._parse_json_lines(text, "pin") == {
        "format": 1,
        "remote": pushed,
        "commit": pin.commit,
        "rev": "v1",
        "paths": ["images/cat", "labels.parquet"],
    }  # readable without tomllib too

    pin_file = tmp_path / "train" / "dataset.pin"
    pin_file.parent.mkdir()
    r = dsv("pin", "v1", "-o", str(pin_file), "--json")
    assert json.loads(r.output)["file"] == str(pin_file)

    target = tmp_path / "data"
    p = run_dsv("materialize", str(pin_file), str(target), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert b"verified" in p.stdout and b": ok" in p.stdout
    assert training_data.checkout_files(work, "v1") == {
        q.relative_to(target).as_posix(): q.read_bytes()
        for q in target.rglob("*")
        if q.is_file() and ".dsv" not in q.parts
    }
    p = run_dsv("verify", cwd=target)
    assert p.returncode == 0

    # a new pin: the same directory moves to it, fetching only what changed
    pin_file.write_text(training.Pin(pushed, _rev(work, "v2")).dumps())
    p = run_dsv("materialize", str(pin_file), str(target), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["cloned"] is False and res["written"] == 3 and res["removed"] == 1
    assert res["verify"]["ok"] is True

    # local damage is reported (exit 1), and --force repairs it
    write(target / "big" / "zeros.bin", b"oops")
    write(target / "stray.txt", b"x")
    p = run_dsv("materialize", str(pin_file), str(target), "--json", cwd=tmp_path)
    res = json.loads(p.stdout)
    assert p.returncode == 1 and res["verify"]["modified"] == ["big/zeros.bin"]
    assert res["verify"]["extra"] == ["stray.txt"]
    (target / "stray.txt").unlink()
    p = run_dsv("materialize", str(pin_file), str(target), "-f", cwd=tmp_path)
    assert p.returncode == 0, p.stdout

    # a pinned subset of paths: only those are fetched and written
    sub = tmp_path / "sub"
    (tmp_path / "sub.pin").write_text(text)
    p = run_dsv("materialize", str(tmp_path / "sub.pin"), str(sub), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    files = sorted(
        q.relative_to(sub).as_posix()
        for q in sub.rglob("*")
        if q.is_file() and ".dsv" not in q.parts
    )
    assert files == ["images/cat/" + f"{i:04d}.png" for i in range(12)] + ["labels.parquet"]

    # refusals
    p = run_dsv("materialize", str(pin_file), str(pin_file.parent), cwd=tmp_path)
    assert p.returncode == 5 and b"not a dsv clone" in p.stderr  # a non-empty directory
    (tmp_path / "bad.pin").write_text('format = 2\nremote = "x"\ncommit = "00"\n')
    p = run_dsv("materialize", str(tmp_path / "bad.pin"), cwd=tmp_path)
    assert p.returncode == 7


def _rev(work: Path, rev: str) -> str:
    repo = Repository(work)
    try:
        return api.rev_parse(repo, rev)
    finally:
        repo.close()


def test_pin_refuses_a_commit_the_remote_lacks(work: Path, pushed: str, dsv: Invoke) -> None:
    write(work / "late.txt", "x")
    assert dsv("commit", "-m", "not pushed").exit_code == 0
    r = dsv("pin")
    assert r.exit_code == 4 and "push it first" in r.output
    assert dsv("pin", "v2", "--", "nope").exit_code == 4
    with pytest.raises(ConflictError):
        training.materialize(training.Pin(pushed, _rev(work, "v1")), work / "images")


# ---------------------------------------------------------------------- the example


def test_example_trains_on_an_exact_version(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    p = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_exact_version.py"), "--out", str(out)],
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr.decode()
    run = json.loads(out.read_text())
    assert run["accuracy"] > 0.8
    lin = run["lineage"]
    assert lin["source"] == "repository" and lin["tags"] == ["v1"]
    assert len(lin["commit"]) == 32 and run["rows"] == 2000
