"""Diffs that understand data: files, table rows and labels between two versions.

A side of a diff is a flat ``{path: TreeEntry}`` map plus a :class:`Source`
to read bytes from (the store for a commit, the disk for the working tree:
the API assembles the latter, this package never scans a working tree).

:func:`diff_sides` computes, in order:

1. the file diff (added, removed, modified, moved by content id);
2. row diffs of changed tables (Parquet, CSV/TSV, JSON Lines, Arrow), with
   their label columns; a table that cannot be read falls back to the file
   level with a warning;
3. label diffs of class-folder layouts (configured or detected).

Everything heavy (pyarrow, numpy) is imported only when a table is diffed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

from dsv.config import Config
from dsv.diff.cache import TableCache
from dsv.diff.files import FileDiff, diff_files
from dsv.diff.formats import (
    DEFAULT_MAX_TEXT_BYTES,
    TABLE_NAMES,
    WHOLE_FORMATS,
    TableError,
    TableFile,
    table_format,
    text_memory,
)
from dsv.diff.labeldiff import LabelDiff, changed_counts, folder_label_diff
from dsv.diff.source import DiskSource, Source, StoreSource
from dsv.diff.tables import TableDiff, TableOptions
from dsv.errors import FormatError, NotFoundError
from dsv.labels import DirCounts, Settings, folder_layouts
from dsv.objects import TreeEntry
from dsv.progress import Progress, human_bytes
from dsv.records import Record

__all__ = [
    "DiffOptions",
    "DiskSource",
    "FileDiff",
    "LabelDiff",
    "Side",
    "Source",
    "StoreSource",
    "TableCache",
    "TableDiff",
    "TreeDiff",
    "diff_sides",
    "settings_from_config",
]

# Added or removed tables are counted (rows, classes) up to this many per diff.
MAX_ONE_SIDED_TABLES = 100


class Side(Record):
    """One version: its files and where to read their bytes."""

    __slots__ = ("entries", "source")

    def __init__(self, entries: Mapping[str, TreeEntry], source: Source) -> None:
        self.entries = entries
        self.source = source


class DiffOptions(Record):
    """What to compute.  ``labels_only`` compares only key, label and split columns."""

    __slots__ = (
        "examples",
        "key",
        "labels",
        "labels_only",
        "max_table_memory",
        "max_text_bytes",
        "samples",
        "tables",
    )

    def __init__(
        self,
        tables: bool = True,
        labels: bool = True,
        labels_only: bool = False,
        key: str | None = None,
        samples: int = 3,
        examples: int = 5,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        max_table_memory: int | None = None,
    ) -> None:
        self.tables = tables
        self.labels = labels
        self.labels_only = labels_only
        self.key = key
        self.samples = samples
        self.examples = examples
        self.max_text_bytes = max_text_bytes
        # a table whose row diff would need more memory gets a file-level diff
        self.max_table_memory = (
            default_table_memory() if max_table_memory is None else max_table_memory
        )


class TreeDiff(Record):
    __slots__ = ("files", "labels", "tables", "warnings")

    def __init__(
        self,
        files: FileDiff,
        tables: list[TableDiff] | None = None,
        labels: list[LabelDiff] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.files = files
        self.tables: list[TableDiff] = [] if tables is None else tables
        self.labels: list[LabelDiff] = [] if labels is None else labels
        self.warnings: list[str] = [] if warnings is None else warnings

    @property
    def empty(self) -> bool:
        return self.files.empty

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files.as_dict(),
            "tables": [t.as_dict() for t in self.tables],
            "labels": [ld.as_dict() for ld in self.labels],
            "warnings": self.warnings,
        }


def settings_from_config(config: Config) -> Settings:
    """The ``[data "PATH"]`` settings of a repository config."""
    return Settings.from_sections({s: config.items(s) for s in config.sections()})


def max_text_bytes(config: Config) -> int:
    raw = config.get("diff", "max-text-table")
    try:
        return int(raw) if raw else DEFAULT_MAX_TEXT_BYTES
    except ValueError:
        return DEFAULT_MAX_TEXT_BYTES


def default_table_memory() -> int:
    """Half of this machine's physical memory (8 GiB where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def max_table_memory(config: Config) -> int:
    """``diff.max-table-memory``: bytes, or with a K, M, G or T suffix (default: half the RAM).

    A value that is not one of those is refused where a diff starts, not ignored.
    """
    raw = "".join((config.get("diff", "max-table-memory") or "").lower().split())
    raw = raw.removesuffix("b").removesuffix("i")  # 8G, 8GB, 8GiB
    unit = raw[-1:] if raw[-1:] in _UNITS else ""
    if not raw:
        return default_table_memory()
    digits = raw[: len(raw) - len(unit)]
    if not digits.isdigit():
        raise FormatError(
            f"{config.path}: diff.max-table-memory ="
            f" {config.get('diff', 'max-table-memory')!r} is not a size"
            " (bytes, or a number with K, M, G or T: 8G)"
        )
    return int(digits) * _UNITS[unit]


