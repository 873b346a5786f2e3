#!/usr/bin/env python3
"""The published benchmark: dsv, DVC and git-lfs on the same data in one run, written as a report.

    python bench/run.py --quick          # a few minutes: scale 0.05, series at 1k and 10k files
    python bench/run.py --dsv-rev HEAD   # scale 1, series at 10k, 100k, 1M files (about an hour)
    python bench/run.py --tools dsv,dvc --sizes 10000,100000 --scale 0.5 --out /tmp/bench.md

--dsv-rev REV measures dsv as committed at REV (exported from git into the run's directory), so
that edits of src/ during a long run do not change what is measured; by default the dsv on PATH
(or beside this python) runs. The report goes to --out (default docs/benchmarks.md), its plots
(matplotlib, if installed) into the directory of the same name beside it. --json-out FILE keeps
the figures; --from-json FILE writes the report again from them, measuring nothing.

Data sets of ../shared/bench/make_data.py (images, table, big), each through every scenario:
  commit v1   dsv commit | dvc add data + git commit of data.dvc | git add + git commit (LFS);
              --commit-rounds times (default 5) where the data has at most 20,000 files, each
              earlier round in a fresh copy of the data and a fresh repository; the median
              (and so is a clone from a local remote of such data)
  status      no-op: dsv status | dvc status | git status --porcelain
  commit v2   after make_data's v2 edit (untimed), as commit v1; the store's growth
  diff        dsv diff --stat HEAD~1 HEAD | dvc diff HEAD~1 HEAD | git diff --stat HEAD~1 HEAD
              (info; dsv's file counts are checked against make_data's file diff)
  checkout    the data deleted, then dsv checkout --force HEAD | dvc checkout |
              git checkout HEAD -- data; each result compared byte for byte with v2
  push        to a local directory (git-lfs: a local bare repository) and to a moto S3 server
              run in this process (dsv and DVC; requests counted at the server):
              dsv push | dvc push --all-commits + git push | git push (LFS objects included)
  clone       dsv clone | git clone + dvc pull | git clone (LFS smudge); each verified vs v2
  gc          dsv gc | dvc gc -w -f | git lfs prune (info: DVC keeps only the workspace's data)
and a scaling series of N small files (512 B - 4 KiB of random bytes, 1000 to a directory):
commit, no-op status, push and clone to a local remote. git-lfs runs up to 100,000 files; above
that only the tools of --large-tools (default dsv,dvc) run, each command limited to --timeout.

Every command runs under bench_foundation's launcher (seconds from spawn to reap, peak RSS via
os.wait4), behind coreutils `timeout` (a command over --timeout is reported as "timeout"). A
sync(2), untimed, runs before each command. Tools take turns in every scenario; ratios are
other/dsv from this run only (above 1: dsv is faster or smaller). All figures are warm-cache:
the no-op status, which changes nothing, runs once untimed for each tool before it is timed,
and for data sets of up to 20,000 files every file a command may read (its workspace, store and
local remotes) is read, untimed, right before it (see Suite.warm).
A workspace or clone a scenario replaces is moved aside, not deleted, until the data set ends
(creating files right after mass deletion is slow on some file systems; see set_aside).
Exit status: 0 if every command succeeded and every result was correct (targets may FAIL).
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_foundation as bf
import bench_remote as br
from bench_foundation import CommandFailed, Run, Tool, human_bytes, tree_bytes, tree_files

TOOLS = ("dsv", "dvc", "git-lfs")
LABEL = {"dsv": "dsv", "dvc": "DVC", "git-lfs": "git-lfs"}
KINDS = ("images", "table", "big")
REMOTES = ("local", "s3")
TIMEOUT_RCS = (124, 137)  # coreutils timeout: the command stopped by TERM, or by KILL after 10 s
ROUNDS_MAX_FILES = 20_000  # commit v1 is timed --commit-rounds times up to this many files
FEW_FILES = 100  # set_aside deletes the trees of a data set of at most this many files
PEERS_MAX_FILES = 100_000  # series sizes above this run only the tools of --large-tools
FILES_PER_DIR = 1000

# Targets (defined at --scale 1 with the full series; elsewhere they are indicative only)
SMALL_FILES_VS_DVC = 10.0  # commit, status, push and clone of many small files
BIG_COMMIT_VS_DVC = 5.0
BIG_GROWTH_VS_DVC = 50.0  # store growth after a small edit of a big file: dsv <= 1/50 of DVC's
STATUS_1M_MAX_S = 10.0
MILLION = 1_000_000

# Where each tool keeps its objects (the working copies are alike and not counted)
STORES = {"dsv": (".dsv/objects",), "dvc": (".dvc/cache",), "git-lfs": (".git/objects", ".git/lfs")}
# What a clone may hold beside data/
OWN = {
    "dsv": {".dsv"},
    "dvc": {".dvc", ".dvcignore", ".git", ".gitignore", "data.dvc"},
    "git-lfs": {".git", ".gitattributes"},
}
DESCRIBE = {
    "images": "ImageFolder of PNG-like files (2-20 KB, 10 classes); v2 moves 1% to another "
    "class, deletes 0.5%, adds 1%",
    "table": "labels.parquet and meta.csv; v2 relabels 1% of the rows and appends 2% "
    "(the Parquet file is rewritten)",
    "big": "one file of random bytes; v2 overwrites 1/1024 of it in the middle and appends 10/1024",
}
PLOT_COLOR = {"dsv": "#1f77b4", "dvc": "#d62728", "git-lfs": "#2ca02c"}

Value = float | str  # a figure, or why there is none: "timeout", "error", "not run", "n/a"


# ---------------------------------------------------------------------------- commands


class TimedOut(CommandFailed):
    pass


class Limited(Tool):
    """A Tool whose commands are stopped after `timeout` seconds by coreutils `timeout`.

    `timeout` waits for the command, so the peak RSS that os.wait4 reports for it is still the
    command's own (the largest of the processes it waited for; `timeout` itself is ~2 MB).
    """

    def __init__(self, tool: Tool, timeout: float) -> None:
        argv = ["timeout", "-k", "10", f"{timeout:g}", *tool.argv]
        super().__init__(tool.name, argv, tool.env, tool.log, tool.sync)
        self.timeout = timeout

    def run(self, args: list[str], cwd: Path, dataset: str, step: str, check: bool = True) -> Run:
        try:
            r = super().run(args, cwd, dataset, step, check)
        except CommandFailed as e:
            if self.log and self.log[-1].rc in TIMEOUT_RCS:
                raise TimedOut(f"{self.name} {' '.join(args)}: over {self.timeout:g} s") from e
            raise
        if r.rc in TIMEOUT_RCS:
            raise TimedOut(f"{self.name} {' '.join(args)}: over {self.timeout:g} s")
        return r


def write_small_files(root: Path, n: int, seed: int = 20240601) -> None:
    """n files of 512 B - 4 KiB of random bytes, FILES_PER_DIR to a directory; deterministic."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = rng.integers(512, 4097, n)
    for d in range(math.ceil(n / FILES_PER_DIR)):
        sub = root / f"d{d:04d}"
        sub.mkdir(parents=True)
        lo, hi = d * FILES_PER_DIR, min(n, (d + 1) * FILES_PER_DIR)
        blob = rng.bytes(int(sizes[lo:hi].sum()))
        off = 0
        for i in range(lo, hi):
            end = off + int(sizes[i])
            fd = os.open(sub / f"f{i:07d}.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, blob[off:end])
            finally:
                os.close(fd)
            off = end


def git_out(*args: str) -> str:
    """The output of a git command in this repository ("?" if it fails)."""
    r = subprocess.run(["git", "-C", str(bf.REPO_ROOT), *args], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "?"


def export_dsv(rev: str, into: Path) -> str:
    """dsv's src/ as committed at rev, exported into `into` and compiled; the command that runs
    it. A long run then measures one version, whatever happens to the working tree meanwhile."""
    into.mkdir(parents=True)
    tar = subprocess.run(
        ["git", "-C", str(bf.REPO_ROOT), "archive", rev, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar.stdout, check=True)
    compileall.compile_dir(str(into / "src"), quiet=1)
    return shlex.join(["env", f"PYTHONPATH={into / 'src'}", sys.executable, "-m", "dsv"])


def python_start(rounds: int = 7) -> tuple[float, float]:
    """How long this interpreter takes to start and exit doing nothing (median of rounds), with
    its site-packages' start-up hooks (``.pth`` files) and without them (``-S``). Every tool
    here is a Python program and pays the first figure on each command: it is the floor under
    a no-op status, whatever the tool does. Milliseconds."""

    def median_ms(*flags: str) -> float:
        secs = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, *flags, "-c", "pass"], check=False)
            secs.append(time.perf_counter() - t0)
        return 1000 * statistics.median(secs)

    return median_ms(), median_ms("-S")


def disk_bytes(root: Path) -> int:
    """Disk space allocated under root, directories included (what `du` counts); 0 if absent."""
    return sum(e.stat(follow_symlinks=False).st_blocks * 512 for e in bf.tree_entries(root))


def store_size(tool: str, ws: Path, measure: Callable[[Path], int] = tree_bytes) -> int:
    """A tool's object store, by ``measure`` (bytes of its files, or disk_bytes)."""
    return sum(measure(ws / p) for p in STORES[tool])


# ---------------------------------------------------------------------------- results


@dataclass
class Line:
    """One scenario of one data set: a figure per tool."""

    dataset: str
    scenario: str
    unit: str  # s | B | req
    values: dict[str, Value] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)  # peak RSS of the timed commands
    note: str = ""
    # scenarios timed in several rounds: each round's seconds, and its system (kernel) seconds
    rounds: dict[str, list[float]] = field(default_factory=dict)
    sys_s: dict[str, list[float]] = field(default_factory=dict)

    def num(self, tool: str) -> float | None:
        v = self.values.get(tool)
        return float(v) if isinstance(v, int | float) else None

    def ratio(self, tool: str) -> float | None:
        return bf.ratio(self.num(tool), self.num("dsv"))


