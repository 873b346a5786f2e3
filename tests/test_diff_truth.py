"""End to end, through a real ``dsv`` process: diffs of the benchmark data equal its ground truth.

The data comes from ``../shared/bench/make_data.py`` (gen, edit, expect) at
``--scale 0.01``; the tests skip when it is absent.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conftest import SHARED, run_dsv

MAKE_DATA = SHARED / "bench" / "make_data.py"
ENV = {"DSV_AUTHOR_NAME": "Test User", "DSV_AUTHOR_EMAIL": "test@example.com"}


def make_data() -> ModuleType:
    if not MAKE_DATA.is_file():
        pytest.skip(f"{MAKE_DATA} is absent")
    spec = importlib.util.spec_from_file_location("dsv_make_data", MAKE_DATA)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def dsv_json(*args: str, cwd: Path) -> Any:
    r = run_dsv(*args, "--json", cwd=cwd, env=ENV)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def prepare(tmp: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """A repository holding v1 committed and v2 in the working tree, and the truth of the edit."""
    md = make_data()
    v1, v2, repo = tmp / "v1", tmp / "v2", tmp / "repo"
    md.gen(kind, v1, scale=0.01)
    shutil.copytree(v1, v2)
    md.edit(kind, v2)
    truth = md.expect(kind, v1, v2)
    shutil.copytree(v1, repo)
    dsv_json("init", cwd=repo)
    dsv_json("commit", "-m", "v1", cwd=repo)
    md.edit(kind, repo)  # same seed: the same v2
    return repo, truth


def check_files(files: dict[str, Any], truth: dict[str, Any]) -> None:
    for k in ("added", "removed", "moved", "modified"):
        assert files[k] == truth["files"][k], k
    moved = sorted((m["from"], m["to"]) for m in files["paths"]["moved"])
    assert moved == sorted(tuple(m) for m in truth["files"]["paths"]["moved"])


def transitions(ld: dict[str, Any]) -> dict[str, int]:
    return {f"{t['from']}->{t['to']}": t["count"] for t in ld["transitions"]}


def test_images_diff_and_changelog_match_the_ground_truth(tmp_path: Path) -> None:
    repo, truth = prepare(tmp_path, "images")
    assert truth["relabeled_files"] > 0
    d = dsv_json("diff", cwd=repo)
    check_files(d["files"], truth)
    (ld,) = d["labels"]
    assert ld["source"] == {"kind": "folders", "path": "", "column": None, "split_by": "folders"}
    assert ld["relabeled"] == truth["relabeled_files"]
    assert transitions(ld) == truth["transitions"]
    assert ld["added"] == truth["files"]["added"] and ld["removed"] == truth["files"]["removed"]
    assert ld["before"] == truth["files"]["files_v1"] and ld["after"] == truth["files"]["files_v2"]
    assert sum(s["relabeled"] for s in ld["splits"]) == truth["relabeled_files"]

    c = dsv_json("commit", "-m", "v2", cwd=repo)
    s = c["summary"]
    assert s["moved"] == truth["files"]["moved"]
    assert s["files"]["added"] == truth["files"]["added"] + truth["files"]["moved"]
    (lab,) = s["labels"]
    assert lab["relabeled"] == truth["relabeled_files"]
    assert len(lab["transitions"]) == min(10, len(truth["transitions"]))
    for a, b, n in lab["transitions"]:
        assert truth["transitions"][f"{a}->{b}"] == n

    # the same diff between the two commits, both read from the store
    d2 = dsv_json("diff", "HEAD~1", "HEAD", cwd=repo)
    check_files(d2["files"], truth)
    assert transitions(d2["labels"][0]) == truth["transitions"]
    assert dsv_json("diff", cwd=repo)["files"]["paths"]["added"] == []


def test_table_diff_and_changelog_match_the_ground_truth(tmp_path: Path) -> None:
    repo, truth = prepare(tmp_path, "table")
    d = dsv_json("diff", cwd=repo)
    check_files(d["files"], truth)
    assert d["warnings"] == []
    tables = {t["path"]: t for t in d["tables"]}
    assert set(tables) == {"labels.parquet", "meta.csv"}
    for name, tr in truth.items():
        if name not in tables:
            continue
        t = tables[name]
        assert (t["key"], t["key_source"]) == ("id", "detected")
        rows = t["rows"]
        assert (rows["old"], rows["new"]) == (tr["rows_v1"], tr["rows_v2"])
        assert rows["added"] == tr["added_rows"]
        assert rows["removed"] == tr["removed_rows"]
        assert rows["modified"] == tr["relabeled_rows"] + tr["other_changed_rows"]
        assert t["columns"]["modified"].get("label", 0) == tr["relabeled_rows"]
        if tr["other_changed_rows"] == 0:
            assert set(t["columns"]["modified"]) <= {"label"}
        lab = t["labels"]
        assert lab["source"]["column"] == "label" and lab["source"]["split_by"] == "split"
        assert lab["relabeled"] == tr["relabeled_rows"]
        assert transitions(lab) == tr["transitions"]
        assert lab["before"] == tr["rows_v1"] and lab["after"] == tr["rows_v2"]
        assert lab["added"] == tr["added_rows"]
    # --labels gives the same label diff without comparing the other columns
    d_lab = dsv_json("diff", "--labels", cwd=repo)
    for t in d_lab["tables"]:
        assert t["rows"]["modified"] is None
        assert transitions(t["labels"]) == truth[t["path"]]["transitions"]

    c = dsv_json("commit", "-m", "v2", cwd=repo)
    st = c["summary"]["tables"]
    for name in ("labels.parquet", "meta.csv"):
        tr = truth[name]
        assert st[name]["rows"] == {
            "added": tr["added_rows"],
            "removed": tr["removed_rows"],
            "modified": tr["relabeled_rows"] + tr["other_changed_rows"],
            "total": tr["rows_v2"],
        }
        assert st[name]["key"] == "id"
    relabeled = {ld["path"]: ld["relabeled"] for ld in c["summary"]["labels"]}
    assert relabeled == {n: truth[n]["relabeled_rows"] for n in ("labels.parquet", "meta.csv")}
    # log and changelog print the stored summary
    log = run_dsv("log", "--stat", "-n", "1", cwd=repo, env=ENV).stdout.decode()
    assert f"labels.parquet: rows +{truth['labels.parquet']['added_rows']:,}" in log
    cl = dsv_json("changelog", "HEAD~1..HEAD", cwd=repo)
    assert [x["message"] for x in cl["commits"]] == ["v2"]
    assert (
        cl["totals"]["tables"]["labels.parquet"]["added"] == truth["labels.parquet"]["added_rows"]
    )
