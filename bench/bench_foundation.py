#!/usr/bin/env python3
"""Foundation benchmark: dsv vs DVC vs `cp -r`, side by side in one run, reported as ratios.

    python bench/bench_foundation.py                       # scale 1, images+table+big, 100k status
    python bench/bench_foundation.py --quick               # scale 0.05
    python bench/bench_foundation.py --only images,big --repeat 3 --json-out out.json
    python bench/bench_foundation.py --quick --skip-dsv    # DVC and cp only (dsv CLI not needed)
    python bench/bench_foundation.py --status-files 0 --rss-big 10   # 10 GiB commit peak RSS

Scenarios, per dataset of ../shared/bench/make_data.py (images, table, big):
  init        `dsv init`                 vs `git init` + `dvc init`
  v1 commit   `dsv commit -m v1`         vs `dvc add data`            (and `cp -r` of the data)
  status      no-op `dsv status --json`  vs `dvc status -q`           (median of --repeat)
  dirty       `dsv status --json` after the v2 edit, checked against the real file diff
  v2 commit   `dsv commit -m v2`         vs `dvc add data`; store growth in bytes
  checkout    data moved aside, `dsv checkout --force HEAD` vs `dvc checkout` vs `cp -r v2 empty/`,
              each result compared byte for byte with v2 (a mismatch fails the run loudly)
  gc          `dsv gc`                   vs `dvc gc -w -f`            (info)
  peak RSS    every command runs via Popen + os.wait4 (in a ~10 MB launcher, see LAUNCHER), so
              ru_maxrss is that child's own peak; about 10 MB is the floor of the figure
plus `--status-files N` (no-op status on N tiny files) and `--rss-big GIB` (one GIB GiB file: commit, status, small edit + commit, checkout, peak RSS of each).
Each tool's workspace holds the dataset under data/ (dsv commits the whole tree; DVC tracks
`data`). dsv is found beside this python, else on PATH, else run as `python -m dsv` from src/.

Ratios are other/dsv: above 1 means dsv is faster (or smaller). The machine is shared and noisy:
only ratios from the same run mean anything. Page caches cannot be dropped here, so every figure
is warm-cache; a sync(2), untimed, runs before each command (--no-sync to skip it) so that
one tool's pending writeback is not billed to the next. Tools take turns within each repetition.
Exit status: 0 if all results were correct (targets may still FAIL), 1 if a
command failed or a result was wrong.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MAKE_DATA = REPO_ROOT.parent / "shared" / "bench" / "make_data.py"
KINDS = ("images", "table", "big")

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MB, GB = 10**6, 10**9

# Targets (defined at --scale 1; at other scales they are indicative only).
V1_BIG_VS_DVC = 5.0
V1_BIG_GBPS = 1.0
V1_IMAGES_VS_DVC = 10.0
STATUS_VS_DVC = 5.0
STATUS_FILES_MAX_S = 1.0
V2_BIG_SLACK = 4 * MiB  # allowed on top of the edit's new bytes: 11 MiB + 4 MiB = 15 MiB at scale 1
CHECKOUT_VS_CP = 0.8
RSS_MAX_MB = 300.0


# ---------------------------------------------------------------------------- processes


@dataclass
class Run:
    tool: str
    dataset: str
    step: str
    argv: list[str]
    seconds: float
    rc: int
    maxrss_mb: float
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    user_s: float = 0.0  # the child's CPU seconds in user mode (ru_utime)
    sys_s: float = 0.0  # and in the kernel (ru_stime)


class CommandFailed(Exception):
    pass


class Tool:
    """A command prefix plus its environment; `run` times one call and records its peak RSS."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log: list[Run], sync: bool
    ) -> None:
        self.name, self.argv, self.env, self.log, self.sync = name, argv, env, log, sync

    def run(self, args: list[str], cwd: Path, dataset: str, step: str, check: bool = True) -> Run:
        if self.sync:  # untimed: earlier writes and deletions must not bill this command
            os.sync()
        return run_cmd(self.name, self.argv + args, cwd, self.env, self.log, dataset, step, check)


# Linux carries a process's RSS high-water mark across fork/vfork + exec, so a child spawned
# straight from this (large, numpy/pyarrow-laden) harness would report the harness's peak as its
# own. Each command is therefore spawned by this small launcher (python -S, ~10 MB), which does the
# Popen + os.wait4 and the timing (spawn to reap) itself and sends the result back on a pipe.
LAUNCHER = """
import json, os, subprocess, sys, time
argv, cwd, fd = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
dt = time.perf_counter() - t0
rc = os.waitstatus_to_exitcode(status)
os.write(fd, json.dumps([dt, rc, ru.ru_maxrss, ru.ru_utime, ru.ru_stime]).encode())
"""


def run_cmd(
    tool: str,
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    log: list[Run],
    dataset: str,
    step: str,
    check: bool = True,
) -> Run:
    """Run argv; seconds cover spawn to reap; maxrss (KiB on Linux) and the CPU times are the
    child's own rusage."""
    rfd, wfd = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            launcher = [sys.executable, "-S", "-c", LAUNCHER, json.dumps(argv), str(cwd), str(wfd)]
            proc = subprocess.Popen(
                launcher, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, pass_fds=(wfd,)
            )
            os.close(wfd)
            wfd = -1
            with os.fdopen(rfd, "rb") as pipe:
                rfd = -1
                result = pipe.read()
            proc.wait()
        finally:
            for fd in (rfd, wfd):
                if fd >= 0:
                    os.close(fd)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0 or not result:
        raise CommandFailed(
            f"launcher for {shlex.join(argv)} failed ({proc.returncode}):\n{stderr}"
        )
    seconds, rc, maxrss_kib, user_s, sys_s = json.loads(result)
    r = Run(
        tool, dataset, step, argv, seconds, rc, maxrss_kib * KiB / MB, stdout, stderr, user_s, sys_s
    )
    log.append(r)
    if check and r.rc != 0:
        tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-15:])
        raise CommandFailed(f"{shlex.join(argv)} (in {cwd}) exited {r.rc}:\n{tail}")
    return r