@dataclass
class Target:
    goal: str
    dataset: str
    figure: str
    result: str  # PASS | FAIL | not run
    scenario: str = ""  # the scenario judged, where it is one ("status", "commit v1", ...)


@dataclass
class Data:
    """A data set under test: each tool's workspace, remotes and the tree clones must equal."""

    name: str
    base: Path
    expected: Path  # what checkouts and clones must equal (v2; v1 in the series)
    tools: list[str]
    files: int
    size: int
    ws: dict[str, Path] = field(default_factory=dict)
    remotes: dict[tuple[str, str], br.Remote] = field(default_factory=dict)  # (kind, tool)
    bare: dict[str, Path] = field(default_factory=dict)  # git remote of dvc and git-lfs
    dead: dict[str, str] = field(default_factory=dict)  # tool -> "timeout" | "error"


@dataclass
class Results:
    """What a run measured and how it was run: all the report is written from."""

    tools: list[str]
    scale: float
    repeat: int
    sizes: list[int]
    remotes: list[str]
    timeout: float
    large_tools: list[str]
    remotes_same_fs: bool = True  # local remotes on the workspaces' file system (hard links)
    status_repeat: int = 1  # rounds of the no-op status
    commit_rounds: int = 1  # rounds of commit v1 (data of at most ROUNDS_MAX_FILES files)
    lines: list[Line] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)  # name, files, bytes, what
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, args: argparse.Namespace, failures: list[str]) -> Results:
        return cls(
            args.tools,
            args.scale,
            args.repeat,
            args.sizes,
            args.remotes,
            args.timeout,
            args.large_tools,
            status_repeat=args.status_repeat,
            commit_rounds=args.commit_rounds,
            failures=failures,
        )

    @classmethod
    def load(cls, doc: dict[str, Any]) -> Results:
        """From the "results" of a --json-out file."""
        res = cls(**{k: v for k, v in doc.items() if k != "lines"})
        res.lines = [Line(**line) for line in doc["lines"]]
        return res

    def find(self, dataset: str, scenario: str, unit: str = "s") -> Line | None:
        for line in self.lines:
            if (line.dataset, line.scenario, line.unit) == (dataset, scenario, unit):
                return line
        return None

    def vs_dvc(self, line: Line | None) -> tuple[float | None, str]:
        """DVC/dsv, and how to print it; a DVC timeout gives a lower bound."""
        if line is None:
            return None, "not run"
        dsv = line.num("dsv")
        r = line.ratio("dvc")
        if r is not None:
            return r, bf.fmt_ratio(r)
        if line.values.get("dvc") == "timeout" and dsv:
            r = self.timeout / dsv
            return r, f"> {bf.fmt_ratio(r)} (DVC over {self.timeout:g} s)"
        return None, "not run"

    def targets(self) -> list[Target]:
        out: list[Target] = []
        small = ["images"] + [series_name(n) for n in self.sizes]
        for ds in small:
            for scenario in (
                "commit v1",
                "status",
                "push local",
                "push s3",
                "clone local",
                "clone s3",
            ):
                line = self.find(ds, scenario)
                if line is None:
                    continue
                r, shown = self.vs_dvc(line)
                goal = f"small files, {scenario}: dsv >= {SMALL_FILES_VS_DVC:g}x faster than DVC"
                result = self.judge(r, SMALL_FILES_VS_DVC, shown)
                out.append(Target(goal, ds, shown, result, scenario))
        r, shown = self.vs_dvc(self.find("big", "commit v1"))
        goal = f"big file, commit v1: dsv >= {BIG_COMMIT_VS_DVC:g}x faster than DVC"
        result = self.judge(r, BIG_COMMIT_VS_DVC, shown)
        out.append(Target(goal, "big", shown, result, "commit v1"))
        for d in self.datasets:
            lines = [
                line
                for s in (
                    "store on disk after v1",
                    "store on disk after v2",
                    "remote on disk after push",
                )
                if (line := self.find(d["name"], s, "B")) is not None
            ]
            ratios = [(r, line.scenario) for line in lines if (r := line.ratio("dvc")) is not None]
            worst, where = min(ratios) if ratios else (None, "")
            out.append(
                Target(
                    "store and remote size on disk <= DVC's (after v1, after v2, remote)",
                    d["name"],
                    "not run" if worst is None else f"lowest DVC/dsv {worst:.3f}x ({where})",
                    self.judge(worst, 1.0),
                )
            )
        r, shown = self.vs_dvc(self.find("big", "store growth v2", "B"))
        goal = f"big file, store growth after a small edit: dsv <= 1/{BIG_GROWTH_VS_DVC:g} of DVC's"
        result = self.judge(r, BIG_GROWTH_VS_DVC, shown)
        out.append(Target(goal, "big", shown, result, "store growth v2"))
        big_n = [n for n in self.sizes if n >= MILLION]
        line = self.find(series_name(big_n[0]), "status") if big_n else None
        s = line.num("dsv") if line is not None else None
        out.append(
            Target(
                f"1M files, no-op status: dsv < {STATUS_1M_MAX_S:g} s",
                series_name(big_n[0]) if big_n else "files-1000000",
                "not run" if s is None else f"{s:.2f} s",
                "not run" if s is None else bf.judge(s < STATUS_1M_MAX_S),
            )
        )
        return out

    @staticmethod
    def judge(r: float | None, at_least: float, shown: str = "") -> str:
        """PASS or FAIL; "not run" without a figure, "open" when the figure is a lower bound
        (DVC timed out) that does not reach the target."""
        if r is None:
            return "not run"
        if r < at_least and shown.startswith(">"):
            return "open"
        return bf.judge(r >= at_least)


def series_name(n: int) -> str:
    return f"files-{n}"


