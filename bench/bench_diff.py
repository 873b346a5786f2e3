#!/usr/bin/env python3
"""Diff benchmark: dsv's row and label diffs against pandas answering the same question, in one run.

    python bench/bench_diff.py                  # scale 1: 5M-row table, 20k images, 3 repetitions
    python bench/bench_diff.py --scale 0.1 --repeat 1
    python bench/bench_diff.py --only table --json-out out.json

Scenarios (data from ../shared/bench/make_data.py; v1 committed, the v2 edit in the working tree):
  table   `dsv diff --json -- labels.parquet` (working tree against HEAD: rows added, removed,
          modified by key, per-column counts, label transitions per split), then the same between
          two commits (`dsv diff HEAD~1 HEAD`: as the commit left it, the diff it kept for its
          changelog read back, and with .dsv/cache/tables removed, both sides read from the
          store and compared), against a pandas
          script that reads both files, merges on `id` (outer, indicator), compares every column
          of the matched rows and counts label transitions.  Peak RSS of each process via
          os.wait4 (ru_maxrss).  Targets: < 5 s and < 2 GB.
  images  `dsv diff --labels --json` on the 20k-file ImageFolder tree after the v2 edit (moves
          between class folders are relabels).  Target: < 1 s.
Every result is checked against make_data's `expect` ground truth; a wrong count fails the run.
The machine is shared and noisy: each step is repeated (tools take turns) and medians reported.
All figures are warm-cache.  Ratios are pandas/dsv: above 1 means dsv is faster (or smaller).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
MAKE_DATA = REPO_ROOT.parent / "shared" / "bench" / "make_data.py"
TABLE_MAX_S, TABLE_MAX_GB, IMAGES_MAX_S = 5.0, 2.0, 1.0
ENV = {**os.environ, "DSV_AUTHOR_NAME": "bench", "DSV_AUTHOR_EMAIL": "bench@localhost"}

# The same question answered with pandas: rows matched by key, per-column changes, transitions.
PANDAS = r"""
import json, sys
import pandas as pd
old = pd.read_parquet(sys.argv[1])
new = pd.read_parquet(sys.argv[2])
key, label = "id", "label"
m = old.merge(new, on=key, how="outer", suffixes=("_old", "_new"), indicator=True)
both = m[m["_merge"] == "both"]
cols = [c for c in old.columns if c != key and c in new.columns]
changed = {}
anych = None
for c in cols:
    a, b = both[c + "_old"], both[c + "_new"]
    ne = (a != b) & ~(a.isna() & b.isna())
    changed[c] = int(ne.sum())
    anych = ne if anych is None else (anych | ne)
rel = both[both[label + "_old"] != both[label + "_new"]]
trans = rel.groupby([label + "_old", label + "_new"]).size()
print(json.dumps({
    "added": int((m["_merge"] == "right_only").sum()),
    "removed": int((m["_merge"] == "left_only").sum()),
    "modified": int(anych.sum()) if anych is not None else 0,
    "columns": changed,
    "transitions": {f"{a}->{b}": int(n) for (a, b), n in trans.items()},
}))
"""


def _foundation() -> Any:
    """bench_foundation.py beside this file: its launcher measures a child's own peak RSS."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_foundation

    return bench_foundation


LOG: list[Any] = []


def run(cmd: list[str], cwd: Path) -> tuple[float, float, bytes]:
    """Run a command; (seconds, peak RSS of that process in MB (10**6 bytes), stdout).

    Linux carries a process's RSS high-water mark across fork + exec, so commands are spawned
    by bench_foundation's small launcher, not from this (large) process.
    """
    r = _foundation().run_cmd("bench", cmd, cwd, ENV, LOG, "diff", cmd[-1])
    return r.seconds, r.maxrss_mb, r.stdout.encode()


def dsv(*args: str) -> list[str]:
    return [sys.executable, "-m", "dsv", *args]


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def prepare(md: Any, kind: str, scale: float, tmp: Path) -> tuple[Path, Path, Path, dict[str, Any]]:
    v1, v2, repo = tmp / f"{kind}-v1", tmp / f"{kind}-v2", tmp / f"{kind}-repo"
    print(f"[{kind}] generating at scale {scale} ...", flush=True)
    md.gen(kind, v1, scale=scale)
    shutil.copytree(v1, v2)
    md.edit(kind, v2)
    truth = md.expect(kind, v1, v2)
    shutil.copytree(v1, repo)
    run(dsv("init"), repo)
    dt, rss, _ = run(dsv("commit", "-q", "-m", "v1"), repo)
    print(f"[{kind}] commit v1: {dt:.2f} s, {rss:.0f} MB (changelog included)", flush=True)
    md.edit(kind, repo)
    return v1, v2, repo, truth


