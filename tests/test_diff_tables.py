"""Row diffs of tables: keys, keyless multisets, schema changes, formats, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsv import api
from dsv.api import diff as dapi
from dsv.diff import TreeDiff, diff_limits
from dsv.diff import source as dsource
from dsv.diff.formats import PARQUET_ROW_MEMORY, open_table, text_memory
from dsv.diff.source import StoreFile
from dsv.diff.tables import TableDiff, key_candidates
from dsv.errors import FormatError
from dsv.repo import Repository

from .conftest import write

FORMATS = ["parquet", "csv", "tsv", "jsonl", "arrow", "feather", "arrows"]


def save(path: Path, t: pa.Table, fmt: str | None = None) -> Path:
    """Write ``t`` in the format named by ``fmt`` (default: the file's extension)."""
    fmt = fmt or path.suffix[1:]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(t, path)
    elif fmt == "csv":
        pacsv.write_csv(t, path)
    elif fmt == "tsv":
        pacsv.write_csv(t, path, pacsv.WriteOptions(delimiter="\t"))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in t.to_pylist()))
    elif fmt == "arrow":
        with pa.ipc.new_file(path, t.schema) as w:
            w.write_table(t)
    elif fmt == "feather":
        feather.write_feather(t, path)
    elif fmt == "arrows":  # the IPC stream format under an .arrow name
        with pa.ipc.new_stream(path, t.schema) as w:
            w.write_table(t)
    else:
        raise ValueError(fmt)
    return path


def table(**cols: list[Any]) -> pa.Table:
    return pa.table(cols)


def commit(repo: Repository, msg: str = "v") -> None:
    api.commit(repo, msg)


def diff(repo: Repository, *revs: str, **kw: Any) -> TreeDiff:
    return dapi.diff(repo, revs, **kw).diff


def one(d: TreeDiff, path: str) -> TableDiff:
    hits = [t for t in d.tables if t.path == path]
    assert len(hits) == 1, (d.tables, d.warnings)
    return hits[0]