class Limits(TypedDict):
    max_text_bytes: int
    max_table_memory: int


def diff_limits(config: Config) -> Limits:
    """The ``DiffOptions`` limits a repository's config sets (as keyword arguments)."""
    return {"max_text_bytes": max_text_bytes(config), "max_table_memory": max_table_memory(config)}


def _memory_problem(path: str, need: int, limit: int) -> str | None:
    if need <= limit:
        return None
    return (
        f"{path}: a row-level diff would need about {human_bytes(need)} of memory, more than the"
        f" {human_bytes(limit)} allowed (config diff.max-table-memory); showing a file-level change"
    )


def _open(path: str, entry: TreeEntry, source: Source, fmt: str, limit: int) -> TableFile:
    return TableFile(path, entry, source, fmt, limit).open()


def diff_sides(
    old: Side,
    new: Side,
    settings: Settings,
    opts: DiffOptions,
    progress: Progress | None = None,
    files: FileDiff | None = None,
    cache: TableCache | None = None,
) -> TreeDiff:
    """Diff two sides: files (unless given), then tables and labels as ``opts`` asks.

    With ``cache``, a table diff of two versions read from the store is looked
    up there first and kept there when computed (:mod:`dsv.diff.cache`).
    """
    if files is None:
        files = diff_files(old.entries, new.entries)
    out = TreeDiff(files)
    if opts.tables or opts.labels:
        _tables(out, old, new, settings, opts, progress or Progress(), cache)
    if opts.labels:
        _folders(out, old, new, settings, opts)
    return out


