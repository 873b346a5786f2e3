"""Diffs, changelogs and label settings in the Python API (``dsv diff``, ``changelog``, ``label``).

The working-tree side of a diff is assembled here: the scan and the stat cache
give the id of every unchanged file for one ``lstat``; only files whose stat
changed are hashed.  :mod:`dsv.diff` then compares two flat maps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from dsv.diff import DiffOptions, DiskSource, Side, StoreSource, TreeDiff, diff_limits, diff_sides
from dsv.diff import max_text_bytes as _max_text_bytes
from dsv.diff import settings_from_config as _settings
from dsv.diff.cache import repo_cache
from dsv.errors import BadNameError, NotFoundError
from dsv.history import resolve, walk
from dsv.labels import NONE, PathSettings, Settings, folder_layouts, section_name
from dsv.objects import MODE_BITS, Commit, TreeEntry
from dsv.progress import Progress
from dsv.records import Record
from dsv.repo import Repository, TreeFiles
from dsv.worktree import snapshot
from dsv.worktree.scan import scan

__all__ = [
    "DiffResult",
    "changelog",
    "commit_summarizer",
    "diff",
    "label_report",
    "label_set",
    "label_settings",
    "label_unset",
    "parse_range",
    "worktree_entries",
]


class DiffResult(Record):
    """A diff and the two versions it compares (``to_commit`` None: the working tree)."""

    __slots__ = ("diff", "from_commit", "from_rev", "to_commit", "to_rev")

    def __init__(
        self,
        from_rev: str,
        from_commit: bytes | None,
        to_rev: str | None,
        to_commit: bytes | None,
        diff: TreeDiff,
    ) -> None:
        self.from_rev = from_rev
        self.from_commit = from_commit
        self.to_rev = to_rev
        self.to_commit = to_commit
        self.diff = diff

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": {
                "rev": self.from_rev,
                "commit": self.from_commit.hex() if self.from_commit else None,
            },
            "to": {
                "rev": self.to_rev,
                "commit": self.to_commit.hex() if self.to_commit else None,
            },
            **self.diff.as_dict(),
        }


def _under(path: str, prefixes: Sequence[str]) -> bool:
    return any(not p or path == p or path.startswith(p + "/") for p in prefixes)


def parse_range(revs: Sequence[str]) -> tuple[str, str | None]:
    """``()``, ``(A,)``, ``(A, B)`` or ``("A..B",)`` as (from, to); to None is the working tree."""
    if len(revs) > 2:
        raise BadNameError("give at most two revisions")
    if len(revs) == 1 and ".." in revs[0]:
        a, _, b = revs[0].partition("..")
        return a or "HEAD", b or "HEAD"
    if not revs:
        return "HEAD", None
    if len(revs) == 1:
        return revs[0], None
    return revs[0], revs[1]


def worktree_entries(repo: Repository, paths: list[str] | None = None) -> dict[str, TreeEntry]:
    """Every file of the working tree (or below ``paths``) with its content id.

    Unchanged files cost one ``lstat`` (stat cache); the others are hashed,
    and the cache learns their ids for the next command.
    """
    ref_ns = time.time_ns()
    sc = scan(repo.root, paths)
    cache = snapshot.load_cache(repo)
    out: dict[str, TreeEntry] = {}
    learnt: dict[str, tuple[os.stat_result, bytes]] = {}
    for rel, st in sc.files.items():
        oid = cache.lookup(rel, st)
        if oid is None:
            oid = snapshot.hash_path(repo, rel, st)
            learnt[rel] = (st, oid)
        out[rel] = TreeEntry(
            rel.rpartition("/")[2], snapshot.kind_of(st), st.st_mode & MODE_BITS, st.st_size, oid
        )
    if learnt:
        cache.record(learnt)
        cache.save(ref_ns)
    return out


def _rev_entries(repo: Repository, rev: str) -> tuple[bytes | None, dict[str, TreeEntry]]:
    if rev in ("HEAD", "@") and repo.refs.head().commit is None:
        return None, {}  # no commits yet: everything is added
    oid = resolve(repo, rev)
    return oid, repo.flatten(repo.read_commit(oid).tree)


def diff(
    repo: Repository,
    revs: Sequence[str] = (),
    *,
    paths: list[str] | None = None,
    key: str | None = None,
    samples: int = 3,
    tables: bool = True,
    labels: bool = True,
    labels_only: bool = False,
    progress: Progress | None = None,
) -> DiffResult:
    """Diff two versions, or a version and the working tree (see ``dsv diff``)."""
    a, b = parse_range(revs)
    a_id, old = _rev_entries(repo, a)
    limit = paths
    if b is None:
        sparse = repo.sparse_paths()
        if sparse is not None:
            limit = sparse if paths is None else [p for p in paths if _under(p, sparse)]
        new = worktree_entries(repo, limit)
        new_src: Any = DiskSource(repo.root)
        b_id = None
    else:
        b_id, new = _rev_entries(repo, b)
        new_src = StoreSource(repo.store)
    if limit is not None:
        old = {p: e for p, e in old.items() if _under(p, limit)}
        new = {p: e for p, e in new.items() if _under(p, limit)}
    opts = DiffOptions(
        tables=tables,
        labels=labels,
        labels_only=labels_only,
        key=key,
        samples=samples,
        **diff_limits(repo.config),
    )
    d = diff_sides(
        Side(old, StoreSource(repo.store)),
        Side(new, new_src),
        _settings(repo.config),
        opts,
        progress,
        cache=repo_cache(repo.dsv_dir),
    )
    return DiffResult(a, a_id, b, b_id, d)


def commit_summarizer(
    repo: Repository, changes: snapshot.Changes, warn: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The summary ``dsv commit`` stores: file counts plus the data changelog.

    ``warn``: told why a table's rows were not diffed (see ``commit_summary``).
    """
    from dsv.diff.changelog import commit_summary
    from dsv.diff.files import diff_changes

    files = diff_changes(changes.added, changes.removed, changes.modified)
    old, new = TreeFiles(repo, changes.old_tree), TreeFiles(repo, changes.new_tree)
    return {**snapshot.summarize(changes), **commit_summary(repo, old, new, files, warn)}