V1 = dict(
    id=[1, 2, 3, 4, 5],
    label=["cat", "dog", "cat", "bird", "dog"],
    split=["train", "train", "val", "train", "val"],
    score=[0.5, 0.25, 0.75, 1.0, 0.125],
)
# id 2 relabelled dog -> cat, id 4 score changed, id 5 removed, id 6 added
V2 = dict(
    id=[1, 2, 3, 4, 6],
    label=["cat", "cat", "cat", "bird", "dog"],
    split=["train", "train", "val", "train", "train"],
    score=[0.5, 0.25, 0.75, 2.0, 0.5],
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_row_diff(repo: Repository, work: Path, fmt: str) -> None:
    ext = "arrow" if fmt == "arrows" else fmt
    f = work / f"t.{ext}"
    save(f, table(**V1), fmt)
    commit(repo)
    save(f, table(**V2), fmt)
    t = one(diff(repo), f"t.{ext}")
    assert (t.key, t.key_source) == ("id", "detected")
    assert (t.rows_old, t.rows_new) == (5, 5)
    assert (t.added, t.removed, t.modified) == (1, 1, 2)
    assert t.columns == {"label": 1, "score": 1}
    assert t.labels is not None and t.labels.total.transitions == {("dog", "cat"): 1}
    assert t.labels.total.before == {"cat": 2, "dog": 2, "bird": 1}
    assert t.labels.total.after == {"cat": 3, "dog": 1, "bird": 1}
    assert t.labels.total.added == {"dog": 1} and t.labels.total.removed == {"dog": 1}
    assert t.labels.splits["train"].transitions == {("dog", "cat"): 1}
    assert t.labels.splits["train"].added == {"dog": 1}
    assert t.labels.splits["val"].removed == {"dog": 1}
    mods = {s["key"]: s["changes"] for s in t.samples_modified}
    assert mods == {2: {"label": ["dog", "cat"]}, 4: {"score": [1.0, 2.0]}}
    assert t.samples_added == [{"id": 6, "label": "dog", "split": "train", "score": 0.5}]
    assert [r["id"] for r in t.samples_removed] == [5]


def test_between_two_commits_both_sides_from_the_store(repo: Repository, work: Path) -> None:
    save(work / "t.parquet", table(**V1))
    commit(repo)
    save(work / "t.parquet", table(**V2))
    commit(repo)
    for revs in (("HEAD~1", "HEAD"), ("HEAD~1..HEAD",)):
        t = one(diff(repo, *revs), "t.parquet")
        assert (t.added, t.removed, t.modified) == (1, 1, 2)


def test_reordered_rows_are_not_changes(repo: Repository, work: Path) -> None:
    n = 1000
    save(work / "t.parquet", table(id=list(range(n)), v=[i * 2 for i in range(n)]))
    commit(repo)
    order = list(reversed(range(n)))
    save(work / "t.parquet", table(id=order, v=[i * 2 for i in order]))
    t = one(diff(repo), "t.parquet")
    assert (t.added, t.removed, t.modified) == (0, 0, 0)


def test_string_and_sparse_integer_keys(repo: Repository, work: Path) -> None:
    ids = [10**12 + 7 * i for i in range(50)]  # too sparse for direct addressing
    names = [f"img_{i:03d}.png" for i in range(50)]
    save(work / "a.csv", table(image_id=ids, v=list(range(50))))
    save(work / "b.csv", table(path=names, v=list(range(50))))
    commit(repo)
    save(work / "a.csv", table(image_id=[*ids[1:], 1], v=[*list(range(1, 50)), 0]))
    save(work / "b.csv", table(path=names[:-1], v=[*range(48), 99]))
    d = diff(repo)
    a, b = one(d, "a.csv"), one(d, "b.csv")
    assert (a.key, a.added, a.removed, a.modified) == ("image_id", 1, 1, 0)
    assert (b.key, b.added, b.removed, b.modified) == ("path", 0, 1, 1)


def test_key_detection_prefers_ids_and_skips_non_unique() -> None:
    assert key_candidates(["name", "label", "image_id", "id", "path"]) == [
        "id",
        "image_id",
        "path",
    ]
    assert key_candidates(["score", "label"]) == []


def test_non_unique_detected_key_falls_to_the_next_candidate(repo: Repository, work: Path) -> None:
    save(work / "t.csv", table(id=[1, 1, 2], path=["a", "b", "c"], v=[1, 2, 3]))
    commit(repo)
    save(work / "t.csv", table(id=[1, 1, 2], path=["a", "b", "c"], v=[1, 5, 3]))
    t = one(diff(repo), "t.csv")
    assert (t.key, t.modified) == ("path", 1)


def test_given_key_that_is_not_unique_warns_and_diffs_a_multiset(
    repo: Repository, work: Path
) -> None:
    save(work / "t.csv", table(k=[1, 1, 2], v=[1, 2, 3]))
    commit(repo)
    save(work / "t.csv", table(k=[1, 1, 2], v=[1, 2, 4]))
    d = diff(repo, key="k")
    t = one(d, "t.csv")
    assert t.key is None and t.modified is None
    assert (t.added, t.removed) == (1, 1)
    assert any(
        "key column 'k' is not unique in the old version (1 values repeat)" in w for w in d.warnings
    )
    assert any("multiset" in w for w in d.warnings)
    # a configured key behaves the same
    dapi.label_set(repo, "t.csv", key="k")
    d = diff(repo)
    assert one(d, "t.csv").key is None and any("not unique" in w for w in d.warnings)
    # and a key missing from the table too
    d = diff(repo, key="nope")
    assert any("key column 'nope' is not in both versions" in w for w in d.warnings)


def test_configured_key_and_label(repo: Repository, work: Path) -> None:
    save(work / "t.parquet", table(code=["a", "b"], tag=["x", "y"], label=["p", "q"]))
    dapi.label_set(repo, "t.parquet", key="code", label="tag")
    commit(repo)
    save(work / "t.parquet", table(code=["a", "b"], tag=["y", "y"], label=["q", "q"]))
    t = one(diff(repo), "t.parquet")
    assert (t.key, t.key_source) == ("code", "config")
    assert t.labels is not None and t.labels.column == "tag"
    assert t.labels.total.transitions == {("x", "y"): 1}
    dapi.label_set(repo, "t.parquet", label="none")
    assert one(diff(repo), "t.parquet").labels is None
    # class folders configured above a table do not name a column of it
    dapi.label_unset(repo, "t.parquet")
    dapi.label_set(repo, "", label="folders")
    d = diff(repo)
    lab = one(d, "t.parquet").labels
    assert d.warnings == [] and lab is not None and lab.column == "label"


def test_keyless_tables_are_multisets(repo: Repository, work: Path) -> None:
    save(work / "t.csv", table(label=["a", "a", "b"], v=[1, 1, 2]))
    commit(repo)
    save(work / "t.csv", table(label=["b", "a", "b", "c"], v=[2, 1, 2, 3]))
    t = one(diff(repo), "t.csv")
    assert t.key is None and t.modified is None
    assert (t.added, t.removed) == (2, 1)  # +b,2 +c,3  -a,1
    assert sorted(r["label"] for r in t.samples_added) == ["b", "c"]
    assert t.samples_removed == [{"label": "a", "v": 1}]
    lab = t.labels
    assert lab is not None and not lab.keyed
    assert lab.total.added == {"b": 1, "c": 1} and lab.total.removed == {"a": 1}
    assert lab.as_dict()["relabeled"] is None


def test_keyless_nulls_and_nan(repo: Repository, work: Path) -> None:
    nan = float("nan")
    save(work / "t.parquet", table(x=[1.0, nan, None, 0.0], s=["a", None, "c", "d"]))
    commit(repo)
    save(work / "t.parquet", table(x=[1.0, nan, None, -0.0], s=["a", None, "c", "d"]))
    assert (one(diff(repo), "t.parquet").added, one(diff(repo), "t.parquet").removed) == (0, 0)
    save(work / "t.parquet", table(x=[1.0, nan, 5.0, 0.0], s=["a", None, "c", None]))
    t = one(diff(repo), "t.parquet")
    assert (t.added, t.removed) == (2, 2)


def test_nulls_and_nan_in_keyed_tables(repo: Repository, work: Path) -> None:
    nan = float("nan")
    save(
        work / "t.parquet",
        table(id=[1, 2, 3, 4], x=[nan, None, 1.0, None], s=["a", None, "b", "c"]),
    )
    commit(repo)
    save(
        work / "t.parquet",
        table(id=[1, 2, 3, 4], x=[nan, None, None, 2.0], s=["a", None, "b", None]),
    )
    t = one(diff(repo), "t.parquet")
    assert t.columns == {"x": 2, "s": 1}
    assert t.modified == 2


def test_schema_changes(repo: Repository, work: Path) -> None:
    save(work / "t.parquet", table(id=[1, 2, 3], a=[1, 2, 3], b=["x", "y", "z"], c=[1, 2, 3]))
    commit(repo)
    save(
        work / "t.parquet",
        table(id=[1, 2, 3], a=[1.0, 2.0, 3.5], c=["1", "2", "3"], d=[True, False, True]),
    )
    t = one(diff(repo), "t.parquet")
    assert t.schema_added == [("d", "bool")]
    assert t.schema_removed == [("b", "string")]
    assert t.schema_retyped == [("a", "int64", "double"), ("c", "int64", "string")]
    # retyped columns are still compared: 3 -> 3.5 changed; 1 -> "1" did not
    assert t.columns == {"a": 1}
    assert t.modified == 1
    assert t.as_dict()["schema"]["added"] == [{"name": "d", "type": "bool"}]


def test_label_columns_with_splits_and_added_table(repo: Repository, work: Path) -> None:
    save(
        work / "new.parquet",
        table(id=[1, 2, 3], category=["a", "b", "a"], split=["train", "val", "val"]),
    )
    t = one(diff(repo), "new.parquet")  # no commit yet: the table is added
    assert t.status == "added" and t.rows_new == 3 and t.added == 3
    assert t.labels is not None and t.labels.total.after == {"a": 2, "b": 1}
    assert t.labels.splits["val"].after == {"a": 1, "b": 1}
    commit(repo)
    (work / "new.parquet").unlink()
    t = one(diff(repo), "new.parquet")
    assert t.status == "removed" and t.removed == 3 and t.rows_old == 3
    assert t.labels is not None and t.labels.total.removed == {"a": 2, "b": 1}


def test_moved_between_splits_is_counted(repo: Repository, work: Path) -> None:
    save(work / "t.csv", table(id=[1, 2], label=["a", "b"], split=["train", "train"]))
    commit(repo)
    save(work / "t.csv", table(id=[1, 2], label=["a", "b"], split=["test", "train"]))
    t = one(diff(repo), "t.csv")
    assert t.labels is not None and t.labels.resplit == 1 and t.labels.total.relabeled == 0


def test_malformed_tables_fall_back_to_files(repo: Repository, work: Path) -> None:
    write(work / "ok.csv", "id,v\n1,2\n")
    write(work / "bad.csv", "id,v\n1,2\n")
    write(work / "bad.parquet", b"PAR1" + os.urandom(100) + b"PAR1")
    write(work / "bad.jsonl", '{"a": 1}\n')
    commit(repo)
    write(work / "ok.csv", "id,v\n1,3\n")
    write(work / "bad.csv", "id,v\n1,2,3,4\n5\n")  # ragged rows
    write(work / "bad.parquet", b"PAR1" + os.urandom(100) + b"PAR1")
    write(work / "bad.jsonl", '{"a": 1}\n{"a": [\n')
    d = diff(repo)
    assert [t.path for t in d.tables] == ["ok.csv"]
    assert {p for p, _, _ in d.files.modified} == {"ok.csv", "bad.csv", "bad.parquet", "bad.jsonl"}
    for p in ("bad.csv", "bad.parquet", "bad.jsonl"):
        assert any(w.startswith(p) and "file-level change" in w for w in d.warnings), d.warnings


def test_binary_files_are_never_parsed(repo: Repository, work: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
    write(work / "img.csv", png)
    write(work / "fake.parquet", "id,v\n1,2\n")
    write(work / "fake.jsonl", "id,v\n1,2\n")
    commit(repo)
    write(work / "img.csv", png + b"more")
    write(work / "fake.parquet", "id,v\n1,3\n")
    write(work / "fake.jsonl", "id,v\n1,3\n")
    d = diff(repo)
    assert d.tables == []
    text = "\n".join(d.warnings)
    assert "img.csv: not a csv table (binary content)" in text
    assert "fake.parquet: not a parquet table (no Parquet magic bytes)" in text
    assert "fake.jsonl: not a jsonl table (does not start with a JSON object)" in text


def test_csv_column_that_changes_type_midway(repo: Repository, work: Path) -> None:
    rows = "".join(f"{i},{i}\n" for i in range(200_000)) + "200000,x\n"
    write(work / "t.csv", "id,v\n" + rows)
    commit(repo)
    write(work / "t.csv", "id,v\n" + rows.replace("\n5,5\n", "\n5,6\n"))
    t = one(diff(repo), "t.csv")
    assert t.modified == 1 and t.columns == {"v": 1}


def test_text_table_size_limit(repo: Repository, work: Path) -> None:
    write(work / "t.csv", "id,v\n1,2\n")
    commit(repo)
    write(work / "t.csv", "id,v\n1,3\n")
    repo.config.set("diff", "max-text-table", "5")
    d = diff(repo)
    assert d.tables == [] and any("text-table limit" in w for w in d.warnings)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow"])
def test_table_memory_limit(repo: Repository, work: Path, fmt: str) -> None:
    """A table whose row diff would need more than diff.max-table-memory gets a file-level diff.

    The estimate comes from the Parquet footer (rows, column sizes) or, for
    tables read whole, from the stored sizes: the limit is judged at the
    estimate's own value, one byte either side.
    """
    n = 2_000
    save(work / f"t.{fmt}", table(id=list(range(n)), label=["cat"] * n), fmt)
    commit(repo)
    save(work / f"t.{fmt}", table(id=list(range(n)), label=["cat"] * (n - 1) + ["dog"]), fmt)
    commit(repo)
    a, b = (
        api.lookup(repo, repo.read_commit(api.resolve_commit(repo, r)).tree, f"t.{fmt}")
        for r in ("HEAD~1", "HEAD")
    )
    assert a is not None and b is not None
    if fmt == "parquet":
        src = dsource.StoreSource(repo.store)
        with open_table(f"t.{fmt}", a, src) as ta, open_table(f"t.{fmt}", b, src) as tb:
            need = ta.diff_memory() + tb.diff_memory()
            widest = max(
                sum(
                    ta._parquet.metadata.row_group(g).column(j).total_uncompressed_size
                    for g in range(ta._parquet.metadata.num_row_groups)
                )
                for j in range(2)
            )
        assert need >= PARQUET_ROW_MEMORY * 2 * n + widest
    else:
        need = text_memory(a.size) + text_memory(b.size)
    repo.config.set("diff", "max-table-memory", str(need - 1))
    # the diff the second commit kept needs no memory: it is read back
    assert one(diff(repo, "HEAD~1", "HEAD"), f"t.{fmt}").columns == {"label": 1}
    shutil.rmtree(repo.dsv_dir / "cache" / "tables")
    d = diff(repo, "HEAD~1", "HEAD")
    assert d.tables == [] and d.labels == []
    assert [p for p, _, _ in d.files.modified] == [f"t.{fmt}"]
    assert len(d.warnings) == 1 and "config diff.max-table-memory" in d.warnings[0]
    assert d.warnings[0].startswith(f"t.{fmt}: a row-level diff would need about ")
    repo.config.set("diff", "max-table-memory", str(need))
    t = one(diff(repo, "HEAD~1", "HEAD"), f"t.{fmt}")
    assert t.modified == 1 and t.columns == {"label": 1}


def test_table_memory_limit_config(repo: Repository) -> None:
    half = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    assert diff_limits(repo.config)["max_table_memory"] == half
    for raw, want in [("100", 100), ("8G", 8 << 30), ("512 MiB", 512 << 20), ("2kb", 2048)]:
        repo.config.set("diff", "max-table-memory", raw)
        assert diff_limits(repo.config)["max_table_memory"] == want, raw
    for raw in ("8 gigs", "-1", "1.5G", "G"):
        repo.config.set("diff", "max-table-memory", raw)
        with pytest.raises(FormatError, match=r"diff\.max-table-memory = .* is not a size"):
            diff_limits(repo.config)


def test_labels_only_skips_other_columns(repo: Repository, work: Path) -> None:
    save(work / "t.parquet", table(**V1))
    commit(repo)
    save(work / "t.parquet", table(**V2))
    t = one(diff(repo, labels_only=True), "t.parquet")
    assert t.modified is None and "score" not in t.compared
    assert t.labels is not None and t.labels.total.relabeled == 1


def test_samples_are_bounded(repo: Repository, work: Path) -> None:
    save(work / "t.parquet", table(id=list(range(100)), v=[0] * 100))
    commit(repo)
    save(work / "t.parquet", table(id=list(range(100)), v=[1] * 100))
    t = one(diff(repo, samples=2), "t.parquet")
    assert t.modified == 100 and [s["key"] for s in t.samples_modified] == [0, 1]
    assert one(diff(repo, samples=0), "t.parquet").samples_modified == []


def test_store_file_random_access(repo: Repository, work: Path) -> None:
    data = os.urandom(3 << 20)  # several chunks
    write(work / "big.bin", data)
    commit(repo)
    e = repo.flatten(repo.read_commit(repo.head_commit()).tree)["big.bin"]  # type: ignore[arg-type]
    f = StoreFile(repo.store, e.id)
    assert f.size == len(data)
    for off, n in ((0, 10), (65_000, 200_000), (len(data) - 5, 100), (len(data) + 1, 10)):
        f.seek(off)
        assert f.read(n) == data[off : off + n]
    f.seek(-4, os.SEEK_END)
    assert f.read() == data[-4:]


def test_parquet_row_groups_with_equal_bytes_are_not_decoded(
    repo: Repository, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsv.diff.formats import TableFile

    n = 1000
    ids = list(range(n))
    text = [f"row-{i:05d}" for i in ids]
    pq.write_table(
        table(id=ids, text=text, v=[i % 7 for i in ids]), work / "t.parquet", row_group_size=100
    )
    commit(repo)
    text2 = list(text)
    text2[345] = "changed"
    pq.write_table(
        table(id=[*ids, n, n + 1], text=[*text2, "new1", "new2"], v=[i % 7 for i in [*ids, 0, 1]]),
        work / "t.parquet",
        row_group_size=100,
    )
    decoded: list[int] = []
    real = TableFile.read_row_group

    def spy(self: TableFile, i: int, columns: list[str]) -> Any:
        if columns == ["text"]:
            decoded.append(i)
        return real(self, i, columns)

    monkeypatch.setattr(TableFile, "read_row_group", spy)
    t = one(diff(repo), "t.parquet")
    assert (t.added, t.removed, t.modified) == (2, 0, 1)
    assert t.columns == {"text": 1}
    assert t.samples_modified == [{"key": 345, "changes": {"text": ["row-00345", "changed"]}}]
    assert [r["text"] for r in t.samples_added] == ["new1", "new2"]
    # old and new group 3 (the change), and new group 10 (the samples of added rows)
    assert sorted(decoded) == [3, 3, 10]
    # another row-group layout: whole columns are compared, with the same result
    pq.write_table(
        table(id=[*ids, n, n + 1], text=[*text2, "new1", "new2"], v=[i % 7 for i in [*ids, 0, 1]]),
        work / "t.parquet",
        row_group_size=64,
    )
    t = one(diff(repo), "t.parquet")
    assert (t.added, t.removed, t.modified, t.columns) == (2, 0, 1, {"text": 1})


_VALUES = {
    "str": (pa.string(), st.sampled_from(["cat", "dog", "", "ünï"])),
    "int": (pa.int64(), st.integers(-3, 3)),
    "bool": (pa.bool_(), st.booleans()),
}


def _dictionary_chunks(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column as a dictionary column, each chunk encoded on its own (as Parquet row groups
    are read): the chunks' dictionaries differ in content and order."""
    import pyarrow.compute as pc

    chunks = [pc.dictionary_encode(ch) for ch in col.chunks]
    return pa.chunked_array(chunks, pa.dictionary(pa.int32(), col.type))


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    kinds=st.lists(st.sampled_from(sorted(_VALUES)), min_size=1, max_size=3),
    as_dictionary=st.booleans(),
)
def test_group_counts_are_the_rows_counted(
    data: st.DataObject, kinds: list[str], as_dictionary: bool
) -> None:
    """Counts per distinct tuple (nulls included) equal counting the rows one by one,
    whatever the chunking of the table and whether its columns are dictionaries."""
    from collections import Counter

    from dsv.diff.tables import _group_counts

    n = data.draw(st.integers(0, 40))
    cols = {}
    for j, k in enumerate(kinds):
        typ, vals = _VALUES[k]
        cols[f"c{j}"] = pa.array(data.draw(st.lists(st.none() | vals, min_size=n, max_size=n)), typ)
    table = pa.table(cols)
    cut = data.draw(st.integers(0, n))
    table = pa.concat_tables([table.slice(0, cut), table.slice(cut)])  # two chunks
    if as_dictionary:
        table = pa.table({c: _dictionary_chunks(table[c]) for c in cols})
    names = list(cols)
    want = Counter(zip(*(table[c].to_pylist() for c in names)))
    assert _group_counts(table, names) == want


_LABELS = st.sampled_from(["cat", "dog", "bird", "", "ünï"])


@settings(max_examples=25, deadline=None)
@given(
    v1=st.lists(st.tuples(st.none() | _LABELS, st.sampled_from(["train", "val"])), max_size=60),
    edits=st.lists(st.tuples(st.integers(0, 59), st.none() | _LABELS), max_size=10),
    appended=st.lists(_LABELS, max_size=8),
    shuffle=st.randoms(use_true_random=False),
    reorder=st.booleans(),
    group_rows=st.integers(1, 16),
)
def test_parquet_labels_read_as_dictionaries_diff_like_plain_columns(
    tmp_path_factory: pytest.TempPathFactory,
    v1: list[tuple[str | None, str]],
    edits: list[tuple[int, str | None]],
    appended: list[str],
    shuffle: Any,
    reorder: bool,
    group_rows: int,
) -> None:
    """A Parquet table's label and split columns are read as dictionaries (one per row group,
    each in its own order); its diff (counts per split and class, transitions, changed cells,
    samples) is the one of the same rows in an Arrow file, whose columns are plain."""
    work = tmp_path_factory.mktemp("dict") / "w"
    repo = Repository.init(work)

    def same_diff(d: TreeDiff) -> None:
        found = {t.path: t.as_dict() for t in d.tables}
        assert sorted(found) in ([], ["t.arrow", "t.parquet"]), d.warnings
        if not found:
            return  # the same bytes as before: no table to compare
        got, want = found["t.parquet"], found["t.arrow"]
        for x in (got, want):
            x.pop("path", None)
            x.pop("format", None)
            if x.get("labels"):
                x["labels"]["source"].pop("path")
        assert got == want

    try:

        def save_both(rows: list[tuple[int, str | None, str]]) -> None:
            t = table(
                id=[r[0] for r in rows], label=[r[1] for r in rows], split=[r[2] for r in rows]
            )
            pq.write_table(t, work / "t.parquet", row_group_size=group_rows)
            save(work / "t.arrow", t)

        rows = [(i, lab, sp) for i, (lab, sp) in enumerate(v1)]
        save_both(rows)
        same_diff(diff(repo, samples=5))  # both tables added
        commit(repo)
        for at, lab in edits:
            if at < len(rows):
                rows[at] = (rows[at][0], lab, "val" if rows[at][2] == "train" else "train")
        rows += [(len(v1) + j, lab, "train") for j, lab in enumerate(appended)]
        if reorder:
            shuffle.shuffle(rows)
        save_both(rows)
        same_diff(diff(repo, samples=5))
    finally:
        repo.close()


def test_sparse_increasing_keys_match_without_codes_and_repeats_still_fail() -> None:
    """Keys that only grow (sparse ids, timestamps) match row for row at once; a repeated key
    after the old rows, or a reordering, still goes through the full check."""
    from dsv.diff.tables import KeyProblem, match_keys

    big = [5, 10**12, 10**15]
    m = match_keys(pa.chunked_array([big[:2]]), pa.chunked_array([big]))
    assert m.identity and m.ib.tolist() == [0, 1] and m.added.tolist() == [2]
    with pytest.raises(KeyProblem, match="not unique in the new version"):
        match_keys(pa.chunked_array([big[:2]]), pa.chunked_array([[*big[:2], 10**12]]))
    m = match_keys(pa.chunked_array([big]), pa.chunked_array([big[::-1]]))
    assert not m.identity and sorted(zip(m.ia.tolist(), m.ib.tolist())) == [(0, 2), (1, 1), (2, 0)]
