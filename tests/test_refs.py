"""Refs: compare-and-swap updates, reflogs, name rules, HEAD, and the repository lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsv.atomic import TEMP_MARK
from dsv.errors import ConflictError, DsvError, FormatError, LockedError
from dsv.refs import HEADS, Head, Refs, RepoLock, check_ref_name, ensure_dirs

DS = 16
A, B, C = (bytes([n]) * DS for n in (0xA1, 0xB2, 0xC3))
MAIN = HEADS + "main"


@pytest.fixture
def dsv_dir(tmp_path: Path) -> Path:
    d = tmp_path / ".dsv"
    ensure_dirs(d)
    return d


@pytest.fixture
def refs(dsv_dir: Path) -> Refs:
    return Refs(dsv_dir, DS)


# ------------------------------------------------------------------ updates


def test_update_creates_reads_and_deletes(refs: Refs, dsv_dir: Path) -> None:
    assert refs.read(MAIN) is None
    refs.update(MAIN, A, expect=None, message="create")
    assert refs.read(MAIN) == A
    assert (dsv_dir / MAIN).read_text() == A.hex() + "\n"
    refs.update(MAIN, None, expect=A, message="delete")
    assert refs.read(MAIN) is None
    assert not (dsv_dir / MAIN).exists()


def test_update_with_matching_expect_swaps(refs: Refs) -> None:
    refs.update(MAIN, A, expect=None, message="one")
    refs.update(MAIN, B, expect=A, message="two")
    assert refs.read(MAIN) == B


@pytest.mark.parametrize("expect", [None, A, C])
def test_update_with_stale_expect_conflicts_and_keeps_old_value(refs: Refs, expect) -> None:
    refs.update(MAIN, A, expect=None, message="one")
    refs.update(MAIN, B, expect=A, message="two")
    log_before = refs.reflog(MAIN)
    with pytest.raises(ConflictError):
        refs.update(MAIN, C, expect=expect, message="lost race")
    assert refs.read(MAIN) == B
    assert refs.reflog(MAIN) == log_before
    with pytest.raises(ConflictError):
        refs.update(MAIN, None, expect=expect, message="lost race")
    assert refs.read(MAIN) == B


def test_expect_none_means_must_not_exist(refs: Refs) -> None:
    refs.update(HEADS + "topic", A, expect=None, message="create")
    with pytest.raises(ConflictError):
        refs.update(HEADS + "topic", B, expect=None, message="create again")
    assert refs.read(HEADS + "topic") == A
    # The default (no expect) overwrites whatever is there.
    refs.update(HEADS + "topic", C, message="force")
    assert refs.read(HEADS + "topic") == C


def test_ref_cannot_be_created_where_refs_exist_below_it(refs: Refs) -> None:
    refs.update(HEADS + "x/y", A, message="x/y")
    with pytest.raises(ConflictError):
        refs.update(HEADS + "x", B, message="x")
    assert refs.read(HEADS + "x") is None
    assert refs.list_refs(HEADS) == {HEADS + "x/y": A}
    # Deleting the last ref below a directory removes the directory.
    refs.update(HEADS + "x/y", None, message="rm")
    assert not (refs.dir / HEADS / "x").exists()
    assert refs.list_refs(HEADS) == {}


@pytest.mark.parametrize(("first", "second"), [("x/y", "x"), ("x", "x/y")])
def test_name_freed_by_a_deleted_ref_can_be_reused(refs: Refs, first: str, second: str) -> None:
    refs.update(HEADS + first, A, expect=None, message="create first")
    refs.update(HEADS + first, None, expect=A, message="delete first")
    refs.update(HEADS + second, B, expect=None, message="create second")
    assert refs.list_refs(HEADS) == {HEADS + second: B}
    assert [e.message for e in refs.reflog(HEADS + second)][-1] == "create second"


def test_ref_cannot_be_created_below_an_existing_ref(refs: Refs) -> None:
    refs.update(HEADS + "a", A, message="a")
    assert refs.read(HEADS + "a/b") is None  # no such ref: the path runs through a file
    with pytest.raises(ConflictError):
        refs.update(HEADS + "a/b", B, expect=None, message="a/b")
    assert refs.list_refs(HEADS) == {HEADS + "a": A}


def test_list_refs_is_sorted_and_skips_temp_files(refs: Refs, dsv_dir: Path) -> None:
    for name, oid in [("zeta", A), ("alpha", B), ("mid/one", C)]:
        refs.update(HEADS + name, oid, message="c")
    refs.update("refs/tags/v1.0", A, message="t")
    (dsv_dir / "refs/heads" / f"{TEMP_MARK}main.123.abcd").write_text("garbage")
    heads = refs.list_refs(HEADS)
    assert list(heads) == [HEADS + "alpha", HEADS + "mid/one", HEADS + "zeta"]
    assert heads[HEADS + "mid/one"] == C
    assert refs.list_refs() == {**heads, "refs/tags/v1.0": A}


# ------------------------------------------------------------------ reflog


def test_reflog_records_updates_in_order(refs: Refs) -> None:
    t0 = int(time.time())
    refs.update(MAIN, A, expect=None, message="commit: first", who="Ann <a@x>")
    refs.update(MAIN, B, expect=A, message="commit: second\nwith newline", who="Bob")
    refs.update(MAIN, C, expect=B, message="reset", who="Cy")
    log = refs.reflog(MAIN)
    assert [(e.old, e.new) for e in log] == [(None, A), (A, B), (B, C)]
    assert [e.message for e in log] == ["commit: first", "commit: second with newline", "reset"]
    assert [e.who for e in log] == ["Ann <a@x>", "Bob", "Cy"]
    assert all(t0 <= e.time <= time.time() + 1 for e in log)
    # like git, deleting a ref deletes its reflog
    refs.update(MAIN, None, expect=C, message="branch -d", who="Cy")
    assert refs.reflog(MAIN) == []


def test_reflog_of_unknown_ref_is_empty(refs: Refs) -> None:
    assert refs.reflog(HEADS + "nothing") == []


@pytest.mark.parametrize("cut", [1, 10, 40, 70])
def test_truncated_last_reflog_line_is_skipped(refs: Refs, dsv_dir: Path, cut: int) -> None:
    refs.update(MAIN, A, expect=None, message="one")
    refs.update(MAIN, B, expect=A, message="two")
    log = dsv_dir / "logs" / MAIN
    data = log.read_bytes()
    assert data.endswith(b"\ttwo\n")
    log.write_bytes(data[:-cut])  # a crash in the middle of the second append
    entries = refs.reflog(MAIN)
    assert [(e.old, e.new, e.message) for e in entries] == [(None, A, "one")]


def test_garbage_reflog_lines_are_skipped(refs: Refs, dsv_dir: Path) -> None:
    refs.update(MAIN, A, expect=None, message="one")
    log = dsv_dir / "logs" / MAIN
    with log.open("a") as f:
        f.write("not a reflog line\n")
        f.write(f"{'zz' * DS} {B.hex()} 5 me\tbad old id\n")
        f.write(f"{A.hex()} {B.hex()} notatime me\tbad time\n")
    refs.update(MAIN, B, expect=A, message="two")
    assert [e.message for e in refs.reflog(MAIN)] == ["one", "two"]


@pytest.mark.parametrize("cut", [10, 40, 70])
def test_entry_appended_after_a_truncated_line_is_kept(refs: Refs, dsv_dir: Path, cut: int) -> None:
    refs.update(MAIN, A, expect=None, message="one")
    refs.update(MAIN, B, expect=A, message="two")
    log = dsv_dir / "logs" / MAIN
    log.write_bytes(log.read_bytes()[:-cut])
    refs.update(MAIN, C, expect=B, message="three")
    entries = refs.reflog(MAIN)
    assert entries[0].message == "one"
    assert (entries[-1].old, entries[-1].new, entries[-1].message) == (B, C, "three")


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "name",
    ["main", "feature/x", "v1.0", "release-2024.01", "a_b", "deep/er/name", "x@y", "ünïcödé"],
)
def test_check_ref_name_accepts(name: str) -> None:
    assert check_ref_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "a..b",
        "-x",
        ".hidden",
        "a.lock",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "a\tb",
        "a\x7fb",
        "a@{1}",
        "@",
        "HEAD",
        "",
        "a//b",
        "a/",
        "/a",
        "a/.b",
        "a.",
        "a/./b",
        "a/../b",
    ],
)
def test_check_ref_name_rejects(name: str) -> None:
    # The exception class is being changed (ConflictError -> BadNameError); both say "invalid".
    with pytest.raises(DsvError, match="invalid"):
        check_ref_name(name)


@settings(max_examples=100, deadline=None)
@given(name=st.text(st.sampled_from("ab.-/_@{~^:x "), min_size=1, max_size=12))
def test_accepted_names_stay_inside_their_namespace(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    try:
        check_ref_name(name)
    except DsvError:
        return
    d = tmp_path_factory.mktemp("refs") / ".dsv"
    ensure_dirs(d)
    r = Refs(d, DS)
    heads = (d / "refs" / "heads").resolve()
    path = (d / (HEADS + name)).resolve()
    assert heads in path.parents  # no escape, and not the directory itself
    assert all(part not in ("", ".", "..") for part in name.split("/"))
    r.update(HEADS + name, A, expect=None, message="create")
    assert r.read(HEADS + name) == A
    assert r.list_refs(HEADS) == {HEADS + name: A}


# ------------------------------------------------------------------ HEAD and malformed refs


def test_head_symbolic_and_detached(refs: Refs, dsv_dir: Path) -> None:
    (dsv_dir / "HEAD").write_text("ref: refs/heads/main\n")
    assert refs.head() == Head(MAIN, None)  # a branch without commits yet
    refs.update(MAIN, A, message="c")
    assert refs.head() == Head(MAIN, A)
    (dsv_dir / "HEAD").write_text(B.hex() + "\n")
    assert refs.head() == Head(None, B)


def test_set_head_writes_both_forms_and_logs(refs: Refs, dsv_dir: Path) -> None:
    (dsv_dir / "HEAD").write_text("ref: refs/heads/main\n")  # as a new repository has
    refs.update(MAIN, A, message="c")
    refs.set_head(branch=MAIN, message="checkout main")
    assert (dsv_dir / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert refs.head() == Head(MAIN, A)
    refs.set_head(commit=B, message="checkout B")
    assert refs.head() == Head(None, B)
    assert (dsv_dir / "HEAD").read_text() == B.hex() + "\n"
    log = refs.reflog("HEAD")
    assert [(e.new, e.message) for e in log][-2:] == [(A, "checkout main"), (B, "checkout B")]


@pytest.mark.parametrize(
    "content",
    [
        "ref: refs/tags/v1\n",  # HEAD may only name a branch
        "ref: refs/remotes/origin/main\n",
        "0123\n",
        "zz" * DS + "\n",
        "01" * (DS + 1) + "\n",
        "",
    ],
)
def test_malformed_head_raises_format_error(refs: Refs, dsv_dir: Path, content: str) -> None:
    (dsv_dir / "HEAD").write_text(content)
    with pytest.raises(FormatError):
        refs.head()


@pytest.mark.parametrize("branch", ["../../config", "a..b", "bad name"])
def test_head_naming_an_invalid_branch_raises_format_error(
    refs: Refs, dsv_dir: Path, branch: str
) -> None:
    (dsv_dir / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    with pytest.raises(FormatError):
        refs.head()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n",
        b"abc\n",
        b"zz" * DS + b"\n",
        b"01" * (DS - 1) + b"\n",
        b"01" * (DS + 1) + b"\n",
        b"ref: refs/heads/other\n",  # symbolic refs only in HEAD
        b"\xff\xfe" * DS + b"\n",
        b"01" * DS + b" extra\n",
    ],
)
def test_malformed_ref_file_raises_format_error(refs: Refs, dsv_dir: Path, content: bytes) -> None:
    (dsv_dir / MAIN).write_bytes(content)
    with pytest.raises(FormatError):
        refs.read(MAIN)
    with pytest.raises(FormatError):
        refs.list_refs()


def test_ref_value_tolerates_surrounding_whitespace(refs: Refs, dsv_dir: Path) -> None:
    (dsv_dir / MAIN).write_text("  " + A.hex().upper() + "\r\n")
    assert refs.read(MAIN) == A


def test_ref_value_with_inner_whitespace_is_malformed(refs: Refs, dsv_dir: Path) -> None:
    (dsv_dir / MAIN).write_text("00 00 " + "00" * (DS - 3) + "\n")
    try:
        value = refs.read(MAIN)
    except FormatError:
        return
    assert value is not None and len(value) == DS


# ------------------------------------------------------------------ repository lock

HOLDER = """
import sys
from pathlib import Path
from dsv.refs import RepoLock
lock = RepoLock(Path(sys.argv[1]))
lock.acquire(10, "holder-command")
print("locked", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
sys.stdin.readline()
"""

CONTENDER = """
import sys, time
from pathlib import Path
from dsv.errors import LockedError
from dsv.refs import RepoLock
lock = RepoLock(Path(sys.argv[1]))
start = time.monotonic()
try:
    lock.acquire(float(sys.argv[2]), "contender")
except LockedError as exc:
    print(f"{time.monotonic() - start:.3f} {exc}")
    sys.exit(9)
print(f"{time.monotonic() - start:.3f} acquired")
lock.release()
"""


def run_contender(lock_path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CONTENDER, str(lock_path), str(timeout)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_holder(lock_path: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "locked"
    return p


def test_lock_excludes_another_process_until_released(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    lock = RepoLock(path)
    lock.acquire(1.0, "commit -m test")
    try:
        r = run_contender(path, 0.3)
        assert r.returncode == 9, r.stderr
        waited, _, message = r.stdout.partition(" ")
        assert float(waited) >= 0.3
        assert "commit -m test" in message  # names the holder
        assert f"pid {os.getpid()}" in message
    finally:
        lock.release()
    r = run_contender(path, 0.3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.endswith("acquired\n")


def test_waiting_process_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    lock = RepoLock(path)
    lock.acquire(1.0, "holder")
    released = False
    p = subprocess.Popen(
        [sys.executable, "-c", CONTENDER, str(path), "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.8)
        assert p.poll() is None  # still waiting
        lock.release()
        released = True
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0
        assert out.endswith("acquired\n")
    finally:
        if not released:
            lock.release()
        if p.poll() is None:
            p.kill()
            p.wait()


def test_lock_held_by_another_process_and_released_there(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = start_holder(path)
    try:
        start = time.monotonic()
        with pytest.raises(LockedError, match="holder-command"):
            RepoLock(path).acquire(0.25, "me")
        assert time.monotonic() - start >= 0.25
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        lock = RepoLock(path)
        lock.acquire(1.0, "me")
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = start_holder(path)
    try:
        with pytest.raises(LockedError):
            RepoLock(path).acquire(0.2, "me")
        os.kill(holder.pid, signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
        lock = RepoLock(path)
        lock.acquire(2.0, "after kill")  # no stale lock left behind
        assert "after kill" in path.read_text()
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_held_context_releases_on_exception(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with pytest.raises(RuntimeError), RepoLock(path).held(1.0, "first"):
        # flock locks belong to the open file: a second RepoLock conflicts even in-process.
        with pytest.raises(LockedError):
            RepoLock(path).acquire(0.05, "second")
        raise RuntimeError("boom")
    other = RepoLock(path)
    other.acquire(0.5, "third")
    other.release()
    assert path.read_text() == ""  # release clears the holder note


def test_the_author_falls_back_to_the_login_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pwd

    from dsv.repo import Repository

    repo = Repository.init(tmp_path / "r")
    host = os.uname().nodename or "localhost"
    for var in ("DSV_AUTHOR_NAME", "DSV_AUTHOR_EMAIL", "LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("USER", "ada")
    assert repo.identity() == f"ada <ada@{host}>"
    monkeypatch.setenv("LOGNAME", "grace")  # first in getpass.getuser's order
    assert repo.identity() == f"grace <grace@{host}>"
    monkeypatch.delenv("LOGNAME")
    monkeypatch.delenv("USER")
    me = pwd.getpwuid(os.getuid()).pw_name  # no variable: the password database
    assert repo.identity() == f"{me} <{me}@{host}>"
    repo.config.set("user", "name", "Config Name")
    assert repo.identity().startswith("Config Name <Config Name@")
    repo.close()
