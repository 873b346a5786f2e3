"""End-to-end through a real ``dsv`` process: the flow users run, errors, memory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsv.errors import ExitCode

from .conftest import assert_status_does_not_import, run_dsv, snapshot, write


def _ok(*args: str, cwd: Path) -> str:
    r = run_dsv(*args, cwd=cwd)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def test_user_flow_in_real_processes(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    assert "Initialized" in _ok("init", cwd=d)
    write(d / "train/cat/a.png", os.urandom(4000))
    write(d / "train/dog/b.png", os.urandom(4000))
    write(d / "labels.csv", "id,label\n1,cat\n2,dog\n")
    c1 = json.loads(_ok("commit", "-m", "v1", "--json", cwd=d))["id"]
    v1 = snapshot(d)
    (d / "train/cat/a.png").rename(d / "train/dog/a.png")
    write(d / "labels.csv", "id,label\n1,dog\n2,dog\n")
    st = json.loads(_ok("status", "--json", cwd=d))
    assert st["added"] == ["train/dog/a.png"] and st["deleted"] == ["train/cat/a.png"]
    assert st["modified"] == ["labels.csv"]
    _ok("commit", "-m", "v2", cwd=d)
    v2 = snapshot(d)
    _ok("checkout", c1, cwd=d)
    assert snapshot(d) == v1
    _ok("checkout", "main", cwd=d)
    assert snapshot(d) == v2
    assert json.loads(_ok("fsck", "--json", cwd=d))["ok"] is True
    assert "Usage" in _ok("--help", cwd=d)
    assert "dsv" in _ok("--version", cwd=d)


def test_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    r = run_dsv("log", cwd=nowhere)
    assert r.returncode == ExitCode.NOT_A_REPO
    assert b"dsv: error: not a dsv repository" in r.stderr and b"Traceback" not in r.stderr

    d = tmp_path / "ds"
    d.mkdir()
    _ok("init", cwd=d)
    write(d / "f.bin", os.urandom(100_000))
    _ok("commit", "-m", "v1", cwd=d)

    r = run_dsv("show", "nope", cwd=d)
    assert r.returncode == ExitCode.NOT_FOUND and b"Traceback" not in r.stderr

    # a flipped byte in the pack: the read names the object and fails
    pack = next((d / ".dsv/objects/pack").glob("*.pack"))
    pack.chmod(0o644)
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    pack.write_bytes(bytes(raw))
    r = run_dsv("show", "HEAD:f.bin", cwd=d)
    assert r.returncode == ExitCode.CORRUPT, r.stderr
    assert b"does not match its id" in r.stderr and b"Traceback" not in r.stderr
    r = run_dsv("fsck", cwd=d)
    assert r.returncode == ExitCode.FAILURE and b"f.bin" in r.stderr

    # the repository format version is checked before anything else
    cfg = d / ".dsv/config"
    cfg.write_text(cfg.read_text().replace("format = 1", "format = 2"))
    r = run_dsv("status", cwd=d)
    assert r.returncode == ExitCode.UNSUPPORTED and b"Traceback" not in r.stderr


def _rss_kib(args: list[str], cwd: Path) -> int:
    """Peak resident memory of one dsv process (its own ru_maxrss)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsv", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss


def _random_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size >> 20):
            f.write(i.to_bytes(8, "little") + block[8:])  # distinct blocks, cheap


@pytest.mark.slow
def test_memory_is_flat_in_file_size(tmp_path: Path) -> None:
    peaks = {}
    for name, size in (("small", 32 << 20), ("large", 512 << 20)):
        d = tmp_path / name
        d.mkdir()
        _ok("init", cwd=d)
        _random_file(d / "data.bin", size)
        commit_rss = _rss_kib(["commit", "-q", "-m", "v1"], d)
        (d / "data.bin").unlink()
        checkout_rss = _rss_kib(["checkout", "-q", "--force", "HEAD"], d)
        assert (d / "data.bin").stat().st_size == size
        peaks[name] = (commit_rss, checkout_rss)
        shutil.rmtree(d)
    # 16x the bytes must not mean more memory (allowance for noise: 48 MiB, far below 480 MiB)
    assert peaks["large"][0] - peaks["small"][0] < 48 * 1024, peaks
    assert peaks["large"][1] - peaks["small"][1] < 48 * 1024, peaks


_CLICK_APP = "import sys; from dsv.cli.app import cli; cli.main(args=sys.argv[1:], prog_name='dsv')"


