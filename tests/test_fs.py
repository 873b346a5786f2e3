"""``dsv://``: the fsspec file system over a local repository and over remotes (directory, S3)."""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

import dsv
from dsv import api
from dsv.api.fs import DsvFileSystem
from dsv.api.versions import RemoteSource, shared_remote
from dsv.repo import Repository

from . import training_data
from .conftest import run_dsv, write


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DSV_CACHE_DIR", str(tmp_path / "cache"))
    yield
    DsvFileSystem.clear_instance_cache()


@pytest.fixture
def dataset(work: Path) -> dict[str, str]:
    return training_data.build(work)


def _push(
    work: Path, url: str, endpoint: str | None = None, refs: tuple[str, ...] = ("main", "v1", "v2")
) -> None:
    from dsv.api import remote as rapi

    repo = Repository(work)
    try:
        rapi.remote_add(repo, "origin", url, endpoint_url=endpoint)
        rapi.push(repo, "origin", list(refs))
    finally:
        repo.close()


def _check_every_file(fs: Any, work: Path, rev: str) -> None:
    """Every file of ``rev`` through ``fs``: whole reads, ranged reads, seeks."""
    want = training_data.checkout_files(work, rev)
    listed = sorted(p.split("/", 1)[1] for p in fs.find(rev))
    assert listed == sorted(want)
    rng = random.Random(5)
    for path, data in want.items():
        assert fs.cat_file(f"{rev}/{path}") == data, path
        with fs.open(f"{rev}/{path}", "rb") as f:
            assert f.size == len(data)
            for _ in range(3 if len(data) > 100_000 else 1):
                off = rng.randrange(len(data) + 1)
                f.seek(off)
                assert f.read(70_000) == data[off : off + 70_000], (path, off)
        if data:
            assert (
                fs.cat_file(f"{rev}/{path}", start=len(data) // 2, end=-1)
                == data[len(data) // 2 : -1]
            )


# ---------------------------------------------------------------------- local repository


def test_local_repo_every_file_and_listing(work: Path, dataset: dict[str, str]) -> None:
    fs = fsspec.filesystem("dsv", repo=str(work))
    assert isinstance(fs, DsvFileSystem)
    _check_every_file(fs, work, "v1")
    _check_every_file(fs, work, "v2")
    assert {x["name"] for x in fs.ls("")} == {"main", "v1", "v2"}
    names = fs.ls("v2", detail=False)
    assert names == [
        "v2/big",
        "v2/empty.txt",
        "v2/images",
        "v2/labels.parquet",
        "v2/link",
        "v2/tables",
        "v2/tools",
    ]
    info = fs.info("v1/tools/run.sh")
    assert info["type"] == "file" and info["mode"] == 0o755 and info["commit"] == dataset["v1"]
    assert fs.info("v1/images")["type"] == "directory"
    link = fs.info("v1/link")
    assert (
        link["islink"]
        and link["type"] == "file"
        and link["id"] == fs.info("v1/images/cat/0001.png")["id"]
    )
    assert fs.ukey("v1/empty.txt") == fs.ukey("v2/empty.txt")
    assert sorted(fs.glob("v2/images/*/01*.png")) == ["v2/images/cat/0100.png"]
    assert len(fs.glob("v1/**/*.png")) == 24
    assert fs.isdir("main~1/images") and fs.isfile(f"{dataset['v1'][:8]}/labels.parquet")
    assert fs.exists("v1/big/blob.bin") and not fs.exists("v1/nope") and not fs.exists("v9/x")
    assert fs.du("v1/big") == (3 << 20) + (1 << 20)
    assert fs.modified("v1").year >= 2024
    with pytest.raises(FileNotFoundError):
        fs.open("v1/nope.txt")
    with pytest.raises(FileNotFoundError, match="unknown revision"):
        fs.cat_file("nosuchrev/labels.parquet")
    with pytest.raises(PermissionError):
        fs.open("v1/new.txt", "wb")
    with pytest.raises(PermissionError):
        fs.rm("v1/labels.parquet")


def test_fsspec_open_pandas_and_pyarrow(work: Path, dataset: dict[str, str]) -> None:
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    opts = {"repo": str(work)}
    with fsspec.open("dsv://v1/tables/labels.csv", "rt", **opts) as f:
        assert f.readline().startswith('"id","x1","x2","label"')
    want = training_data.labels_table(4000, 1)

    pd = pytest.importorskip("pandas")
    df = pd.read_parquet("dsv://v1/labels.parquet", storage_options=opts)
    assert len(df) == 4000 and list(df.columns) == ["id", "x1", "x2", "label"]
    assert df["label"].tolist() == want.column("label").to_pylist()  # type: ignore[attr-defined]
    assert len(pd.read_csv("dsv://v2/tables/labels.csv", storage_options=opts)) == 4000

    fs = DsvFileSystem(repo=str(work))
    t = pq.read_table("v2/labels.parquet", filesystem=fs)
    assert t.num_rows == 4100
    ds = pads.dataset("v1/tables", filesystem=fs, format="csv")
    assert ds.to_table().num_rows == 4000
    assert (
        pads.dataset("v1/labels.parquet", filesystem=fs).to_table(columns=["id"]).num_rows == 4000
    )


def test_reads_see_new_commits_and_branches_with_slashes(
    work: Path, dataset: dict[str, str]
) -> None:
    fs = DsvFileSystem(repo=str(work))
    assert fs.cat_file("main/empty.txt") == b""
    write(work / "empty.txt", "now full")
    repo = Repository(work)
    try:
        api.commit(repo, "fill")
        api.branch_create(repo, "feature/x")
        api.branch_create(repo, "feature/x2", "v1")
    finally:
        repo.close()
    assert fs.cat_file("main/empty.txt") == b"now full"  # a local ref is read on each use
    assert fs.cat_file("feature/x/empty.txt") == b"now full"
    assert fs.cat_file("dsv://feature/x2/empty.txt") == b""
    # a relative repo= means the directory it was given in
    cwd = os.getcwd()
    try:
        os.chdir(work / "images")
        here = DsvFileSystem(repo=".")
    finally:
        os.chdir(cwd)
    assert here.repo_path == str(work / "images") and here.cat_file("v1/empty.txt") == b""


def test_pickles_for_workers(work: Path, dataset: dict[str, str]) -> None:
    fs = DsvFileSystem(repo=str(work))
    fs2 = pickle.loads(pickle.dumps(fs))
    assert fs2.cat_file("v1/labels.parquet") == fs.cat_file("v1/labels.parquet")
    with fs.open("v1/big/blob.bin") as f:
        f.seek(123_456)
        g = pickle.loads(pickle.dumps(f))
        assert g.tell() == 123_456 and g.read(10) == f.read(10)


def test_the_dsv_package_exports(work: Path, dataset: dict[str, str]) -> None:
    assert dsv.DsvFileSystem is DsvFileSystem
    assert fsspec.get_filesystem_class("dsv") is DsvFileSystem


# ---------------------------------------------------------------------- remotes


def test_directory_remote_every_file(tmp_path: Path, work: Path, dataset: dict[str, str]) -> None:
    url = str(tmp_path / "remote")
    _push(work, url)
    fs = DsvFileSystem(remote=url)
    _check_every_file(fs, work, "v1")
    _check_every_file(fs, work, "v2")
    assert fs.cat_file(f"{dataset['v1'][:10]}/empty.txt") == b""
    assert fs.cat_file("main~1/big/zeros.bin") == bytes(1 << 20)
    for path, data in training_data.checkout_files(work, "v1").items():
        with dsv.open(path, "v1", remote=url) as f:
            assert f.read() == data, path
    with dsv.open("big/blob.bin", "v2", remote=url) as f:
        f.seek(1_500_000)
        assert f.read(10) == b"0123456789"
    # a second process-lifetime reuses the cache: nothing is downloaded again but the names
    src = shared_remote(url)
    src.close()
    fresh = RemoteSource(url)
    try:
        before = fresh.stats.bytes_received
        vf = fresh.version("v2").open("big/blob.bin")
        assert len(vf.readall()) == 3 << 20 and vf.verified
        assert fresh.stats.bytes_received - before < 64 << 10
    finally:
        fresh.close()


@pytest.fixture
def s3_remote(s3_server: Any, s3_bucket: str) -> tuple[str, str]:
    return f"s3://{s3_bucket}/data", s3_server.endpoint


def test_s3_remote_pandas_and_every_file(
    work: Path, dataset: dict[str, str], s3_remote: tuple[str, str]
) -> None:
    url, endpoint = s3_remote
    repo = Repository(work)
    try:
        api.tag_create(repo, "v1.0", "v1")
    finally:
        repo.close()
    _push(work, url, endpoint, ("main", "v1", "v1.0", "v2"))
    opts = {"remote": url, "endpoint_url": endpoint}
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet("dsv://v1.0/labels.parquet", storage_options=opts)
    assert len(df) == 4000
    fs = fsspec.filesystem("dsv", **opts)
    _check_every_file(fs, work, "v2")
    # dsv.open and `dsv get` (a real process) over S3 give the same bytes
    want = training_data.checkout_files(work, "v2")
    for path in ("big/blob.bin", "labels.parquet", "link", "empty.txt"):
        with dsv.open(path, "v2", remote=url, endpoint_url=endpoint) as f:
            assert f.read() == want[path]
    out = work.parent / "got"
    p = run_dsv(
        "get",
        url,
        "big",
        "--rev",
        "v2",
        "--endpoint-url",
        endpoint,
        "-o",
        str(out),
        cwd=work.parent,
    )
    assert p.returncode == 0, p.stderr
    assert {q.name: q.read_bytes() for q in out.iterdir()} == {
        "blob.bin": want["big/blob.bin"],
        "zeros.bin": want["big/zeros.bin"],
    }


def test_s3_reading_one_file_fetches_only_its_chunks(
    tmp_path: Path, work: Path, s3_remote: tuple[str, str]
) -> None:
    """One 1 MiB file of a 72 MiB version: well under 2 MiB cross the wire."""
    url, endpoint = s3_remote
    rng = random.Random(11)
    for i in range(8):
        write(work / "shards" / f"shard-{i}.bin", rng.randbytes(9 << 20))
    one = rng.randbytes(1 << 20)
    write(work / "one.bin", one)
    repo = Repository(work)
    try:
        api.commit(repo, "big version")
        api.tag_create(repo, "v1")
    finally:
        repo.close()
    _push(work, url, endpoint, ("main", "v1"))

    src = RemoteSource(url, {"endpoint-url": endpoint}, tmp_path / "fresh-cache")
    try:
        v = src.version("v1")
        with v.open("one.bin") as f:
            assert f.read() == one
        received = src.stats.bytes_received
        requests = src.stats.requests
    finally:
        src.close()
    print(f"\nread 1 MiB of a 73 MiB version from S3: {received:,} bytes in {requests} requests")
    assert (1 << 20) <= received < (2 << 20)
    # and the chunks now in the cache serve the next reader without a download of data
    again = RemoteSource(url, {"endpoint-url": endpoint}, tmp_path / "fresh-cache")
    try:
        with again.version("v1").open("one.bin") as f:
            assert f.read() == one
        assert again.stats.bytes_received < 64 << 10
    finally:
        again.close()


_INHERITED: list[Any] = []


def _child_read(path: str) -> bytes:
    # the parent's objects, as a forked worker inherits them (nothing pickled)
    fs, vf = _INHERITED
    if path == "inherited-file":
        vf.seek(1000)
        return bytes(vf.read(5000))
    return bytes(fs.cat_file(path))


def test_forked_workers_share_an_inherited_remote_file_system(
    tmp_path: Path, work: Path, dataset: dict[str, str]
) -> None:
    """DataLoader-style workers: forked after the parent read (and has unsealed cache data)."""
    import multiprocessing

    url = str(tmp_path / "remote")
    _push(work, url)
    want = training_data.checkout_files(work, "v1")
    fs = DsvFileSystem(remote=url)
    assert fs.cat_file("v1/big/blob.bin") == want["big/blob.bin"]  # parent's writer holds it
    paths = ["labels.parquet", "big/zeros.bin", "images/dog/0005.png", "big/blob.bin"]
    vf = dsv.open("tables/labels.csv", "v1", remote=url)
    _INHERITED[:] = [fs, vf]
    ctx = multiprocessing.get_context("fork")
    try:
        with ctx.Pool(2) as pool:
            got = pool.map(_child_read, [f"v1/{p}" for p in paths] + ["inherited-file"])
    finally:
        _INHERITED.clear()
    assert got == [want[p] for p in paths] + [want["tables/labels.csv"][1000:6000]]
    assert fs.cat_file("v1/tables/labels.csv") == want["tables/labels.csv"]
    fs.source.close()
    # the cache holds only verified, readable data afterwards
    again = RemoteSource(url)
    try:
        v = again.version("v1")
        for p in [*paths, "tables/labels.csv"]:
            assert v.open(p).readall() == want[p]
    finally:
        again.close()