def resolve_exe(name: str) -> str | None:
    """Prefer the script next to this interpreter (pyenv shims add ~0.1 s per call)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def resolve_dsv(spec: str | None) -> tuple[list[str], dict[str, str]]:
    if spec:
        return shlex.split(spec), {}
    exe = resolve_exe("dsv")
    if exe:
        return [exe], {}
    src = str(REPO_ROOT / "src")
    pp = os.environ.get("PYTHONPATH")
    return [sys.executable, "-m", "dsv"], {"PYTHONPATH": src + (os.pathsep + pp if pp else "")}


# ---------------------------------------------------------------------------- files


def tree_entries(root: Path) -> Iterator[os.DirEntry[str]]:
    """Every entry below root, directories included (symlinks not followed); none if absent."""
    stack = [str(root)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                yield e


def tree_bytes(root: Path) -> int:
    """Sum of regular-file sizes under root (symlinks not followed); 0 if absent."""
    return sum(
        e.stat(follow_symlinks=False).st_size
        for e in tree_entries(root)
        if e.is_file(follow_symlinks=False)
    )


def tree_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def set_aside(path: Path, aside: Path) -> None:
    """Move a tree out of the way (a rename) rather than delete it before a timed run.

    Creating files soon after many were deleted costs ~300 us a file instead
    of tens on this machine's file system (ext4 without a journal skips every
    recently deleted inode, for a minute or more), which timed the deletion,
    not the tools.  ``aside`` goes with the data set's directory.
    """
    if not (path.exists() or path.is_symlink()):
        return
    aside.mkdir(exist_ok=True)
    path.rename(aside / f"{len(list(aside.iterdir()))}-{path.name}")


def write_tiny_files(root: Path, n: int, per_dir: int = 1000) -> None:
    """n files of a few bytes each, `per_dir` to a directory."""
    for d in range(math.ceil(n / per_dir)):
        sub = root / f"d{d:04d}"
        sub.mkdir(parents=True)
        for i in range(d * per_dir, min(n, (d + 1) * per_dir)):
            fd = os.open(sub / f"f{i:07d}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, b"%d\n" % i)
            finally:
                os.close(fd)


def write_random_file(path: Path, size: int, seed: int = 20240601) -> None:
    """`size` bytes of PCG64 output (no sparse regions, no repeated blocks), 64 MiB at a time."""
    import numpy as np

    bitgen = np.random.PCG64(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(64 * MiB, left)
            f.write(bitgen.random_raw((n + 7) // 8).tobytes()[:n])
            left -= n


def edit_big(path: Path, overwrite: int, append: int, seed: int = 1) -> None:
    """Overwrite ``overwrite`` bytes 12,345 bytes past the middle and append ``append`` bytes."""
    import numpy as np

    bitgen = np.random.PCG64(seed)
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2 + 12345)
        f.write(bitgen.random_raw((overwrite + 7) // 8).tobytes()[:overwrite])
        f.seek(0, os.SEEK_END)
        f.write(bitgen.random_raw((append + 7) // 8).tobytes()[:append])


def file_digest(path: Path) -> bytes:
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(16 * MiB):
            h.update(block)
    return h.digest()


# ---------------------------------------------------------------------------- report


@dataclass
class Row:
    scenario: str
    dataset: str
    unit: str  # "s", "B", "MB" (peak RSS), "GB/s"
    dsv: float | None = None
    dvc: float | None = None
    cp: float | None = None
    target: str = ""
    result: str = "info"  # PASS | FAIL | info | skip | error
    note: str = ""

    @property
    def dvc_ratio(self) -> float | None:
        return ratio(self.dvc, self.dsv) if self.unit != "GB/s" else None

    @property
    def cp_ratio(self) -> float | None:
        return ratio(self.cp, self.dsv) if self.unit != "GB/s" else None


def ratio(other: float | None, dsv: float | None) -> float | None:
    if other is None or dsv is None:
        return None
    if dsv == 0:
        return math.inf if other > 0 else None
    return other / dsv


def judge(ok: bool | None) -> str:
    return "skip" if ok is None else ("PASS" if ok else "FAIL")


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.3f}"
    if unit == "B":
        return human_bytes(v)
    if unit == "MB":
        return f"{v:.0f} MB"
    if unit == "GB/s":
        return f"{v:.2f} GB/s"
    return f"{v:g}"


def fmt_ratio(r: float | None) -> str:
    """A ratio to two decimals, rounded down: 9.9999 (which misses a bar of 10) is 9.99x."""
    if r is None:
        return "-"
    return "inf" if math.isinf(r) else f"{math.floor(r * 100) / 100:.2f}x"


def print_table(headers: list[str], rows: Iterable[list[str]]) -> None:
    body = [list(r) for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in body:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# ---------------------------------------------------------------------------- benchmark


class Bench:
    def __init__(self, args: argparse.Namespace, md: ModuleType, run_dir: Path) -> None:
        self.args = args
        self.md = md
        self.run_dir = run_dir
        self.scale: float = args.scale
        self.rows: list[Row] = []
        self.failures: list[str] = []
        self.log: list[Run] = []
        self.notes: list[str] = []
        self._hash_cache: dict[Path, dict[str, tuple[str, int]]] = {}

        env = dict(os.environ)
        env.update(
            {
                "DVC_NO_ANALYTICS": "1",
                # DVC 3 keeps its state/index db in a site cache dir (/var/tmp/dvc by default)
                "DVC_SITE_CACHE_DIR": str(run_dir / "dvc-site-cache"),
                "DSV_LOCK_TIMEOUT": "10",  # nothing else holds the lock: fail fast on a stale one
                "DSV_AUTHOR_NAME": "dsv-bench",
                "DSV_AUTHOR_EMAIL": "dsv-bench@localhost",
                "GIT_AUTHOR_NAME": "dsv-bench",
                "GIT_AUTHOR_EMAIL": "dsv-bench@localhost",
                "GIT_COMMITTER_NAME": "dsv-bench",
                "GIT_COMMITTER_EMAIL": "dsv-bench@localhost",
            }
        )
        self.env = env
        sync = not args.no_sync
        self.cp = Tool("cp", ["cp", "-r"], env, self.log, sync)
        git = resolve_exe("git")
        self.git = Tool("git", [git or "git"], env, self.log, sync)

        self.dsv: Tool | None = None
        if not args.skip_dsv:
            argv, extra = resolve_dsv(args.dsv)
            self.dsv = Tool("dsv", argv, env | extra, self.log, sync)
        self.dvc: Tool | None = None
        if not args.skip_dvc:
            exe = resolve_exe("dvc")
            if exe is None:
                sys.exit(
                    "bench_foundation: `dvc` not found. Install it with `pip install 'dvc>=3'` "
                    "(it is in dsv's dev extras: pip install -e '.[dev]'), or pass --skip-dvc."
                )
            if git is None:
                sys.exit("bench_foundation: `git` not found (DVC runs in a git repo here).")
            self.dvc = Tool("dvc", [exe], env, self.log, sync)

    # ------------------------------------------------------------------ helpers

    def probe(self) -> dict[str, str]:
        """Check the tools run; returns their versions."""
        probe_dir = self.run_dir
        info: dict[str, str] = {}
        if self.dsv is not None:
            r = self.dsv.run(["--help"], probe_dir, "-", "probe", check=False)
            if r.rc != 0:
                tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-8:])
                sys.exit(
                    f"bench_foundation: the dsv CLI does not run ({shlex.join(self.dsv.argv)} "
                    f"--help exited {r.rc}):\n{tail}\n"
                    "Install it (pip install -e .), point --dsv at it, or pass --skip-dsv."
                )
            v = self.dsv.run(["--version"], probe_dir, "-", "probe", check=False)
            info["dsv"] = v.stdout.strip() if v.rc == 0 else "(no --version)"
            info["dsv_cmd"] = shlex.join(self.dsv.argv)
        if self.dvc is not None:
            r = self.dvc.run(["--version"], probe_dir, "-", "probe")
            info["dvc"] = r.stdout.strip()
        return info

    def hashes(self, root: Path) -> dict[str, tuple[str, int]]:
        if root not in self._hash_cache:
            self._hash_cache[root] = self.md.hash_tree(root)
        return self._hash_cache[root]

    def fail(self, msg: str) -> None:
        self.failures.append(msg)
        bar = "!" * 78
        body = "\n".join("!! " + line for line in f"FAILURE: {msg}".splitlines())
        print(f"\n{bar}\n{body}\n{bar}\n", flush=True)

    def verify_tree(self, label: str, expected: Path, got: Path) -> bool:
        """Byte-for-byte: same relative paths, same sha256 of every file."""
        want = self.hashes(expected)
        have: dict[str, tuple[str, int]] = self.md.hash_tree(got) if got.is_dir() else {}
        missing = sorted(want.keys() - have.keys())
        extra = sorted(have.keys() - want.keys())
        differ = sorted(p for p in want.keys() & have.keys() if want[p] != have[p])
        if not (missing or extra or differ):
            return True
        parts = [f"{label}: result differs from v2 ({len(want)} files expected, {len(have)} found)"]
        for name, paths in (("missing", missing), ("extra", extra), ("different", differ)):
            if paths:
                parts.append(
                    f"  {name} ({len(paths)}): {', '.join(paths[:5])}"
                    + (" ..." if len(paths) > 5 else "")
                )
        self.fail("\n".join(parts))
        return False

    def interleaved(
        self, fns: dict[str, Callable[[], float] | None], repeat: int
    ) -> dict[str, float | None]:
        """Median seconds of each fn; the tools take turns (order rotated each round) so drift
        on this shared machine hits them alike."""
        live = [k for k, fn in fns.items() if fn is not None]
        times: dict[str, list[float]] = {k: [] for k in live}
        for i in range(repeat):
            for k in live[i % len(live) :] + live[: i % len(live)] if live else []:
                fn = fns[k]
                assert fn is not None
                times[k].append(fn())
        return {k: statistics.median(times[k]) if k in times else None for k in fns}

    def log_max_rss(self, tool: str, dataset: str) -> tuple[float | None, str]:
        runs = [r for r in self.log if r.tool == tool and r.dataset == dataset]
        if not runs:
            return None, ""
        top = max(runs, key=lambda r: r.maxrss_mb)
        return top.maxrss_mb, top.step

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    # ------------------------------------------------------------------ datasets

    def dataset(self, kind: str) -> None:
        md = self.md
        base = self.run_dir / kind
        v1, v2 = base / "gen" / "v1", base / "gen" / "v2"
        t0 = time.perf_counter()
        md.gen(kind, v1, self.scale)
        shutil.copytree(v1, v2, symlinks=True)
        md.edit(kind, v2)
        n_files, n_bytes = tree_files(v1), tree_bytes(v1)
        print(
            f"\n== {kind}: {n_files} files, {human_bytes(n_bytes)} (v2: {tree_files(v2)} files, "
            f"{human_bytes(tree_bytes(v2))}); generated in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

        ws_dsv, ws_dvc, ws_cp = base / "dsv", base / "dvc", base / "cp"
        for ws in (ws_dsv, ws_dvc):
            shutil.copytree(v1, ws / "data", symlinks=True)
        ws_cp.mkdir()
        try:
            self._dataset_steps(kind, v1, v2, n_bytes, ws_dsv, ws_dvc, ws_cp)
        except CommandFailed as e:
            self.fail(f"{kind}: command failed: {e}")
            self.add(Row("ERROR", kind, "s", result="error", note=str(e).splitlines()[0][:120]))
        finally:
            self.rss_row(kind)
            self._hash_cache.clear()
            if not self.args.keep:
                shutil.rmtree(base, ignore_errors=True)

    def _dataset_steps(
        self, kind: str, v1: Path, v2: Path, n_bytes: int, ws_dsv: Path, ws_dvc: Path, ws_cp: Path
    ) -> None:
        md, dsv, dvc, rep = self.md, self.dsv, self.dvc, self.args.repeat

        # -------------------------------------------------------------- init
        init = Row("init", kind, "s", note="dvc = git init + dvc init")
        if dsv:
            init.dsv = dsv.run(["init"], ws_dsv, kind, "init").seconds
        if dvc:
            init.dvc = (
                self.git.run(["init", "-q"], ws_dvc, kind, "init").seconds
                + dvc.run(["init", "-q"], ws_dvc, kind, "init").seconds
            )
            dvc.run(["config", "core.analytics", "false"], ws_dvc, kind, "config")
        self.add(init)
        dsv_store, dvc_cache = ws_dsv / ".dsv" / "objects", ws_dvc / ".dvc" / "cache"

        # -------------------------------------------------------------- v1 commit
        target_x = {"big": V1_BIG_VS_DVC, "images": V1_IMAGES_VS_DVC}.get(kind)
        c1 = Row(
            "v1 commit",
            kind,
            "s",
            target=f"dvc/dsv >= {target_x:g}" if target_x else "",
            note="dsv commit | dvc add | cp -r",
        )
        # Repeated rounds, tools taking turns; between rounds each tool's store is reset
        # (untimed) so every round is a first commit of the same data.
        first_id: list[str] = []

        def dsv_v1() -> float:
            if (ws_dsv / ".dsv" / "objects" / "pack").exists() and any(
                (ws_dsv / ".dsv" / "objects" / "pack").iterdir()
            ):
                shutil.rmtree(ws_dsv / ".dsv")
                assert dsv is not None
                dsv.run(["init"], ws_dsv, kind, "re-init")
            assert dsv is not None
            r = dsv.run(["commit", "-m", "v1"], ws_dsv, kind, "commit v1")
            first_id.append(commit_id(r.stdout))
            return r.seconds

        def dvc_v1() -> float:
            if (ws_dvc / "data.dvc").exists():
                assert dvc is not None
                (ws_dvc / "data.dvc").unlink()
                shutil.rmtree(dvc_cache, ignore_errors=True)
                shutil.rmtree(ws_dvc / ".dvc" / "tmp", ignore_errors=True)
            assert dvc is not None
            return dvc.run(["add", "-q", "data"], ws_dvc, kind, "add v1").seconds

        def cp_v1() -> float:
            shutil.rmtree(ws_cp / "v1", ignore_errors=True)
            return self.cp.run([str(v1), str(ws_cp / "v1")], ws_cp, kind, "cp v1").seconds

        med1 = self.interleaved(
            {"dsv": dsv_v1 if dsv else None, "dvc": dvc_v1 if dvc else None, "cp": cp_v1}, rep
        )
        c1.dsv, c1.dvc, c1.cp = med1["dsv"], med1["dvc"], med1["cp"]
        if first_id:
            c1.note += f"; id {first_id[-1]}; median of {rep}"
        shutil.rmtree(ws_cp / "v1", ignore_errors=True)
        if target_x:
            c1.result = judge(None if c1.dvc_ratio is None else c1.dvc_ratio >= target_x)
        self.add(c1)
        tp = Row(
            "v1 commit throughput",
            kind,
            "GB/s",
            dsv=None if c1.dsv is None else n_bytes / c1.dsv / GB,
            dvc=None if c1.dvc is None else n_bytes / c1.dvc / GB,
            cp=n_bytes / c1.cp / GB,
            note=f"{human_bytes(n_bytes)} / commit time",
        )
        if kind == "big":
            tp.target = f"dsv >= {V1_BIG_GBPS:g} GB/s"
            tp.result = judge(None if tp.dsv is None else tp.dsv >= V1_BIG_GBPS)
        self.add(tp)
        store1_dsv, store1_dvc = tree_bytes(dsv_store), tree_bytes(dvc_cache)
        self.add(
            Row(
                "store after v1",
                kind,
                "B",
                dsv=store1_dsv if dsv else None,
                dvc=store1_dvc if dvc else None,
                note=f"data {human_bytes(n_bytes)}; .dsv/objects vs .dvc/cache",
            )
        )

        # -------------------------------------------------------------- no-op status
        st = Row(
            "no-op status",
            kind,
            "s",
            target=f"dvc/dsv >= {STATUS_VS_DVC:g}",
            note=f"median of {rep}",
        )
        med = self.interleaved(
            {
                "dsv": (lambda: self.dsv_status(ws_dsv, kind, "status clean", True))
                if dsv
                else None,
                "dvc": (lambda: self.dvc_status(ws_dvc, kind, "status clean", True))
                if dvc
                else None,
            },
            rep,
        )
        st.dsv, st.dvc = med["dsv"], med["dvc"]
        st.result = judge(None if st.dvc_ratio is None else st.dvc_ratio >= STATUS_VS_DVC)
        self.add(st)

        # -------------------------------------------------------------- edit (untimed)
        for ws in (ws_dsv, ws_dvc):
            md.edit(kind, ws / "data")

        dirty = Row("status after edit", kind, "s", target="dsv lists = real diff")
        if dsv:
            r = dsv.run(["status", "--json"], ws_dsv, kind, "status dirty")
            dirty.dsv = r.seconds
            ok = self.check_dirty_status(kind, r.stdout, v1, v2)
            dirty.result = judge(ok)
        else:
            dirty.result = "skip"
        if dvc:
            dirty.dvc = self.dvc_status(ws_dvc, kind, "status dirty", expect_clean=False)
        self.add(dirty)

        # -------------------------------------------------------------- v2 commit
        c2 = Row("v2 commit", kind, "s", note="dsv commit | dvc add")
        if dsv:
            c2.dsv = dsv.run(["commit", "-m", "v2"], ws_dsv, kind, "commit v2").seconds
        if dvc:
            c2.dvc = dvc.run(["add", "-q", "data"], ws_dvc, kind, "add v2").seconds
        self.add(c2)
        grow = Row(
            "v2 store growth",
            kind,
            "B",
            dsv=tree_bytes(dsv_store) - store1_dsv if dsv else None,
            dvc=tree_bytes(dvc_cache) - store1_dvc if dvc else None,
        )
        if kind == "big":
            size = (v1 / "big.bin").stat().st_size
            new_bytes = size // 1024 + size * 10 // 1024  # overwritten + appended
            limit = new_bytes + V2_BIG_SLACK
            grow.target = f"dsv < {human_bytes(limit)}"
            grow.result = judge(None if grow.dsv is None else grow.dsv < limit)
            grow.note = f"edit writes {human_bytes(new_bytes)} new bytes"
        self.add(grow)
        if dsv:
            r = dsv.run(["log", "--json"], ws_dsv, kind, "log")
            n = count_log_entries(r.stdout)
            if n is not None and n != 2:
                self.fail(f"{kind}: dsv log --json shows {n} commits, expected 2")

        # -------------------------------------------------------------- checkout
        co = Row(
            "checkout to empty",
            kind,
            "s",
            target=f"cp/dsv >= {CHECKOUT_VS_CP:g}",
            note=f"median of {rep}; verified vs v2",
        )

        aside = ws_cp.parent / "set-aside"  # removed with the data set

        def dsv_co() -> float:
            assert dsv
            for p in ws_dsv.iterdir():
                if p.name != ".dsv":
                    set_aside(p, aside)
            return dsv.run(["checkout", "--force", "HEAD"], ws_dsv, kind, "checkout").seconds

        def dvc_co() -> float:
            assert dvc
            set_aside(ws_dvc / "data", aside)
            return dvc.run(["checkout", "-q"], ws_dvc, kind, "checkout").seconds

        def cp_co() -> float:
            set_aside(ws_cp / "co", aside)
            (ws_cp / "co").mkdir()
            return self.cp.run([str(v2), str(ws_cp / "co" / "data")], ws_cp, kind, "cp v2").seconds

        med = self.interleaved(
            {"dsv": dsv_co if dsv else None, "dvc": dvc_co if dvc else None, "cp": cp_co}, rep
        )
        co.dsv, co.dvc, co.cp = med["dsv"], med["dvc"], med["cp"]
        ok = True
        if dsv:
            ok &= self.verify_tree(f"{kind}: dsv checkout --force HEAD", v2, ws_dsv / "data")
            others = sorted(p.name for p in ws_dsv.iterdir() if p.name not in (".dsv", "data"))
            if others:
                ok = False
                self.fail(f"{kind}: dsv checkout wrote unexpected top-level entries: {others}")
        if dvc:
            ok &= self.verify_tree(f"{kind}: dvc checkout", v2, ws_dvc / "data")
        ok &= self.verify_tree(f"{kind}: cp -r", v2, ws_cp / "co" / "data")
        remove(ws_cp / "co")
        if not ok:
            co.result, co.note = "FAIL", co.note + "; CONTENT MISMATCH"
        else:
            co.result = judge(None if co.cp_ratio is None else co.cp_ratio >= CHECKOUT_VS_CP)
        self.add(co)

        # -------------------------------------------------------------- gc (info)
        gc = Row("gc", kind, "s", note="dsv gc | dvc gc -w -f")
        if dsv:
            before = tree_bytes(dsv_store)
            gc.dsv = dsv.run(["gc"], ws_dsv, kind, "gc").seconds
            gc.note += f"; dsv store {human_bytes(before)} -> {human_bytes(tree_bytes(dsv_store))}"
        if dvc:
            gc.dvc = dvc.run(["gc", "-w", "-f", "-q"], ws_dvc, kind, "gc").seconds
        self.add(gc)

    def dsv_status(self, ws: Path, dataset: str, step: str, expect_clean: bool) -> float:
        assert self.dsv
        r = self.dsv.run(["status", "--json"], ws, dataset, step)
        try:
            clean = bool(json.loads(r.stdout)["clean"])
        except (ValueError, KeyError, TypeError) as e:
            self.fail(f"{dataset}: `dsv status --json` output unreadable ({e}): {r.stdout[:200]!r}")
        else:
            if clean != expect_clean:
                self.fail(
                    f"{dataset}: `dsv status` says clean={clean}, expected {expect_clean}: "
                    f"{r.stdout[:300]!r}"
                )
        return r.seconds

    def dvc_status(self, ws: Path, dataset: str, step: str, expect_clean: bool) -> float:
        assert self.dvc
        r = self.dvc.run(["status", "-q"], ws, dataset, step, check=False)
        if r.rc not in (0, 1):
            raise CommandFailed(f"dvc status -q exited {r.rc}: {r.stderr.strip()[-500:]}")
        if (r.rc == 0) != expect_clean:
            self.fail(f"{dataset}: `dvc status` rc={r.rc}, expected clean={expect_clean}")
        return r.seconds

    def check_dirty_status(self, kind: str, out: str, v1: Path, v2: Path) -> bool:
        """dsv's added/modified/deleted must equal the real file-level diff of v1 -> v2."""
        a, b = self.hashes(v1), self.hashes(v2)
        want = {
            "added": {f"data/{p}" for p in b.keys() - a.keys()},
            "deleted": {f"data/{p}" for p in a.keys() - b.keys()},
            "modified": {f"data/{p}" for p in a.keys() & b.keys() if a[p] != b[p]},
        }
        try:
            doc = json.loads(out)
            have = {k: {norm_path(p) for p in doc.get(k, [])} for k in want}
            clean = bool(doc["clean"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self.fail(f"{kind}: `dsv status --json` after edit unreadable ({e}): {out[:200]!r}")
            return False
        bad = [
            f"{k}: {len(have[k])} listed, {len(want[k])} real"
            + (
                f" (e.g. missing {sorted(want[k] - have[k])[:3]},"
                f" extra {sorted(have[k] - want[k])[:3]})"
            )
            for k in want
            if have[k] != want[k]
        ]
        if clean:
            bad.insert(0, "clean=true after the edit")
        if bad:
            self.fail(f"{kind}: `dsv status --json` after the v2 edit is wrong: " + "; ".join(bad))
            return False
        return True

    def rss_row(self, dataset: str) -> None:
        dsv_mb, dsv_step = self.log_max_rss("dsv", dataset)
        dvc_mb, dvc_step = self.log_max_rss("dvc", dataset)
        row = Row(
            "peak RSS (max cmd)",
            dataset,
            "MB",
            dsv=dsv_mb,
            dvc=dvc_mb,
            target=f"dsv < {RSS_MAX_MB:g} MB",
            result=judge(None if dsv_mb is None else dsv_mb < RSS_MAX_MB),
            note=f"dsv: {dsv_step or '-'}; dvc: {dvc_step or '-'}",
        )
        self.add(row)

    # ------------------------------------------------------------------ status on N tiny files

    def status_files(self, n: int) -> None:
        dsv, dvc = self.dsv, self.dvc if self.args.with_dvc_status_100k else None
        if dsv is None and dvc is None:
            print(f"\n== status-{n}: skipped (needs dsv, or --with-dvc-status-100k for DVC)")
            return
        name = f"tiny-{n}"
        base = self.run_dir / name
        t0 = time.perf_counter()
        # written straight into each workspace: copying 100k files costs as much as writing them
        for tool, on in (("dsv", dsv), ("dvc", dvc)):
            if on is not None:
                write_tiny_files(base / tool / "data", n)
        print(
            f"\n== {name}: {n} tiny files per tool generated in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        rep = self.args.repeat
        try:
            commit = Row("commit tiny files", name, "s", note="dsv init+commit | dvc add (info)")
            st = Row(
                "no-op status",
                name,
                "s",
                note=f"median of {rep}",
                target=f"dsv < {STATUS_FILES_MAX_S:g} s"
                + (f", dvc/dsv >= {STATUS_VS_DVC:g}" if dvc else ""),
            )
            if dsv:
                ws = base / "dsv"
                commit.dsv = (
                    dsv.run(["init"], ws, name, "init").seconds
                    + dsv.run(["commit", "-m", "v1"], ws, name, "commit v1").seconds
                )
                st.dsv = self.interleaved(
                    {"dsv": lambda: self.dsv_status(ws, name, "status clean", True)}, rep
                )["dsv"]
            if dvc:
                ws = base / "dvc"
                self.git.run(["init", "-q"], ws, name, "init")
                dvc.run(["init", "-q"], ws, name, "init")
                dvc.run(["config", "core.analytics", "false"], ws, name, "config")
                commit.dvc = dvc.run(["add", "-q", "data"], ws, name, "add v1").seconds
                st.dvc = self.interleaved(
                    {"dvc": lambda: self.dvc_status(ws, name, "status clean", True)}, rep
                )["dvc"]
            self.add(commit)
            checks = []
            if st.dsv is not None:
                checks.append(st.dsv < STATUS_FILES_MAX_S)
                if st.dvc_ratio is not None:
                    checks.append(st.dvc_ratio >= STATUS_VS_DVC)
            st.result = judge(all(checks) if checks else None)
            self.add(st)
        except CommandFailed as e:
            self.fail(f"{name}: command failed: {e}")
            self.add(Row("ERROR", name, "s", result="error", note=str(e).splitlines()[0][:120]))
        finally:
            self.rss_row(name)
            if not self.args.keep:
                shutil.rmtree(base, ignore_errors=True)

    # ------------------------------------------------------------------ big-file peak RSS

    def rss_big(self, gib: float) -> None:
        """One file of ``gib`` GiB: commit, status, a small edit + commit, checkout; RSS of each."""
        name = f"rss-big-{gib:g}GiB"
        if self.dsv is None:
            print(f"\n== {name}: skipped (--skip-dsv)")
            return
        dsv = self.dsv
        size = int(gib * GiB)
        ws = self.run_dir / name
        big = ws / "data" / "big.bin"
        big.parent.mkdir(parents=True)
        t0 = time.perf_counter()
        write_random_file(big, size)
        print(
            f"\n== {name}: {human_bytes(size)} of random bytes written in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )

        def rss_row(step: str, r: Run, rate: bool = True) -> None:
            self.add(
                Row(
                    f"big {step} peak RSS",
                    name,
                    "MB",
                    dsv=r.maxrss_mb,
                    target=f"dsv < {RSS_MAX_MB:g} MB",
                    result=judge(r.maxrss_mb < RSS_MAX_MB),
                    note=f"{r.seconds:.1f} s"
                    + (f", {size / r.seconds / GB:.2f} GB/s" if rate else ""),
                )
            )

        try:
            dsv.run(["init"], ws, name, "init")
            rss_row("commit v1", dsv.run(["commit", "-m", "big"], ws, name, "commit v1"))
            rss_row("status", dsv.run(["status", "--json"], ws, name, "status clean"), rate=False)
            # the small edit of make_data.py's `big`, at this size: 1 MiB overwritten past the
            # middle (not chunk-aligned), 10 MiB appended
            before = tree_bytes(ws / ".dsv")
            edit_big(big, overwrite=MiB, append=10 * MiB)
            rss_row("commit v2", dsv.run(["commit", "-m", "edit"], ws, name, "commit v2"))
            grown = tree_bytes(ws / ".dsv") - before
            # the edit's 11 MiB, the slack of the 1 GiB target, and the file's chunk list, which
            # a new version stores whole (20 bytes per chunk of ~80 KiB: size / 4096)
            limit = 11 * MiB + V2_BIG_SLACK + size // 4096
            self.add(
                Row(
                    "big v2 store growth",
                    name,
                    "B",
                    dsv=grown,
                    target=f"< {human_bytes(limit)}",
                    result=judge(grown < limit),
                    note=f"1 MiB overwritten + 10 MiB appended; 1/{size / grown:,.0f} of the file",
                )
            )
            want = file_digest(big)
            big.unlink()
            rss_row("checkout", dsv.run(["checkout", "--force", "HEAD"], ws, name, "checkout"))
            if file_digest(big) != want:
                self.fail(f"{name}: the checked-out file differs from v2")
                self.add(Row("ERROR", name, "s", result="error", note="checkout differs from v2"))
        except CommandFailed as e:
            self.fail(f"{name}: command failed: {e}")
            self.add(Row("ERROR", name, "s", result="error", note=str(e).splitlines()[0][:120]))
        finally:
            if not self.args.keep:
                shutil.rmtree(ws, ignore_errors=True)

    # ------------------------------------------------------------------ output

    def report(self, meta: dict[str, Any]) -> None:
        print("\n" + "=" * 100)
        print(
            f"RESULTS  scale {self.scale:g}, repeat {self.args.repeat}; "
            "ALL FIGURES WARM-CACHE (page cache not dropped"
            + ("; untimed sync before each command)" if not self.args.no_sync else ")")
        )
        print(
            "ratios are other/dsv: > 1 means dsv is faster or smaller; only same-run ratios compare"
        )
        if self.scale != 1:
            print(
                f"NOTE: targets are defined at --scale 1; at scale {self.scale:g} PASS/FAIL is "
                "indicative only"
            )
        print()
        print_table(
            [
                "scenario",
                "data",
                "dsv",
                "dvc",
                "cp -r",
                "dvc/dsv",
                "cp/dsv",
                "target",
                "result",
                "note",
            ],
            (
                [
                    r.scenario,
                    r.dataset,
                    fmt_value(r.dsv, r.unit),
                    fmt_value(r.dvc, r.unit),
                    fmt_value(r.cp, r.unit),
                    fmt_ratio(r.dvc_ratio),
                    fmt_ratio(r.cp_ratio),
                    r.target or "-",
                    r.result,
                    r.note,
                ]
                for r in self.rows
            ),
        )

        steps: dict[tuple[str, str], dict[str, Run]] = {}
        for run in self.log:
            if run.tool in ("dsv", "dvc") and run.dataset != "-":
                cur = steps.setdefault((run.dataset, run.step), {})
                if run.tool not in cur or run.maxrss_mb > cur[run.tool].maxrss_mb:
                    cur[run.tool] = run
        print("\npeak RSS per command (max over repeats; ru_maxrss of the child via os.wait4)")

        def cell(d: dict[str, Run], tool: str) -> str:
            return f"{d[tool].maxrss_mb:.0f} MB" if tool in d else "-"

        print_table(
            ["data", "step", "dsv", "dvc", "dsv < 300 MB"],
            (
                [
                    ds,
                    step,
                    cell(d, "dsv"),
                    cell(d, "dvc"),
                    judge(d["dsv"].maxrss_mb < RSS_MAX_MB) if "dsv" in d else "-",
                ]
                for (ds, step), d in steps.items()
            ),
        )

        n_fail = sum(r.result == "FAIL" for r in self.rows)
        n_pass = sum(r.result == "PASS" for r in self.rows)
        print(f"\ntargets: {n_pass} PASS, {n_fail} FAIL")
        if self.failures:
            print(f"\n!!! {len(self.failures)} CORRECTNESS FAILURE(S) / ERROR(S):")
            for f in self.failures:
                print("!!! " + f.replace("\n", "\n!!! "))
        if self.args.json_out:
            doc = {
                "meta": meta,
                "rows": [
                    asdict(r) | {"dvc_ratio": r.dvc_ratio, "cp_ratio": r.cp_ratio}
                    for r in self.rows
                ],
                "commands": [
                    {k: v for k, v in asdict(r).items() if k not in ("stdout", "stderr")}
                    for r in self.log
                ],
                "failures": self.failures,
            }
            Path(self.args.json_out).write_text(json.dumps(doc, indent=1, default=str) + "\n")
            print(f"\nJSON written to {self.args.json_out}")


def commit_id(out: str) -> str:
    """The first hex token of `dsv commit`'s output (shortened), else its first line."""
    m = re.search(r"\b[0-9a-f]{7,}\b", out)
    if m:
        return m.group(0)[:12]
    return (out.strip().splitlines() or ["?"])[0][:40]


def norm_path(p: Any) -> str:
    if isinstance(p, dict):
        p = p.get("path", "")
    s = str(p).replace(os.sep, "/")
    return s[2:] if s.startswith("./") else s


def count_log_entries(out: str) -> int | None:
    try:
        doc = json.loads(out)
    except ValueError:
        lines = [ln for ln in out.splitlines() if ln.strip()]
        try:  # JSON lines
            return len([json.loads(ln) for ln in lines])
        except ValueError:
            return None
    if isinstance(doc, list):
        return len(doc)
    if isinstance(doc, dict):
        for key in ("commits", "log", "entries"):
            if isinstance(doc.get(key), list):
                return len(doc[key])
    return None


# ---------------------------------------------------------------------------- main


def load_make_data(path: Path) -> ModuleType:
    if not path.is_file():
        sys.exit(
            f"bench_foundation: data generator not found: {path}\n"
            "It lives in ../shared/bench/make_data.py relative to the repository root; "
            "pass --make-data PATH if it is elsewhere."
        )
    spec = importlib.util.spec_from_file_location("make_data", path)
    if spec is None or spec.loader is None:
        sys.exit(f"bench_foundation: cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except ImportError as e:
        sys.exit(f"bench_foundation: {path} needs numpy and pyarrow ({e}); pip install -e '.[dev]'")
    return mod


@contextmanager
def failures_recorded(failures: list[str]) -> Iterator[None]:
    """The body of a benchmark's main: an interrupt, or a harness error (its traceback printed),
    is recorded in `failures` instead of ending the run before its report."""
    try:
        yield
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        failures.append("interrupted")
    except Exception:
        traceback.print_exc()
        failures.append("harness error (traceback above)")


def drop_run_dir(run_dir: Path, keep: bool) -> None:
    if keep:
        print(f"\nkept {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", type=float, default=None, help="dataset scale (default 1)")
    ap.add_argument("--quick", action="store_true", help="scale 0.05")
    ap.add_argument(
        "--only",
        default=",".join(KINDS),
        help="comma-separated datasets among images,table,big (default all); "
        "'none' for only the extra scenarios",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="repetitions of status and checkout (median; default 1)",
    )
    ap.add_argument(
        "--status-files",
        type=int,
        default=100_000,
        metavar="N",
        help="no-op status on N tiny files (default 100000; 0 = off)",
    )
    ap.add_argument(
        "--with-dvc-status-100k",
        action="store_true",
        help="also run dvc add + dvc status on the --status-files tree (slow)",
    )
    ap.add_argument(
        "--rss-big",
        type=float,
        default=0,
        metavar="GIB",
        help="commit a GIB GiB random file and report dsv peak RSS (default off)",
    )
    ap.add_argument("--skip-dsv", action="store_true", help="run only the DVC and cp parts")
    ap.add_argument("--skip-dvc", action="store_true", help="run only the dsv and cp parts")
    ap.add_argument(
        "--dsv",
        default=None,
        metavar="CMD",
        help="dsv command (default: the dsv script beside this python, on PATH, "
        "else python -m dsv with src/ on PYTHONPATH)",
    )
    ap.add_argument(
        "--make-data",
        type=Path,
        default=DEFAULT_MAKE_DATA,
        help=f"path of make_data.py (default {DEFAULT_MAKE_DATA})",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="parent of the run's temp dir (default: the system temp dir)",
    )
    ap.add_argument(
        "--no-sync",
        action="store_true",
        help="do not run sync(2) (untimed) before each command",
    )
    ap.add_argument("--json-out", default=None, metavar="FILE", help="also write results as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the run's temp dir")
    a = ap.parse_args(argv)
    if a.quick and a.scale is not None:
        ap.error("--quick and --scale exclude each other")
    a.scale = 0.05 if a.quick else (1.0 if a.scale is None else a.scale)
    if a.scale <= 0:
        ap.error("--scale must be > 0")
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    a.kinds = (
        [] if a.only.strip() == "none" else [k.strip() for k in a.only.split(",") if k.strip()]
    )
    unknown = [k for k in a.kinds if k not in KINDS]
    if unknown:
        ap.error(f"--only: unknown dataset(s) {unknown}; choose from {','.join(KINDS)}")
    if a.skip_dsv and a.skip_dvc:
        ap.error("--skip-dsv and --skip-dvc together leave nothing to compare")
    return a


def ensure_bytecode() -> None:
    """Compile dsv's modules once, as ``pip install`` does for an installed package.

    With an editable install and PYTHONDONTWRITEBYTECODE set (as on this
    machine), every dsv command would otherwise recompile its modules from
    source (~30 ms), a cost DVC, installed with its bytecode, never pays.
    """
    import compileall

    src = REPO_ROOT / "src" / "dsv"
    if src.is_dir():
        compileall.compile_dir(str(src), quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_bytecode()
    md = load_make_data(args.make_data)
    if args.workdir is not None:
        wd = args.workdir.resolve()
        if wd == REPO_ROOT or REPO_ROOT in wd.parents:
            sys.exit("bench_foundation: --workdir must be outside the repository")
        wd.mkdir(parents=True, exist_ok=True)
    run_dir = Path(
        tempfile.mkdtemp(
            prefix="dsv-bench-", dir=None if args.workdir is None else str(args.workdir)
        )
    )
    bench = Bench(args, md, run_dir)
    try:
        info = bench.probe()
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    meta: dict[str, Any] = {
        "scale": args.scale,
        "repeat": args.repeat,
        "datasets": args.kinds,
        "status_files": args.status_files,
        "rss_big_gib": args.rss_big,
        "warm_cache": True,
        "sync_before_each_command": not args.no_sync,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_dir": str(run_dir),
    }
    meta |= info
    try:
        with failures_recorded(bench.failures):
            print(
                f"dsv-bench  run dir {run_dir}  scale {args.scale:g}  repeat {args.repeat}  "
                f"cpus {os.cpu_count()}"
            )
            print(f"  dsv: {meta.get('dsv_cmd', 'skipped')} {meta.get('dsv', '')}".rstrip())
            print(f"  dvc: {meta.get('dvc', 'skipped')}")
            print(
                "  all figures are WARM-CACHE: caches cannot be dropped here; "
                + ("sync(2) runs, untimed, before each command" if not args.no_sync else "no sync")
            )
            for kind in args.kinds:
                bench.dataset(kind)
            if args.status_files > 0:
                bench.status_files(args.status_files)
            if args.rss_big > 0:
                bench.rss_big(args.rss_big)
    finally:
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        bench.report(meta)
        drop_run_dir(run_dir, args.keep)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
