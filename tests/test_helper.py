"""The helper process of status and commit (dsv.worktree.helper): real forks, real pipes."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsv import api
from dsv.errors import DsvIOError
from dsv.repo import Repository
from dsv.worktree import helper as helper_mod
from dsv.worktree import scan as scan_mod
from dsv.worktree.helper import Helper
from dsv.worktree.scan import STAT, scan_dir
from dsv.worktree.snapshot import HELPER_MIN, read_small_files
from tests.conftest import run_dsv

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def _tree(root: Path, dirs: int, files: int, seed: int = 0) -> None:
    for d in range(dirs):
        sub = root / f"d{d:02}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(files):
            (sub / f"f{f:04}.bin").write_bytes(f"{seed}/{d}/{f}".encode() * (1 + f % 7))


def _recs(path: Path, names: list[str]) -> bytes:
    return b"".join(
        STAT.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
        for st in (os.lstat(path / n) for n in names)
    )


def _pack_files(repo: Repository) -> list[str]:
    return sorted(p.name for p in repo.store.pack_dir.iterdir())


def _temp_packs(repo: Repository) -> list[str]:
    """Packs being written (or left behind unfinished)."""
    return [n for n in _pack_files(repo) if n.startswith(".dsv-tmp")]


def _files(repo: Repository, n: int, seed: int = 0) -> tuple[Path, list[str], bytes]:
    """A directory ``d00`` of ``n`` files: its path, their names, their scan records."""
    _tree(repo.root, 1, n, seed)
    d = repo.root / "d00"
    names = sorted(os.listdir(d))
    return d, names, _recs(d, names)


@pytest.fixture
def started(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> Iterator[Helper]:
    # made even though this test process may run a server thread of another
    # test (idle: nothing the helper uses is locked by it)
    monkeypatch.setattr(helper_mod, "wanted", lambda: True)
    h = Helper.start(
        repo.store,
        {"files": lambda *a: read_small_files(repo.store, repo.root, *a), "scan": scan_dir},
    )
    assert h is not None
    yield h
    h.close()


def test_scans_answered_out_of_order_match_a_local_scan(repo: Repository, started: Helper) -> None:
    _tree(repo.root, 5, 40)
    paths = [str(repo.root / f"d{d:02}") for d in range(5)] + [str(repo.root / "missing")]
    tickets = [started.submit("scan", p) for p in paths]
    # taken in another order than asked: each answer is kept until asked for
    for p, t in reversed(list(zip(paths, tickets, strict=True))):
        assert started.result(t) == scan_dir(p)
    assert started.result(started.submit("scan", paths[-1])) is None
    assert started.pending == 0


def test_large_requests_while_answers_wait_do_not_deadlock(
    repo: Repository, started: Helper, request: pytest.FixtureRequest
) -> None:
    # answers bigger than the pipes, left unread while a request bigger than
    # the pipes is written: the parent reads the answers as it writes (a
    # deadlock fails the test after a minute instead of hanging it)
    def hung(signum: int, frame: object) -> None:
        raise AssertionError("deadlock: the request was never written")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    request.addfinalizer(lambda: (signal.alarm(0), signal.signal(signal.SIGALRM, old)))
    d = repo.root / "big"
    d.mkdir()
    for i in range(6000):
        (d / f"{'n' * 150}{i:06}").write_bytes(b"x")
    tickets = [started.submit("scan", str(d)) for _ in range(4)]
    names = sorted(os.listdir(d))
    files = started.submit("files", "big", names, _recs(d, names))
    ids = started.result(files)
    assert len(ids) == len(names) * repo.algo.digest_size
    assert ids[: repo.algo.digest_size] == repo.algo.digest(b"x")
    expected = scan_dir(str(d))
    for t in tickets:
        assert started.result(t) == expected


def test_objects_of_the_helper_join_the_store_when_adopted(
    repo: Repository, started: Helper
) -> None:
    d, names, recs = _files(repo, 30, seed=7)
    ids = started.result(started.submit("files", "d00", names, recs))
    ds = repo.algo.digest_size
    first = ids[:ds]
    assert not repo.store.has(first)  # in the helper's pack, not yet visible here
    started.finish()
    started.adopt()
    for k, name in enumerate(names):
        assert repo.store.get_bytes(ids[k * ds : (k + 1) * ds]) == (d / name).read_bytes()
    assert started.written_bytes > 0
    assert not _temp_packs(repo)


def test_an_error_in_the_helper_is_raised_with_its_message(
    repo: Repository, started: Helper
) -> None:
    d, names, recs = _files(repo, 10)
    (d / names[3]).unlink()
    with pytest.raises(DsvIOError, match=f"d00/{names[3]} vanished"):
        started.result(started.submit("files", "d00", names, recs))
    started.close()
    # the helper discarded what it had written
    assert not _temp_packs(repo)


def test_requests_after_the_helper_failed_raise_its_error(
    repo: Repository, started: Helper
) -> None:
    d, names, recs = _files(repo, 10)
    (d / names[0]).write_bytes(b"changed since the scan, and longer")
    started.submit("files", "d00", names, recs)
    os.waitpid(started.pid, 0)  # it answered, and stopped
    with pytest.raises(DsvIOError, match="changed while"):
        started.submit("scan", str(d))  # no one reads the request


def test_a_killed_helper_is_a_clear_error(repo: Repository, started: Helper) -> None:
    _tree(repo.root, 1, 5)
    os.kill(started.pid, signal.SIGKILL)
    with pytest.raises(DsvIOError, match="helper process stopped unexpectedly"):
        started.result(started.submit("scan", str(repo.root / "d00")))


def test_a_helper_whose_parent_is_gone_discards_its_pack(repo: Repository, started: Helper) -> None:
    _, names, recs = _files(repo, 1000)
    started.result(started.submit("files", "d00", names, recs))
    deadline = time.monotonic() + 30
    while not _temp_packs(repo):  # being written
        assert time.monotonic() < deadline, "the helper never started its pack"
        time.sleep(0.01)
    # objects queued and written, nothing sealed: the pipe closes as if this
    # process died, and the helper exits without leaving anything
    started.close()
    assert _pack_files(repo) == []


def test_no_helper_when_turned_off_or_with_threads(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSV_HELPER_PROCESS", "0")
    assert Helper.start(repo.store, {}) is None
    monkeypatch.delenv("DSV_HELPER_PROCESS")
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not helper_mod.wanted()
    finally:
        stop.set()
        t.join()


@pytest.mark.parametrize("ignore", [False, True])
def test_commit_and_status_with_and_without_the_helper_agree(tmp_path: Path, ignore: bool) -> None:
    trees = {}
    summaries = {}
    for helper in ("1", "0"):
        env = {"DSV_HELPER_PROCESS": helper}
        root = tmp_path / f"h{helper}"
        Repository.init(root)
        _tree(root, 6, HELPER_MIN * 2)
        _tree(root / "d03" / "sub", 3, 12, seed=1)
        if ignore:  # an ignore file read in a directory the helper may list
            (root / "d03" / ".dsvignore").write_text("f000*\nsub/d01/\n")
        commit = run_dsv("commit", "-m", "v1", "--json", cwd=root, env=env)
        assert commit.returncode == 0, commit.stderr
        packs = list((root / ".dsv" / "objects" / "pack").glob("*.pack"))
        # with the helper (which needs two cores), files went into a pack of its own
        assert (len(packs) > 1) == (helper == "1" and helper_mod._cores() >= 2)
        fsck = run_dsv("fsck", cwd=root)
        assert fsck.returncode == 0, fsck.stderr
        trees[helper] = json.loads(commit.stdout)["tree"]
        st = json.loads(run_dsv("status", "--json", cwd=root, env=env).stdout)
        assert st["clean"] is True
        (root / "d04" / "f0005.bin").write_bytes(b"new bytes")
        (root / "d02" / "f0011.bin").unlink()
        (root / "d05" / "added.bin").write_bytes(b"added")
        st = json.loads(run_dsv("status", "--json", cwd=root, env=env).stdout)
        assert (st["added"], st["modified"], st["deleted"]) == (
            ["d05/added.bin"],
            ["d04/f0005.bin"],
            ["d02/f0011.bin"],
        )
        ls = json.loads(run_dsv("ls-tree", "HEAD", "-r", "--json", cwd=root).stdout)
        listed = {e["path"] for e in ls}
        assert ("d03/f0001.bin" in listed) != ignore
        assert ("d03/sub/d01/f0011.bin" in listed) != ignore
        # ignored: f0000-f0009 in d03 and below (10 + 3 * 10), and the other 2 of
        # sub/d01; the ignore file itself is tracked
        assert len(listed) == 6 * HELPER_MIN * 2 + 36 - (41 if ignore else 0)
        # a second commit whose changes are spread over directories the helper read
        # half of (their ids come in after the next directory is entered)
        for d in range(6):
            (root / f"d{d:02}" / f"f{HELPER_MIN + d:04}.bin").write_bytes(b"changed %d" % d)
        v2 = run_dsv("commit", "-m", "v2", "--json", cwd=root, env=env)
        assert v2.returncode == 0, v2.stderr
        out = json.loads(v2.stdout)
        trees[helper + "v2"] = out["tree"]
        summaries[helper] = out["summary"]
        assert json.loads(run_dsv("status", "--json", cwd=root, env=env).stdout)["clean"]
    assert trees["1"] == trees["0"] and trees["1v2"] == trees["0v2"]
    assert summaries["1"] == summaries["0"]
    assert summaries["1"]["files"]["modified"] == 7  # the six and d04/f0005.bin


def test_a_helper_closed_without_waiting_is_reaped_later(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helper_mod, "wanted", lambda: True)
    first = Helper.start(repo.store, {"scan": scan_dir})
    assert first is not None
    first.close(wait=False)
    deadline = time.monotonic() + 30
    while first.pid in helper_mod._unreaped:  # the next helper's close reaps it once it exited
        assert time.monotonic() < deadline, "never reaped"
        later = Helper.start(repo.store, {"scan": scan_dir})
        assert later is not None
        later.close()
        time.sleep(0.01)
    with pytest.raises(ChildProcessError):  # no such child left: not a zombie
        os.waitpid(first.pid, os.WNOHANG)


def _as_found(scanned: Any) -> tuple[dict[str, bytes], list[str], list[str], int, bool]:
    """What scan_dir found, whatever the order it listed in: name -> record, subdirectories,
    special files, newest mtime, whether an ignore file is there."""
    names, dirs, special, recs, newest, has_ignore = scanned
    assert len(names) == len(recs)
    return dict(zip(names, recs, strict=True)), sorted(dirs), sorted(special), newest, has_ignore


def _big_dir(root: Path, n: int) -> Path:
    d = root / "big"
    d.mkdir()
    for i in range(n):
        (d / f"f{i:03}").write_bytes(b"x" * i)
    (d / "sub").mkdir()
    os.mkfifo(d / "fifo")
    (d / "link").symlink_to("f001")
    (d / ".dsvignore").write_text("f05*\n")
    return d


@pytest.mark.parametrize("copy", ["works", "dies", "none"])
def test_a_big_directory_stat_by_two_processes_scans_as_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy: str
) -> None:
    """Past SPLIT_MIN files, a forked copy stats the last half of a directory's files: what
    the scan finds is the same; a copy that dies leaves its half to the scan (no fork where
    a helper is not wanted)."""
    d = _big_dir(tmp_path, 80)
    expected = _as_found(scan_dir(str(d)))
    assert len(expected[0]) == 82 and expected[2] == ["fifo"]
    monkeypatch.setattr(scan_mod, "SPLIT_MIN", 7)
    monkeypatch.setattr(helper_mod, "wanted", lambda: copy != "none")
    forks: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    if copy == "dies":
        parent = os.getpid()
        real = scan_mod._stat_names

        def dying(*args: Any) -> int:
            if os.getpid() != parent:
                os._exit(9)
            return real(*args)

        monkeypatch.setattr(scan_mod, "_stat_names", dying)
    assert _as_found(scan_dir(str(d), split=True)) == expected
    assert len(forks) == (0 if copy == "none" else 1)
    assert _as_found(scan_dir(str(d))) == expected and len(forks) == (copy != "none")


def test_status_of_a_directory_stat_by_two_processes(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status with a directory of more than SPLIT_MIN files: changes in both halves found."""
    _tree(repo.root, 1, 400)
    api.commit(repo, "v1")
    monkeypatch.setattr(scan_mod, "SPLIT_MIN", 50)
    monkeypatch.setattr(helper_mod, "wanted", lambda: True)
    d = repo.root / "d00"
    (d / "f0001.bin").write_bytes(b"changed")
    (d / "f0399.bin").write_bytes(b"changed too")
    (d / "f0200.bin").unlink()
    (d / "new.bin").write_bytes(b"added")
    st = api.status(repo)
    assert (st.added, st.modified, st.deleted) == (
        ["d00/new.bin"],
        ["d00/f0001.bin", "d00/f0399.bin"],
        ["d00/f0200.bin"],
    )
    api.commit(repo, "v2")
    assert api.status(repo).clean