# ---------------------------------------------------------------------- changelog


class Changelog(Record):
    """Commits of a range, newest first, with the totals of their summaries."""

    __slots__ = ("commits", "since", "spec", "totals", "until")

    def __init__(
        self,
        spec: str | None,
        since: bytes | None,
        until: bytes | None,
        commits: list[tuple[bytes, Commit]] | None = None,
        totals: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.since = since
        self.until = until
        self.commits: list[tuple[bytes, Commit]] = [] if commits is None else commits
        self.totals: dict[str, Any] = {} if totals is None else totals


def changelog(repo: Repository, spec: str | None = None) -> Changelog:
    """Commits in ``A..B`` (reachable from B, not from A), ``B`` (all of B's), or HEAD's history."""
    from dsv.diff.changelog import aggregate

    if spec is None:
        head = repo.refs.head().commit
        if head is None:
            return Changelog(None, None, None, [], aggregate([]))
        start, stop = head, None
    elif ".." in spec:
        a, _, b = spec.partition("..")
        start = resolve(repo, b or "HEAD")
        stop = resolve(repo, a or "HEAD")
    else:
        start, stop = resolve(repo, spec), None
    hidden: set[bytes] = set()
    if stop is not None:
        hidden = {oid for oid, _ in walk(repo, [stop])}
    commits = [(oid, c) for oid, c in walk(repo, [start]) if oid not in hidden]
    totals = aggregate(c.summary for _, c in reversed(commits))
    return Changelog(spec, stop, start, commits, totals)


# ---------------------------------------------------------------------- label settings


def label_settings(repo: Repository) -> Settings:
    return _settings(repo.config)


def _check_path(path: str) -> str:
    p = path.strip("/")
    if "]" in p or "\n" in p or '"' in p:
        raise BadNameError(f'cannot configure {path!r}: the name contains ], " or a newline')
    return p


def label_set(
    repo: Repository,
    path: str,
    *,
    key: str | None = None,
    label: str | None = None,
    split: str | None = None,
) -> PathSettings:
    """Record how to read ``path``: key column, label (column, ``folders`` or ``none``), split column.

    Values not given keep their current setting.
    """
    from dsv.config import Config

    p = _check_path(path)
    sec = section_name(p)
    with repo.lock("label"):
        cfg = Config.load(repo.config.path)  # fresh: another command may have changed it
        for name, value in (("key", key), ("label", label), ("split", split)):
            if value is not None:
                cfg.set(sec, name, value)
        if not cfg.items(sec):
            cfg.set(sec, "label", "")  # an empty section still records the path
        cfg.save()
        repo.config = cfg
    st = _settings(repo.config).entries.get(p)
    assert st is not None
    return st


def label_unset(repo: Repository, path: str) -> bool:
    """Forget the settings of ``path``; False if there were none."""
    from dsv.config import Config

    p = _check_path(path)
    with repo.lock("label"):
        cfg = Config.load(repo.config.path)
        gone = cfg.unset(section_name(p))
        if gone:
            cfg.save()
        repo.config = cfg
    return gone


class LabelReport(Record):
    """Label sources of one version: configured settings, folder layouts, tables."""

    __slots__ = ("folders", "rev", "settings", "tables", "warnings")

    def __init__(
        self,
        rev: str | None,
        settings: list[PathSettings],
        folders: list[dict[str, Any]],
        tables: list[dict[str, Any]],
        warnings: list[str],
    ) -> None:
        self.rev = rev
        self.settings = settings
        self.folders = folders
        self.tables = tables
        self.warnings = warnings


def label_report(repo: Repository, rev: str | None = None) -> LabelReport:
    """What ``dsv diff`` would use as labels and keys in ``rev`` (default: the working tree)."""
    from dsv.diff.formats import TableError, arrow_errors, open_table, reason, table_format
    from dsv.diff.tables import describe_table

    settings = _settings(repo.config)
    src: Any
    if rev is None:
        sc = scan(repo.root, repo.sparse_paths())
        entries = {
            rel: TreeEntry(rel.rpartition("/")[2], snapshot.kind_of(st), 0, st.st_size, b"")
            for rel, st in sc.files.items()
        }
        src = DiskSource(repo.root)
    else:
        _, entries = _rev_entries(repo, rev)
        src = StoreSource(repo.store)
    folders = []
    for lay in folder_layouts(settings, entries.keys()):
        counts: dict[str, int] = {}
        for p in entries:
            sc_ = lay.classify(p)
            if sc_ is not None:
                counts[sc_[1]] = counts.get(sc_[1], 0) + 1
        folders.append({**lay.as_dict(), "classes": dict(sorted(counts.items()))})
    tables: list[dict[str, Any]] = []
    warnings: list[str] = []
    for p in sorted(entries):
        e = entries[p]
        if table_format(p, e) is None or len(tables) >= 100:
            continue
        st = settings.for_path(p)
        if st is not None and st.label == NONE and st.key is None:
            continue
        try:
            with open_table(p, e, src, _max_text_bytes(repo.config)) as tf:
                tables.append({"path": p, **describe_table(tf, st)})
        except NotFoundError:
            warnings.append(f"{p}: its data is not in this clone")
        except TableError as exc:
            warnings.append(f"{p}: {exc}")
        except arrow_errors() as exc:
            warnings.append(f"{p}: cannot be read as a table ({reason(exc)})")
    return LabelReport(rev, list(settings.entries.values()), folders, tables, warnings)
