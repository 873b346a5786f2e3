#!/usr/bin/env python3
"""Scale benchmark: many small files, and one directory with very many entries.

    python bench/scale.py                                  # 10k, 100k and 1M files, 1M-entry dir
    python bench/scale.py --files 10000,100000 --flat 0    # quicker
    python bench/scale.py --files 0 --flat 200000          # only the big directory
    python bench/scale.py --dsv "env PYTHONPATH=/other/src python -m dsv"   # another build

Many files (``make_files``: 0.5-4 KB each, 1000 to a directory, 100 directories
to a group), per count:
  commit      `dsv commit` of the fresh tree
  status      no-op `dsv status --json` (median of --repeat)
  edit status `dsv status --json` after one file was rewritten (checked: exactly it is modified)
  edit commit `dsv commit` of that change
  push        `dsv push` to a local directory remote
  clone       `dsv clone` of that remote into an empty directory (file count checked)
  push s3     with --s3: `dsv push` to a moto S3 server (over HTTP, in this process;
              requests counted)
  clone s3    with --s3: `dsv clone` from it (file count and the edited file checked)

One big directory (``make_flat``: N files of ~100 bytes side by side):
  commit, no-op status, one-file change + commit (store growth in bytes: the
  pack files' growth and the commit's `stored_bytes`), `dsv show REV:PATH` and
  `dsv ls-tree REV PATH` of one entry.

Every command runs as a child of a small launcher (bench_foundation.run_cmd):
seconds are spawn to reap, peak RSS is the child's own ru_maxrss. Data lives in
--workdir (default: a new directory under /tmp), removed at the end unless
--keep. The machine is shared and noisy: judge growth factors between counts
(10x the files should cost about 10x), not absolute seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_foundation import (
    REPO_ROOT,
    Run,
    Tool,
    ensure_bytecode,
    human_bytes,
    resolve_dsv,
)

PER_DIR = 1000
DIRS_PER_GROUP = 100
MIN_SIZE, MAX_SIZE = 512, 4096


# ---------------------------------------------------------------------------- data


def file_paths(n: int, per_dir: int = PER_DIR) -> Iterator[str]:
    """The relative paths ``make_files`` writes, in order: g000/d000/f0000.bin, ..."""
    for i in range(n):
        d = i // per_dir
        yield f"g{d // DIRS_PER_GROUP:03d}/d{d % DIRS_PER_GROUP:03d}/f{i % per_dir:04d}.bin"


def make_files(root: Path, n: int, seed: int = 1, per_dir: int = PER_DIR) -> int:
    """Write ``n`` distinct files of 0.5-4 KB under ``root``; returns the bytes written.

    Contents are slices of one random buffer behind a unique header: distinct
    (no dedup between files) and incompressible, like media files.
    """
    rng = random.Random(seed)
    pool = rng.randbytes(1 << 22)
    total = 0
    made: set[str] = set()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i, rel in enumerate(file_paths(n, per_dir)):
        d = rel.rpartition("/")[0]
        if d not in made:
            (root / d).mkdir(parents=True, exist_ok=True)
            made.add(d)
        size = rng.randint(MIN_SIZE, MAX_SIZE)
        start = rng.randrange(len(pool) - size)
        head = b"%d:%d\n" % (seed, i)
        fd = os.open(root / rel, flags, 0o644)
        try:
            os.write(fd, head + pool[start : start + size - len(head)])
        finally:
            os.close(fd)
        total += size
    return total


def make_flat(root: Path, n: int, seed: int = 1) -> None:
    """``n`` files of ~100 bytes in the one directory ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    pad = random.Random(seed).randbytes(96)
    for i in range(n):
        fd = os.open(root / f"e{i:07d}.bin", flags, 0o644)
        try:
            os.write(fd, b"%07d" % i + pad)
        finally:
            os.close(fd)


def rewrite(path: Path) -> None:
    """New content of the same size, and an mtime that differs from the old one."""
    data = bytearray(path.read_bytes())
    data[:8] = b"EDITED!\n"
    old = path.stat().st_mtime_ns
    path.write_bytes(bytes(data))
    if path.stat().st_mtime_ns == old:
        os.utime(path, ns=(old + 1_000_000_000, old + 1_000_000_000))


def pack_bytes(repo: Path) -> int:
    d = repo / ".dsv" / "objects" / "pack"
    return sum(p.stat().st_size for p in d.iterdir() if p.suffix in (".pack", ".idx"))


def count_files(root: Path) -> int:
    n = 0
    for _dirpath, dirs, files in os.walk(root):
        if ".dsv" in dirs:
            dirs.remove(".dsv")
        n += len(files)
    return n


# ---------------------------------------------------------------------------- runs


