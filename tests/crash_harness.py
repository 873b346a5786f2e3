"""Kill a real ``dsv`` process with SIGKILL at random moments and check nothing is lost.

Used by tests/test_crash.py (a few trials per command, in CI) and by
bench/reliability.py (50+ trials per command, with the counts printed).

After every kill: the repository opens, ``dsv fsck`` is clean, every ref names
a complete commit, the interrupted command run again succeeds, and (checkout)
every file holds either its old or its new bytes, never a torn mix.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ENV = {
    **os.environ,
    "DSV_AUTHOR_NAME": "Crash Test",
    "DSV_AUTHOR_EMAIL": "crash@example.com",
    "DSV_LOCK_TIMEOUT": "30",
}


def dsv(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "dsv", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and r.returncode != 0:
        raise AssertionError(f"dsv {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def run_and_kill(args: list[str], cwd: Path, delay: float) -> int | None:
    """Start ``dsv ARGS``; SIGKILL it after ``delay`` seconds.  Returns its exit code if it finished first."""
    p = subprocess.Popen(
        [sys.executable, "-m", "dsv", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return None


_STARTUP: list[float] = []


def startup_seconds() -> float:
    """How long a dsv process takes to start (kills before that test nothing new)."""
    if not _STARTUP:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "dsv", "--version"], env=ENV, capture_output=True)
            times.append(time.perf_counter() - t0)
        _STARTUP.append(sorted(times)[1])
    return _STARTUP[0]


def kill_delay(rng: random.Random, full: float) -> float:
    """Mostly inside the command's real work, sometimes during start-up."""
    start = startup_seconds()
    if rng.random() < 0.1:
        return rng.uniform(0.02, start)
    return rng.uniform(start * 0.9, max(full, start * 1.2))


def digest_tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".dsv"]
        for f in files:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def write_random(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rng.randbytes(size))


@dataclass
class Outcome:
    command: str
    trials: int = 0
    killed: int = 0  # trials where the kill landed before the command finished
    valid: int = 0  # trials after which every check passed
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.command:<9} trials {self.trials:>3}  killed mid-run {self.killed:>3}  "
            f"repo valid after {self.valid:>3}/{self.trials}  data lost 0"
            if not self.failures
            else f"{self.command:<9} trials {self.trials}  FAILURES {len(self.failures)}: {self.failures[:3]}"
        )


def check_repo(root: Path) -> None:
    """The repository opens, fsck is clean, and every ref names a readable commit."""
    dsv("status", cwd=root)
    # fsck walks every ref, HEAD and reflog entry down to every chunk
    r = dsv("fsck", "--json", cwd=root, check=False)
    if r.returncode != 0:
        raise AssertionError(f"fsck failed: {r.stdout[-2000:]} {r.stderr[-2000:]}")


def _trials(name: str, n: int, seed: int, trial: Callable[[random.Random], bool]) -> Outcome:
    out = Outcome(name)
    rng = random.Random(seed)
    for i in range(n):
        out.trials += 1
        try:
            killed = trial(rng)
            out.killed += int(killed)
            out.valid += 1
        except AssertionError as exc:
            out.failures.append(f"trial {i}: {exc}")
    return out


# ---------------------------------------------------------------------- commands


def crash_commit(base: Path, n: int, seed: int, size: int = 24 << 20) -> Outcome:
    root = base / "commit"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng0 = random.Random(seed)
    write_random(root / "big.bin", size, rng0)
    for i in range(200):
        write_random(root / f"small/{i:03d}.bin", 4000, rng0)
    dsv("init", cwd=root)
    dsv("commit", "-q", "-m", "v1", cwd=root)
    t0 = time.perf_counter()
    write_random(root / "big.bin", size, rng0)
    dsv("commit", "-q", "-m", "timing", cwd=root)
    full = time.perf_counter() - t0

    def trial(rng: random.Random) -> bool:
        before = dsv("rev-parse", "HEAD", cwd=root).stdout.strip()
        write_random(root / "big.bin", size, rng)  # new bytes: the commit must write them
        # enough small files changed that the commit's helper process stores
        # half of them (snapshot.HELPER_MIN): a kill can find it mid-pack
        for i in rng.sample(range(200), 150):
            write_random(root / f"small/{i:03d}.bin", 4000, rng)
        expect = digest_tree(root)
        code = run_and_kill(["commit", "-q", "-m", "trial"], root, kill_delay(rng, full))
        check_repo(root)
        after = dsv("rev-parse", "HEAD", cwd=root).stdout.strip()
        assert after in (before,) or code is None or code == 0, "commit finished with an error"
        if after == before:  # the commit did not happen: running it again must succeed
            dsv("commit", "-q", "-m", "rerun", cwd=root)
        # the committed version is exactly the working tree
        st = dsv("status", "--json", cwd=root).stdout
        assert '"clean": true' in st, st
        assert digest_tree(root) == expect
        return code is None

    return _trials("commit", n, seed, trial)


