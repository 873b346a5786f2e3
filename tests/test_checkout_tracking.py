"""Checking out a branch that exists only on a remote, pruning the tracking refs of
branches a remote deleted, and finishing a clone that was killed.

Everything runs in real ``dsv`` processes against local directory remotes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dsv.errors import ExitCode

from .conftest import run_dsv, snapshot, write


def _ok(*args: str, cwd: Path) -> str:
    r = run_dsv(*args, cwd=cwd)
    assert r.returncode == 0, (args, r.stdout.decode(), r.stderr.decode())
    return r.stdout.decode()


def _json(*args: str, cwd: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(_ok(*args, "--json", cwd=cwd))
    return out


def _status(cwd: Path) -> dict[str, Any]:
    return _json("status", cwd=cwd)


def _clean(st: dict[str, Any]) -> bool:
    return not (st["added"] or st["modified"] or st["deleted"])


def _published(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[bytes, int] | str]]:
    """A repository with two commits on main, pushed to a directory remote.

    Returns the source, the remote and main's files.
    """
    src = tmp_path / "src"
    src.mkdir()
    _ok("init", cwd=src)
    write(src / "labels.csv", "id,label\n1,cat\n2,dog\n")
    write(src / "images/0001.png", os.urandom(3000))
    write(src / "images/0002.png", os.urandom(3000))
    _ok("commit", "-m", "v1", cwd=src)
    write(src / "images/sub/0003.png", os.urandom(2000))
    write(src / "README.txt", "pets\n")
    _ok("commit", "-m", "v2", cwd=src)
    remote = tmp_path / "remote"
    _ok("remote", "add", "origin", str(remote), cwd=src)
    _ok("push", "-q", cwd=src)
    return src, remote, snapshot(src)


def _fetched(tmp_path: Path, remote: Path, name: str = "x") -> Path:
    """``dsv init`` + ``remote add origin`` + ``fetch``: HEAD names main, which does not exist."""
    d = tmp_path / name
    d.mkdir()
    _ok("init", cwd=d)
    _ok("remote", "add", "origin", str(remote), cwd=d)
    _ok("fetch", "-q", cwd=d)
    return d


# ---------------------------------------------------------------- checkout BRANCH from a remote


def test_checkout_of_a_fetched_branch_into_a_new_repository_writes_every_file(
    tmp_path: Path,
) -> None:
    """init, remote add, fetch, checkout main: main was made first, at origin/main's commit,
    so the empty working tree looked like a local deletion of every file (all "kept",
    nothing written, and the next commit would have deleted the dataset)."""
    _src, remote, files = _published(tmp_path)
    d = _fetched(tmp_path, remote)
    out = _json("checkout", "main", cwd=d)
    assert out["branch"] == "main"
    assert out["kept"] == []
    assert out["written"] == 5
    assert snapshot(d) == files
    assert _clean(_status(d))
    tip = _ok("rev-parse", "origin/main", cwd=d).strip()
    assert _ok("rev-parse", "main", cwd=d).strip() == tip == out["commit"]
    assert "ok" in _ok("verify", cwd=d)
    r = run_dsv("commit", "-m", "nothing", cwd=d)
    assert r.returncode == ExitCode.CONFLICT  # nothing to commit: no deletion recorded
    # HEAD's reflog: main came from nothing to origin/main's commit
    head_log = (d / ".dsv/logs/HEAD").read_text().splitlines()
    assert head_log[-1].split()[:2] == ["0" * len(tip), tip]


def test_text_output_of_that_checkout(tmp_path: Path) -> None:
    _src, remote, _files = _published(tmp_path)
    d = _fetched(tmp_path, remote)
    out = _ok("checkout", "main", cwd=d)
    assert "Switched to branch 'main'" in out and "wrote 5 files" in out
    assert "kept" not in out


def test_an_untracked_file_in_the_way_is_a_conflict_and_no_branch_is_made(
    tmp_path: Path,
) -> None:
    _src, remote, files = _published(tmp_path)
    d = _fetched(tmp_path, remote)
    write(d / "labels.csv", "mine\n")
    r = run_dsv("checkout", "main", cwd=d)
    assert r.returncode == ExitCode.CONFLICT, r.stderr.decode()
    assert b"labels.csv" in r.stderr
    assert (d / "labels.csv").read_text() == "mine\n"
    assert not (d / "images").exists()  # nothing was written
    # main was not created: HEAD still names it, with no commit
    assert json.loads(_ok("branch", "--json", cwd=d)) == [
        {"name": "main", "commit": None, "current": True}
    ]
    st = _status(d)
    assert st["added"] == ["labels.csv"] and st["deleted"] == []
    # an untracked file with the very bytes of the version is no conflict
    write(d / "labels.csv", files["labels.csv"][0])
    out = _json("checkout", "main", cwd=d)
    assert out["kept"] == [] and snapshot(d) == files


def test_force_overwrites_an_untracked_file_in_the_way(tmp_path: Path) -> None:
    _src, remote, files = _published(tmp_path)
    d = _fetched(tmp_path, remote)
    write(d / "labels.csv", "mine\n")
    write(d / "notes.txt", "untracked, elsewhere\n")
    _ok("checkout", "-f", "main", cwd=d)
    assert (d / "notes.txt").read_text() == "untracked, elsewhere\n"
    del (got := snapshot(d))["notes.txt"]
    assert got == files


def test_real_local_changes_are_still_kept_or_refused(tmp_path: Path) -> None:
    """A branch that exists only as origin/exp, checked out from main with local changes:
    a change to a path exp does not change is kept, one to a path it changes is refused
    (and then exp is not created)."""
    src, remote, _files = _published(tmp_path)
    _ok("branch", "exp", cwd=src)
    _ok("checkout", "exp", cwd=src)
    write(src / "labels.csv", "id,label\n1,cat\n2,cat\n")
    _ok("commit", "-m", "exp", cwd=src)
    _ok("push", "-q", "origin", "exp", cwd=src)
    exp_files = snapshot(src)

    c = tmp_path / "c"
    _ok("clone", "-q", str(remote), str(c), cwd=tmp_path)
    (c / "README.txt").unlink()  # exp does not change it: kept
    write(c / "images/0001.png", b"edited")  # exp does not change it: kept
    write(c / "labels.csv", "edited\n")  # exp changes it: a conflict
    r = run_dsv("checkout", "exp", cwd=c)
    assert r.returncode == ExitCode.CONFLICT and b"labels.csv" in r.stderr
    assert run_dsv("rev-parse", "refs/heads/exp", cwd=c).returncode == ExitCode.NOT_FOUND
    assert (c / "labels.csv").read_text() == "edited\n"

    write(c / "labels.csv", exp_files["labels.csv"][0])
    out = _json("checkout", "exp", cwd=c)
    assert out["branch"] == "exp"
    assert out["kept"] == ["README.txt", "images/0001.png"]
    assert not (c / "README.txt").exists()
    assert (c / "images/0001.png").read_bytes() == b"edited"
    st = _status(c)
    assert st["deleted"] == ["README.txt"] and st["modified"] == ["images/0001.png"]
    assert _ok("rev-parse", "exp", cwd=c) == _ok("rev-parse", "origin/exp", cwd=c)


def test_a_partial_clone_downloads_the_remote_branch_it_checks_out(tmp_path: Path) -> None:
    src, remote, _files = _published(tmp_path)
    _ok("branch", "exp", cwd=src)
    _ok("checkout", "exp", cwd=src)
    write(src / "big/new.bin", os.urandom(50_000))
    _ok("commit", "-m", "exp", cwd=src)
    _ok("push", "-q", "origin", "exp", cwd=src)
    exp_files = snapshot(src)
    _ok("checkout", "main", cwd=src)
    write(src / "images/0002.png", os.urandom(4000))
    _ok("commit", "-m", "main moves on", cwd=src)
    _ok("push", "-q", cwd=src)

    c = tmp_path / "c"
    _ok("clone", "-q", "--no-link", str(remote), str(c), cwd=tmp_path)
    out = _json("checkout", "exp", cwd=c)
    assert out["branch"] == "exp" and out["kept"] == []
    assert snapshot(c) == exp_files
    assert "ok" in _ok("verify", cwd=c)


# ---------------------------------------------------------------- fetch prunes, pull uses what is there


def test_fetch_prunes_a_branch_the_remote_deleted_and_pull_says_it_is_gone(
    tmp_path: Path,
) -> None:
    src, remote, _files = _published(tmp_path)
    _ok("branch", "mine", "HEAD~1", cwd=src)
    _ok("push", "-q", "origin", "mine", cwd=src)
    _ok("tag", "v1", "HEAD~1", cwd=src)
    _ok("push", "-q", "origin", "v1", cwd=src)
    c = tmp_path / "c"
    _ok("clone", "-q", str(remote), str(c), cwd=tmp_path)
    _ok("branch", "keep", "origin/mine", cwd=c)
    write(c / "labels.csv", "id,label\n")
    _ok("commit", "-m", "local", cwd=c)  # main and origin/mine have diverged
    old = _ok("rev-parse", "origin/mine", cwd=c).strip()

    (remote / "refs/heads/mine").unlink()  # deleted on the remote
    r = run_dsv("fetch", cwd=c)
    assert r.returncode == 0
    assert (
        f"refs/remotes/origin/mine: pruned, the remote has no such branch now (was {old[:10]})"
        in (r.stdout.decode())
    )
    assert run_dsv("rev-parse", "origin/mine", cwd=c).returncode == ExitCode.NOT_FOUND
    # a local branch made from it, and tags, stay
    assert _ok("rev-parse", "keep", cwd=c).strip() == old
    assert _ok("rev-parse", "v1", cwd=c).strip() == old
    assert _ok("rev-parse", "origin/main", cwd=c).strip()

    r = run_dsv("pull", "origin", "mine", cwd=c)
    assert r.returncode == ExitCode.NOT_FOUND, r.stderr.decode()
    assert b"the remote 'origin' has no branch 'mine'" in r.stderr
    assert (c / "labels.csv").read_text() == "id,label\n"


def test_pull_right_after_the_remote_deleted_a_branch_that_was_fetched(tmp_path: Path) -> None:
    """No fetch in between: the pull's own fetch drops the stale tracking ref."""
    src, remote, _files = _published(tmp_path)
    _ok("branch", "mine", "HEAD~1", cwd=src)
    _ok("push", "-q", "origin", "mine", cwd=src)
    c = tmp_path / "c"
    _ok("clone", "-q", str(remote), str(c), cwd=tmp_path)
    write(c / "labels.csv", "id,label\n")
    _ok("commit", "-m", "local", cwd=c)
    (remote / "refs/heads/mine").unlink()
    r = run_dsv("pull", "--json", "origin", "mine", cwd=c)
    assert r.returncode == ExitCode.NOT_FOUND, r.stderr.decode()
    assert b"has no branch 'mine'" in r.stderr
    assert run_dsv("rev-parse", "origin/mine", cwd=c).returncode == ExitCode.NOT_FOUND
    # a fetch now has nothing left to prune; its JSON says so
    out = _json("fetch", cwd=c)
    assert out["pruned"] == {} and out["refs"] == {}
    # and a push reports no pruning either
    assert _json("push", cwd=c)["pruned"] == {}