def test_status_without_click_says_what_the_click_command_says(tmp_path: Path) -> None:
    """`dsv status` skips importing click; its output, errors and exit codes are the app's."""
    d = tmp_path / "ds"
    d.mkdir()

    def both(*args: str, cwd: Path = d) -> tuple[str, str, int]:
        fast = run_dsv(*args, cwd=cwd)
        slow = subprocess.run(
            [sys.executable, "-c", _CLICK_APP, *args], cwd=cwd, capture_output=True, timeout=120
        )
        got = (fast.stdout.decode(), fast.stderr.decode(), fast.returncode)
        assert got == (slow.stdout.decode(), slow.stderr.decode(), slow.returncode), args
        return got

    out, err, code = both("status")
    assert code == ExitCode.NOT_A_REPO and "not a dsv repository" in err and out == ""
    _ok("init", cwd=d)
    write(d / "a.txt", "a")
    write(d / "b/c.txt", "c")
    write(d / "gone.txt", "g")
    out, _, code = both("status")
    assert code == 0 and "No commits yet" in out and "added:" in out and "b/c.txt" in out
    _ok("commit", "-m", "v1", cwd=d)
    assert both("status")[0].endswith("nothing to commit, working tree clean\n")
    write(d / "a.txt", "A")
    (d / "gone.txt").unlink()
    write(d / "new.txt", "n")
    out, _, code = both("status")
    assert code == 0 and [ln.split() for ln in out.splitlines()[1:]] == [
        ["added:", "new.txt"],
        ["modified:", "a.txt"],
        ["deleted:", "gone.txt"],
    ]
    doc = json.loads(both("status", "--json")[0])
    assert (doc["added"], doc["modified"], doc["deleted"]) == (["new.txt"], ["a.txt"], ["gone.txt"])
    assert both("-C", str(d), "status", cwd=tmp_path)[0] == out
    os.chmod(d / ".dsv" / "HEAD", 0)  # an unreadable repository file: an error, not a traceback
    try:
        _, err, code = both("status")
        if os.geteuid() != 0:
            assert code != 0 and err.startswith("dsv: error: ") and "Traceback" not in err
    finally:
        os.chmod(d / ".dsv" / "HEAD", 0o644)
    # and it did not import click, nor typing and dataclasses (start-up time is most of it)
    write(d / ".dsvignore", "*.tmp\n")  # ignore rules on the path too
    for module in ("click", "typing", "dataclasses"):
        assert_status_does_not_import(d, module)


def test_commit_without_click_says_what_the_click_command_says(tmp_path: Path) -> None:
    """`dsv commit -m MSG [-q]` skips importing click; its output, errors and exit codes are
    the app's (ids aside: two repositories commit the same files)."""
    fast_dir, slow_dir = tmp_path / "fast", tmp_path / "slow"

    def both(*args: str) -> tuple[str, str, int]:
        fast = run_dsv(*args, cwd=fast_dir)
        slow = subprocess.run(
            [sys.executable, "-c", _CLICK_APP, *args],
            cwd=slow_dir,
            capture_output=True,
            timeout=120,
        )
        got, want = (
            (
                re.sub(r"\b[0-9a-f]{10}\b", "<id>", r.stdout.decode()),
                r.stderr.decode().replace(str(d), "<dir>"),
                r.returncode,
            )
            for r, d in ((fast, fast_dir), (slow, slow_dir))
        )
        assert got == want, args
        return got

    for d in (fast_dir, slow_dir):
        d.mkdir()
    out, err, code = both("commit", "-m", "v1")
    assert code == ExitCode.NOT_A_REPO and "not a dsv repository" in err and out == ""
    for d in (fast_dir, slow_dir):
        _ok("init", cwd=d)
        write(
            d / "t.csv",
            "id,label\n" + "".join(f"{i},{'cat' if i % 3 else 'dog'}\n" for i in range(50)),
        )
        write(d / "img/a.jpg", "jpeg bytes")
    out, _, code = both("commit", "-q", "-m", "v1\n\nbody")
    assert code == 0 and out.startswith("[main <id>] v1\n files +2 -0 ~0")
    for d in (fast_dir, slow_dir):
        write(
            d / "t.csv",
            "id,label\n" + "".join(f"{i},{'cat' if i % 4 else 'dog'}\n" for i in range(60)),
        )
    out, _, code = both("commit", "--message", "v2", "--quiet")
    assert code == 0 and "t.csv: rows +10 -0" in out, out  # the data changelog, below the summary
    out, err, code = both("commit", "-m", "v3")
    assert code == ExitCode.CONFLICT and "nothing to commit" in err and out == ""
    write(fast_dir / "new.txt", "n")
    assert_status_does_not_import(fast_dir, "click", ("commit", "-q", "-m", "v3"))