def crash_checkout(base: Path, n: int, seed: int) -> Outcome:
    root = base / "checkout"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng0 = random.Random(seed)
    for i in range(300):
        write_random(root / f"f/{i:03d}.bin", 30_000, rng0)
    write_random(root / "big.bin", 16 << 20, rng0)
    dsv("init", cwd=root)
    dsv("commit", "-q", "-m", "v1", cwd=root)
    dsv("tag", "v1", cwd=root)
    v1 = digest_tree(root)
    for i in range(300):
        write_random(root / f"f/{i:03d}.bin", 30_000, rng0)
    write_random(root / "big.bin", 16 << 20, rng0)
    write_random(root / "only-in-v2.bin", 1000, rng0)
    dsv("commit", "-q", "-m", "v2", cwd=root)
    dsv("tag", "v2", cwd=root)
    v2 = digest_tree(root)
    dsv("checkout", "-q", "v1", cwd=root)
    t0 = time.perf_counter()
    dsv("checkout", "-q", "v2", cwd=root)
    full = time.perf_counter() - t0
    dsv("checkout", "-q", "v1", cwd=root)

    def trial(rng: random.Random) -> bool:
        code = run_and_kill(["checkout", "-q", "v2"], root, kill_delay(rng, full))
        now = digest_tree(root)
        for path, h in now.items():
            assert h in (v1.get(path), v2.get(path)), f"{path} is neither v1 nor v2 (torn)"
        check_repo(root)
        dsv("checkout", "-q", "v2", cwd=root)  # the re-run finishes the job
        assert digest_tree(root) == v2
        dsv("checkout", "-q", "v1", cwd=root)
        assert digest_tree(root) == v1
        return code is None

    return _trials("checkout", n, seed, trial)


def crash_gc(base: Path, n: int, seed: int) -> Outcome:
    root = base / "gc"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng0 = random.Random(seed)
    write_random(root / "keep.bin", 8 << 20, rng0)
    dsv("init", cwd=root)
    dsv("commit", "-q", "-m", "keep", cwd=root)
    keep = digest_tree(root)

    def make_garbage(rng: random.Random) -> None:
        dsv("branch", "scratch", cwd=root)
        dsv("checkout", "-q", "scratch", cwd=root)
        write_random(root / "junk.bin", 8 << 20, rng)
        dsv("commit", "-q", "-m", "junk", cwd=root)
        dsv("checkout", "-q", "main", cwd=root)
        dsv("branch", "-d", "scratch", cwd=root)

    make_garbage(rng0)
    t0 = time.perf_counter()
    dsv("gc", "--prune-reflogs", cwd=root)
    full = time.perf_counter() - t0

    def trial(rng: random.Random) -> bool:
        make_garbage(rng)
        code = run_and_kill(["gc", "--prune-reflogs"], root, kill_delay(rng, full))
        check_repo(root)
        dsv("gc", "--prune-reflogs", cwd=root)
        check_repo(root)
        (root / "keep.bin").unlink()
        dsv("checkout", "-q", "--force", "main", cwd=root)
        assert digest_tree(root) == keep
        return code is None

    return _trials("gc", n, seed, trial)


def crash_push(base: Path, n: int, seed: int) -> Outcome:
    root = base / "push"
    remote = base / "push-remote"
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(remote, ignore_errors=True)
    root.mkdir(parents=True)
    rng0 = random.Random(seed)
    write_random(root / "data.bin", 8 << 20, rng0)
    dsv("init", cwd=root)
    dsv("commit", "-q", "-m", "v1", cwd=root)
    dsv("remote", "add", "origin", str(remote), cwd=root)
    t0 = time.perf_counter()
    dsv("push", "-q", cwd=root)
    full = time.perf_counter() - t0

    def trial(rng: random.Random) -> bool:
        write_random(root / f"new/{rng.randrange(10**9)}.bin", 6 << 20, rng)
        dsv("commit", "-q", "-m", "more", cwd=root)
        code = run_and_kill(["push", "-q"], root, kill_delay(rng, full))
        check_repo(root)
        dsv("push", "-q", cwd=root)  # the re-run completes the push
        clone = base / "push-clone"
        shutil.rmtree(clone, ignore_errors=True)
        dsv("clone", "-q", str(remote), str(clone), cwd=base)
        check_repo(clone)
        assert digest_tree(clone) == digest_tree(root)
        return code is None

    return _trials("push", n, seed, trial)


def crash_fetch(base: Path, n: int, seed: int) -> Outcome:
    src = base / "fetch-src"
    dst = base / "fetch-dst"
    remote = base / "fetch-remote"
    for p in (src, dst, remote):
        shutil.rmtree(p, ignore_errors=True)
    src.mkdir(parents=True)
    rng0 = random.Random(seed)
    write_random(src / "data.bin", 8 << 20, rng0)
    dsv("init", cwd=src)
    dsv("commit", "-q", "-m", "v1", cwd=src)
    dsv("remote", "add", "origin", str(remote), cwd=src)
    dsv("push", "-q", cwd=src)
    dsv("clone", "-q", str(remote), str(dst), cwd=base)
    write_random(src / "more.bin", 8 << 20, rng0)
    dsv("commit", "-q", "-m", "v2", cwd=src)
    dsv("push", "-q", cwd=src)
    t0 = time.perf_counter()
    dsv("fetch", "-q", cwd=dst)
    full = time.perf_counter() - t0

    def trial(rng: random.Random) -> bool:
        write_random(src / f"new/{rng.randrange(10**9)}.bin", 6 << 20, rng)
        dsv("commit", "-q", "-m", "more", cwd=src)
        dsv("push", "-q", cwd=src)
        code = run_and_kill(["fetch", "-q"], dst, kill_delay(rng, full))
        check_repo(dst)
        dsv("pull", "-q", cwd=dst)  # the re-run (fetch + fast-forward) completes
        check_repo(dst)
        assert digest_tree(dst) == digest_tree(src)
        return code is None

    return _trials("fetch", n, seed, trial)


ALL: dict[str, Callable[[Path, int, int], Outcome]] = {
    "commit": crash_commit,
    "checkout": crash_checkout,
    "gc": crash_gc,
    "push": crash_push,
    "fetch": crash_fetch,
}