def test_fetch_json_names_the_pruned_refs_and_keeps_other_remotes(tmp_path: Path) -> None:
    src, remote, _files = _published(tmp_path)
    _ok("branch", "mine", cwd=src)
    _ok("push", "-q", "origin", "mine", cwd=src)
    other = tmp_path / "other"
    _ok("remote", "add", "other", str(other), cwd=src)
    _ok("push", "-q", "other", "main", "mine", cwd=src)
    c = tmp_path / "c"
    _ok("clone", "-q", str(remote), str(c), cwd=tmp_path)
    _ok("remote", "add", "other", str(other), cwd=c)
    _ok("fetch", "-q", "other", cwd=c)
    tip = _ok("rev-parse", "origin/mine", cwd=c).strip()
    (remote / "refs/heads/mine").unlink()
    out = _json("fetch", "origin", cwd=c)
    assert out["pruned"] == {"refs/remotes/origin/mine": tip}
    assert _ok("rev-parse", "other/mine", cwd=c).strip() == tip  # another remote's: kept
    # the branch comes back on the remote: the next fetch brings its tracking ref back
    write(remote / "refs/heads/mine", tip + "\n")
    out = _json("fetch", "origin", cwd=c)
    assert out["refs"] == {"refs/remotes/origin/mine": tip} and out["pruned"] == {}