def _tables(
    out: TreeDiff,
    old: Side,
    new: Side,
    settings: Settings,
    opts: DiffOptions,
    progress: Progress,
    cache: TableCache | None,
) -> None:
    from dsv.diff.formats import arrow_errors, reason
    from dsv.diff.tables import safe_diff_table

    files = out.files
    todo: list[tuple[str, TreeEntry | None, TreeEntry | None]] = []
    for p, eo, en in files.modified:
        if table_format(p, eo) is not None or table_format(p, en) is not None:
            todo.append((p, eo, en))
    one_sided: list[tuple[str, TreeEntry | None, TreeEntry | None]] = [
        (p, None, e) for p, e in files.added_where(table_format, TABLE_NAMES) if table_format(p, e)
    ]
    one_sided += [(p, e, None) for p, e in files.removed if table_format(p, e)]
    if len(one_sided) > MAX_ONE_SIDED_TABLES:
        out.warnings.append(
            f"{len(one_sided) - MAX_ONE_SIDED_TABLES:,} more added or removed tables"
            " are not counted (only the first 100 are)"
        )
    todo += sorted(one_sided, key=lambda t: t[0])[:MAX_ONE_SIDED_TABLES]
    if not todo:
        return
    progress.start("diffing tables", len(todo))
    warn = out.warnings.append
    try:
        for path, o, n in todo:
            st = settings.for_path(path)
            topts = TableOptions(
                key=opts.key,
                settings=st,
                samples=opts.samples if opts.tables else 0,
                examples=opts.examples,
                labels_only=opts.labels_only or not opts.tables,
                labels=opts.labels,
            )
            key = None
            if cache is not None and all(
                e is None or side.source.verified for side, e in ((old, o), (new, n))
            ):
                formats = (
                    None if o is None else table_format(path, o),
                    None if n is None else table_format(path, n),
                )
                key = cache.key(path, o, n, formats, topts, opts.max_text_bytes)
                td = cache.get(key)
                if td is not None:
                    _add(out, td, opts)
                    progress.advance(1)
                    continue
            sides: list[TableFile | None] = []
            parsed = [
                e.size for e in (o, n) if e is not None and table_format(path, e) in WHOLE_FORMATS
            ]
            problem = _memory_problem(path, sum(map(text_memory, parsed)), opts.max_table_memory)
            if problem is not None:
                warn(problem)
                progress.advance(1)
                continue
            try:
                for side, e in ((old, o), (new, n)):
                    if e is None:
                        sides.append(None)
                        continue
                    fmt = table_format(path, e)
                    if fmt is None:
                        raise TableError("not a table on both sides")
                    sides.append(_open(path, e, side.source, fmt, opts.max_text_bytes))
            except TableError as exc:
                warn(f"{path}: {exc}; showing a file-level change")
                _close(sides)
                progress.advance(1)
                continue
            except NotFoundError:
                warn(f"{path}: its data is not in this clone; showing a file-level change")
                _close(sides)
                progress.advance(1)
                continue
            except arrow_errors() as exc:
                warn(
                    f"{path}: cannot be read as a table ({reason(exc)}); showing a file-level change"
                )
                _close(sides)
                progress.advance(1)
                continue
            need = sum(t.diff_memory() for t in sides if t is not None)
            problem = _memory_problem(path, need, opts.max_table_memory)
            if problem is not None:
                warn(problem)
                _close(sides)
                progress.advance(1)
                continue
            try:
                td = safe_diff_table(path, sides[0], sides[1], topts, warn)
            except NotFoundError:
                warn(f"{path}: its data is not in this clone; showing a file-level change")
                td = None
            finally:
                _close(sides)
            progress.advance(1)
            if td is None:
                continue
            if key is not None and cache is not None:
                cache.put(key, td)
            _add(out, td, opts)
    finally:
        progress.finish()


def _add(out: TreeDiff, td: TableDiff, opts: DiffOptions) -> None:
    out.warnings.extend(td.warnings)
    out.tables.append(td)
    if opts.labels and td.labels is not None:
        out.labels.append(td.labels)


def _close(sides: list[TableFile | None]) -> None:
    for t in sides:
        if t is not None:
            t.close()


def _folders(out: TreeDiff, old: Side, new: Side, settings: Settings, opts: DiffOptions) -> None:
    files = out.files
    if not (files.added or files.removed or files.moved):
        return  # class counts only change when paths do
    # counted directory by directory (no path per file where a side can list
    # its trees); only the old side is listed, the new one follows from the diff
    old_c = DirCounts.of(old.entries)
    new_c, added, removed = changed_counts(old_c, files)
    layouts = folder_layouts(settings, old_c, new_c)
    for lay in layouts:
        prefix = lay.prefix
        if not any(p.startswith(prefix) for p in _changed_paths(files)):
            continue
        ld = folder_label_diff(lay, files, old_c, new_c, opts.examples, added, removed)
        if ld.changed:
            out.labels.append(ld)


def _changed_paths(files: FileDiff) -> Iterator[str]:
    yield from files.added_paths()
    for p, _ in files.removed:
        yield p
    for a, b, _ in files.moved:
        yield a
        yield b
