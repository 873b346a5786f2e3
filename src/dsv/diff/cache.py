"""Table diffs kept by content: a diff of two stored versions is computed once.

A commit diffs every changed table against its parent to write its
changelog; ``dsv diff`` of the same two versions asks the same question.
The answer depends only on the two contents (by id), the path (its format
and ``[data]`` settings), the options, and the code that computes it, so it
is kept under a hash of all of those in ``.dsv/cache/tables/`` (format in
docs/format.md) and read back instead of reading both tables again.

Only diffs whose both sides were read from the store are kept: the store
verifies every byte it returns against its id, while a working-tree file can
change between being hashed and being read.  The cache is disposable: a
missing, damaged or foreign file is a miss, a file that cannot be written is
not kept, and it never holds more than ``MAX_ENTRIES`` diffs (the oldest go).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from dsv.atomic import TEMP_MARK, write_atomic
from dsv.diff.labeldiff import ClassStats, LabelDiff
from dsv.diff.tables import TableDiff, TableOptions
from dsv.errors import DsvError
from dsv.hashing import checksum
from dsv.objects import TreeEntry

__all__ = ["TableCache", "decode", "encode", "repo_cache"]

VERSION = 1
MAGIC = b"DSVTDIFF"
MAX_ENTRIES = 1024
# The modules whose code decides a table diff: a change to any of them is a new key.
_CODE = ("dsv.diff.tables", "dsv.diff.formats", "dsv.diff.labeldiff", "dsv.labels", __name__)
_stamp: str | None = None


class Uncacheable(ValueError):
    """A value that would not come back from JSON as it went in (a date, NaN, ...)."""


def _code_stamp() -> str:
    """What the result depends on besides its inputs: this code and pyarrow's version."""
    global _stamp
    if _stamp is None:
        import importlib.metadata

        from dsv import __version__

        parts = [__version__]
        for name in _CODE:
            f = getattr(sys.modules.get(name), "__file__", None)
            try:
                parts.append(checksum(Path(f).read_bytes()).hex() if f else name)
            except OSError:
                parts.append(name)
        try:
            parts.append(importlib.metadata.version("pyarrow"))
        except importlib.metadata.PackageNotFoundError:
            parts.append("no pyarrow")
        _stamp = " ".join(parts)
    return _stamp


# ---------------------------------------------------------------------- encoding

_SCALARS = (str, int, float, type(None))


def _scalar(v: Any) -> Any:
    if not isinstance(v, _SCALARS) or (isinstance(v, float) and not math.isfinite(v)):
        raise Uncacheable(f"{type(v).__name__} value")
    return v


def _counter(c: Counter[Any], width: int) -> list[list[Any]]:
    """Rows ``[*key, count]``: keys are scalars (``width`` 1) or pairs of them (2)."""
    out = []
    for k, n in c.items():
        if width == 1:
            ks = [_scalar(k)]
        elif isinstance(k, tuple) and len(k) == width:
            ks = [_scalar(x) for x in k]
        else:
            raise Uncacheable(f"key {k!r}")
        out.append([*ks, n])
    return out


def _uncounter(rows: list[list[Any]], width: int) -> Counter[Any]:
    out: Counter[Any] = Counter()
    for r in rows:
        if len(r) != width + 1 or not isinstance(r[-1], int):
            raise ValueError("bad counter row")
        out[r[0] if width == 1 else tuple(r[:width])] += r[-1]
    return out


def _stats(st: ClassStats) -> dict[str, Any]:
    return {
        "before": _counter(st.before, 1),
        "after": _counter(st.after, 1),
        "added": _counter(st.added, 1),
        "removed": _counter(st.removed, 1),
        "transitions": _counter(st.transitions, 2),
    }


def _unstats(d: dict[str, Any]) -> ClassStats:
    return ClassStats(
        before=_uncounter(d["before"], 1),
        after=_uncounter(d["after"], 1),
        added=_uncounter(d["added"], 1),
        removed=_uncounter(d["removed"], 1),
        transitions=_uncounter(d["transitions"], 2),
    )


# TableDiff fields kept as tuples (JSON gives arrays back), by their width
_TUPLES = {"schema_added": 2, "schema_removed": 2, "schema_retyped": 3}


def _fields(rec: Any) -> dict[str, Any]:
    """A diff's or label diff's fields by name (``__init__`` takes the same names)."""
    return {n: getattr(rec, n) for n in rec.__slots__}