# ---------------------------------------------------------------- a clone that was killed


def _popen(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dsv", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: killed with any process it forked
    )


def _kill(p: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def test_a_clone_killed_while_fetching_is_finished_by_the_commands_of_its_hint(
    tmp_path: Path,
) -> None:
    _src, remote, files = _published(tmp_path)
    # a pack of the remote that blocks whoever opens it: the clone stops there
    pack = sorted((remote / "packs").glob("*.pack"))[0]
    real = pack.with_name(pack.name + ".real")
    pack.rename(real)
    os.mkfifo(pack)
    p = _popen("clone", "-q", str(remote), "c", cwd=tmp_path)
    fd = -1
    try:
        deadline = time.monotonic() + 60
        while fd < 0:  # opening the write end succeeds once the clone opened the read end
            assert p.poll() is None and time.monotonic() < deadline
            try:
                fd = os.open(pack, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENXIO
                time.sleep(0.01)
    finally:
        _kill(p)
        if fd >= 0:
            os.close(fd)
        pack.unlink()
        real.rename(pack)
    c = tmp_path / "c"
    assert (c / ".dsv").is_dir()

    r = run_dsv("clone", str(remote), "c", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFLICT
    err = r.stderr.decode()
    assert "c exists and is not empty" in err
    assert "hint: it holds an interrupted clone of" in err
    cmds = "dsv -C c fetch && dsv -C c checkout main"
    assert cmds in err
    for cmd in cmds.split(" && "):
        _ok(*cmd.split()[1:], cwd=tmp_path)
    assert snapshot(c) == files
    assert _clean(_status(c))
    assert "ok" in _ok("verify", cwd=c)
    assert _ok("rev-parse", "main", cwd=c) == _ok("rev-parse", "origin/main", cwd=c)
    # a finished clone is not called interrupted
    r = run_dsv("clone", str(remote), "c", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFLICT and b"hint" not in r.stderr


def test_a_clone_killed_while_checking_out_is_finished_by_the_command_of_its_hint(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _ok("init", cwd=src)
    write(src / "big.bin", os.urandom(48 << 20))  # its checkout takes a while
    for i in range(40):
        write(src / f"small/{i}.txt", f"{i}\n")
    _ok("commit", "-m", "v1", cwd=src)
    files = snapshot(src)
    remote = tmp_path / "remote"
    _ok("remote", "add", "origin", str(remote), cwd=src)
    _ok("push", "-q", cwd=src)

    c = tmp_path / "c"
    p = _popen("clone", "-q", str(remote), str(c), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        # HEAD's reflog is written as the clone sets HEAD, just before its checkout
        while not (c / ".dsv/logs/HEAD").exists():
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
        os.killpg(p.pid, signal.SIGSTOP)
        assert p.poll() is None  # stopped before it finished
    finally:
        _kill(p)
    assert snapshot(c) != files
    assert _status(c)["deleted"]  # what it did not write looks deleted

    r = run_dsv("clone", str(remote), str(c), cwd=tmp_path)
    assert r.returncode == ExitCode.CONFLICT
    err = r.stderr.decode()
    assert "hint: it holds an interrupted clone of" in err
    assert f"finish it with: dsv -C {c} checkout -f HEAD" in err
    _ok("-C", str(c), "checkout", "-f", "HEAD", cwd=tmp_path)
    assert snapshot(c) == files
    assert _clean(_status(c))
    r = run_dsv("clone", str(remote), str(c), cwd=tmp_path)
    assert r.returncode == ExitCode.CONFLICT and b"hint" not in r.stderr


def test_no_hint_for_a_directory_that_holds_something_else(tmp_path: Path) -> None:
    _src, remote, _files = _published(tmp_path)
    (tmp_path / "junk").mkdir()
    write(tmp_path / "junk/file", "x")
    r = run_dsv("clone", str(remote), "junk", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFLICT and b"hint" not in r.stderr
    # a repository with no commit whose origin is another URL
    d = tmp_path / "d"
    d.mkdir()
    _ok("init", cwd=d)
    _ok("remote", "add", "origin", str(tmp_path / "elsewhere"), cwd=d)
    r = run_dsv("clone", str(remote), "d", cwd=tmp_path)
    assert r.returncode == ExitCode.CONFLICT and b"hint" not in r.stderr


def test_clone_default_directory_is_below_dash_c(tmp_path: Path) -> None:
    _src, remote, files = _published(tmp_path)
    (tmp_path / "here").mkdir()
    _ok("-C", "here", "clone", "-q", str(remote), cwd=tmp_path)
    assert snapshot(tmp_path / "here/remote") == files
    assert not (tmp_path / "remote/.dsv").exists()
