"""``dsv diff``, ``dsv changelog``, ``dsv label`` and the changelog in ``log``/``show``, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsv.diff.formats import text_memory
from dsv.errors import ExitCode
from dsv.progress import human_bytes

from .conftest import Invoke, write


def ok(dsv: Invoke, *args: str) -> str:
    r = dsv(*args)
    assert r.exit_code == 0, r.output
    return r.stdout


def js(dsv: Invoke, *args: str) -> Any:
    return json.loads(ok(dsv, *args, "--json"))


def _png(i: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + i.to_bytes(4, "little") + os.urandom(300)


def dataset(work: Path, dsv: Invoke) -> None:
    """v1 committed; v2 in the working tree: 2 relabelled images, a table with changes."""
    for i in range(8):
        write(work / f"img/train/{('cat', 'dog')[i % 2]}/{i}.png", _png(i))
    pq.write_table(
        pa.table({"id": [1, 2, 3], "label": ["cat", "dog", "cat"], "w": [1, 2, 3]}),
        work / "labels.parquet",
    )
    ok(dsv, "commit", "-m", "v1")
    os.rename(work / "img/train/cat/0.png", work / "img/train/dog/0.png")
    os.rename(work / "img/train/cat/2.png", work / "img/train/dog/2.png")
    write(work / "img/train/dog/9.png", _png(9))
    pq.write_table(
        pa.table({"id": [1, 2, 4], "label": ["dog", "dog", "cat"], "w": [1, 5, 4]}),
        work / "labels.parquet",
    )


def test_diff_text(dsv: Invoke, work: Path) -> None:
    dataset(work, dsv)
    out = ok(dsv, "diff")
    assert "\x1b[" not in out  # no colour when not on a terminal
    lines = out.splitlines()
    assert lines[0] == "files +1 -0 ~1, 2 moved (+312 B -0 B), 6 unchanged"
    assert lines[1].split() == ["M", "labels.parquet", "1.0", "KiB", "->", "1.0", "KiB"]
    assert lines[2].split() == ["R", "img/train/cat/0.png", "->", "img/train/dog/0.png", "312", "B"]
    assert "id 1: cat -> dog" in out
    assert "table labels.parquet (parquet, key id)" in out
    assert "rows +1 -1 ~2; 3 -> 3 rows; changed values: label 1, w 1" in out
    assert "~  id=1  label: cat -> dog" in out
    assert "labels: class folders under img/ (by split folder)" in out
    assert "2 relabelled; +1 -0 files; cat → dog 2" in out
    assert "labels: column label of labels.parquet" in out
    # classes aligned in columns, largest change first
    start = lines.index("labels: class folders under img/ (by split folder)")
    i = next(j for j in range(start, len(lines)) if lines[j].split()[:2] == ["class", "before"])
    assert lines[i + 1].split()[:4] == ["dog", "4", "7", "+3"]
    assert lines[i + 2].split()[:4] == ["cat", "4", "2", "-2"]


def test_diff_stat_name_status_and_labels(dsv: Invoke, work: Path) -> None:
    dataset(work, dsv)
    stat = ok(dsv, "diff", "--stat").splitlines()
    assert stat[0].startswith("files +1 -0 ~1, 2 moved")
    assert stat[1].startswith("labels.parquet: rows +1 -1 ~2")
    assert len(stat) == 4
    ns = ok(dsv, "diff", "--name-status").splitlines()
    assert ns == [
        "R\timg/train/cat/0.png\timg/train/dog/0.png",
        "R\timg/train/cat/2.png\timg/train/dog/2.png",
        "A\timg/train/dog/9.png",
        "M\tlabels.parquet",
    ]
    lab = ok(dsv, "diff", "--labels")
    assert "table labels.parquet" not in lab and "R  img" not in lab
    assert lab.count("labels: ") == 2


def test_diff_json_schema(dsv: Invoke, work: Path) -> None:
    dataset(work, dsv)
    d = js(dsv, "diff")
    assert set(d) == {"from", "to", "files", "tables", "labels", "warnings"}
    assert d["from"]["rev"] == "HEAD" and len(d["from"]["commit"]) == 32
    assert d["to"] == {"rev": None, "commit": None}
    assert set(d["files"]) == {
        "added",
        "removed",
        "modified",
        "moved",
        "unchanged",
        "bytes_added",
        "bytes_removed",
        "paths",
    }
    assert set(d["files"]["paths"]) == {"added", "removed", "modified", "moved"}
    (t,) = d["tables"]
    assert set(t) == {
        "path",
        "status",
        "format",
        "key",
        "key_source",
        "rows",
        "columns",
        "schema",
        "samples",
        "labels",
        "warnings",
    }
    assert t["rows"] == {"old": 3, "new": 3, "added": 1, "removed": 1, "modified": 2}
    assert t["columns"]["modified"] == {"label": 1, "w": 1}
    assert t["samples"]["modified"][0] == {"key": 1, "changes": {"label": ["cat", "dog"]}}
    col, folders = sorted(d["labels"], key=lambda x: x["source"]["kind"])
    for ld in (folders, col):
        assert set(ld) >= {
            "source",
            "items",
            "keyed",
            "relabeled",
            "added",
            "removed",
            "before",
            "after",
            "transitions",
            "classes",
            "splits",
            "moved_between_splits",
            "examples",
        }
    assert folders["transitions"] == [{"from": "cat", "to": "dog", "count": 2}]
    assert folders["splits"][0]["split"] == "train"
    assert col["source"] == {
        "kind": "column",
        "path": "labels.parquet",
        "column": "label",
        "split_by": None,
        "key": "id",
    }
    assert col["examples"] == [{"key": 1, "from": "cat", "to": "dog"}]
    # --name-status --json: files only
    d = js(dsv, "diff", "--name-status")
    assert d["tables"] == [] and d["labels"] == [] and d["files"]["moved"] == 2


def test_revisions_paths_and_exit_codes(dsv: Invoke, work: Path) -> None:
    dataset(work, dsv)
    assert dsv("diff", "--exit-code").exit_code == 1
    ok(dsv, "commit", "-m", "v2")
    assert dsv("diff", "--exit-code").exit_code == 0
    assert ok(dsv, "diff") == "no changes\n"
    a = js(dsv, "diff", "HEAD~1", "HEAD")
    b = js(dsv, "diff", "HEAD~1..HEAD")
    assert a == b and a["files"]["moved"] == 2 and a["to"]["rev"] == "HEAD"
    only = json.loads(ok(dsv, "diff", "--json", "HEAD~1", "HEAD", "--", "labels.parquet"))
    assert only["files"]["modified"] == 1 and only["files"]["moved"] == 0
    only = js(dsv, "diff", "HEAD~1", "HEAD", "img")  # a path without --
    assert only["files"]["moved"] == 2 and only["tables"] == []
    r = dsv("diff", "nosuchrev")
    assert r.exit_code == ExitCode.NOT_FOUND and "unknown revision or path" in r.output
    assert dsv("diff", "HEAD", "HEAD", "HEAD").exit_code == ExitCode.USAGE


def test_key_option_and_warnings_on_stderr(dsv: Invoke, work: Path) -> None:
    write(work / "t.csv", "k,v\n1,a\n1,b\n")
    ok(dsv, "commit", "-m", "v1")
    write(work / "t.csv", "k,v\n1,a\n1,c\n")
    r = dsv("diff", "--key", "k", "--json")
    assert r.exit_code == 0
    assert "dsv: warning: t.csv: key column 'k' is not unique" in r.stderr
    d = json.loads(r.stdout)
    assert d["tables"][0]["key"] is None and d["tables"][0]["rows"]["added"] == 1
    assert "rows are compared as a multiset" in d["warnings"][0]


def test_label_command(dsv: Invoke, work: Path) -> None:
    dataset(work, dsv)
    out = ok(dsv, "label", "labels.parquet", "--column", "label", "--key", "id")
    assert out.strip() == "labels.parquet: label column label, key id"
    assert js(dsv, "label", "labels.parquet") == {
        "path": "labels.parquet",
        "key": "id",
        "label": "label",
        "split": None,
    }
    ok(dsv, "label", "img", "--folders")
    rep = js(dsv, "label")
    assert {c["path"] for c in rep["configured"]} == {"labels.parquet", "img"}
    (f,) = rep["folders"]
    assert f["root"] == "img" and f["configured"] and f["splits"] == ["train"]
    assert f["classes"] == {"cat": 2, "dog": 7}
    (t,) = rep["tables"]
    assert (t["key"], t["key_source"], t["label"], t["label_source"]) == (
        "id",
        "config",
        "label",
        "config",
    )
    text = ok(dsv, "label")
    assert "img/: splits train; 2 classes (configured)" in text
    assert '[data "img"]' in (work / ".dsv/config").read_text()
    assert "Forgot" in ok(dsv, "label", "img", "--unset")
    assert "had no settings" in ok(dsv, "label", "img", "--unset")
    assert dsv("label", "x", "--folders", "--none").exit_code == ExitCode.USAGE
    assert dsv("label", "--folders").exit_code == ExitCode.USAGE


def test_changelog_log_and_show(dsv: Invoke, work: Path) -> None:
    dataset(work, dsv)
    out = ok(dsv, "commit", "-m", "v2: review round")
    assert "labels in img/: 2 relabelled; +1 -0 files; cat → dog 2" in out
    assert "labels.parquet: rows +1 -1 ~2 (3 in all); label ~1, w ~1" in out
    log = ok(dsv, "log", "--stat")
    assert log.count("labels in img/") == 2  # v1 (all added) and v2
    assert "moved 2 files" in log
    one = ok(dsv, "log", "--oneline", "--stat", "-n", "1")
    assert "labels in labels.parquet (label): 1 relabelled; +1 -1 rows; cat → dog 1" in one
    assert "labels in img/" in ok(dsv, "show")
    md = ok(dsv, "changelog")
    assert md.startswith("# Dataset changelog\n")
    assert "## v2: review round" in md and "## v1" in md
    assert (
        "- labels in img/: 2 relabelled; +1 -0 files; cat → dog 2\n  - classes: dog 4 → 7 (+3), cat 4 → 2 (-2)\n"
        in md
    )
    md = ok(dsv, "changelog", "HEAD~1..HEAD")
    assert "## v1" not in md and md.startswith("# Dataset changelog: HEAD~1..HEAD")
    cj = js(dsv, "changelog", "HEAD~1..")
    assert [c["message"] for c in cj["commits"]] == ["v2: review round"]
    assert cj["totals"]["moved"] == 2 and cj["totals"]["commits"] == 1
    by_kind = {ld["kind"]: ld for ld in cj["totals"]["labels"]}
    assert by_kind["folders"]["transitions"] == [["cat", "dog", 2]]
    assert by_kind["column"]["transitions"] == [["cat", "dog", 1]]
    assert json.loads(ok(dsv, "changelog", "--format", "json"))["totals"]["commits"] == 2


def test_status_and_log_do_not_import_pyarrow(dsv: Invoke, work: Path) -> None:
    dataset(work, dsv)
    ok(dsv, "commit", "-m", "v2")
    code = (
        "import sys; from dsv.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(str('pyarrow' in sys.modules))\n"
    )
    for cmd in (["status"], ["log", "--stat"], ["show"]):
        r = subprocess.run(
            [sys.executable, "-c", code, *cmd], cwd=work, capture_output=True, text=True
        )
        assert r.stderr.endswith("False"), (cmd, r.stderr)


def test_the_dsv_process_diffs_tables_without_pandas(dsv: Invoke, work: Path) -> None:
    """pyarrow would import pandas (when installed) on its first conversions; the
    dsv command refuses it, and the table diff comes out the same."""
    pytest.importorskip("pandas")  # without pandas installed there is nothing to refuse
    dataset(work, dsv)
    want = ok(dsv, "diff", "--json")
    code = (
        "import sys; from dsv.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(str('pandas' in sys.modules))\n"
    )
    for cmd in (["diff", "--json"], ["commit", "-m", "v2"]):
        r = subprocess.run(
            [sys.executable, "-c", code, *cmd], cwd=work, capture_output=True, text=True
        )
        assert r.returncode == 0 and r.stderr.endswith("False"), (cmd, r.stderr)
        if cmd[0] == "diff":
            assert json.loads(r.stdout) == json.loads(want)
    shown = json.loads(ok(dsv, "log", "-n", "1", "--json"))[0]["summary"]
    assert shown["files"]["modified"] == 1  # the commit's changelog was made all the same
    # in a user's own process dsv leaves imports alone
    r = subprocess.run(
        [sys.executable, "-c", "import dsv.api, pandas; print(pandas.__name__)"],
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == "pandas", r.stderr


def test_colour_only_on_a_terminal(dsv: Invoke, work: Path, monkeypatch: Any) -> None:
    from click.testing import CliRunner

    from dsv.cli import cli
    from dsv.cli import diffview as cdiff

    dataset(work, dsv)
    run = CliRunner().invoke
    monkeypatch.setattr(cdiff, "_use_color", lambda: True)
    out = run(cli, ["-C", str(work), "diff"], color=True).stdout
    assert "\x1b[32m+1\x1b[0m" in out and "\x1b[1m" in out
    monkeypatch.undo()
    assert "\x1b[" not in run(cli, ["-C", str(work), "diff"], color=True).stdout  # not a tty
    monkeypatch.setattr(cdiff.sys.stdout, "isatty", lambda: True)
    assert cdiff._use_color()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cdiff._use_color()


def test_commit_says_why_a_table_has_no_row_diff(work: Path) -> None:
    """A real dsv process: the commit stores the file-level change and says on stderr
    why the table's rows were not diffed, through both of its command-line paths."""
    from .conftest import run_dsv

    def commit(*args: str) -> subprocess.CompletedProcess[bytes]:
        r = run_dsv("commit", "-m", "m", *args, cwd=work)
        assert r.returncode == 0, r.stderr
        return r

    write(work / "t.csv", "id,label\n1,cat\n2,dog\n")
    assert commit().stderr == b""
    write(work / "t.csv", "id,label\n1,cat\n2,dog,extra\n")
    err = commit().stderr.decode()  # `dsv commit -m M` without click
    assert err.startswith("dsv: warning: t.csv: ") and "showing a file-level change" in err
    assert "Expected 2 columns, got 3" in err
    with open(work / ".dsv" / "config", "a") as f:
        f.write("[diff]\nmax-table-memory = 10\n")
    old, new = "id,label\n1,cat\n2,cat\n", "id,label\n1,cat\n2,dog\n"
    write(work / "t.csv", old)
    r = commit("--json")  # through click
    summary = json.loads(r.stdout)["summary"]
    assert summary["warnings"] == 1 and "tables" not in summary
    assert "config diff.max-table-memory" in r.stderr.decode()
    write(work / "t.csv", new)
    r = commit()
    need = text_memory(len(old)) + text_memory(len(new))
    assert r.stderr.decode() == (
        f"dsv: warning: t.csv: a row-level diff would need about {human_bytes(need)} of memory,"
        f" more than the {human_bytes(10)} allowed (config diff.max-table-memory);"
        " showing a file-level change\n"
    )
    assert b"t.csv: rows" not in r.stdout and b"files +0 -0 ~1" in r.stdout
