"""The changelog stored in each commit, and changelogs across a range of commits.

At commit time the new tree is diffed against the first parent's (files,
tables, labels) and a bounded summary is stored in the commit's ``summary``
next to the file counts (schema in docs/format.md, "Summary").  ``dsv log
--stat``, ``dsv show`` and ``dsv changelog`` print it without recomputing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dsv.diff import (
    DiffOptions,
    Side,
    StoreSource,
    TreeDiff,
    diff_limits,
    diff_sides,
    settings_from_config,
)
from dsv.diff.cache import repo_cache
from dsv.diff.files import FileDiff
from dsv.diff.labeldiff import ClassStats, LabelDiff
from dsv.diff.tables import TableDiff
from dsv.objects import TreeEntry
from dsv.repo import Repository

__all__ = ["aggregate", "commit_summary", "summary_of"]

# Bounds on what a commit stores: the summary is for people, the diff has the rest.
MAX_TABLES = 20
MAX_COLUMNS = 10
MAX_TRANSITIONS = 10
MAX_CLASSES = 50
MAX_SPLITS = 10


def class_name(v: Any) -> str:
    """A class value as it is stored in summaries (always text; null as "(null)")."""
    return "(null)" if v is None else str(v)


def _table_summary(t: TableDiff) -> dict[str, Any]:
    rows: dict[str, Any] = {"added": t.added, "removed": t.removed}
    if t.modified is not None:
        rows["modified"] = t.modified
    rows["total"] = t.rows_new if t.rows_new is not None else 0
    out: dict[str, Any] = {"status": t.status, "format": t.format, "rows": rows}
    if t.key is not None:
        out["key"] = t.key
    if t.columns:
        top = sorted(t.columns.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_COLUMNS]
        out["columns"] = dict(top)
    if t.schema_changed:
        out["schema"] = {
            "added": [n for n, _ in t.schema_added],
            "removed": [n for n, _ in t.schema_removed],
            "retyped": [n for n, _, _ in t.schema_retyped],
        }
    return out


def _stats_summary(st: ClassStats, keyed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "added": sum(st.added.values()),
        "removed": sum(st.removed.values()),
    }
    if keyed:
        out["relabeled"] = st.relabeled
    return out


def _label_summary(ld: LabelDiff) -> dict[str, Any]:
    t = ld.total
    out: dict[str, Any] = {"kind": ld.kind, "path": ld.path, "items": ld.items}
    if ld.column is not None:
        out["column"] = ld.column
    out.update(_stats_summary(t, ld.keyed))
    trans = t.top_transitions()
    out["transitions"] = [[class_name(a), class_name(b), n] for a, b, n in trans[:MAX_TRANSITIONS]]
    if len(trans) > MAX_TRANSITIONS:
        out["transitions_more"] = len(trans) - MAX_TRANSITIONS
    classes = t.classes()
    out["classes"] = {class_name(c): [t.before[c], t.after[c]] for c in classes[:MAX_CLASSES]}
    if len(classes) > MAX_CLASSES:
        out["classes_more"] = len(classes) - MAX_CLASSES
    if ld.splits:
        out["splits"] = {
            class_name(s): _stats_summary(st, ld.keyed)
            for s, st in sorted(ld.splits.items(), key=lambda kv: class_name(kv[0]))[:MAX_SPLITS]
        }
    if ld.keyed and ld.resplit:
        out["moved_between_splits"] = ld.resplit
    return out


def summary_of(diff: TreeDiff) -> dict[str, Any]:
    """The keys a data-aware changelog adds to a commit summary (only those with content)."""
    out: dict[str, Any] = {}
    if diff.files.moved:
        out["moved"] = len(diff.files.moved)
    tables = sorted(diff.tables, key=lambda t: (-(t.added + t.removed + (t.modified or 0)), t.path))
    if tables:
        out["tables"] = {t.path: _table_summary(t) for t in tables[:MAX_TABLES]}
        if len(tables) > MAX_TABLES:
            out["tables_more"] = len(tables) - MAX_TABLES
    labels = [ld for ld in diff.labels if ld.changed]
    if labels:
        out["labels"] = [_label_summary(ld) for ld in labels]
    return out


def commit_summary(
    repo: Repository,
    old: Mapping[str, TreeEntry],
    new: Mapping[str, TreeEntry],
    files: FileDiff | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The changelog keys of a commit from ``old`` to ``new`` (both in the store).

    ``files``: their file diff, when the caller knows it already (a commit
    does: it saw what changed), so that the two versions are only walked if
    labels need every path.  ``[diff] changelog = files`` in the config keeps
    only the file-level keys (no table or label diffs at commit time).
    ``warn`` is told why a table got only a file-level change (the summary
    keeps only how many did).
    """
    mode = (repo.config.get("diff", "changelog") or "full").strip().lower()
    full = mode != "files"
    src = StoreSource(repo.store)
    # the options of a plain `dsv diff`, so that its diff of this commit is the one kept here
    opts = DiffOptions(tables=full, labels=full, **diff_limits(repo.config))
    d = diff_sides(
        Side(old, src),
        Side(new, src),
        settings_from_config(repo.config),
        opts,
        files=files,
        cache=repo_cache(repo.dsv_dir),
    )
    out = summary_of(d)
    if d.warnings:
        out["warnings"] = len(d.warnings)
        if warn is not None:
            for w in d.warnings:
                warn(w)
    return out


