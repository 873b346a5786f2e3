"""One contract, every backend: local directory, fsspec memory://, S3 on a moto server (HTTP)."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsv.backends import (
    Backend,
    BackendError,
    KeyNotFoundError,
    PreconditionFailedError,
    open_backend,
)
from dsv.backends.faults import FaultInjectingBackend, Rule
from dsv.backends.retry import RetryingBackend


@pytest.fixture(params=["local", "memory", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        b = open_backend(str(tmp_path / "remote"))
    elif request.param == "memory":
        b = open_backend(f"memory://dsv-test-{uuid.uuid4().hex}")
    else:
        bucket = request.getfixturevalue("s3_bucket")
        server = request.getfixturevalue("s3_server")
        b = open_backend(f"s3://{bucket}/some/prefix", {"endpoint-url": server.endpoint})
    yield b
    b.close()


def test_get_put_round_trip(backend: Backend) -> None:
    backend.put("packs/a.pack", b"hello world")
    assert backend.get("packs/a.pack") == b"hello world"
    backend.put("packs/a.pack", b"replaced")
    assert backend.get("packs/a.pack") == b"replaced"


def test_missing_key(backend: Backend) -> None:
    with pytest.raises(KeyNotFoundError):
        backend.get("refs/heads/nothing")
    with pytest.raises(KeyNotFoundError):
        backend.get_range("refs/heads/nothing", 0, 4)


def test_get_range(backend: Backend) -> None:
    data = bytes(range(256)) * 40
    backend.put("x/blob", data)
    assert backend.get_range("x/blob", 0, 10) == data[:10]
    assert backend.get_range("x/blob", 1000, 300) == data[1000:1300]
    assert backend.get_range("x/blob", len(data) - 5, 100) == data[-5:]


class _Collect:
    def __init__(self) -> None:
        self.data = bytearray(b"left from an attempt before")
        self.restarts = 0
        self.blocks = 0

    def restart(self) -> None:
        self.data.clear()
        self.restarts += 1

    def write(self, block: bytes) -> None:
        self.data += block
        self.blocks += 1


def test_download(backend: Backend) -> None:
    data = os.urandom(9 << 20)  # more than one block of a streamed body
    backend.put("packs/p.pack", data)
    before = backend.stats.requests
    sink = _Collect()
    assert backend.download("packs/p.pack", sink) == len(data)
    assert bytes(sink.data) == data and sink.restarts == 1
    assert backend.stats.requests == before + 1
    with pytest.raises(KeyNotFoundError):
        backend.download("packs/none.pack", _Collect())


def test_a_retried_download_starts_over(tmp_path: Path) -> None:
    """A download that fails part way (after some blocks reached the sink) is retried from
    the start: the sink ends with the value once, not a mix of two attempts."""
    inner = open_backend(str(tmp_path / "remote"))
    data = os.urandom(5 << 20)
    inner.put("packs/p.pack", data)
    calls = []
    plain = inner.download

    def flaky(key: str, sink: object) -> int:
        calls.append(key)
        if len(calls) == 1:
            sink.restart()  # type: ignore[attr-defined]
            sink.write(data[:1000])  # type: ignore[attr-defined]
            raise BackendError("connection reset mid-body", transient=True)
        return plain(key, sink)  # type: ignore[arg-type]

    inner.download = flaky  # type: ignore[method-assign]
    sink = _Collect()
    assert RetryingBackend(inner, attempts=3, sleep=lambda s: None).download("packs/p.pack", sink)
    assert len(calls) == 2 and sink.restarts == 2 and bytes(sink.data) == data


def test_put_file(backend: Backend, tmp_path: Path) -> None:
    f = tmp_path / "pack"
    f.write_bytes(b"p" * 100_000)
    backend.put_file("packs/p.pack", f)
    assert backend.get("packs/p.pack") == b"p" * 100_000


@pytest.mark.parametrize("err", [errno.EXDEV, errno.ENOSYS])
def test_local_put_file_without_kernel_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    """Where copy_file_range refuses (another file system, no support), bytes still arrive."""
    data = os.urandom(3 << 20)
    f = tmp_path / "pack"
    f.write_bytes(data)
    calls = []

    def refuse(*a: object) -> int:
        calls.append(a)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, "copy_file_range", refuse)
    b = open_backend(str(tmp_path / "remote"))
    b.put_file("packs/p.pack", f)
    assert calls and b.get("packs/p.pack") == data


def test_local_put_file_across_file_systems(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system at /dev/shm")
    data = os.urandom(1 << 20)
    f = tmp_path / "pack"
    f.write_bytes(data)
    remote = shm / f"dsv-test-{uuid.uuid4().hex}"
    try:
        b = open_backend(str(remote))
        b.put_file("packs/p.pack", f)
        assert b.get("packs/p.pack") == data
    finally:
        shutil.rmtree(remote, ignore_errors=True)


def test_list_and_delete(backend: Backend) -> None:
    backend.put("packs/a.idx", b"1")
    backend.put("packs/b.idx", b"22")
    backend.put("refs/heads/main", b"333")
    assert backend.list("packs/") == {"packs/a.idx": 1, "packs/b.idx": 2}
    assert set(backend.list("refs/")) == {"refs/heads/main"}
    backend.delete("packs/a.idx")
    backend.delete("packs/never-existed")
    assert backend.list("packs/") == {"packs/b.idx": 2}


def test_put_if_absent(backend: Backend) -> None:
    tag = backend.put_if_absent("refs/heads/main", b"one")
    assert tag
    with pytest.raises(PreconditionFailedError):
        backend.put_if_absent("refs/heads/main", b"two")
    assert backend.get("refs/heads/main") == b"one"


def test_put_if_match(backend: Backend) -> None:
    backend.put_if_absent("refs/heads/main", b"one")
    data, tag = backend.get_with_tag("refs/heads/main")
    assert data == b"one"
    new_tag = backend.put_if_match("refs/heads/main", b"two", tag)
    assert new_tag != tag
    with pytest.raises(PreconditionFailedError):
        backend.put_if_match("refs/heads/main", b"three", tag)  # stale tag
    assert backend.get("refs/heads/main") == b"two"


def test_compare_and_swap_race_has_one_winner(backend: Backend) -> None:
    backend.put_if_absent("refs/heads/main", b"base")
    _, tag = backend.get_with_tag("refs/heads/main")
    wins: list[bytes] = []
    losses: list[bytes] = []
    barrier = threading.Barrier(6)

    def attempt(value: bytes) -> None:
        barrier.wait()
        try:
            backend.put_if_match("refs/heads/main", value, tag)
            wins.append(value)
        except PreconditionFailedError:
            losses.append(value)

    threads = [threading.Thread(target=attempt, args=(f"v{i}".encode(),)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 5
    assert backend.get("refs/heads/main") == wins[0]


def test_invalid_keys_are_refused(backend: Backend) -> None:
    for key in ("", "/abs", "a/../b"):
        with pytest.raises(BackendError):
            backend.put(key, b"x")


def test_requests_are_counted(backend: Backend) -> None:
    before = backend.stats.requests
    backend.put("k", b"abc")
    backend.get("k")
    assert backend.stats.requests - before == 2
    assert backend.stats.bytes_sent >= 3 and backend.stats.bytes_received >= 3


def test_retry_recovers_from_transient_faults(tmp_path: Path) -> None:
    inner = open_backend(str(tmp_path / "r"))
    inner.put("k", b"value")
    faulty = FaultInjectingBackend(
        inner, [Rule("get", "transient", calls={1, 2}), Rule("get", "throttle", calls={1})]
    )
    sleeps: list[float] = []
    b = RetryingBackend(faulty, attempts=5, sleep=sleeps.append)
    assert b.get("k") == b"value"
    assert b.retries == 3 and len(sleeps) == 3
    assert all(0 <= s <= 5.0 for s in sleeps)


def test_retry_gives_up_after_budget_with_hint(tmp_path: Path) -> None:
    inner = open_backend(str(tmp_path / "r"))
    inner.put("k", b"value")
    b = RetryingBackend(
        FaultInjectingBackend(inner, [Rule("get", "timeout")]), attempts=3, sleep=lambda s: None
    )
    with pytest.raises(BackendError) as e:
        b.get("k")
    assert "gave up after 3 attempts" in str(e.value) and e.value.hint


def test_permanent_errors_are_not_retried(tmp_path: Path) -> None:
    inner = open_backend(str(tmp_path / "r"))
    inner.put("k", b"value")
    faulty = FaultInjectingBackend(inner, [Rule("get", "error")])
    b = RetryingBackend(faulty, attempts=5, sleep=lambda s: None)
    with pytest.raises(BackendError):
        b.get("k")
    assert b.retries == 0 and len(faulty.log) == 1


def test_a_missing_bucket_is_not_a_missing_key(s3_server: object, tmp_path: Path) -> None:
    """A key of a bucket that does not exist: not KeyNotFoundError (which push reads as
    "a new remote" and goes on), but its own error naming the bucket, exit 4 in dsv."""
    from dsv.backends import BucketNotFoundError

    from .conftest import run_dsv

    endpoint = s3_server.endpoint  # type: ignore[attr-defined]
    name = f"missing{uuid.uuid4().hex[:12]}"
    b = open_backend(f"s3://{name}/prefix", {"endpoint-url": endpoint})
    with pytest.raises(BucketNotFoundError, match=f"the bucket '{name}' does not exist"):
        b.get("dsv-remote.json")
    work = tmp_path / "w"
    run_dsv("init", str(work), cwd=tmp_path)
    (work / "f").write_text("x")
    assert run_dsv("commit", "-m", "v1", cwd=work).returncode == 0
    url = f"s3://{name}/prefix"
    r = run_dsv("remote", "add", "origin", url, "--endpoint-url", endpoint, cwd=work)
    assert r.returncode == 0, r.stderr
    for args in (
        ["push"],
        ["ls-remote", "origin"],
        ["clone", url, str(tmp_path / "c"), "--endpoint-url", endpoint],
    ):
        r = run_dsv(*args, cwd=work)
        assert r.returncode == 4, (args, r.stderr)
        assert f"the bucket '{name}' does not exist" in r.stderr.decode(), (args, r.stderr)
    assert not (tmp_path / "c").exists()