def _labels(ld: LabelDiff) -> dict[str, Any]:
    return _fields(ld) | {
        "total": _stats(ld.total),
        "splits": [[_scalar(s), _stats(st)] for s, st in ld.splits.items()],
    }


def _unlabels(d: dict[str, Any]) -> LabelDiff:
    return LabelDiff(
        **{n: d[n] for n in LabelDiff.__slots__}
        | {
            "total": _unstats(d["total"]),
            "splits": {s: _unstats(st) for s, st in d["splits"]},
        }
    )


def encode(td: TableDiff) -> bytes:
    """``td`` as the bytes of a cache file; raises :class:`Uncacheable`."""
    body = _fields(td) | {n: [list(t) for t in getattr(td, n)] for n in _TUPLES}
    body["labels"] = None if td.labels is None else _labels(td.labels)
    try:
        data = json.dumps(body, allow_nan=False, ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise Uncacheable(str(exc)) from None
    if json.loads(data) != body:  # tuples and non-str dict keys do not come back as they went
        raise Uncacheable("not JSON as it is")
    return b"%s %d %s\n%s" % (MAGIC, VERSION, checksum(data).hex().encode(), data)


def _tuples(rows: list[list[str]], n: int) -> list[Any]:
    if any(len(r) != n for r in rows):
        raise ValueError("bad schema row")
    return [tuple(r) for r in rows]


def decode(raw: bytes) -> TableDiff:
    """A cache file's diff; raises ValueError (or KeyError, TypeError) if it is not one."""
    head, sep, data = raw.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 3 or parts[0] != MAGIC or parts[1] != b"%d" % VERSION:
        raise ValueError("not a table diff of this version")
    if checksum(data).hex().encode() != parts[2]:
        raise ValueError("checksum mismatch")
    b = json.loads(data)
    fields = {n: b[n] for n in TableDiff.__slots__}
    fields |= {n: _tuples(b[n], w) for n, w in _TUPLES.items()}
    fields["labels"] = None if b["labels"] is None else _unlabels(b["labels"])
    return TableDiff(**fields)


# ---------------------------------------------------------------------- the cache


def repo_cache(dsv_dir: Path) -> TableCache:
    """The table-diff cache of the repository whose ``.dsv`` directory is ``dsv_dir``."""
    return TableCache(dsv_dir / "cache" / "tables")


class TableCache:
    """Table diffs under ``directory``, one file per key (see the module doc)."""

    def __init__(self, directory: Path, max_entries: int = MAX_ENTRIES) -> None:
        self.directory = directory
        self.max_entries = max_entries

    @staticmethod
    def key(
        path: str,
        old: TreeEntry | None,
        new: TreeEntry | None,
        formats: tuple[str | None, str | None],
        opts: TableOptions,
        max_text_bytes: int,
    ) -> str:
        st = opts.settings
        parts = [
            _code_stamp(),
            path,
            None if old is None else old.id.hex(),
            None if new is None else new.id.hex(),
            list(formats),
            opts.key,
            None if st is None else [st.path, st.key, st.label, st.split],
            opts.samples,
            opts.examples,
            opts.labels_only,
            opts.labels,
            max_text_bytes,
        ]
        return checksum(json.dumps(parts).encode()).hex()

    def get(self, key: str) -> TableDiff | None:
        """The diff kept under ``key``, or None (a missing or unreadable file is a miss)."""
        try:
            raw = (self.directory / key).read_bytes()
        except OSError:
            return None
        try:
            return decode(raw)
        except (ValueError, KeyError, TypeError, IndexError):
            return None

    def put(self, key: str, td: TableDiff) -> None:
        """Keep ``td`` under ``key``, if it can be kept; never fails."""
        try:
            data = encode(td)
        except Uncacheable:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomic(self.directory / key, data, durable=False)
            self._trim()
        except (OSError, DsvError):
            return  # a cache: a full disk or a read-only repository keeps nothing

    def _trim(self) -> None:
        with os.scandir(self.directory) as it:
            files = [e for e in it if e.is_file(follow_symlinks=False)]
        if len(files) <= self.max_entries:
            return
        aged = []
        for e in files:
            with contextlib.suppress(OSError):
                aged.append((e.stat(follow_symlinks=False).st_mtime_ns, e.path, e.name))
        aged.sort()
        for _, p, name in aged[: len(aged) - self.max_entries]:
            if name.startswith(TEMP_MARK) or len(name) == 32:
                with contextlib.suppress(OSError):
                    os.unlink(p)