class Bench:
    def __init__(self, dsv: Tool, work: Path, repeat: int, s3: Any = None) -> None:
        self.dsv = dsv
        self.work = work
        self.repeat = repeat
        self.s3 = s3  # bench_remote's counting moto server, or None
        self.rows: list[dict[str, Any]] = []

    def run(self, args: list[str], cwd: Path, label: str, step: str) -> Run:
        r = self.dsv.run(args, cwd, label, step)
        print(f"  {label:>10} {step:<14} {r.seconds:8.2f} s  {r.maxrss_mb:8.1f} MB", flush=True)
        self.rows.append({"set": label, "step": step, "seconds": r.seconds, "rss_mb": r.maxrss_mb})
        return r

    def median(self, args: list[str], cwd: Path, label: str, step: str) -> Run:
        runs = [self.dsv.run(args, cwd, label, step) for _ in range(self.repeat)]
        r = sorted(runs, key=lambda x: x.seconds)[len(runs) // 2]
        print(f"  {label:>10} {step:<14} {r.seconds:8.2f} s  {r.maxrss_mb:8.1f} MB", flush=True)
        self.rows.append(
            {
                "set": label,
                "step": step,
                "seconds": r.seconds,
                "rss_mb": max(x.maxrss_mb for x in runs),
                "all_seconds": [x.seconds for x in runs],
            }
        )
        return r

    def files(self, n: int) -> None:
        label = f"{n:,}"
        base = self.work / f"files-{n}"
        repo, remote, clone = base / "repo", base / "remote", base / "clone"
        t0 = time.perf_counter()
        size = make_files(repo, n)
        print(f"{label} files ({human_bytes(size)}), made in {time.perf_counter() - t0:.1f} s")
        self.dsv.run(["init"], repo, label, "init")
        self.run(["commit", "-q", "-m", "v1"], repo, label, "commit")
        st = self.median(["status", "--json"], repo, label, "status")
        _expect_clean(st)
        edited = _nth_path(n // 2)
        rewrite(repo / edited)
        st = self.run(["status", "--json"], repo, label, "edit status")
        got = json.loads(st.stdout)
        if got.get("modified") != [edited] or got.get("added") or got.get("deleted"):
            raise SystemExit(f"edit status: expected only {edited} modified, got {st.stdout[:300]}")
        before = pack_bytes(repo)
        self.run(["commit", "-q", "-m", "v2"], repo, label, "edit commit")
        self.rows[-1]["store_growth"] = pack_bytes(repo) - before
        self.dsv.run(["remote", "add", "r", str(remote)], repo, label, "remote add")
        self.run(["push", "-q", "r"], repo, label, "push")
        self.run(["clone", "-q", str(remote), str(clone)], base, label, "clone")
        got_n = count_files(clone)
        if got_n != n:
            raise SystemExit(f"clone holds {got_n} files, expected {n}")
        if (clone / edited).read_bytes() != (repo / edited).read_bytes():
            raise SystemExit(f"clone: {edited} differs")
        shutil.rmtree(clone)
        if self.s3 is not None:
            self.s3_round_trip(n, label, repo, base / "clone-s3", edited)
        shutil.rmtree(base)

    def s3_round_trip(self, n: int, label: str, repo: Path, clone: Path, edited: str) -> None:
        """Push to the moto S3 server and clone from it; requests counted, the clone checked."""
        ep = self.s3.endpoint
        url = f"s3://{S3_BUCKET}/files-{n}"
        self.dsv.run(["remote", "add", "s3", url, "--endpoint-url", ep], repo, label, "remote add")
        self.s3.reset()
        self.run(["push", "-q", "s3"], repo, label, "push s3")
        self.rows[-1]["requests"] = self.s3.snapshot().requests
        self.s3.reset()
        self.run(
            ["clone", "-q", "--endpoint-url", ep, url, str(clone)], repo.parent, label, "clone s3"
        )
        self.rows[-1]["requests"] = self.s3.snapshot().requests
        got_n = count_files(clone)
        if got_n != n:
            raise SystemExit(f"clone from S3 holds {got_n} files, expected {n}")
        if (clone / edited).read_bytes() != (repo / edited).read_bytes():
            raise SystemExit(f"clone from S3: {edited} differs")
        _empty_s3(ep)

    def flat(self, n: int) -> None:
        label = f"flat {n:,}"
        base = self.work / f"flat-{n}"
        repo = base / "repo"
        t0 = time.perf_counter()
        make_flat(repo / "big", n)
        print(f"one directory of {n:,} files, made in {time.perf_counter() - t0:.1f} s")
        self.dsv.run(["init"], repo, label, "init")
        self.run(["commit", "-q", "-m", "v1"], repo, label, "commit")
        tree_store = pack_bytes(repo)
        self.median(["status", "--json"], repo, label, "status")
        name = f"big/e{n // 2:07d}.bin"
        rewrite(repo / name)
        before = pack_bytes(repo)
        self.run(["commit", "-q", "-m", "v2"], repo, label, "edit commit")
        growth = pack_bytes(repo) - before
        show = self.dsv.run(["show", "--json", "HEAD"], repo, label, "summary")
        stored = json.loads(show.stdout).get("summary", {}).get("stored_bytes")
        self.rows[-1]["store_growth"] = growth
        self.rows[-1]["stored_bytes"] = stored
        print(
            f"  {label:>10} one-file change stored {human_bytes(stored or 0)}"
            f" (packs and indexes grew {human_bytes(growth)}; v1 store {human_bytes(tree_store)})"
        )
        r = self.run(["show", f"HEAD:{name}"], repo, label, "show")
        if not r.stdout.startswith("EDITED!"):
            raise SystemExit(f"show {name}: unexpected output {r.stdout[:40]!r}")
        r = self.run(["ls-tree", "--json", "HEAD", name], repo, label, "ls-tree")
        if name not in r.stdout:
            raise SystemExit(f"ls-tree {name}: unexpected output {r.stdout[:200]!r}")
        shutil.rmtree(base)


S3_BUCKET = "dsv-scale"


def start_s3() -> Any:
    """A moto S3 server (bench_remote's, counting requests) with the bucket made."""
    from bench_remote import start_s3_server, use_test_credentials

    use_test_credentials()
    srv = start_s3_server()
    _empty_s3(srv.endpoint)
    return srv


def _empty_s3(endpoint: str) -> None:
    from bench_remote import empty_s3

    empty_s3(endpoint, S3_BUCKET)


def _nth_path(i: int) -> str:
    d = i // PER_DIR
    return f"g{d // DIRS_PER_GROUP:03d}/d{d % DIRS_PER_GROUP:03d}/f{i % PER_DIR:04d}.bin"


def _expect_clean(r: Run) -> None:
    got = json.loads(r.stdout)
    if got.get("added") or got.get("modified") or got.get("deleted"):
        raise SystemExit(f"no-op status is not clean: {r.stdout[:300]}")


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'set':>12} {'step':<14} {'seconds':>9} {'peak RSS':>10}  store growth / S3 requests")
    for r in rows:
        extra = ""
        if r.get("stored_bytes") is not None:
            extra = human_bytes(r["stored_bytes"])
        elif r.get("store_growth") is not None:
            extra = human_bytes(r["store_growth"])
        if r.get("requests") is not None:
            extra = f"{r['requests']:,} requests"
        print(f"{r['set']:>12} {r['step']:<14} {r['seconds']:9.2f} {r['rss_mb']:8.1f} MB  {extra}")
    print_growth(rows)


def print_growth(rows: list[dict[str, Any]]) -> None:
    """Growth factors of seconds and peak RSS between consecutive file counts, per step.

    With 10x the files, about 10x means linear; RSS includes ~25 MB of interpreter.
    """
    by_step: dict[str, list[tuple[int, float, float]]] = {}
    for r in rows:
        if r["set"].startswith("flat"):
            continue
        n = int(r["set"].replace(",", ""))
        by_step.setdefault(r["step"], []).append((n, r["seconds"], r["rss_mb"]))
    if not any(len(v) > 1 for v in by_step.values()):
        return
    print(f"\n{'step':<14} {'files':>20} {'x seconds':>10} {'x RSS':>8}")
    for step, pts in by_step.items():
        for (n0, s0, m0), (n1, s1, m1) in itertools.pairwise(pts):
            span = f"{n0:,} -> {n1:,}"
            print(f"{step:<14} {span:>20} {s1 / s0:10.1f} {m1 / m0:8.1f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", default="10000,100000,1000000", help="file counts (0: none)")
    ap.add_argument("--flat", type=int, default=1_000_000, help="entries of the big directory")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the no-op status")
    ap.add_argument("--dsv", help="command that runs dsv (default: the one beside this python)")
    ap.add_argument("--workdir", type=Path, help="where data goes (default: a new dir in /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json-out", type=Path, help="write the rows as JSON")
    ap.add_argument(
        "--s3", action="store_true", help="also push to and clone from a moto S3 server"
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_bytecode()
    counts = [int(x) for x in args.files.split(",") if int(x) > 0]
    cmd, env = resolve_dsv(args.dsv)
    work = Path(tempfile.mkdtemp(prefix="dsv-scale-", dir=args.workdir))
    if work == REPO_ROOT or REPO_ROOT in work.parents:
        sys.exit("scale: the work directory must be outside the repository")
    s3 = start_s3() if args.s3 else None  # first: it sets the AWS variables dsv needs
    env = {**os.environ, **env, "DSV_AUTHOR_NAME": "bench", "DSV_AUTHOR_EMAIL": "b@localhost"}
    log: list[Run] = []
    bench = Bench(Tool("dsv", cmd, env, log, sync=False), work, max(1, args.repeat), s3)
    print(f"dsv-scale  work dir {work}  dsv: {' '.join(cmd)}  cpus {os.cpu_count()}")
    print("  warm cache; the machine may be shared: compare growth factors, not seconds")
    try:
        for n in counts:
            bench.files(n)
        if args.flat > 0:
            bench.flat(args.flat)
    finally:
        if s3 is not None:
            s3.stop()
        print_table(bench.rows)
        if args.json_out:
            args.json_out.write_text(json.dumps(bench.rows, indent=1) + "\n")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