def check_table(out: dict[str, Any], tr: dict[str, Any], who: str) -> None:
    if who == "dsv":
        (t,) = [t for t in out["tables"] if t["path"] == "labels.parquet"]
        got = {
            "added": t["rows"]["added"],
            "removed": t["rows"]["removed"],
            "modified": t["rows"]["modified"],
            "relabeled": t["labels"]["relabeled"],
            "transitions": {
                f"{x['from']}->{x['to']}": x["count"] for x in t["labels"]["transitions"]
            },
        }
    else:
        got = {
            "added": out["added"],
            "removed": out["removed"],
            "modified": out["modified"],
            "relabeled": out["columns"]["label"],
            "transitions": out["transitions"],
        }
    want = {
        "added": tr["added_rows"],
        "removed": tr["removed_rows"],
        "modified": tr["relabeled_rows"] + tr["other_changed_rows"],
        "relabeled": tr["relabeled_rows"],
        "transitions": tr["transitions"],
    }
    if got != want:
        bad = {k: (got[k], want[k]) for k in want if got[k] != want[k] and k != "transitions"}
        raise SystemExit(f"{who}: wrong table diff: {bad or 'transitions differ'}")


def bench_table(md: Any, scale: float, repeat: int, tmp: Path) -> dict[str, Any]:
    v1, v2, repo, truth = prepare(md, "table", scale, tmp)
    tr = truth["labels.parquet"]
    script = tmp / "pandas_diff.py"
    script.write_text(PANDAS)
    res: dict[str, list[tuple[float, float]]] = {"dsv": [], "dsv-commits": [], "pandas": []}
    steps = {
        "dsv": lambda: run(dsv("diff", "--json", "--", "labels.parquet"), repo),
        "pandas": lambda: run(
            [sys.executable, str(script), str(v1 / "labels.parquet"), str(v2 / "labels.parquet")],
            tmp,
        ),
    }
    for i in range(repeat):
        names = list(steps)
        if i % 2:
            names.reverse()  # take turns
        for name in names:
            dt, rss, out = steps[name]()
            check_table(json.loads(out), tr, "dsv" if name == "dsv" else "pandas")
            res[name].append((dt, rss))
            print(f"[table] {name:<7} {dt:6.2f} s {rss:7.0f} MB", flush=True)
    dt, rss, out = run(dsv("commit", "-q", "--json", "-m", "v2"), repo)
    summ = json.loads(out)["summary"]["tables"]["labels.parquet"]["rows"]
    if (summ["added"], summ["modified"]) != (tr["added_rows"], tr["relabeled_rows"]):
        raise SystemExit(f"commit changelog is wrong: {summ}")
    commit_v2 = (dt, rss)
    print(f"[table] commit v2: {dt:.2f} s, {rss:.0f} MB (changelog included)", flush=True)
    res["dsv-kept"] = []
    for _ in range(repeat):
        # as the commit left it: the diff it computed for its changelog is read back
        dt, rss, out = run(dsv("diff", "--json", "HEAD~1", "HEAD", "--", "labels.parquet"), repo)
        check_table(json.loads(out), tr, "dsv")
        res["dsv-kept"].append((dt, rss))
        print(f"[table] dsv HEAD~1 HEAD (kept) {dt:6.2f} s {rss:7.0f} MB", flush=True)
        # without the table-diff cache: both versions read from the store and compared
        shutil.rmtree(repo / ".dsv" / "cache" / "tables", ignore_errors=True)
        dt, rss, out = run(dsv("diff", "--json", "HEAD~1", "HEAD", "--", "labels.parquet"), repo)
        check_table(json.loads(out), tr, "dsv")
        res["dsv-commits"].append((dt, rss))
        print(f"[table] dsv HEAD~1 HEAD {dt:6.2f} s {rss:7.0f} MB", flush=True)
    summary: dict[str, Any] = {
        k: {"s": med([x[0] for x in v]), "rss_mb": med([x[1] for x in v])} for k, v in res.items()
    }
    summary["commit-v2"] = {"s": commit_v2[0], "rss_mb": commit_v2[1]}
    summary["estimate_mb"] = memory_estimate(repo, "labels.parquet") / 1e6
    print(f"[table] diff.max-table-memory estimate {summary['estimate_mb']:.0f} MB", flush=True)
    return summary


def memory_estimate(repo: Path, path: str) -> int:
    """What dsv estimates a row diff of ``path`` between HEAD~1 and HEAD needs (the
    figure diff.max-table-memory is judged against), to set beside the measured peak."""
    from dsv import api
    from dsv.diff.formats import open_table
    from dsv.diff.source import StoreSource

    r = api.open_repo(repo)
    try:
        src, need = StoreSource(r.store), 0
        for rev in ("HEAD~1", "HEAD"):
            e = api.lookup(r, r.read_commit(api.resolve_commit(r, rev)).tree, path)
            assert e is not None
            with open_table(path, e, src) as t:
                need += t.diff_memory()
        return need
    finally:
        r.close()


