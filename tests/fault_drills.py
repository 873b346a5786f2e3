"""Fault drills: push and fetch through a backend that injects faults, and a full or failing disk.

Each drill returns a report line and whether every check held.  Used by
tests/test_faults.py and bench/reliability.py.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from dsv import api
from dsv.api import remote as rapi
from dsv.backends import BackendError, open_backend
from dsv.backends.faults import FaultInjectingBackend, Rule
from dsv.backends.retry import RetryingBackend
from dsv.errors import CorruptObjectError, DsvIOError
from dsv.repo import Repository
from dsv.sync import Remote, get_remote_config, transfer

os.environ.setdefault("DSV_AUTHOR_NAME", "Drill")
os.environ.setdefault("DSV_AUTHOR_EMAIL", "drill@example.com")


def _dataset(root: Path, rng: random.Random, n: int = 60) -> None:
    for i in range(n):
        p = root / f"d{i % 5}/{i:03d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(3000 + rng.randrange(20000)))
    (root / "big.bin").write_bytes(rng.randbytes(3 << 20))


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".dsv"]
        for f in files:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def _faulty(
    repo: Repository, rules: list[Rule], seed: int
) -> tuple[Remote, FaultInjectingBackend, RetryingBackend]:
    cfg = get_remote_config(repo, "origin")
    faulty = FaultInjectingBackend(open_backend(cfg.url), rules, seed=seed)
    retrying = RetryingBackend(faulty, attempts=6, sleep=lambda s: None)
    return Remote(repo, cfg, backend=retrying), faulty, retrying


def _fresh(base: Path, name: str, seed: int) -> Repository:
    root = base / name
    Repository.init(root)
    repo = Repository(root)
    _dataset(root, random.Random(seed))
    api.commit(repo, "v1")
    return repo


def drill_push_transient(base: Path, seed: int) -> tuple[str, bool]:
    repo = _fresh(base, "push-transient", seed)
    rapi.remote_add(repo, "origin", str(base / "push-transient-remote"))
    rules = [
        Rule("put", "transient", probability=0.5, limit=6),
        Rule("list", "throttle", calls={1}),
        Rule("get", "timeout", calls={1}),
        Rule("put_if_absent", "transient", calls={1}),
        Rule("*", "slow", probability=0.2, delay=0.01),
    ]
    remote, faulty, retrying = _faulty(repo, rules, seed)
    transfer.push(repo, remote, ["refs/heads/main"])
    clone = rapi.clone(str(base / "push-transient-remote"), base / "push-transient-clone")[0]
    ok = _tree(clone.root) == _tree(repo.root) and api.fsck(clone).ok
    injected = len([f for f in faulty.log if f[2] != "slow"])
    return (
        f"push, transient faults: {injected} injected (+{len(faulty.log) - injected} slow),"
        f" {retrying.retries} retried, push completed, clone identical: {ok}",
        ok and injected > 0,
    )


def drill_fetch_faults(base: Path, seed: int) -> tuple[str, bool]:
    repo = _fresh(base, "fetch-src", seed)
    url = str(base / "fetch-remote")
    rapi.remote_add(repo, "origin", url)
    rapi.push(repo)
    Repository.init(base / "fetch-dst")
    dst = Repository(base / "fetch-dst")
    rapi.remote_add(dst, "origin", url)
    rules = [
        Rule("get_range", "transient", calls={1, 4}),
        Rule("get_range", "truncate", calls={2}),
        Rule("get_range", "flip", calls={3, 5}),
        Rule("get", "throttle", calls={1}),
        Rule("list", "timeout", calls={2}),
    ]
    remote, faulty, retrying = _faulty(dst, rules, seed)
    r = transfer.fetch(dst, remote)
    dst = Repository(dst.root)
    api.checkout(dst, "origin/main")
    ok = _tree(dst.root) == _tree(repo.root) and api.fsck(dst).ok
    return (
        f"fetch, transient/truncated/bit-flipped responses: {len(faulty.log)} injected,"
        f" {retrying.retries} retried, {r.objects} objects fetched and verified, data identical: {ok}",
        ok and len(faulty.log) >= 6,
    )


def drill_permanent_error(base: Path, seed: int) -> tuple[str, bool]:
    repo = _fresh(base, "push-permanent", seed)
    url = str(base / "push-permanent-remote")
    rapi.remote_add(repo, "origin", url)
    remote, _faulty_be, _ = _faulty(repo, [Rule("put", "error", key_contains=".idx")], seed)
    failed_clearly = False
    try:
        transfer.push(repo, remote, ["refs/heads/main"])
    except BackendError as exc:
        failed_clearly = "injected permanent error" in str(exc)
    ref_unmoved = not open_backend(url).list("refs/")
    r = rapi.push(repo)  # the re-run, without faults
    clone = rapi.clone(url, base / "push-permanent-clone")[0]
    ok = failed_clearly and ref_unmoved and _tree(clone.root) == _tree(repo.root)
    return (
        f"push, permanent error on an index upload: failed clearly {failed_clearly}, remote ref"
        f" unmoved {ref_unmoved}, re-run sent {r.bytes_sent} bytes and completed",
        ok,
    )


def drill_corrupt_remote(base: Path, seed: int) -> tuple[str, bool]:
    repo = _fresh(base, "corrupt-src", seed)
    url = str(base / "corrupt-remote")
    rapi.remote_add(repo, "origin", url)
    rapi.push(repo)
    Repository.init(base / "corrupt-dst")
    dst = Repository(base / "corrupt-dst")
    rapi.remote_add(dst, "origin", url)
    # every read of a pack comes back with a flipped bit: persistent corruption
    remote, faulty, _ = _faulty(dst, [Rule("get_range", "flip")], seed)
    rejected = False
    try:
        transfer.fetch(dst, remote)
    except CorruptObjectError:
        rejected = True
    clean = api.fsck(Repository(dst.root)).ok
    return (
        f"fetch from a remote whose packs are corrupt: rejected {rejected},"
        f" {len(faulty.log)} bad responses, local store still valid {clean}",
        rejected and clean,
    )


def drill_whole_pack_faults(base: Path, seed: int) -> tuple[str, bool]:
    """A clone's whole-pack downloads: a timeout is retried and the pack taken whole; a
    truncated or bit-flipped download is not taken, its records read by range instead."""
    repo = _fresh(base, "whole-src", seed)
    url = str(base / "whole-remote")
    rapi.remote_add(repo, "origin", url)
    rapi.push(repo)
    lines, ok = [], True
    for fault, whole in (("timeout", 1), ("truncate", 0), ("flip", 0)):
        Repository.init(base / f"whole-{fault}")
        dst = Repository(base / f"whole-{fault}")
        rapi.remote_add(dst, "origin", url)
        rules = [Rule("get", fault, calls={1}, key_contains=".pack")]
        remote, faulty, retrying = _faulty(dst, rules, seed)
        r = transfer.fetch(dst, remote, data_for=[repo.head_commit()], whole_packs=True)
        dst = Repository(dst.root)
        api.checkout(dst, "origin/main")
        same = _tree(dst.root) == _tree(repo.root) and api.fsck(dst).ok
        leftovers = [p for p in dst.store.pack_dir.iterdir() if p.name.startswith(".dsv-tmp-")]
        ok = ok and same and r.whole == whole and len(faulty.log) == 1 and not leftovers
        lines.append(f"{fault}: {r.whole} whole, {retrying.retries} retried, identical {same}")
    return "clone, faults on whole-pack downloads: " + "; ".join(lines), ok


@contextmanager
def _failing(target: object, name: str, err: int, after: int) -> Iterator[list[int]]:
    """Make ``target.name`` raise OSError(err) from its ``after``-th call on."""
    real = getattr(target, name)
    calls = [0]

    def fake(*a: object, **kw: object) -> object:
        calls[0] += 1
        if calls[0] > after:
            raise OSError(err, os.strerror(err))
        return real(*a, **kw)

    setattr(target, name, fake)
    try:
        yield calls
    finally:
        setattr(target, name, real)


def drill_disk_errors(base: Path, seed: int) -> tuple[str, bool]:
    results = []
    ok = True
    for label, name, err, after in (
        ("ENOSPC writing a pack through the page cache", "writev", errno.ENOSPC, 2),
        ("ENOSPC writing a pack with direct I/O", "pwrite", errno.ENOSPC, 0),
        ("EIO on fsync", "fsync", errno.EIO, 0),
        ("ENOSPC writing the reflog", "write", errno.ENOSPC, 0),
        ("EIO on a rename", "replace", errno.EIO, 0),
    ):
        repo = _fresh(base, f"disk-{name}", seed)
        head = repo.head_commit()
        rng = random.Random(seed)
        (repo.root / "big.bin").write_bytes(rng.randbytes(4 << 20))
        (repo.root / "new.bin").write_bytes(rng.randbytes(200_000))
        before = _tree(repo.root)
        fresh = Repository(repo.root)
        clear = False
        # packs are written with pwrite (direct I/O) or writev (through the page cache)
        direct = {"DSV_DIRECT_IO": "0" if name == "writev" else "1"}
        try:
            with mock.patch.dict(os.environ, direct), _failing(os, name, err, after):
                api.commit(fresh, "v2")
        except DsvIOError as exc:
            clear = os.strerror(err) in str(exc)
        again = Repository(repo.root)
        unmoved = again.head_commit() == head
        valid = api.fsck(again).ok
        leftovers = [p for p in again.store.pack_dir.iterdir() if p.name.startswith(".dsv-tmp")]
        intact = _tree(repo.root) == before
        api.commit(again, "v2 after the disk recovered")
        this_ok = clear and unmoved and valid and not leftovers and intact
        ok &= this_ok
        results.append(f"{label}: clear error {clear}, HEAD unmoved {unmoved}, fsck ok {valid}")
    return "disk faults during commit: " + "; ".join(results), ok


def drill_disk_full_checkout(base: Path, seed: int) -> tuple[str, bool]:
    repo = _fresh(base, "disk-checkout", seed)
    v1 = _tree(repo.root)
    (repo.root / "big.bin").write_bytes(random.Random(seed + 1).randbytes(3 << 20))
    api.commit(repo, "v2")
    v2 = _tree(repo.root)
    fresh = Repository(repo.root)
    clear = False
    with _failing(os, "writev", errno.ENOSPC, 0):  # checkout writes files with writev
        try:
            api.checkout(fresh, "HEAD~1")
        except DsvIOError as exc:
            clear = "No space left" in str(exc)
    untouched = _tree(repo.root) == v2
    again = Repository(repo.root)
    api.checkout(again, "HEAD~1")
    ok = clear and untouched and _tree(repo.root) == v1
    return (
        f"disk full during checkout: clear error {clear}, working tree untouched {untouched},"
        " re-run completed",
        ok,
    )


DRILLS: list[Callable[[Path, int], tuple[str, bool]]] = [
    drill_push_transient,
    drill_fetch_faults,
    drill_permanent_error,
    drill_corrupt_remote,
    drill_whole_pack_faults,
    drill_disk_errors,
    drill_disk_full_checkout,
]


def run_all(base: Path, seed: int) -> list[tuple[str, bool]]:
    out = []
    for i, d in enumerate(DRILLS):
        sub = base / f"drill{i}"
        sub.mkdir(parents=True, exist_ok=True)
        out.append(d(sub, seed))
    return out