def short_count(n: int) -> str:
    for div, suffix in ((MILLION, "M"), (1000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return f"{n:,}"


def fmt(v: Value | None, unit: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if unit == "s":
        return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"
    if unit == "B":
        return human_bytes(v)
    return f"{v:,.0f}"


def md_table(headers: list[str], rows: Iterable[list[str]], numeric: range = range(0)) -> str:
    """A Markdown table; the columns of `numeric` are right-aligned."""
    align = ["---:" if i in numeric else "---" for i in range(len(headers))]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------------------- the suite


class Suite(bf.Bench, br.RemoteBench):
    """Every scenario for every tool. The status and tree checks come from bench_foundation's
    Bench, the S3 server, remotes, `dsv push`/`dsv clone` and clone checks from bench_remote's
    RemoteBench; RemoteBench.__init__ sets up the attributes both read (one log, one env)."""

    def __init__(self, args: argparse.Namespace, md: ModuleType, run_dir: Path) -> None:
        br.RemoteBench.__init__(self, args, md, run_dir)
        git_config = run_dir / "gitconfig"  # LFS filters and identity; no user config is read
        self.env.update(
            {
                "GIT_CONFIG_GLOBAL": str(git_config),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_AUTHOR_NAME": "dsv-bench",
                "GIT_AUTHOR_EMAIL": "dsv-bench@localhost",
                "GIT_COMMITTER_NAME": "dsv-bench",
                "GIT_COMMITTER_EMAIL": "dsv-bench@localhost",
            }
        )
        git = bf.resolve_exe("git") or "git"
        sync = not args.no_sync
        limit = args.timeout
        self.dsv = Limited(self.dsv, limit)
        self.dvc = Limited(self.dvc, limit) if self.dvc is not None else None
        self.git = Limited(Tool("git", [git], self.env, self.log, sync), limit)  # DVC's git side
        self.lfs = Limited(Tool("git-lfs", [git], self.env, self.log, sync), limit)
        self.names: list[str] = args.tools  # the tools compared
        self.results = Results.of(args, self.failures)
        self.remotes_root = Path(
            tempfile.mkdtemp(prefix="dsv-bench-remotes-", dir=args.remotes_dir or run_dir)
        )
        same_fs = self.remotes_root.stat().st_dev == run_dir.stat().st_dev
        self.results.remotes_same_fs = same_fs
        # git's automatic gc runs in the foreground: billed to the command that starts it, not
        # to whichever tool runs next (nor racing `git lfs ls-files`)
        git_config.write_text("[init]\n\tdefaultBranch = main\n[gc]\n\tautoDetach = false\n")
        if "git-lfs" in self.names:
            self.lfs.run(["lfs", "install", "--skip-repo"], run_dir, "-", "setup")

    def remote(self, kind: str, tool: str, tag: str) -> br.Remote:
        """bench_remote's remote, a local one under --remotes-dir."""
        r = super().remote(kind, tool, tag)
        if kind == "local":
            r.url = str(self.remotes_root / f"{tool}-{tag}")
        return r

    def peer_dvc(self) -> Tool:
        """The DVC tool; only called for data sets DVC runs on."""
        assert self.dvc is not None
        return self.dvc

    # ------------------------------------------------------------------ machine and versions

    def versions(self) -> dict[str, str]:
        def out(tool: Tool, args: list[str]) -> str:
            r = tool.run(args, self.run_dir, "-", "probe", check=False)
            return (r.stdout.strip() or r.stderr.strip()).splitlines()[0] if r.rc == 0 else "?"

        info = {"dsv": out(self.dsv, ["--version"]), "git": out(self.git, ["--version"])}
        if self.args.dsv_rev:
            info["dsv"] += f" (commit {git_out('rev-parse', '--short', self.args.dsv_rev)})"
        elif self.args.dsv:
            info["dsv"] += f" (run as `{self.args.dsv}`)"
        else:
            changed = ", src/ modified" if git_out("status", "--porcelain", "--", "src") else ""
            info["dsv"] += f" (checkout {git_out('rev-parse', '--short', 'HEAD')}{changed})"
        if self.dvc is not None:
            info["dvc"] = out(self.dvc, ["--version"])
            try:
                from importlib.metadata import version

                info["dvc"] += f", dvc-s3 {version('dvc-s3')}"
            except Exception:
                pass
        if "git-lfs" in self.names:
            info["git-lfs"] = out(self.lfs, ["lfs", "version"])
        return info

    @staticmethod
    def machine() -> dict[str, Any]:
        info: dict[str, Any] = {
            "cpus": str(os.cpu_count()),
            "os": platform.platform(),
            "python": platform.python_version(),
        }
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    info["ram"] = human_bytes(int(line.split()[1]) * 1024)
                    break
        except OSError:
            pass
        start, bare = python_start()
        info["python_start_ms"] = round(start, 1)
        info["python_start_bare_ms"] = round(bare, 1)
        return info

    @staticmethod
    def file_system(path: Path) -> str:
        """The file system holding ``path``: type, mount point, device and, for ext4, whether it
        has a journal (without one, creating files within minutes of many deletions is several
        times slower: each allocation passes over the recently deleted inodes; see set_aside)."""
        mnt, dev, fstype = "", "?", "?"
        try:
            for line in Path("/proc/self/mounts").read_text().splitlines():
                d, m, t = line.split()[:3]
                m = m.replace("\\040", " ")
                if (str(path) + "/").startswith(m.rstrip("/") + "/") and len(m) >= len(mnt):
                    mnt, dev, fstype = m, d, t
        except (OSError, ValueError):
            return "?"
        device = dev
        loop = Path("/sys/block", os.path.basename(dev), "loop")
        if dev.startswith("/dev/loop") and loop.is_dir():  # a file system in a file
            try:
                backing = (loop / "backing_file").read_text().strip()
                direct = (loop / "dio").read_text().strip() == "1"
            except OSError:
                pass
            else:
                device += f" on {backing}" + (", direct I/O" if direct else "")
        out = f"{fstype} on {mnt} ({device})"
        if fstype == "ext4":
            name = os.path.basename(os.path.realpath(dev))
            jbd2 = Path("/proc/fs/jbd2")
            journal = jbd2.is_dir() and any(p.name.startswith(f"{name}-") for p in jbd2.iterdir())
            out += ", with a journal" if journal else ", without a journal"
        return out

    # ------------------------------------------------------------------ one scenario

    def step(
        self,
        data: Data,
        scenario: str,
        fns: dict[str, Callable[[], object]],
        repeat: int = 1,
        note: str = "",
        warmup: bool = False,
        before_round: Callable[[int], None] | None = None,
    ) -> Line:
        """Run each tool's fn `repeat` times, the tools taking turns (order rotated each round).

        A tool's figure is the median over rounds of the seconds of the commands its fn ran;
        its peak RSS the largest of them. A tool that times out or fails is marked so here and
        "not run" in the data set's later scenarios. ``warmup`` (read-only scenarios): a first
        round that is not counted, so that every tool's figure is of a warm cache.
        ``before_round(i)`` runs (untimed) before round i.
        """
        line = Line(data.name, scenario, "s", note=note)
        live = [t for t in fns if t in data.tools]
        secs: dict[str, list[float]] = {}
        cpu: dict[str, list[str]] = {}  # per round: the children's user + kernel seconds
        for t in live:
            if t in data.dead:
                line.values[t] = "not run"
        for i in range(-1 if warmup else 0, repeat):
            if before_round is not None:
                before_round(i)
            for t in live[i % len(live) :] + live[: i % len(live)] if live else []:
                if t in data.dead:
                    continue
                self.warm(data, t)
                start = len(self.log)
                try:
                    fns[t]()
                except TimedOut:
                    data.dead[t] = line.values[t] = "timeout"
                    print(f"  {LABEL[t]}: {scenario} timed out", flush=True)
                except CommandFailed as e:
                    self.fail(f"{data.name}: {scenario}: {LABEL[t]}: {e}")
                    data.dead[t] = line.values[t] = "error"
                else:
                    if i < 0:
                        continue  # the warm-up round
                    runs = self.log[start:]
                    secs.setdefault(t, []).append(sum(r.seconds for r in runs))
                    user, kernel = sum(r.user_s for r in runs), sum(r.sys_s for r in runs)
                    if repeat > 1:
                        line.rounds.setdefault(t, []).append(round(secs[t][-1], 4))
                        line.sys_s.setdefault(t, []).append(round(kernel, 4))
                    cpu.setdefault(t, []).append(
                        f"{secs[t][-1]:.2f} s: user {user:.2f} + sys {kernel:.2f}"
                    )
                    peak = max((r.maxrss_mb for r in runs), default=0.0)
                    line.rss_mb[t] = max(line.rss_mb.get(t, 0.0), peak)
        for t, xs in secs.items():
            line.values.setdefault(t, statistics.median(xs))
        self.results.lines.append(line)
        cells = [
            f"{LABEL[t]} {fmt(line.values.get(t), 's')}"
            + (f" s {line.rss_mb[t]:.0f} MB" if t in line.rss_mb else "")
            for t in live
        ]
        print(f"  {data.name:<14} {scenario:<12} " + " | ".join(cells), flush=True)
        if self.args.cpu:
            for t, rounds in cpu.items():
                print(f"  {'':<14} {'':<12} {LABEL[t]} cpu " + "; ".join(rounds), flush=True)
        return line

    def warm(self, data: Data, tool: str) -> None:
        """Read (untimed) every file ``tool``'s next command may read, for a data set of up to
        ROUNDS_MAX_FILES files: its workspace (data and store) and its local remotes.

        This machine's kernel pages out file data that went unused for a minute (DAMON,
        ``pageout`` of regions idle for 12 aggregations of 5 s), so without this a tool's
        workspace was warm or cold depending on how long the tools before it took: the first
        of five rounds of one images commit took 0.66 s, the others 0.98-1.49 s.
        """
        if data.files > ROUNDS_MAX_FILES:
            return  # minutes of reading for the largest series; their commands run once
        roots = [data.ws[tool]] if tool in data.ws else []
        local = data.remotes.get(("local", tool))
        if local is not None:
            roots.append(Path(local.url))
        if tool in data.bare:
            roots.append(data.bare[tool])
        for root in roots:
            read_tree(root)

    def figure(self, data: Data, scenario: str, unit: str, fn: Callable[[str], Value]) -> Line:
        """A measured size or count (not a time) for each live tool."""
        line = Line(data.name, scenario, unit)
        for t in data.tools:
            line.values[t] = "not run" if t in data.dead else fn(t)
        self.results.lines.append(line)
        return line

    # ------------------------------------------------------------------ workspaces

    def prepare(self, data: Data, source: Path) -> None:
        """Each tool's workspace: data/ (a copy of source), the tool's repository, its remotes
        (untimed)."""
        remotes = self.remotes_root / data.name
        remotes.mkdir(parents=True)
        for t in data.tools:
            ws = data.ws[t] = data.base / "ws" / t
            ws.mkdir(parents=True)
            subprocess.run(["cp", "-a", str(source), str(ws / "data")], check=True)
            for rk in self.args.remotes if t != "git-lfs" else ["local"]:
                data.remotes[(rk, t)] = self.remote(rk, t, data.name)
            if t != "dsv":
                data.bare[t] = remotes / f"{t}.git"
                self.git.run(
                    ["init", "-q", "--bare", str(data.bare[t])], remotes, data.name, "init"
                )
        for t in data.tools:
            self.init_repo(data, t, data.ws[t], remotes=True)

    def init_repo(self, data: Data, t: str, ws: Path, remotes: bool) -> None:
        """Tool t's repository in ws (untimed); with ``remotes``, the data set's remotes too."""
        ds = data.name
        if t == "dsv":
            self.dsv.run(["init"], ws, ds, "init")
            for rk in self.args.remotes if remotes else []:
                self.add_remote(t, ws, data.remotes[(rk, t)], ds)
        elif t == "dvc":
            dvc = self.peer_dvc()
            self.git.run(["init", "-q"], ws, ds, "init")
            dvc.run(["init", "-q"], ws, ds, "init")
            if remotes:
                # the local remote is the default: `dvc push --all-commits` needs one, even
                # with -r (DVC 3.x); analytics are off through DVC_NO_ANALYTICS
                local = data.remotes[("local", t)]
                dvc.run(["remote", "add", "-d", local.name, local.url], ws, ds, "init")
                if "s3" in self.args.remotes:
                    self.add_remote(t, ws, data.remotes[("s3", t)], ds)
            self.git.run(["add", ".dvc", ".dvcignore"], ws, ds, "init")
            self.git.run(["commit", "-q", "-m", "dvc init"], ws, ds, "init")
            if remotes:
                self.git.run(["remote", "add", "origin", str(data.bare[t])], ws, ds, "init")
        else:
            self.lfs.run(["init", "-q"], ws, ds, "init")
            self.lfs.run(["lfs", "install", "--local"], ws, ds, "init")
            self.lfs.run(["lfs", "track", "data/**"], ws, ds, "init")
            self.lfs.run(["add", ".gitattributes"], ws, ds, "init")
            self.lfs.run(["commit", "-q", "-m", "track data/ with LFS"], ws, ds, "init")
            if remotes:
                self.lfs.run(["remote", "add", "origin", str(data.bare[t])], ws, ds, "init")

    def check_lfs(self, data: Data) -> None:
        """git-lfs must hold every data file as an LFS object, not as a git blob."""
        if "git-lfs" not in data.tools or "git-lfs" in data.dead:
            return
        ws = data.ws["git-lfs"]
        r = self.lfs.run(["lfs", "ls-files", "-n"], ws, data.name, "check")
        in_lfs = len([ln for ln in r.stdout.splitlines() if ln.strip()])
        files = tree_files(ws / "data")
        objects = tree_files(ws / ".git" / "lfs" / "objects")
        if in_lfs != files or objects == 0:
            self.fail(
                f"{data.name}: git-lfs tracks {in_lfs} of {files} data files "
                f"({objects} LFS objects): the data is not stored in LFS"
            )

    # ------------------------------------------------------------------ scenarios

    def commit_v1(self, data: Data, source: Path) -> Line:
        """commit v1, timed in --commit-rounds rounds (the median reported) where the data set
        has at most ROUNDS_MAX_FILES files: each earlier round in workspaces of its own (a
        fresh copy of the data, a fresh repository, made untimed before the first round), the
        last in the data set's own workspaces, which the later scenarios go on from."""
        rounds = self.args.commit_rounds if data.files <= ROUNDS_MAX_FILES else 1
        own = dict(data.ws)
        spare: list[dict[str, Path]] = []
        for k in range(1, rounds):
            spare.append({})
            for t in data.tools:
                ws = spare[-1][t] = data.base / f"round-{k}" / t
                ws.mkdir(parents=True)
                subprocess.run(["cp", "-a", str(source), str(ws / "data")], check=True)
                self.init_repo(data, t, ws, remotes=False)

        def use(i: int) -> None:
            data.ws.update(spare[i] if i < len(spare) else own)

        try:
            return self.commit(data, "commit v1", "v1", rounds, use)
        finally:
            data.ws.update(own)
            for k in range(1, rounds):  # deleted at once for a few big files (set_aside)
                self.set_aside(data, data.base / f"round-{k}")

    def disk_floor(self, data: Data, source: Path, committed: Line) -> None:
        """How long this run's disk takes to hold a copy of the big file durably (``dd`` with
        direct writes and a final fsync, median of 3), beside dsv's commit v1 of it: a commit
        returns once its packs are on disk, while ``dvc add`` copies through the page cache and
        never syncs (DVC calls no fsync), leaving the disk's part for after it has returned."""
        files = sorted(p for p in source.rglob("*") if p.is_file())
        if len(files) != 1:
            return
        out = data.base / "durable-copy.bin"
        secs = []
        for _ in range(3):
            cmd = ["dd", f"if={files[0]}", f"of={out}", "bs=4M", "oflag=direct", "conv=fsync"]
            os.sync()
            t = time.perf_counter()
            if subprocess.run(cmd, capture_output=True).returncode != 0:  # no direct I/O here
                out.unlink(missing_ok=True)
                cmd.remove("oflag=direct")
                os.sync()
                t = time.perf_counter()
                subprocess.run(cmd, capture_output=True, check=True)
            secs.append(time.perf_counter() - t)
            out.unlink()
        floor, dsv, dvc = statistics.median(secs), committed.num("dsv"), committed.num("dvc")
        share = f", {floor / dsv:.0%} of dsv's commit v1 ({dsv:.2f} s)" if dsv else ""
        bound = (
            f" Against this run's `dvc add` ({dvc:.2f} s), a commit that makes its copy durable "
            f"before it returns can be at most {dvc / floor:.2f}x faster on this disk."
            if dvc and floor
            else ""
        )
        self.results.notes.append(
            f"The disk of this run: a durable copy of the {data.name} data set's "
            f"{human_bytes(data.size)} file (`dd bs=4M oflag=direct conv=fsync`, median of 3) "
            f"took {floor:.2f} s{share}. dsv's commit returns once its packs are on disk; "
            "`dvc add` copies through the page cache and never syncs (DVC calls no fsync), so "
            "writing its copy to disk happens after it has returned and is not in its time." + bound
        )
        print(f"  {data.name:<14} durable copy {floor:.2f} s", flush=True)

    def commit(
        self,
        data: Data,
        scenario: str,
        message: str,
        repeat: int = 1,
        before_round: Callable[[int], None] | None = None,
    ) -> Line:
        ds, ws = data.name, data.ws

        def dvc() -> None:
            self.peer_dvc().run(["add", "-q", "data"], ws["dvc"], ds, scenario)
            self.git.run(["add", "data.dvc", ".gitignore"], ws["dvc"], ds, scenario)
            self.git.run(["commit", "-q", "-m", message], ws["dvc"], ds, scenario)

        def lfs() -> None:
            self.lfs.run(["add", "data"], ws["git-lfs"], ds, scenario)
            self.lfs.run(["commit", "-q", "-m", message], ws["git-lfs"], ds, scenario)

        fns = {
            "dsv": lambda: self.dsv.run(["commit", "-q", "-m", message], ws["dsv"], ds, scenario),
            "dvc": dvc,
            "git-lfs": lfs,
        }
        note = "DVC: dvc add + git commit of data.dvc"
        if repeat > 1:
            note += f"; median of {repeat} rounds, each in a fresh copy and repository"
        line = self.step(data, scenario, fns, repeat, note, before_round=before_round)
        self.check_lfs(data)
        return line

    def status(self, data: Data) -> Line:
        ds, ws, scenario = data.name, data.ws, "status"

        def lfs() -> None:
            r = self.lfs.run(["status", "--porcelain"], ws["git-lfs"], ds, scenario)
            if r.stdout.strip():
                self.fail(f"{ds}: git status after the commit is not clean: {r.stdout[:200]!r}")

        fns = {
            "dsv": lambda: self.dsv_status(ws["dsv"], ds, scenario, True),
            "dvc": lambda: self.dvc_status(ws["dvc"], ds, scenario, True),
            "git-lfs": lfs,
        }
        # warm-up: a big tree's inodes are evicted by the other tools' runs in between (a
        # million files: 13-15 s cold against 6-7 s warm for dsv), which would time the
        # order of the scenarios rather than the tools
        return self.step(data, scenario, fns, self.args.status_repeat, note="no-op", warmup=True)

    def diff(self, data: Data, v1: Path, v2: Path) -> Line:
        ds, ws, scenario = data.name, data.ws, "diff"
        truth = self.md.file_diff(v1, v2)
        keys = ("added", "removed", "modified", "moved")

        def dsv() -> None:
            r = self.dsv.run(
                ["diff", "--stat", "--json", "HEAD~1", "HEAD"], ws["dsv"], ds, scenario
            )
            try:
                files = json.loads(r.stdout)["files"]
                got = {k: files[k] for k in keys}
            except (ValueError, KeyError, TypeError) as e:
                self.fail(f"{ds}: `dsv diff --stat --json` output unreadable ({e})")
                return
            if got != {k: truth[k] for k in keys}:
                self.fail(f"{ds}: dsv diff counts {got}, make_data's file diff {truth}")

        fns = {
            "dsv": dsv,
            "dvc": lambda: self.peer_dvc().run(["diff", "HEAD~1", "HEAD"], ws["dvc"], ds, scenario),
            "git-lfs": lambda: self.lfs.run(
                ["diff", "--stat", "HEAD~1", "HEAD"], ws["git-lfs"], ds, scenario
            ),
        }
        counts = ", ".join(f"{truth[k]} {k}" for k in keys)
        return self.step(
            data, scenario, fns, self.args.repeat, note=f"v1..v2: {counts}; git: pointer files"
        )

    def checkout(self, data: Data) -> Line:
        ds, ws, scenario = data.name, data.ws, "checkout"
        cmds = {
            "dsv": (self.dsv, ["checkout", "-q", "--force", "HEAD"]),
            "dvc": (self.dvc, ["checkout", "-q"]),
            "git-lfs": (self.lfs, ["checkout", "HEAD", "--", "data"]),
        }

        def fn(t: str) -> Callable[[], None]:
            def run() -> None:
                tool, args = cmds[t]
                assert tool is not None
                self.set_aside(data, ws[t] / "data")
                tool.run(args, ws[t], ds, scenario)

            return run

        line = self.step(data, scenario, {t: fn(t) for t in cmds}, self.args.repeat)
        for t in data.tools:
            if t not in data.dead:
                self.verify_tree(f"{ds}: {LABEL[t]} checkout", data.expected, ws[t] / "data")
        line.note = "into a workspace without data/; verified vs v2"
        return line

    def push(self, data: Data, rk: str) -> Line:
        ds, ws, scenario = data.name, data.ws, f"push {rk}"
        counts: dict[str, br.S3Count] = {}

        def counted(t: str, fn: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                if rk == "s3":
                    self.s3.reset()
                fn()
                if rk == "s3":
                    counts[t] = self.s3.snapshot()

            return run

        def dvc() -> None:
            r = data.remotes[(rk, "dvc")]
            self.peer_dvc().run(
                ["push", "-q", "-r", r.name, "--all-commits"], ws["dvc"], ds, scenario
            )
            self.git.run(["push", "-q", "origin", "main"], ws["dvc"], ds, scenario)

        fns: dict[str, Callable[[], object]] = {
            "dsv": counted(
                "dsv", lambda: self.dsv_push(ws["dsv"], data.remotes[(rk, "dsv")], ds, scenario)
            ),
            "dvc": counted("dvc", dvc),
        }
        if rk == "local":
            fns["git-lfs"] = lambda: self.lfs.run(
                ["push", "-q", "origin", "main"], ws["git-lfs"], ds, scenario
            )
        line = self.step(data, scenario, fns, note="all versions; DVC: --all-commits + git push")
        if rk == "local":

            def remote_size(measure: Callable[[Path], int]) -> Callable[[str], Value]:
                def size(t: str) -> Value:
                    local = measure(Path(data.remotes[("local", t)].url)) if t != "git-lfs" else 0
                    return local + (measure(data.bare[t]) if t in data.bare else 0)

                return size

            note = "git-lfs: the bare repository; DVC: its remote and its git repository"
            for scenario, measure in (
                ("remote after push", tree_bytes),
                ("remote on disk after push", disk_bytes),
            ):
                self.figure(data, scenario, "B", remote_size(measure)).note = note
        else:
            no = "n/a"
            self.figure(data, "push s3", "req", lambda t: counts[t].requests if t in counts else no)
            self.figure(
                data, "uploaded to S3", "B", lambda t: counts[t].bytes_in if t in counts else no
            )
        return line

    def clone(self, data: Data, rk: str) -> Line:
        ds, scenario = data.name, f"clone {rk}"
        into = data.base / "clones"
        into.mkdir(exist_ok=True)
        counts: dict[str, br.S3Count] = {}

        def fn(t: str) -> Callable[[], None]:
            def run() -> None:
                target = into / f"{t}-{rk}"
                self.set_aside(data, target)
                if rk == "s3":
                    self.s3.reset()
                if t == "dsv":
                    self.dsv_clone(data.remotes[(rk, t)], target, ds, scenario)
                elif t == "dvc":
                    self.git.run(
                        ["clone", "-q", str(data.bare[t]), str(target)], into, ds, scenario
                    )
                    r = data.remotes[(rk, t)]
                    self.peer_dvc().run(["pull", "-q", "-r", r.name], target, ds, scenario)
                else:
                    self.lfs.run(
                        ["clone", "-q", str(data.bare[t]), str(target)], into, ds, scenario
                    )
                if rk == "s3":
                    counts[t] = self.s3.snapshot()
                self.verify_clone(f"{ds}: {LABEL[t]} {scenario}", data.expected, target, OWN[t])
                self.set_aside(data, target)

            return run

        tools = ["dsv", "dvc"] + (["git-lfs"] if rk == "local" else [])
        # a local clone of up to ROUNDS_MAX_FILES files is timed as commit v1 is (S3 ones
        # take minutes for DVC: once)
        rounds = self.args.commit_rounds if rk == "local" and data.files <= ROUNDS_MAX_FILES else 1
        note = "verified vs v2; DVC: git clone + dvc pull"
        line = self.step(
            data,
            scenario,
            {t: fn(t) for t in tools},
            rounds,
            note + (f"; median of {rounds} rounds" if rounds > 1 else ""),
        )
        if rk == "s3":
            no = "n/a"
            self.figure(
                data, "clone s3", "req", lambda t: counts[t].requests if t in counts else no
            )
        return line

    def gc(self, data: Data) -> Line:
        ds, ws, scenario = data.name, data.ws, "gc"
        fns = {
            "dsv": lambda: self.dsv.run(["gc", "-q"], ws["dsv"], ds, scenario),
            "dvc": lambda: self.peer_dvc().run(["gc", "-w", "-f", "-q"], ws["dvc"], ds, scenario),
            "git-lfs": lambda: self.lfs.run(["lfs", "prune"], ws["git-lfs"], ds, scenario),
        }
        return self.step(data, scenario, fns, note="DVC -w keeps only v2; dsv keeps history")

    def store(self, data: Data, scenario: str, measure: Callable[[Path], int] = tree_bytes) -> Line:
        """Each tool's store: bytes of its files, or (``disk_bytes``) blocks as `du` counts
        them, where small files take a block each."""
        return self.figure(data, scenario, "B", lambda t: store_size(t, data.ws[t], measure))

    # ------------------------------------------------------------------ data sets

    def dataset(self, kind: str) -> None:
        base = self.run_dir / kind
        v1, v2 = base / "gen" / "v1", base / "gen" / "v2"
        t0 = time.perf_counter()
        self.md.gen(kind, v1, self.scale)
        shutil.copytree(v1, v2, symlinks=True)
        self.md.edit(kind, v2)
        data = Data(kind, base, v2, list(self.names), tree_files(v1), tree_bytes(v1))

        def scenarios() -> None:
            committed = self.commit_v1(data, v1)
            if kind == "big":
                self.disk_floor(data, v1, committed)
            before = self.store(data, "store after v1")
            self.store(data, "store on disk after v1", disk_bytes)
            self.status(data)
            for t in data.tools:
                self.md.edit(kind, data.ws[t] / "data")
            self.commit(data, "commit v2", "v2")
            after = self.store(data, "store after v2")
            self.store(data, "store on disk after v2", disk_bytes)
            growth = Line(kind, "store growth v2", "B")
            for t in data.tools:
                a, b = after.num(t), before.num(t)
                growth.values[t] = a - b if a is not None and b is not None else "not run"
            self.results.lines.append(growth)
            self.diff(data, v1, v2)
            self.checkout(data)
            for rk in self.args.remotes:
                self.push(data, rk)
            for rk in self.args.remotes:
                self.clone(data, rk)
            self.gc(data)
            self.store(data, "store after gc")

        self.run_data(data, v1, DESCRIBE[kind], t0, scenarios)

    def series(self, n: int) -> None:
        base = self.run_dir / series_name(n)
        tools = [t for t in self.names if n <= PEERS_MAX_FILES or t in self.args.large_tools]
        t0 = time.perf_counter()
        src = base / "src"
        write_small_files(src, n)
        data = Data(series_name(n), base, src, tools, n, tree_bytes(src))

        def scenarios() -> None:
            self.commit_v1(data, src)
            self.store(data, "store after v1")
            self.store(data, "store on disk after v1", disk_bytes)
            self.status(data)
            self.push(data, "local")
            self.clone(data, "local")

        what = "files of 512 B - 4 KiB of random bytes, 1000 to a directory"
        if tools != self.names:
            what += f" (tools: {', '.join(LABEL[t] for t in tools)})"
        self.run_data(data, src, what, t0, scenarios)

    def run_data(
        self, data: Data, source: Path, what: str, t0: float, scenarios: Callable[[], None]
    ) -> None:
        """Each tool's workspace holds a copy of source; then the scenarios, then clean-up."""
        self.results.datasets.append(
            {"name": data.name, "files": data.files, "bytes": data.size, "what": what}
        )
        print(
            f"\n== {data.name}: {data.files} files, {human_bytes(data.size)}; generated in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        try:
            self.prepare(data, source)
            scenarios()
        except CommandFailed as e:  # in an untimed set-up command: the data set stops here
            self.fail(f"{data.name}: {e}")
        finally:
            self.end(data)

    def set_aside(self, data: Data, path: Path) -> None:
        """Move a tree out of the way (a rename) instead of deleting it now; it goes with the
        data set at its end. Creating files soon after many were deleted costs ~300 us a file
        instead of tens on this machine's file system (ext4 without a journal skips every
        recently deleted inode, for a minute or more): deleting a workspace between two
        tools' checkouts or clones timed the one that ran next, not the tools. A tree of a
        data set of a few (big) files is deleted at once: that slows nothing, and frees room."""
        if data.files <= FEW_FILES:
            shutil.rmtree(path, ignore_errors=True)
        else:
            bf.set_aside(path, data.base / "set-aside")

    def end(self, data: Data) -> None:
        self._hash_cache.clear()
        if self.s3 is not None:
            self.reset_s3()
        if not self.args.keep:
            shutil.rmtree(data.base, ignore_errors=True)
            shutil.rmtree(self.remotes_root / data.name, ignore_errors=True)
            for (kind, _), r in data.remotes.items():
                if kind == "local":
                    shutil.rmtree(r.url, ignore_errors=True)


def read_tree(root: Path) -> None:
    """Read every regular file under ``root`` (symbolic links not followed), into the page
    cache; what cannot be read is skipped."""
    stack = [str(root)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        with open(e.path, "rb", buffering=0) as f:
                            while f.read(4 << 20):
                                pass
                except OSError:
                    continue


# ---------------------------------------------------------------------------- report


def title_of(name: str) -> str:
    """images, table, big; files-N as "N files"."""
    count = name.removeprefix("files-")
    return f"{int(count):,} files" if count != name else name


def ratio_cell(res: Results, line: Line, tool: str) -> str:
    if tool == "dvc":
        r, shown = res.vs_dvc(line)
        return shown if r is not None else "-"
    return bf.fmt_ratio(line.ratio(tool))


def metric_table(res: Results, lines: list[Line], unit: str) -> str:
    peers = [t for t in res.tools if t != "dsv"]
    headers = ["data", "scenario", *(LABEL[t] for t in res.tools)]
    headers += [f"{LABEL[t]}/dsv" for t in peers] + ["note"]
    rows = [
        [
            title_of(line.dataset),
            line.scenario,
            *(fmt(line.values.get(t), unit) for t in res.tools),
            *(ratio_cell(res, line, t) for t in peers),
            line.note,
        ]
        for line in lines
        if line.unit == unit
    ]
    return md_table(headers, rows, numeric=range(2, len(headers) - 1))


def rss_table(res: Results, lines: list[Line]) -> str:
    headers = ["data", "scenario", *(f"{LABEL[t]} (MB)" for t in res.tools)]
    rows = [
        [
            title_of(line.dataset),
            line.scenario,
            *(f"{line.rss_mb[t]:.0f}" if t in line.rss_mb else "-" for t in res.tools),
        ]
        for line in lines
        if line.unit == "s"
    ]
    return md_table(headers, rows, numeric=range(2, len(headers)))


def rounds_table(res: Results, lines: list[Line]) -> str:
    """Each round of the scenarios timed in rounds: seconds, and system seconds."""
    rows = [
        [
            title_of(line.dataset),
            line.scenario,
            LABEL[t],
            " / ".join(fmt(x, "s") for x in line.rounds[t]),
            " / ".join(fmt(x, "s") for x in line.sys_s.get(t, [])),
        ]
        for line in lines
        for t in res.tools
        if t in line.rounds
    ]
    if not rows:
        return ""
    headers = ["data", "scenario", "tool", "seconds, round by round", "system seconds"]
    return md_table(headers, rows)


def plots(res: Results, out_dir: Path) -> dict[str, str]:
    """PNG plots (matplotlib, imported here only); {name: file name}. Empty without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        res.notes.append("matplotlib is not installed: no plots (pip install -e '.[dev]')")
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    kinds = [d["name"] for d in res.datasets if not d["name"].startswith("files-")]
    plain = FuncFormatter(lambda v, _: f"{v:g}")

    def bars(unit: str, name: str, title: str) -> None:
        """Grouped bars: a panel per data set, a group per scenario, a bar per tool."""
        if not kinds:
            return
        fig, axes = plt.subplots(1, len(kinds), figsize=(4.6 * len(kinds), 4.2), squeeze=False)
        width = 0.8 / len(res.tools)
        for ax, kind in zip(axes[0], kinds, strict=True):
            lines = [
                line
                for line in res.lines
                if line.dataset == kind and line.unit == unit and line.scenario != "store growth v2"
            ]
            top = max((v for line in lines for t in res.tools if (v := line.num(t))), default=1)
            scale, label = (1.0, "seconds (log)") if unit == "s" else bytes_unit(top)
            for i, t in enumerate(res.tools):
                xs = [j + (i - (len(res.tools) - 1) / 2) * width for j in range(len(lines))]
                ys = [(line.num(t) or math.nan) / scale for line in lines]
                ax.bar(xs, ys, width, label=LABEL[t], color=PLOT_COLOR[t])
            if unit == "s":
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(plain)
            ax.set_ylabel(label)
            ax.set_xticks(range(len(lines)))
            ax.set_xticklabels([line.scenario for line in lines], rotation=40, ha="right")
            ax.set_title(kind)
            ax.grid(axis="y", alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper right", ncol=len(labels), fontsize="small")
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=72)
        plt.close(fig)
        made[name.removesuffix(".png")] = name

    bars("s", "time.png", "time per scenario (lower is better)")
    bars("B", "store.png", "store and remote size (lower is better)")

    sizes = [n for n in res.sizes if res.find(series_name(n), "commit v1") is not None]
    if sizes:
        fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), squeeze=False)
        scenarios = ("commit v1", "status", "push local", "clone local")
        for ax, s in zip(axes.flat, scenarios, strict=True):
            for t in res.tools:
                pts = [(n, ln.values.get(t)) for n in sizes if (ln := res.find(series_name(n), s))]
                done = [(n, v) for n, v in pts if isinstance(v, float)]
                over = [n for n, v in pts if v == "timeout"]
                if done:
                    ax.plot(*zip(*done, strict=True), "o-", color=PLOT_COLOR[t], label=LABEL[t])
                if over:
                    ax.plot(
                        over,
                        [res.timeout] * len(over),
                        "x",
                        color=PLOT_COLOR[t],
                        markersize=10,
                        label=f"{LABEL[t]}: timeout",
                    )
            if s == "status":
                ax.axhline(STATUS_1M_MAX_S, ls="--", color="grey", lw=0.8, label="target at 1M")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(sizes)
            ax.set_xticklabels([short_count(n) for n in sizes])
            ax.minorticks_off()
            ax.yaxis.set_major_formatter(plain)
            ax.set_title(s)
            ax.set_xlabel("files")
            ax.set_ylabel("seconds")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        fig.suptitle("small files: seconds against the number of files (log-log)")
        fig.tight_layout()
        fig.savefig(out_dir / "series.png", dpi=72)
        plt.close(fig)
        made["series"] = "series.png"
    return made


def bytes_unit(top: float) -> tuple[float, str]:
    for size, name in ((bf.GiB, "GiB"), (bf.MiB, "MiB"), (bf.KiB, "KiB")):
        if top >= size:
            return float(size), name
    return 1.0, "bytes"


def write_report(
    res: Results, out: Path, meta: dict[str, Any], targets: list[Target], figures: dict[str, str]
) -> None:
    rel = out.with_suffix("").name
    kinds = [d for d in res.datasets if not d["name"].startswith("files-")]
    series = [d for d in res.datasets if d["name"].startswith("files-")]
    per_kind = [line for line in res.lines if not line.dataset.startswith("files-")]
    per_size = [line for line in res.lines if line.dataset.startswith("files-")]
    n_pass = sum(t.result == "PASS" for t in targets)
    n_fail = sum(t.result == "FAIL" for t in targets)
    n_open = sum(t.result == "open" for t in targets)

    def image(key: str, alt: str) -> str:
        return f"![{alt}]({rel}/{figures[key]})\n\n" if key in figures else ""

    parts = [
        "# Benchmarks\n",
        "dsv against DVC and git-lfs on the same generated data, every scenario in one run of "
        f"`{meta['command']}` ([bench/run.py](../bench/run.py)). Ratios are other/dsv from this "
        "run only: above 1, dsv is faster (or smaller). The machine is shared and noisy, so "
        "only ratios from one run compare; every figure is warm-cache (a sync(2) runs, "
        "untimed, before each command; the no-op status, which changes nothing, runs once "
        "untimed for each tool before the timed run; for data sets of up to "
        f"{ROUNDS_MAX_FILES:,} files, every file a command may read (the tool's workspace, "
        "store and local remotes) is read, untimed, right before it, since this machine's "
        "kernel pages out file data unused for a minute (DAMON); a workspace or clone that a "
        "scenario "
        "replaces is moved aside, not deleted, until the data set ends, since creating files "
        "right after many were deleted is several times slower on ext4 without a journal, "
        "for whichever tool runs next (the file system of the run is named below)"
        + (
            f"; the no-op status is the median of {res.status_repeat} rounds"
            if res.status_repeat > 1
            else ""
        )
        + (
            f"; commit v1 of data sets of up to {ROUNDS_MAX_FILES:,} files is the median of "
            f"{res.commit_rounds} rounds, each in a fresh copy of the data and a fresh "
            "repository (the same command varied 2-4x between minutes here), and so is their "
            "clone from a local remote"
            if res.commit_rounds > 1
            else ""
        )
        + ").\n",
        *(
            ["**This run was interrupted: the figures below are those measured before.**\n"]
            if "interrupted" in res.failures
            else []
        ),
        "## Machine and versions\n",
        md_table(
            ["", ""],
            [
                ["date", meta["finished"]],
                ["CPU", f"{meta['cpus']} x {meta.get('cpu', '?')}"],
                ["RAM", meta.get("ram", "?")],
                ["OS", meta["os"]],
                ["file system", meta.get("fs", "?")],
                ["Python", meta["python"]],
                *(
                    [
                        [
                            "Python start",
                            f"{start:.0f} ms ({bare:.0f} ms without site-packages' hooks)",
                        ]
                    ]
                    if (start := meta.get("python_start_ms")) is not None
                    and (bare := meta.get("python_start_bare_ms")) is not None
                    else []
                ),
                *(
                    [LABEL.get(k, k), meta[k]]
                    for k in ("dsv", "dvc", "git", "git-lfs")
                    if k in meta
                ),
                [
                    "run",
                    f"scale {res.scale:g}, repeat {res.repeat}, series "
                    f"{', '.join(short_count(n) for n in res.sizes) or 'none'}, remotes "
                    f"{', '.join(res.remotes)}, timeout {res.timeout:g} s per command, "
                    f"{meta['minutes']:.0f} min in all",
                ],
            ],
        ),
        "",
        "## Targets\n",
        f"{n_pass} PASS, {n_fail} FAIL, {n_open} open"
        + (
            ""
            if res.scale == 1 and any(n >= MILLION for n in res.sizes)
            else f" (the targets are set for scale 1 and the 1M-file series; this run is at "
            f"scale {res.scale:g}, so they are indicative only)"
        )
        + ". `open`: DVC timed out, and the lower bound that gives does not reach the target; "
        "`not run`: no figure to judge.\n",
        md_table(
            ["target", "data", "figure", "result"],
            ([t.goal, title_of(t.dataset), t.figure, t.result] for t in targets),
            numeric=range(2, 3),
        ),
        "",
        store_limit_note(res, targets),
        status_floor_note(res, targets, meta),
        "## Data\n",
        md_table(
            ["data", "files", "size", "what"],
            (
                [title_of(d["name"]), f"{d['files']:,}", human_bytes(d["bytes"]), d["what"]]
                for d in kinds + series
            ),
            numeric=range(1, 3),
        ),
        "",
        "## Time (seconds)\n",
        image("time", "seconds per scenario and tool"),
        metric_table(res, per_kind, "s"),
        "",
        "## Store size (bytes)\n",
        "Object stores only (`.dsv/objects`, `.dvc/cache`, `.git/objects` + `.git/lfs`); every "
        "tool also has the working copy. Two measures: the bytes of the files (`... after ...`, "
        "as `du --apparent-size` counts) and the disk space they take (`... on disk ...`, blocks "
        "as `du` counts, directories included). The size target is judged on disk space, what a "
        "disk holds: a store of one file per object (DVC's, git-lfs's) takes a whole block for "
        "every small file, while dsv's packs add a few dozen bytes of id, header and index per "
        "object, which on incompressible random bytes leaves its byte count a few tenths of a "
        "percent above DVC's.\n",
        image("store", "store bytes per scenario and tool"),
        metric_table(res, per_kind, "B"),
        "",
    ]
    if any(line.unit == "req" for line in per_kind):
        parts += [
            "## Remote requests (S3)\n",
            "HTTP requests counted at the moto S3 server (git-lfs has no S3 remote).\n",
            metric_table(res, per_kind, "req"),
            "",
        ]
    rounds = rounds_table(res, res.lines)
    if rounds:
        parts += [
            "## Rounds\n",
            "The scenarios timed in rounds, round by round (in the order run; the tools took "
            "turns), with the system (kernel) seconds of each. On this virtual machine the host "
            "takes back memory the guest freed, and the first touch of such a page, for the page "
            "cache or a process's heap, costs a fault in the host: a round that writes many "
            "files pays it in system time, more as the run goes on and less of the freed memory "
            "is still backed. Every tool's rounds grow with it, and the tool with the shorter "
            'round loses more of its ratio (docs/design.md, "Fresh memory").\n',
            rounds,
            "",
        ]
    parts += [
        "## Peak RSS\n",
        "The largest `ru_maxrss` of the commands of each step (os.wait4 on each command).\n",
        rss_table(res, per_kind),
        "",
    ]
    if per_size:
        parts += [
            "## Scaling with the number of files\n",
            image("series", "seconds against the number of files"),
            metric_table(res, per_size, "s"),
            "",
            metric_table(res, per_size, "B"),
            "",
            rss_table(res, per_size),
            "",
        ]
    parts += [
        "## Correctness\n",
        (
            "Every checkout and clone was compared byte for byte with the version committed "
            "(same paths, same SHA-256); dsv diff's file counts matched make_data's file diff; "
            "git-lfs held every data file in LFS. All passed."
            if not res.failures
            else "FAILURES:\n\n" + "\n".join(f"- `{f.splitlines()[0]}`" for f in res.failures)
        ),
        "",
        "## How it was measured\n",
        "\n".join(
            [
                "- Each command runs under a small launcher (`bench_foundation.py`): seconds from "
                "spawn to reap, peak RSS from `os.wait4`; behind coreutils `timeout` (a command "
                "over the limit is reported as `timeout`, and the tool is not run in the later "
                "scenarios of that data set).",
                "- The tools take turns in every scenario; with `--repeat N` status, diff and "
                "checkout are repeated, the order rotated, and the median reported.",
                "- dsv: `dsv commit`, `dsv status`, `dsv diff --stat HEAD~1 HEAD`, `dsv checkout "
                "--force HEAD`, `dsv push`, `dsv clone`, `dsv gc`.",
                "- DVC (in a git repository): `dvc add data` + `git commit` of `data.dvc`, `dvc "
                "status`, `dvc diff HEAD~1 HEAD`, `dvc checkout`, `dvc push --all-commits` + `git "
                "push`, `git clone` + `dvc pull`, `dvc gc -w -f` (keeps only the workspace's "
                "version, dsv gc keeps every committed one).",
                "- git-lfs: `git lfs track 'data/**'`, `git add data` + `git commit`, `git status "
                "--porcelain`, `git diff --stat HEAD~1 HEAD` (of pointer files), `git checkout "
                "HEAD -- data`, `git push` and `git clone` to and from a local bare repository "
                "(LFS objects in its `lfs/` directory), `git lfs prune`.",
                "- S3: a moto server in the benchmark process, fake credentials; requests and "
                "body bytes counted at the server.",
                "- Local remotes: "
                + (
                    "on the workspaces' file system. There git-lfs hard-links its objects into "
                    "the bare repository on push and out of it on clone (and git hard-links its "
                    "own objects on a local clone), so its local push copies no data and its "
                    "clone copies only the working tree: its local push and clone times are a "
                    "floor no network remote reaches. dsv writes packs and DVC copies files."
                    if res.remotes_same_fs
                    else "on another file system than the workspaces, so every tool copies."
                ),
                f"- The scaling series runs git-lfs up to {PEERS_MAX_FILES:,} files and above "
                f"that only {', '.join(LABEL[t] for t in res.large_tools)}.",
            ]
            + [f"- {n}" for n in res.notes]
        ),
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))


def print_summary(res: Results, targets: list[Target]) -> None:
    print("\n" + "=" * 100)
    print("ratios are other/dsv (> 1: dsv faster or smaller); same-run figures, warm cache\n")
    for unit in ("s", "B", "req"):
        lines = [line for line in res.lines if line.unit == unit]
        if not lines:
            continue
        peers = [t for t in res.tools if t != "dsv"]
        bf.print_table(
            [
                "data",
                "scenario",
                *(LABEL[t] for t in res.tools),
                *(f"{LABEL[t]}/dsv" for t in peers),
            ],
            (
                [
                    line.dataset,
                    line.scenario,
                    *(fmt(line.values.get(t), unit) for t in res.tools),
                    *(ratio_cell(res, line, t) for t in peers),
                ]
                for line in lines
            ),
        )
        print()
    bf.print_table(
        ["target", "data", "figure", "result"],
        ([t.goal, t.dataset, t.figure, t.result] for t in targets),
    )
    print(
        f"\ntargets: {sum(t.result == 'PASS' for t in targets)} PASS, "
        f"{sum(t.result == 'FAIL' for t in targets)} FAIL"
    )
    if res.failures:
        print(f"\n!!! {len(res.failures)} CORRECTNESS FAILURE(S) / ERROR(S):")
        for f in res.failures:
            print("!!! " + f.replace("\n", "\n!!! "))


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="scale 0.05, series 1k,10k, local remotes only, timeout 120 s",
    )
    ap.add_argument("--scale", type=float, default=None, help="data set scale (default 1)")
    ap.add_argument(
        "--sizes",
        default=None,
        help="file counts of the scaling series (default 10000,100000,1000000; 'none' for none)",
    )
    ap.add_argument("--tools", default=",".join(TOOLS), help="among dsv,dvc,git-lfs (default all)")
    ap.add_argument(
        "--large-tools",
        default="dsv,dvc",
        help=f"tools of the series above {PEERS_MAX_FILES:,} files (default dsv,dvc)",
    )
    ap.add_argument("--only", default=",".join(KINDS), help="data sets among images,table,big")
    ap.add_argument("--remotes", default=None, help="among local,s3 (default both; --quick: local)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of status, diff and checkout")
    ap.add_argument(
        "--commit-rounds",
        type=int,
        default=None,
        help=f"rounds of commit v1 (fresh workspaces; the median) for data of at most "
        f"{ROUNDS_MAX_FILES:,} files (default 5; --quick: 1)",
    )
    ap.add_argument(
        "--cpu",
        action="store_true",
        help="also print each round's user and kernel CPU seconds (the commands' rusage)",
    )
    ap.add_argument(
        "--status-repeat",
        type=int,
        default=5,
        help="rounds of the no-op status, the median reported (default 5; at least --repeat)",
    )
    ap.add_argument("--timeout", type=float, default=None, help="seconds per command (default 600)")
    ap.add_argument("--out", type=Path, default=bf.REPO_ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the figures as JSON")
    ap.add_argument(
        "--from-json",
        type=Path,
        default=None,
        metavar="FILE",
        help="measure nothing: write the report again from a --json-out file",
    )
    ap.add_argument("--make-data", type=Path, default=bf.DEFAULT_MAKE_DATA)
    ap.add_argument("--dsv", default=None, metavar="CMD", help="dsv command (default: on PATH)")
    ap.add_argument(
        "--dsv-rev",
        default=None,
        metavar="REV",
        help="measure dsv as committed at REV (exported from git), not the working tree's src/",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="parent of the run's temp dir")
    ap.add_argument(
        "--remotes-dir",
        type=Path,
        default=None,
        help="parent of the local remotes (default: the run's temp dir; on another file system, "
        "e.g. /dev/shm, git-lfs copies its objects instead of hard-linking them)",
    )
    ap.add_argument("--no-sync", action="store_true", help="no sync(2) before each command")
    ap.add_argument("--keep", action="store_true", help="keep the run's temp dir")
    a = ap.parse_args(argv)
    if a.quick and a.scale is not None:
        ap.error("--quick and --scale exclude each other")
    if a.dsv and a.dsv_rev:
        ap.error("--dsv and --dsv-rev exclude each other")
    a.scale = 0.05 if a.quick else (1.0 if a.scale is None else a.scale)
    a.remotes = a.remotes or ("local" if a.quick else ",".join(REMOTES))
    if a.timeout is None:
        a.timeout = 120.0 if a.quick else 600.0
    if a.commit_rounds is None:
        a.commit_rounds = 1 if a.quick else 5
    sizes = a.sizes or ("1000,10000" if a.quick else "10000,100000,1000000")
    a.sizes = [] if sizes == "none" else sorted({int(s) for s in sizes.split(",") if s.strip()})
    for opt, allowed in (
        ("tools", TOOLS),
        ("large_tools", TOOLS),
        ("only", KINDS),
        ("remotes", REMOTES),
    ):
        got = [] if getattr(a, opt) == "none" else [x.strip() for x in getattr(a, opt).split(",")]
        if any(x not in allowed for x in got):
            ap.error(f"--{opt.replace('_', '-')}: choose among {','.join(allowed)}")
        setattr(a, opt, [x for x in allowed if x in got])  # canonical order
    if "dsv" not in a.tools:
        ap.error("--tools must include dsv (every ratio is against it)")
    if "local" not in a.remotes:
        ap.error("--remotes must include local (git-lfs and the series push to a local remote)")
    if a.scale <= 0 or a.repeat < 1 or a.timeout <= 0 or any(n < 1 for n in a.sizes):
        ap.error("--scale, --repeat, --timeout and --sizes must be positive")
    if a.status_repeat < 1 or a.commit_rounds < 1:
        ap.error("--status-repeat and --commit-rounds must be positive")
    a.status_repeat = max(a.status_repeat, a.repeat)
    a.kinds, a.skip_dvc, a.skip_dsv = a.only, "dvc" not in a.tools, False
    return a


def store_limit_note(res: Results, targets: list[Target]) -> str:
    """Why dsv's store of the big data set cannot be smaller than DVC's, when it is not."""
    failed = any(
        t.dataset == "big" and t.goal.startswith("store") and t.result == "FAIL" for t in targets
    )
    line = res.find("big", "store on disk after v1", "B")
    if not failed or line is None:
        return ""
    dsv, dvc = line.values.get("dsv"), line.values.get("dvc")
    if not isinstance(dsv, (int, float)) or not isinstance(dvc, (int, float)) or dsv <= dvc:
        return ""
    return (
        f"The big data set is 1 GiB of random bytes: nothing repeats and nothing compresses. "
        f"DVC's store holds a plain copy of the file; dsv's holds the same bytes cut into "
        f"content-defined chunks, and for each chunk a record header in its pack, an entry in "
        f"the pack's index and in the multi-pack index, and an entry in the file's chunk list "
        f"(docs/format.md): {human_bytes(dsv - dvc)} more disk space here "
        f"({100 * (dsv - dvc) / dvc:.2f} %). Those chunks are what make v2 store "
        f"{human_bytes(dsv_growth(res))} instead of a second copy. No chunked store can be "
        f"smaller than a plain copy of data that neither repeats nor compresses.\n"
    )


def status_floor_note(res: Results, targets: list[Target], meta: dict[str, Any]) -> str:
    """How much of dsv's no-op status is the interpreter's start, when a status target failed."""
    failed = [t for t in targets if t.scenario == "status" and t.result == "FAIL"]
    if meta.get("python_start_ms") is None:
        return ""
    start_s = float(meta["python_start_ms"]) / 1000
    out = []
    for t in failed:
        line = res.find(t.dataset, "status")
        dsv, dvc = (line.num("dsv"), line.num("dvc")) if line is not None else (None, None)
        if dsv is None or dvc is None or dsv <= start_s:
            continue
        out.append(
            f"{title_of(t.dataset)}: dsv's no-op status took {dsv:.3f} s, of which "
            f"{start_s:.3f} s is Python starting and exiting with nothing to do (machine, "
            f"above), which DVC pays too; past that start, dsv took {dsv - start_s:.3f} s and "
            f"DVC {dvc - start_s:.3f} s ({(dvc - start_s) / (dsv - start_s):.1f}x).\n"
        )
    return "".join(out)


def dsv_growth(res: Results) -> float:
    line = res.find("big", "store growth v2", "B")
    v = line.values.get("dsv") if line is not None else None
    return float(v) if isinstance(v, (int, float)) else 0.0


def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM stop the run as Ctrl-C does: the report of what was measured so far is
    still written. (A job started in the background by a shell begins with SIGINT ignored.)"""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def report(res: Results, meta: dict[str, Any], out: Path, json_out: Path | None) -> None:
    """Print the summary, write the report and its plots (and the figures as JSON, first: a
    report that could not be written can be made again from them with --from-json)."""
    if json_out is not None:
        json_out.write_text(json.dumps({"meta": meta, "results": asdict(res)}, indent=1) + "\n")
    targets = res.targets()
    print_summary(res, targets)
    figures = plots(res, out.with_suffix(""))
    write_report(res, out, meta, targets, figures)
    print(f"\nreport written to {out}; plots: {', '.join(figures.values()) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:  # the report again, from the figures of an earlier run
        doc = json.loads(args.from_json.read_text())
        report(Results.load(doc["results"]), doc["meta"], args.out, None)
        return 0
    started = time.perf_counter()
    interrupt_on_signals()
    bf.ensure_bytecode()
    md = bf.load_make_data(args.make_data)
    run_dir = Path(tempfile.mkdtemp(prefix="dsv-bench-run-", dir=args.workdir))
    if args.dsv_rev:
        args.dsv = export_dsv(args.dsv_rev, run_dir / "dsv")
    suite = Suite(args, md, run_dir)
    command = ["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)]
    meta: dict[str, Any] = {"command": shlex.join(command), **suite.machine()}
    meta["fs"] = suite.file_system(run_dir.resolve())
    try:
        with bf.failures_recorded(suite.failures):
            meta |= suite.versions()
            print(f"dsv-bench-run  run dir {run_dir}  scale {args.scale:g}  tools {args.tools}")
            for k in ("dsv", "dvc", "git-lfs"):
                print(f"  {k}: {meta.get(k, '-')}")
            if "s3" in args.remotes:
                suite.start_s3()
            for kind in args.kinds:
                suite.dataset(kind)
            for n in args.sizes:
                suite.series(n)
    finally:
        suite.stop()
        if args.remotes_dir is not None and not args.keep:
            shutil.rmtree(suite.remotes_root, ignore_errors=True)
        meta["finished"] = time.strftime("%Y-%m-%d %H:%M %Z")
        meta["minutes"] = (time.perf_counter() - started) / 60
        report(suite.results, meta, args.out, args.json_out)
        bf.drop_run_dir(run_dir, args.keep)
    return 1 if suite.failures else 0


if __name__ == "__main__":
    sys.exit(main())