def bench_images(md: Any, scale: float, repeat: int, tmp: Path) -> dict[str, Any]:
    _, _, repo, truth = prepare(md, "images", scale, tmp)
    times, rsss = [], []
    for _ in range(repeat):
        dt, rss, out = run(dsv("diff", "--labels", "--json"), repo)
        d = json.loads(out)
        (ld,) = d["labels"]
        got = {f"{x['from']}->{x['to']}": x["count"] for x in ld["transitions"]}
        f = d["files"]
        if (
            got != truth["transitions"]
            or ld["relabeled"] != truth["relabeled_files"]
            or (f["added"], f["removed"], f["moved"])
            != (truth["files"]["added"], truth["files"]["removed"], truth["files"]["moved"])
        ):
            raise SystemExit("images: label diff differs from the ground truth")
        times.append(dt)
        rsss.append(rss)
        print(f"[images] dsv diff --labels {dt:6.2f} s {rss:7.0f} MB", flush=True)
    full = [run(dsv("diff", "--json"), repo)[0] for _ in range(repeat)]
    return {
        "dsv-labels": {"s": med(times), "rss_mb": med(rsss)},
        "dsv-full": {"s": med(full)},
        "files": truth["files"]["files_v2"],
        "relabeled": truth["relabeled_files"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="table,images")
    ap.add_argument("--make-data", type=Path, default=MAKE_DATA)
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the temporary data")
    a = ap.parse_args()
    if not a.make_data.is_file():
        raise SystemExit(
            f"{a.make_data} not found (it lives in ../shared/bench beside the checkout)"
        )
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_data", a.make_data)
    assert spec is not None and spec.loader is not None
    md = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(md)
    tmp = Path(tempfile.mkdtemp(prefix="dsv-bench-diff-"))
    results: dict[str, Any] = {"scale": a.scale, "repeat": a.repeat}
    try:
        only = a.only.split(",")
        if "table" in only:
            results["table"] = bench_table(md, a.scale, a.repeat, tmp)
        if "images" in only:
            results["images"] = bench_images(md, a.scale, a.repeat, tmp)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"results (scale {a.scale}, median of {a.repeat}, warm cache)")
    if "table" in results:
        t = results["table"]
        d, c, p = t["dsv"], t["dsv-commits"], t["pandas"]
        print(
            f"  table, working tree vs HEAD: dsv {d['s']:.2f} s {d['rss_mb']:.0f} MB | pandas {p['s']:.2f} s "
            f"{p['rss_mb']:.0f} MB | time x{p['s'] / d['s']:.1f}, RSS x{p['rss_mb'] / d['rss_mb']:.1f} (pandas/dsv)"
        )
        print(
            f"  table, HEAD~1 vs HEAD:       dsv {c['s']:.2f} s {c['rss_mb']:.0f} MB | "
            f"time x{p['s'] / c['s']:.1f}, RSS x{p['rss_mb'] / c['rss_mb']:.1f} (pandas/dsv)"
        )
        k = t["dsv-kept"]
        print(
            f"  table, HEAD~1 vs HEAD, kept by the commit: dsv {k['s']:.2f} s {k['rss_mb']:.0f} MB"
            f" (computed: {c['s']:.2f} s, x{c['s'] / k['s']:.1f})"
        )
        print(
            f"  commit v2 with changelog:    {t['commit-v2']['s']:.2f} s {t['commit-v2']['rss_mb']:.0f} MB"
        )
        print(
            f"  memory estimate (diff.max-table-memory) {t['estimate_mb']:.0f} MB against a measured"
            f" peak of {c['rss_mb']:.0f} MB (x{t['estimate_mb'] / c['rss_mb']:.2f})"
        )
        for name, row in (("worktree", d), ("commits", c)):
            ok = row["s"] < TABLE_MAX_S and row["rss_mb"] < TABLE_MAX_GB * 1000
            print(
                f"  target table ({name}) < {TABLE_MAX_S} s and < {TABLE_MAX_GB} GB: {'PASS' if ok else 'FAIL'}"
            )
    if "images" in results:
        im = results["images"]
        print(
            f"  images ({im['files']:,} files, {im['relabeled']} relabelled): dsv diff --labels "
            f"{im['dsv-labels']['s']:.2f} s {im['dsv-labels']['rss_mb']:.0f} MB; full diff {im['dsv-full']['s']:.2f} s"
        )
        print(
            f"  target images < {IMAGES_MAX_S} s: {'PASS' if im['dsv-labels']['s'] < IMAGES_MAX_S else 'FAIL'}"
        )
    if a.json_out:
        a.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
