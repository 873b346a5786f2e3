"""The table-diff cache: what a commit computed, a diff of the same versions reads back."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dsv.diff.tables as tables_mod
from dsv.api import diff as dapi
from dsv.diff.cache import TableCache, Uncacheable, decode, encode
from dsv.diff.labeldiff import ClassStats, LabelDiff
from dsv.diff.tables import TableDiff
from dsv.repo import Repository

from .conftest import run_dsv
from .test_diff_tables import V1, V2, commit, save, table


def cache_dir(work: Path) -> Path:
    return work / ".dsv" / "cache" / "tables"


def cached_files(work: Path) -> list[Path]:
    d = cache_dir(work)
    return sorted(d.iterdir()) if d.is_dir() else []


def two_versions(repo: Repository, work: Path) -> None:
    """Tables of every kind of change between HEAD~1 and HEAD."""
    save(work / "keyed.parquet", table(**V1))
    save(work / "keyless.csv", table(label=["a", "a", "b"], v=[1, 1, 2]))
    save(work / "schema.parquet", table(id=[1, 2, 3], a=[1, 2, 3], b=["x", "y", "z"]))
    save(work / "gone.parquet", table(id=[1, 2], category=["p", "q"]))
    commit(repo, "v1")
    save(work / "keyed.parquet", table(**V2))
    save(work / "keyless.csv", table(label=["b", "a", "b", "c"], v=[2, 1, 2, 3]))
    save(work / "schema.parquet", table(id=[1, 2, 3], a=[1.0, 2.0, 3.5], d=[True, False, True]))
    (work / "gone.parquet").unlink()
    save(work / "new.parquet", table(id=[7, 8, 9], category=[1, 2, 1], split=["a", "b", "b"]))
    commit(repo, "v2")


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the table diffs computed from here on."""
    calls: list[str] = []
    real = tables_mod.safe_diff_table

    def spy(path: str, *a: Any, **kw: Any) -> Any:
        calls.append(path)
        return real(path, *a, **kw)

    monkeypatch.setattr(tables_mod, "safe_diff_table", spy)
    return calls