# ---------------------------------------------------------------------- ranges


def aggregate(summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals over several commit summaries (sums of their counts, oldest to newest).

    Sums of per-commit changes, not the net change between the ends: a row
    added and then removed counts in both.
    """
    files: Counter[str] = Counter()
    nbytes: Counter[str] = Counter()
    moved = 0
    tables: dict[str, Counter[str]] = {}
    labels: dict[tuple[str, str, str], dict[str, Any]] = {}
    commits = 0
    for s in summaries:
        commits += 1
        for k in ("added", "removed", "modified"):
            files[k] += _int(s.get("files", {}).get(k))
        for k in ("added", "removed"):
            nbytes[k] += _int(s.get("bytes", {}).get(k))
        nbytes["stored"] += _int(s.get("stored_bytes"))
        moved += _int(s.get("moved"))
        for path, t in (s.get("tables") or {}).items():
            if not isinstance(t, Mapping):
                continue
            c = tables.setdefault(path, Counter())
            for k in ("added", "removed", "modified"):
                c[k] += _int((t.get("rows") or {}).get(k))
        for ld in s.get("labels") or []:
            if not isinstance(ld, Mapping):
                continue
            key = (str(ld.get("kind")), str(ld.get("path")), str(ld.get("column") or ""))
            acc = labels.setdefault(
                key,
                {
                    "kind": key[0],
                    "path": key[1],
                    "column": ld.get("column"),
                    "items": ld.get("items"),
                    "relabeled": 0,
                    "added": 0,
                    "removed": 0,
                    "transitions": Counter(),
                },
            )
            for k in ("relabeled", "added", "removed"):
                acc[k] += _int(ld.get(k))
            for tr in ld.get("transitions") or []:
                if isinstance(tr, list) and len(tr) == 3:
                    acc["transitions"][(str(tr[0]), str(tr[1]))] += _int(tr[2])
    return {
        "commits": commits,
        "files": dict(files),
        "bytes": dict(nbytes),
        "moved": moved,
        "tables": {p: dict(c) for p, c in sorted(tables.items())},
        "labels": [
            {
                **{k: v for k, v in acc.items() if k != "transitions"},
                "transitions": [
                    [a, b, n]
                    for (a, b), n in sorted(acc["transitions"].items(), key=lambda kv: -kv[1])[
                        :MAX_TRANSITIONS
                    ]
                ],
            }
            for acc in labels.values()
        ],
    }


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0