_ENDING = """
import atexit, sys, threading, time
from pathlib import Path
out = Path(sys.argv[1])

class Noisy:
    def __del__(self):
        sys.stderr.write("torn down\\n")

keep = Noisy()  # its __del__ runs only if the interpreter tears its modules down
atexit.register(lambda: (out / "atexit").write_text("ran"))
def late():
    time.sleep(0.3)
    (out / "thread").write_text("ran")
if sys.argv[2] == "thread":
    threading.Thread(target=late).start()  # not a daemon: the process must wait for it
sys.stdout.write("before ")  # buffered, not flushed
sys.argv = ["dsv", *sys.argv[3:]]
from dsv.cli import main
main()
"""


@pytest.mark.parametrize("args", [["status"], ["log", "--oneline"], ["show", "nope"]])
def test_the_process_ends_without_teardown_and_loses_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    """`dsv` leaves without the interpreter's teardown (it frees every object for
    nothing), but what teardown does that matters still happens: atexit handlers,
    flushed output, the exit code, and a wait for a thread the interpreter waits for."""
    d = tmp_path / "ds"
    d.mkdir()
    _ok("init", cwd=d)
    write(d / "a.txt", "a")
    _ok("commit", "-m", "v1", cwd=d)
    want = run_dsv(*args, cwd=d)

    def ending(thread: str) -> subprocess.CompletedProcess[bytes]:
        for f in ("atexit", "thread"):
            (tmp_path / f).unlink(missing_ok=True)
        return subprocess.run(
            [sys.executable, "-c", _ENDING, str(tmp_path), thread, "-C", str(d), *args],
            capture_output=True,
            timeout=120,
        )

    r = ending("none")
    assert r.returncode == want.returncode and (want.returncode != 0) == (args[0] == "show")
    assert r.stdout == b"before " + want.stdout
    assert r.stderr == want.stderr  # no "torn down": no teardown
    assert (tmp_path / "atexit").read_text() == "ran"
    r = ending("thread")
    assert r.returncode == want.returncode and r.stdout == b"before " + want.stdout
    assert (tmp_path / "thread").read_text() == "ran" and (tmp_path / "atexit").exists()
    assert b"torn down" in r.stderr  # the ordinary way out, which waits for the thread


def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    _ok("init", cwd=d)
    for i in range(30):
        write(d / f"f{i}.txt", str(i))
        _ok("commit", "-m", f"commit number {i} " + "x" * 2000, cwd=d)
    for args in (["log"], ["log", "--json"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "dsv", *args],
            cwd=d,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10)  # then the reader leaves (as `| head -c 10` does)
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 0, err
        assert err == b"", err


def test_json_output_is_utf8_whatever_the_file_names(tmp_path: Path) -> None:
    """A file name that is not UTF-8 comes out of every --json as an escaped lone
    surrogate: the output decodes as strict UTF-8 and the name maps back to its bytes."""
    work = tmp_path / "w"
    work.mkdir()
    _ok("init", cwd=work)
    name = b"caf\xe9 \xff.bin"  # Latin-1, not UTF-8
    with open(os.path.join(os.fsencode(work), name), "wb") as f:
        f.write(b"data")
    write(work / "plain.txt", "x")

    def js(*args: str) -> object:
        r = run_dsv(*args, "--json", cwd=work)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.decode("utf-8"))  # strict: raises on a raw byte

    status = js("status")
    assert isinstance(status, dict)
    assert sorted(os.fsencode(p) for p in status["added"]) == [name, b"plain.txt"]
    js("commit", "-m", "v1")
    listed = js("ls-tree", "HEAD")
    assert isinstance(listed, list)
    assert sorted(os.fsencode(e["path"]) for e in listed) == [name, b"plain.txt"]
    os.unlink(os.path.join(os.fsencode(work), name))
    d = js("diff", "--name-status")
    assert isinstance(d, dict)
    assert [os.fsencode(e["path"]) for e in d["files"]["paths"]["removed"]] == [name], d