def test_a_commit_keeps_its_table_diffs_and_diff_reads_them_back(
    repo: Repository, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_versions(repo, work)
    assert len(cached_files(work)) == 4 + 5  # the tables v1 added, the five v2 changed
    calls = counting(monkeypatch)
    kept = dapi.diff(repo, ["HEAD~1", "HEAD"]).diff
    assert calls == []  # nothing read again
    shutil.rmtree(work / ".dsv" / "cache")
    fresh = dapi.diff(repo, ["HEAD~1", "HEAD"]).diff
    assert sorted(calls) == sorted(t.path for t in fresh.tables) and len(calls) == 5
    assert kept.tables == fresh.tables  # every field, counters and samples included
    assert kept.as_dict() == fresh.as_dict()
    assert len(cached_files(work)) == 5  # the fresh diff kept them again
    by_path = {t.path: t for t in kept.tables}
    t = by_path["keyed.parquet"]
    assert (t.added, t.removed, t.modified) == (1, 1, 2)
    assert t.labels is not None and t.labels.total.transitions == {("dog", "cat"): 1}
    assert by_path["schema.parquet"].schema_retyped == [("a", "int64", "double")]
    new = by_path["new.parquet"].labels
    assert new is not None and new.splits["b"].after == Counter({1: 1, 2: 1})


def test_other_options_settings_or_versions_are_computed(
    repo: Repository, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_versions(repo, work)
    calls = counting(monkeypatch)
    d = dapi.diff(repo, ["HEAD~1", "HEAD"], samples=1, paths=["keyed.parquet"]).diff
    assert calls == ["keyed.parquet"] and len(d.tables[0].samples_added) == 1
    dapi.diff(repo, ["HEAD~1", "HEAD"], key="score", paths=["keyed.parquet"])
    assert calls[1:] == ["keyed.parquet"]
    dapi.label_set(repo, "keyed.parquet", label="none")
    d = dapi.diff(repo, ["HEAD~1", "HEAD"], paths=["keyed.parquet"]).diff
    assert calls[2:] == ["keyed.parquet"] and d.tables[0].labels is None
    # a version pair never diffed before
    dapi.diff(repo, ["HEAD~1", "HEAD"], paths=["keyed.parquet"], samples=1)
    assert len(calls) == 4  # ... while the first one is now kept too
    dapi.diff(repo, ["HEAD~1"], paths=["keyed.parquet"])  # working tree = HEAD here
    assert len(calls) == 5


def test_working_tree_diffs_are_not_kept(repo: Repository, work: Path) -> None:
    two_versions(repo, work)
    before = cached_files(work)
    save(work / "keyed.parquet", table(**V1))
    d = dapi.diff(repo).diff
    assert [t.path for t in d.tables] == ["keyed.parquet"]
    assert cached_files(work) == before  # a file on disk may change while it is read


@pytest.mark.parametrize(
    "damage",
    ["flip", "truncate", "empty", "version", "checksum-ok-but-not-a-diff", "directory"],
)
def test_damaged_or_foreign_cache_files_are_misses(
    repo: Repository, work: Path, damage: str
) -> None:
    two_versions(repo, work)
    want = dapi.diff(repo, ["HEAD~1", "HEAD"]).diff.as_dict()
    for f in cached_files(work):
        raw = f.read_bytes()
        if damage == "flip":
            i = len(raw) - 3
            f.write_bytes(raw[:i] + bytes([raw[i] ^ 0x20]) + raw[i + 1 :])
        elif damage == "truncate":
            f.write_bytes(raw[: len(raw) // 2])
        elif damage == "empty":
            f.write_bytes(b"")
        elif damage == "version":
            f.write_bytes(raw.replace(b"DSVTDIFF 1 ", b"DSVTDIFF 9 ", 1))
        elif damage == "checksum-ok-but-not-a-diff":
            from dsv.hashing import checksum

            body = json.dumps({"path": 1}).encode()
            f.write_bytes(b"DSVTDIFF 1 " + checksum(body).hex().encode() + b"\n" + body)
        else:
            f.unlink()
            f.mkdir()
    assert dapi.diff(repo, ["HEAD~1", "HEAD"]).diff.as_dict() == want


def test_a_cache_that_cannot_be_written_keeps_nothing(repo: Repository, work: Path) -> None:
    (work / ".dsv" / "cache").write_text("not a directory")
    two_versions(repo, work)  # the commits' summaries are computed, just not kept
    log = dapi.diff(repo, ["HEAD~1", "HEAD"]).diff
    assert len(log.tables) == 5
    assert (work / ".dsv" / "cache").read_text() == "not a directory"


def test_the_cache_keeps_the_newest_entries(tmp_path: Path) -> None:
    cache = TableCache(tmp_path / "c", max_entries=3)
    keys = [f"{i:032x}" for i in range(5)]
    for i, k in enumerate(keys):
        cache.put(k, TableDiff(path=f"t{i}.csv", status="modified", format="csv"))
        os.utime(tmp_path / "c" / k, ns=(10**18 + i, 10**18 + i))
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == keys[2:]
    got = cache.get(keys[4])
    assert got is not None and got.path == "t4.csv"
    assert cache.get(keys[0]) is None


labels = st.one_of(
    st.text(max_size=5), st.integers(-3, 3), st.booleans(), st.none(), st.floats(-2, 2)
)
counters = st.dictionaries(labels, st.integers(1, 9), max_size=4).map(Counter)
transitions = st.dictionaries(st.tuples(labels, labels), st.integers(1, 9), max_size=4).map(Counter)
stats = st.builds(
    ClassStats, before=counters, after=counters, added=counters, removed=counters,
    transitions=transitions,
)  # fmt: skip
sample = st.dictionaries(st.text(max_size=3), st.one_of(labels, st.lists(labels, max_size=2)))
label_diffs = st.builds(
    LabelDiff,
    kind=st.sampled_from(["column", "folders"]),
    path=st.text(max_size=8),
    column=st.none() | st.text(max_size=4),
    split_by=st.none() | st.text(max_size=4),
    items=st.sampled_from(["rows", "files"]),
    keyed=st.booleans(),
    total=stats,
    splits=st.dictionaries(labels, stats, max_size=3),
    resplit=st.integers(0, 5),
    examples=st.lists(sample, max_size=2),
    key=st.none() | st.text(max_size=4),
)
names = st.text(max_size=6)
table_diffs = st.builds(
    TableDiff,
    path=st.text(min_size=1, max_size=10),
    status=st.sampled_from(["modified", "added", "removed"]),
    format=st.sampled_from(["parquet", "csv"]),
    key=st.none() | names,
    key_source=st.none() | st.sampled_from(["option", "config", "detected"]),
    rows_old=st.none() | st.integers(0, 10**12),
    rows_new=st.none() | st.integers(0, 10**12),
    added=st.integers(0, 99),
    removed=st.integers(0, 99),
    modified=st.none() | st.integers(0, 99),
    columns=st.dictionaries(names, st.integers(1, 9), max_size=3),
    compared=st.lists(names, max_size=3),
    schema_added=st.lists(st.tuples(names, names), max_size=2),
    schema_removed=st.lists(st.tuples(names, names), max_size=2),
    schema_retyped=st.lists(st.tuples(names, names, names), max_size=2),
    samples_added=st.lists(sample, max_size=2),
    samples_removed=st.lists(sample, max_size=2),
    samples_modified=st.lists(sample, max_size=2),
    labels=st.none() | label_diffs,
    warnings=st.lists(st.text(max_size=10), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(table_diffs)
def test_encoding_round_trips_every_table_diff(td: TableDiff) -> None:
    back = decode(encode(td))
    assert back == td
    assert back.as_dict() == td.as_dict()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), b"x", ("a",)])
def test_values_json_cannot_carry_are_not_kept(bad: object, tmp_path: Path) -> None:
    lab = LabelDiff("column", "t.csv", "c", None, "rows", True, ClassStats(after=Counter({bad: 1})))
    td = TableDiff(path="t.csv", status="added", format="csv", labels=lab)
    with pytest.raises(Uncacheable):
        encode(td)
    cache = TableCache(tmp_path / "c")
    cache.put("0" * 32, td)  # silently not kept
    assert cache.get("0" * 32) is None


def test_a_dsv_process_diffs_the_same_with_and_without_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "r"
    assert run_dsv("init", str(root), cwd=tmp_path).returncode == 0
    save(root / "data" / "t.parquet", table(**V1))
    assert run_dsv("commit", "-m", "v1", cwd=root).returncode == 0
    save(root / "data" / "t.parquet", table(**V2))
    done = run_dsv("commit", "-m", "v2", cwd=root)
    assert done.returncode == 0, done.stderr
    assert b"relabelled" in done.stdout and cached_files(root)
    kept = run_dsv("diff", "--json", "HEAD~1", "HEAD", cwd=root)
    shutil.rmtree(root / ".dsv" / "cache")
    fresh = run_dsv("diff", "--json", "HEAD~1", "HEAD", cwd=root)
    assert kept.returncode == fresh.returncode == 0
    assert json.loads(kept.stdout) == json.loads(fresh.stdout)
    assert json.loads(kept.stdout)["tables"][0]["rows"]["modified"] == 2
