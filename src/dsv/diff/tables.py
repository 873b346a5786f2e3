"""Row-level diffs of two versions of a table, vectorised (pyarrow compute and numpy).

Keyed tables (a unique key column: given, configured or detected) are matched
row by row through the key: the keys of both versions are turned into dense
integer codes (directly from the values for compact integer keys, through one
joint dictionary encoding otherwise) and matched with numpy scatter/gather,
never a Python loop per row.  Then every column common to both versions is
compared on the matched rows, one column at a time (Parquet reads only that
column), so memory holds the keys plus one column pair.

Keyless tables (no usable key) are compared as multisets of rows: each row
gets a 64-bit fingerprint mixed from exact per-column codes, and rows are
counted per fingerprint on each side.

Schema changes (columns added, removed, retyped) are reported; values are
compared on the columns both versions have (a retyped column is compared
after casting the old values to the new type, or both to text).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dsv.diff.formats import TableFile, arrow_errors, reason
from dsv.diff.labeldiff import LabelDiff, SplitCounts
from dsv.labels import FOLDERS, NONE, PathSettings, detect_label_column, detect_split_column
from dsv.records import Record

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

Arr = Any  # a numpy array (numpy is imported lazily, with pyarrow)

__all__ = ["KeyProblem", "TableDiff", "TableOptions", "diff_table", "key_candidates"]

# Key detection: column names that are ids, in order of preference (case-insensitive).
KEY_NAMES = ("id", "key", "uuid", "guid", "uid", "pk")
PATH_NAMES = (
    "path",
    "file",
    "filename",
    "file_name",
    "filepath",
    "file_path",
    "image",
    "image_path",
    "url",
    "uri",
)
# A detected label column with more distinct values than this is not a label.
MAX_DETECTED_CLASSES = 10_000
# Sample values longer than this are cut (JSON and terminal alike).
MAX_VALUE_CHARS = 200


class KeyProblem(Exception):
    """A key column that cannot match rows (duplicates, nulls, missing)."""


class TableOptions(Record):
    """How to diff one table: ``key`` from the command line wins over ``settings.key``."""

    __slots__ = ("examples", "key", "labels", "labels_only", "samples", "settings")

    def __init__(
        self,
        key: str | None = None,
        settings: PathSettings | None = None,
        samples: int = 3,
        examples: int = 5,
        labels_only: bool = False,
        labels: bool = True,
    ) -> None:
        self.key = key
        self.settings = settings
        self.samples = samples
        self.examples = examples
        self.labels_only = labels_only
        self.labels = labels


class TableDiff(Record):
    """Rows added, removed and modified of one table, with schema and label changes.

    ``modified`` is None when rows cannot be matched (no key: a changed row
    is a removed plus an added row) or when only label columns were compared.
    """

    __slots__ = (
        "added",
        "columns",
        "compared",
        "format",
        "key",
        "key_source",
        "labels",
        "modified",
        "path",
        "removed",
        "rows_new",
        "rows_old",
        "samples_added",
        "samples_modified",
        "samples_removed",
        "schema_added",
        "schema_removed",
        "schema_retyped",
        "status",
        "warnings",
    )

    def __init__(
        self,
        path: str,
        status: str,
        format: str,
        key: str | None = None,
        key_source: str | None = None,
        rows_old: int | None = None,
        rows_new: int | None = None,
        added: int = 0,
        removed: int = 0,
        modified: int | None = None,
        columns: dict[str, int] | None = None,
        compared: list[str] | None = None,
        schema_added: list[tuple[str, str]] | None = None,
        schema_removed: list[tuple[str, str]] | None = None,
        schema_retyped: list[tuple[str, str, str]] | None = None,
        samples_added: list[dict[str, Any]] | None = None,
        samples_removed: list[dict[str, Any]] | None = None,
        samples_modified: list[dict[str, Any]] | None = None,
        labels: LabelDiff | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.path = path
        self.status = status  # "modified", "added", "removed"
        self.format = format
        self.key = key
        self.key_source = key_source  # "option", "config", "detected"
        self.rows_old = rows_old
        self.rows_new = rows_new
        self.added = added
        self.removed = removed
        self.modified = modified
        self.columns: dict[str, int] = {} if columns is None else columns
        self.compared: list[str] = [] if compared is None else compared
        self.schema_added: list[tuple[str, str]] = [] if schema_added is None else schema_added
        self.schema_removed: list[tuple[str, str]] = (
            [] if schema_removed is None else schema_removed
        )
        self.schema_retyped: list[tuple[str, str, str]] = (
            [] if schema_retyped is None else schema_retyped
        )
        self.samples_added: list[dict[str, Any]] = [] if samples_added is None else samples_added
        self.samples_removed: list[dict[str, Any]] = (
            [] if samples_removed is None else samples_removed
        )
        self.samples_modified: list[dict[str, Any]] = (
            [] if samples_modified is None else samples_modified
        )
        self.labels = labels
        self.warnings: list[str] = [] if warnings is None else warnings

    @property
    def schema_changed(self) -> bool:
        return bool(self.schema_added or self.schema_removed or self.schema_retyped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "format": self.format,
            "key": self.key,
            "key_source": self.key_source,
            "rows": {
                "old": self.rows_old,
                "new": self.rows_new,
                "added": self.added,
                "removed": self.removed,
                "modified": self.modified,
            },
            "columns": {
                "compared": self.compared,
                "modified": dict(sorted(self.columns.items(), key=lambda kv: (-kv[1], kv[0]))),
            },
            "schema": {
                "added": [{"name": n, "type": t} for n, t in self.schema_added],
                "removed": [{"name": n, "type": t} for n, t in self.schema_removed],
                "retyped": [{"name": n, "old": a, "new": b} for n, a, b in self.schema_retyped],
            },
            "samples": {
                "added": self.samples_added,
                "removed": self.samples_removed,
                "modified": self.samples_modified,
            },
            "labels": self.labels.as_dict() if self.labels is not None else None,
            "warnings": self.warnings,
        }


# ---------------------------------------------------------------------- helpers


def _np() -> Any:
    import numpy

    return numpy


def _pa() -> Any:
    import pyarrow

    return pyarrow


def _pc() -> Any:
    import pyarrow.compute

    return pyarrow.compute


def _plain_type(t: pa.DataType) -> pa.DataType:
    """The type values are compared in: dictionaries decoded, large variants as small."""
    pa = _pa()
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    return t


def _plain(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = _plain_type(col.type)
    return col if t == col.type else col.cast(t)


def _is_nested(t: pa.DataType) -> bool:
    return bool(_pa().types.is_nested(t))


def _key_type_ok(t: pa.DataType) -> bool:
    pa = _pa()
    t = _plain_type(t)
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_fixed_size_binary(t)
    )


def _label_type_ok(t: pa.DataType) -> bool:
    pa = _pa()
    t = _plain_type(t)
    return bool(pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_boolean(t))


def key_candidates(names: list[str]) -> list[str]:
    """Column names that look like row ids, best first (uniqueness is checked later)."""
    ranked: list[tuple[int, int, str]] = []
    for i, n in enumerate(names):
        low = n.lower()
        if low in KEY_NAMES:
            rank = KEY_NAMES.index(low)
        elif (
            low.endswith(("_id", "-id", "_key", "_uuid"))
            or low.startswith("id_")
            or (n.endswith("Id") and len(n) > 2)
        ):
            rank = 10
        elif low in PATH_NAMES:
            rank = 20 + PATH_NAMES.index(low)
        else:
            continue
        ranked.append((rank, i, n))
    return [n for _, _, n in sorted(ranked)]


def _shared_dictionary(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Two dictionary columns re-encoded over one dictionary of distinct values, or None.

    Then equal values have equal indices in both, and comparing or counting
    them needs no string at all.  None when either is not a dictionary, their
    value types differ, or a dictionary holds nulls or repeats (the plain
    comparison handles those).
    """
    pa = _pa()
    if not (pa.types.is_dictionary(a.type) and pa.types.is_dictionary(b.type)):
        return None
    if a.type != b.type:
        return None
    joint = pa.chunked_array(list(a.chunks) + list(b.chunks), type=a.type).unify_dictionaries()
    chunks = joint.chunks
    if not _same_distinct([ch.dictionary for ch in chunks[:1]]):
        return None
    k = a.num_chunks
    return pa.chunked_array(chunks[:k], type=a.type), pa.chunked_array(chunks[k:], type=a.type)


def _chunked(col: Any) -> Any:
    pa = _pa()
    return col if isinstance(col, pa.ChunkedArray) else pa.chunked_array([col], col.type)


def _same_distinct(dicts: list[Any]) -> bool:
    """Whether the dictionaries are one and the same, without nulls or repeated values."""
    if not dicts:
        return True
    d = dicts[0]
    if any(x is not d and not x.equals(d) for x in dicts[1:]):
        return False
    return not d.null_count and len(_pc().unique(d)) == len(d)


def _indices(col: Any) -> Any:
    """The indices of a dictionary column, as a column of their own."""
    return _pa().chunked_array([ch.indices for ch in col.chunks], col.type.index_type)


def changed_mask(x: Any, y: Any) -> Arr:
    """Where two aligned columns differ (null vs value differs; null vs null and NaN vs NaN do not)."""
    pa = _pa()
    pc = _pc()
    if pa.types.is_null(x.type) and pa.types.is_null(y.type):
        return _np().zeros(len(x), bool)  # all empty on both sides (no kernel compares them)
    if pa.types.is_dictionary(x.type) and x.type == y.type:
        # over one dictionary of distinct values (_shared_dictionary): compare the indices
        x, y = _chunked(x), _chunked(y)
        if _same_distinct([ch.dictionary for ch in (*x.chunks, *y.chunks)]):
            x, y = _indices(x), _indices(y)
        else:
            x, y = _plain(x), _plain(y)
    ne = pc.fill_null(pc.not_equal(x, y), False)
    if x.null_count or y.null_count:
        ne = pc.or_(ne, pc.not_equal(pc.is_valid(x), pc.is_valid(y)))
    if pa.types.is_floating(x.type):
        both_nan = pc.fill_null(pc.and_(pc.is_nan(x), pc.is_nan(y)), False)
        ne = pc.and_not(ne, both_nan)
    return _np_bool(ne)


def _to_numpy(col: Any, empty: Any = "int64") -> Arr:
    """A (Chunked)Array without nulls as one numpy array (``empty``: dtype when it has no chunk)."""
    np = _np()
    chunks = col.chunks if hasattr(col, "chunks") else [col]
    if not chunks:
        return np.zeros(0, empty)
    parts = [c.to_numpy(zero_copy_only=False) for c in chunks]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _np_bool(arr: Any) -> Arr:
    return _to_numpy(arr, bool)


def jsonable(v: Any) -> Any:
    """A sample value as JSON: scalars as they are, the rest as text (bounded)."""
    if v is None or isinstance(v, bool | int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, str):
        return v if len(v) <= MAX_VALUE_CHARS else v[:MAX_VALUE_CHARS] + "…"
    if isinstance(v, bytes):
        h = v.hex()
        return "0x" + (h if len(h) <= MAX_VALUE_CHARS else h[:MAX_VALUE_CHARS] + "…")
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v[:20]]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in list(v.items())[:20]}
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return jsonable(str(v))


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: jsonable(v) for k, v in row.items()} for row in table.to_pylist()]


# ---------------------------------------------------------------------- key matching


class KeyMatch(Record):
    """Rows matched by key: old row ``ia[i]`` is new row ``ib[i]`` (ib ascending)."""

    # ``_contiguous`` caches the property ``contiguous`` (None: not computed yet)
    __slots__ = ("_contiguous", "added", "ia", "ib", "identity", "removed")

    def __init__(self, ia: Arr, ib: Arr, added: Arr, removed: Arr, identity: bool = False) -> None:
        self.ia = ia
        self.ib = ib
        self.added = added  # new rows without an old row
        self.removed = removed  # old rows without a new row
        self.identity = identity  # old row i is new row i for every old row
        self._contiguous: bool | None = None

    def aligned(self, a: Any, b: Any) -> tuple[Any, Any]:
        """The matched rows of two columns, in matched order (slices when contiguous)."""
        pa = _pa()
        m = len(self.ib)
        if m == 0:
            return a.slice(0, 0), b.slice(0, 0)
        if self.contiguous:
            return a.slice(int(self.ia[0]), m), b.slice(int(self.ib[0]), m)
        return a.take(pa.array(self.ia)), b.take(pa.array(self.ib))

    @property
    def contiguous(self) -> bool:
        """Both sides' matched rows are one run each, in the same order (no gather needed)."""
        if self._contiguous is None:
            m = len(self.ib)
            self._contiguous = (
                self.identity
                or m < 2
                or bool(
                    self.ib[-1] - self.ib[0] == m - 1
                    and self.ia[-1] - self.ia[0] == m - 1
                    and _np().all(_np().diff(self.ia) == 1)
                )
            )
        return self._contiguous


def _key_codes(ka: Any, kb: Any) -> tuple[Arr, Arr, int]:
    """Dense integer codes of two key columns: equal keys get equal codes."""
    np = _np()
    pa = _pa()
    pc = _pc()
    ka, kb = _plain(ka), _plain(kb)
    if ka.type != kb.type:
        try:
            ka, kb = ka.cast(pa.string()), kb.cast(pa.string())
        except arrow_errors():
            raise KeyProblem(
                f"has type {ka.type} in one version and {kb.type} in the other"
            ) from None
    na, nb = len(ka), len(kb)
    if pa.types.is_integer(ka.type) and (na + nb):
        try:
            a = _to_numpy(ka.cast(pa.int64())).astype(np.int64, copy=False)
            b = _to_numpy(kb.cast(pa.int64())).astype(np.int64, copy=False)
        except arrow_errors():
            a = b = None
        if a is not None and b is not None:
            lo = min(int(a.min()) if na else 0, int(b.min()) if nb else 0)
            hi = max(int(a.max()) if na else 0, int(b.max()) if nb else 0)
            span = hi - lo + 1
            if span <= 4 * (na + nb) + 1024:
                # compact integer ids: the value itself is the code
                return a - lo, b - lo, span
            uniq, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
            inv = inv.astype(np.int64, copy=False)
            return inv[:na], inv[na:], len(uniq)
    joint = pa.chunked_array(list(ka.chunks) + list(kb.chunks), type=ka.type)
    enc = pc.dictionary_encode(joint.combine_chunks())
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return codes[:na], codes[na:], len(enc.dictionary)


def _repeats(codes: Arr, ncodes: int) -> int:
    """How many values occur more than once (0 at once for strictly increasing codes)."""
    np = _np()
    if len(codes) < 2 or bool(np.all(codes[1:] > codes[:-1])):
        return 0
    return int(np.count_nonzero(np.bincount(codes, minlength=ncodes) > 1))


def _appended_only(ka: Any, kb: Any) -> bool:
    """Whether integer keys of the new version start with the old ones, in the same order, and
    strictly increase (so are unique): rows edited in place or appended, the common case.
    Checked on the values themselves, before any sort or hash (10M sparse ids: 0.3 s)."""
    np = _np()
    pa = _pa()
    na, nb = len(ka), len(kb)
    if na > nb or ka.type != kb.type or not pa.types.is_integer(ka.type):
        return False
    b = _to_numpy(kb)
    if nb > 1 and not bool(np.all(b[1:] > b[:-1])):
        return False
    return bool(np.array_equal(_to_numpy(ka), b[:na]))


def match_keys(ka: Any, kb: Any) -> KeyMatch:
    """Match rows of two versions by a key column; raises :class:`KeyProblem`."""
    np = _np()
    for col, which in ((ka, "old"), (kb, "new")):
        if col.null_count:
            raise KeyProblem(f"has {col.null_count:,} empty values in the {which} version")
    if _appended_only(ka, kb):
        na, nb = len(ka), len(kb)
        same = np.arange(na, dtype=np.int64)
        return KeyMatch(same, same, np.arange(na, nb, dtype=np.int64), same[:0], identity=True)
    ca, cb, ncodes = _key_codes(ka, kb)
    na, nb = len(ca), len(cb)
    for codes, which in ((ca, "old"), (cb, "new")):
        dups = _repeats(codes, ncodes)
        if dups:
            raise KeyProblem(f"is not unique in the {which} version ({dups:,} values repeat)")
    if na <= nb and np.array_equal(ca, cb[:na]):
        # the common case of appends and in-place edits: same keys, same order
        same = np.arange(na, dtype=np.int64)
        return KeyMatch(same, same, np.arange(na, nb, dtype=np.int64), same[:0], identity=True)
    # int32 positions when they fit: half the memory traffic of the scatter/gather
    itype = np.int32 if max(na, nb, ncodes) < (1 << 31) else np.int64
    pos = np.full(ncodes, -1, itype)
    pos[ca] = np.arange(na, dtype=itype)
    m = pos[cb]
    del pos
    hit = m >= 0
    ib = np.flatnonzero(hit)
    ia = m[ib].astype(np.int64)
    added = np.flatnonzero(~hit)
    seen = np.zeros(na, bool)
    seen[ia] = True
    removed = np.flatnonzero(~seen)
    return KeyMatch(ia, ib, added, removed)


# ---------------------------------------------------------------------- counting


def _group_counts(table: Any, cols: list[str]) -> Counter[tuple[Any, ...]]:
    """Rows per distinct value tuple of ``cols`` (nulls are a value).

    With compute kernels alone: ``Table.group_by`` would import pyarrow's
    query engine (acero and the dataset module), 0.4 s of every commit or
    diff that counts labels.  Several columns are dictionary-encoded, and each
    row's tuple of dictionary positions made one number to count.
    """
    import numpy as np
    import pyarrow.compute as pc

    out: Counter[tuple[Any, ...]] = Counter()
    if table.num_rows == 0:
        return out
    pa = _pa()
    if len(cols) == 1 and not pa.types.is_dictionary(table.schema.field(cols[0]).type):
        vc = pc.value_counts(table[cols[0]])
        for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
            out[(v,)] += n
        return out
    from concurrent.futures import ThreadPoolExecutor

    def encode(c: str) -> tuple[Any, Any]:
        col = table[c]
        if pa.types.is_dictionary(col.type):
            # read as a dictionary: one dictionary for all chunks, nulls as a value
            col = col.unify_dictionaries()
            if col.null_count:
                col = col.cast(col.type.value_type)
            else:
                d = col.chunks[0].dictionary
                return d, np.concatenate(
                    [ch.indices.to_numpy(zero_copy_only=False) for ch in col.chunks]
                )
        # the chunks of an encoded column share one growing dictionary: the
        # longest is every chunk's
        chunks = pc.dictionary_encode(col, null_encoding="encode").chunks
        d = max((ch.dictionary for ch in chunks), key=len)
        return d, np.concatenate([ch.indices.to_numpy(zero_copy_only=False) for ch in chunks])

    with ThreadPoolExecutor(2, thread_name_prefix="dsv-count") as ex:  # arrow frees the GIL
        encoded = list(ex.map(encode, cols))
    space = math.prod(len(d) for d, _ in encoded)
    codes = encoded[0][1].astype(np.int32 if space < 1 << 31 else np.int64)
    for d, idx in encoded[1:]:
        codes *= len(d)
        codes += idx
    dicts = [d.to_pylist() for d, _ in encoded]
    if space <= 2 * table.num_rows + 1024:
        counts = np.bincount(codes, minlength=space)
        found = np.flatnonzero(counts)
        counts = counts[found]
    else:  # too many combinations for a table of counts
        found, counts = np.unique(codes, return_counts=True)
    for code, n in zip(found.tolist(), counts.tolist()):
        key = []
        for d in reversed(dicts):
            code, i = divmod(code, len(d))
            key.append(d[i])
        out[tuple(reversed(key))] += n
    return out


def _split_label_counts(table: Any, label: str, split: str | None) -> Counter[tuple[Any, Any]]:
    if split is None:
        return Counter({(None, k[0]): n for k, n in _group_counts(table, [label]).items()})
    return Counter({(k[0], k[1]): n for k, n in _group_counts(table, [split, label]).items()})


# ---------------------------------------------------------------------- the diff


class _Pair:
    """Reads the same columns of both versions, the two reads in parallel."""

    def __init__(self, old: TableFile, new: TableFile) -> None:
        self.old = old
        self.new = new
        self._pool: ThreadPoolExecutor | None = None

    def _both(self, fa: Callable[[], Any], fb: Callable[[], Any]) -> tuple[Any, Any]:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor  # only table diffs need threads

            self._pool = ThreadPoolExecutor(2, thread_name_prefix="dsv-diff")
        a, b = self._pool.submit(fa), self._pool.submit(fb)
        return a.result(), b.result()

    def read(self, cols: list[str], dictionary: tuple[str, ...] = ()) -> tuple[Any, Any]:
        if self.old.in_memory and self.new.in_memory:
            return self.old.read(cols), self.new.read(cols)
        return self._both(
            lambda: self.old.read(cols, dictionary), lambda: self.new.read(cols, dictionary)
        )

    def read_group(self, i: int, col: str) -> tuple[Any, Any]:
        """Column ``col`` of row group ``i`` of both (Parquet) versions."""
        a, b = self._both(
            lambda: self.old.read_row_group(i, [col]), lambda: self.new.read_row_group(i, [col])
        )
        return a[col], b[col]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _label_columns(
    names_old: list[str], names_new: list[str], types: dict[str, Any], opts: TableOptions
) -> tuple[str | None, str | None, bool]:
    """(label column, split column, configured) for a table."""
    st = opts.settings
    common = [n for n in names_new if n in set(names_old)]
    label: str | None
    configured = False
    if st is not None and st.label is not None and st.label != FOLDERS:
        if st.label == NONE:
            return None, None, True
        label, configured = st.label, True
    else:
        label = detect_label_column(common)
        if label is not None and not _label_type_ok(types[label]):
            label = None
    split = st.split if st is not None and st.split else detect_split_column(common)
    if split == label:
        split = None
    return label, split, configured


def diff_table(
    path: str,
    old: TableFile | None,
    new: TableFile | None,
    opts: TableOptions,
) -> TableDiff:
    """Diff two versions of a table (one of them None for an added or removed table)."""
    fmt = (new or old).format  # type: ignore[union-attr]
    if old is None or new is None:
        return _one_sided(path, old, new, fmt, opts)
    d = TableDiff(path=path, status="modified", format=fmt)
    sa, sb = old.schema, new.schema
    d.rows_old, d.rows_new = old.num_rows, new.num_rows
    ta = {f.name: f.type for f in sa}
    tb = {f.name: f.type for f in sb}
    d.schema_added = [(n, str(tb[n])) for n in sb.names if n not in ta]
    d.schema_removed = [(n, str(ta[n])) for n in sa.names if n not in tb]
    common = [n for n in sb.names if n in ta]
    d.schema_retyped = [
        (n, str(ta[n]), str(tb[n])) for n in common if _plain_type(ta[n]) != _plain_type(tb[n])
    ]
    if len(set(sa.names)) != len(sa.names) or len(set(sb.names)) != len(sb.names):
        raise KeyProblem("has duplicate column names")
    label, split, label_configured = (
        _label_columns(sa.names, sb.names, tb, opts) if opts.labels else (None, None, False)
    )
    if label is not None and label not in common:
        if label_configured:
            d.warnings.append(f"{path}: label column {label!r} is not in both versions")
        label = None
    if split is not None and split not in common:
        split = None
    pair = _Pair(old, new)
    try:
        key, source, match, keys = _choose_key(d, pair, common, ta, opts)
        d.key, d.key_source = key, source
        if match is not None and keys is not None:
            _diff_keyed(d, pair, match, keys, common, ta, tb, label, split, label_configured, opts)
        else:
            _diff_keyless(d, pair, common, ta, tb, label, split, label_configured, opts)
    finally:
        pair.close()
    return d


_NoKey = (None, None, None, None)


def _choose_key(
    d: TableDiff, pair: _Pair, common: list[str], types: dict[str, Any], opts: TableOptions
) -> tuple[str | None, str | None, KeyMatch | None, tuple[Any, Any] | None]:
    """The key column, where it came from, the row match and both versions' key columns."""
    given: str | None = None
    source = None
    if opts.key:
        given, source = opts.key, "option"
    elif opts.settings is not None and opts.settings.key:
        given, source = opts.settings.key, "config"
    if given is not None:
        if given not in common:
            d.warnings.append(
                f"{d.path}: key column {given!r} is not in both versions;"
                " rows are compared as a multiset instead"
            )
            return _NoKey
        a, b = pair.read([given])
        try:
            return given, source, match_keys(a[given], b[given]), (a[given], b[given])
        except KeyProblem as exc:
            d.warnings.append(
                f"{d.path}: key column {given!r} {exc}; rows are compared as a multiset instead"
            )
            return _NoKey
    for cand in key_candidates(common):
        if not _key_type_ok(types[cand]):
            continue
        a, b = pair.read([cand])
        try:
            return cand, "detected", match_keys(a[cand], b[cand]), (a[cand], b[cand])
        except KeyProblem:
            continue
    return _NoKey


def _comparable(
    d: TableDiff, name: str, a: Any, b: Any, ta: Any, tb: Any
) -> tuple[Any, Any] | None:
    """Two columns in one comparable type, or None (with a warning) if they cannot be compared."""
    pa = _pa()
    if _is_nested(_plain_type(ta)) or _is_nested(_plain_type(tb)):
        d.warnings.append(
            f"{d.path}: column {name!r} ({tb}) is nested; its values are not compared"
        )
        return None
    shared = _shared_dictionary(a, b)
    if shared is not None:
        return shared
    a, b = _plain(a), _plain(b)
    if a.type == b.type:
        return a, b
    try:
        return a.cast(b.type), b
    except arrow_errors():
        pass
    try:
        return a.cast(pa.string()), b.cast(pa.string())
    except arrow_errors():
        d.warnings.append(f"{d.path}: column {name!r} changed from {ta} to {tb}; not compared")
        return None


def _diff_keyed(
    d: TableDiff,
    pair: _Pair,
    match: KeyMatch,
    keys: tuple[Any, Any],
    common: list[str],
    ta: dict[str, Any],
    tb: dict[str, Any],
    label: str | None,
    split: str | None,
    label_configured: bool,
    opts: TableOptions,
) -> None:
    np = _np()
    pa = _pa()
    assert d.key is not None
    key = d.key
    d.added, d.removed = len(match.added), len(match.removed)
    n = max(0, opts.samples)
    m = len(match.ib)
    any_changed = np.zeros(m, bool)
    first: dict[str, tuple[Arr, list[Any], list[Any]]] = {}
    add_idx = pa.array(match.added[:n])
    rem_idx = pa.array(match.removed[:n])
    add_rows: dict[str, list[Any]] = {}
    rem_rows: dict[str, list[Any]] = {}

    lab_cols = [c for c in (label, split) if c is not None]
    others = [c for c in common if c != key and c not in lab_cols]
    groups: list[list[str]] = [lab_cols] if lab_cols else []
    if not opts.labels_only:
        groups += [[c] for c in others]
    keys_new = keys[1]
    if n:
        add_rows[key] = keys[1].take(add_idx).to_pylist()
        rem_rows[key] = keys[0].take(rem_idx).to_pylist()
    label_masks: dict[str, Arr] = {}
    for cols in groups:
        if cols is not groups[0] or not lab_cols:
            quick = _row_group_diff(d, pair, match, cols[0], ta, tb, n)
            if quick is not None:
                c = cols[0]
                mask, fvals, add_rows[c] = quick
                rem_rows[c] = []  # an identity match removes no row
                d.compared.append(c)
                cnt = int(np.count_nonzero(mask))
                if cnt:
                    d.columns[c] = cnt
                    any_changed |= mask
                    if n:
                        first[c] = fvals
                continue
        a_t, b_t = pair.read(cols, tuple(lab_cols) if cols is groups[0] else ())
        for c in cols:
            a, b = a_t[c], b_t[c]
            if n:
                add_rows[c] = b.take(add_idx).to_pylist()
                rem_rows[c] = a.take(rem_idx).to_pylist()
            ab = _comparable(d, c, a, b, ta[c], tb[c])
            if ab is None:
                continue
            am, bm = match.aligned(*ab)
            try:
                mask = changed_mask(am, bm)
            except arrow_errors() as exc:
                d.warnings.append(f"{d.path}: column {c!r} not compared ({reason(exc)})")
                continue
            d.compared.append(c)
            cnt = int(np.count_nonzero(mask))
            if cnt:
                d.columns[c] = cnt
            any_changed |= mask
            if c in lab_cols:
                label_masks[c] = mask
            if n and cnt:
                idx = np.flatnonzero(mask)[:n]
                ix = pa.array(idx)
                first[c] = (idx, am.take(ix).to_pylist(), bm.take(ix).to_pylist())
        if cols is groups[0] and label is not None:
            if label in label_masks:
                d.labels = _keyed_labels(
                    d,
                    a_t,
                    b_t,
                    match,
                    label,
                    split,
                    label_masks,
                    keys_new,
                    opts.examples,
                    label_configured,
                )
            elif label_configured:
                d.warnings.append(f"{d.path}: label column {label!r} could not be compared")
        del a_t, b_t
    d.modified = None if opts.labels_only else int(np.count_nonzero(any_changed))
    if n:
        order = [c for c in common if c in add_rows]
        d.samples_added = [
            {c: jsonable(add_rows[c][i]) for c in order} for i in range(len(match.added[:n]))
        ]
        d.samples_removed = [
            {c: jsonable(rem_rows[c][i]) for c in order} for i in range(len(match.removed[:n]))
        ]
        rows = np.flatnonzero(any_changed)[:n]
        if len(rows) and keys_new is not None:
            kv = keys_new.take(pa.array(match.ib[rows])).to_pylist()
            for r, k in zip(rows.tolist(), kv):
                changes: dict[str, list[Any]] = {}
                for c in d.compared:
                    f = first.get(c)
                    if f is None:
                        continue
                    hit = np.flatnonzero(f[0] == r)
                    if len(hit):
                        j = int(hit[0])
                        changes[c] = [jsonable(f[1][j]), jsonable(f[2][j])]
                d.samples_modified.append({"key": jsonable(k), "changes": changes})


def _row_group_diff(
    d: TableDiff,
    pair: _Pair,
    match: KeyMatch,
    col: str,
    ta: dict[str, Any],
    tb: dict[str, Any],
    n: int,
) -> tuple[Arr, tuple[Arr, list[Any], list[Any]], list[Any]] | None:
    """Compare one column of two Parquet versions row group by row group, skipping equal bytes.

    Applies when rows match one for one (same keys in the same order, rows only
    appended) and the old row groups line up with the new ones: a column chunk
    whose stored bytes are equal in both holds equal values and is not decoded.
    Returns (changed mask, first changes, values of the first added rows), or
    None when the whole columns must be compared instead.
    """
    np = _np()
    pa = _pa()
    old, new = pair.old, pair.new
    if not match.identity or ta[col] != tb[col] or _is_nested(ta[col]):
        return None
    lo, ln = old.row_group_rows(), new.row_group_rows()
    if not lo or ln is None or len(ln) < len(lo):
        return None
    k = len(lo)
    if lo[:-1] != ln[: k - 1] or lo[-1] > ln[k - 1]:
        return None
    m = len(match.ib)
    mask = np.zeros(m, bool)
    parts: list[tuple[int, Any, Any]] = []
    read: dict[int, Any] = {}  # new row groups decoded here, whole
    start = 0
    try:
        for g, rows in enumerate(lo):
            same = rows == ln[g] and old.chunk_size(g, col) == new.chunk_size(g, col)
            if same:
                ca, cb = old.chunk_bytes(g, col), new.chunk_bytes(g, col)
                same = ca is not None and ca == cb
            if not same:
                a, b = pair.read_group(g, col)
                read[g] = b
                a, b = _plain(a), _plain(b).slice(0, rows)
                mask[start : start + rows] = changed_mask(a, b)
                parts.append((start, a, b))
            start += rows
    except arrow_errors():
        return None  # the generic path reports what cannot be compared
    idx = np.flatnonzero(mask)[:n]
    olds: list[Any] = []
    news: list[Any] = []
    for i in idx.tolist():
        s0, a, b = next(p for p in reversed(parts) if p[0] <= i)
        olds.append(a[i - s0].as_py())
        news.append(b[i - s0].as_py())
    added: list[Any] = []
    want = match.added[:n]
    if len(want):
        starts = np.cumsum([0, *ln])
        for g in sorted({int(np.searchsorted(starts, r, side="right")) - 1 for r in want.tolist()}):
            part = read[g] if g in read else new.read_row_group(g, [col])[col]
            rows_here = [
                r - int(starts[g]) for r in want.tolist() if starts[g] <= r < starts[g + 1]
            ]
            added += part.take(pa.array(rows_here)).to_pylist()
    return mask, (idx, olds, news), added


def _classes(ld: LabelDiff) -> int:
    return len(set(ld.total.before) | set(ld.total.after))


def _column_counts(
    a_t: Any, b_t: Any, added: Arr, removed: Arr, label: str, split: str | None
) -> SplitCounts:
    """Rows per (split, class) of a label column: in each version, and among added and removed rows."""
    pa = _pa()
    counts = SplitCounts()
    counts.before = _split_label_counts(a_t, label, split)
    counts.after = _split_label_counts(b_t, label, split)
    counts.added = _split_label_counts(b_t.take(pa.array(added)), label, split)
    counts.removed = _split_label_counts(a_t.take(pa.array(removed)), label, split)
    return counts


def _column_labels(
    path: str,
    label: str,
    split: str | None,
    counts: SplitCounts,
    *,
    keyed: bool,
    configured: bool,
    key: str | None = None,
    resplit: int = 0,
    examples: list[dict[str, Any]] | None = None,
) -> LabelDiff | None:
    """The label diff of a column; None for a detected column with too many classes to be labels."""
    total, splits = counts.split()
    ld = LabelDiff(
        kind="column",
        path=path,
        column=label,
        split_by=split,
        items="rows",
        keyed=keyed,
        total=total,
        splits=splits,
        resplit=resplit,
        examples=examples or [],
        key=key,
    )
    if not configured and _classes(ld) > MAX_DETECTED_CLASSES:
        return None
    return ld


def _keyed_labels(
    d: TableDiff,
    a_t: Any,
    b_t: Any,
    match: KeyMatch,
    label: str,
    split: str | None,
    masks: dict[str, Arr],
    keys_new: Any,
    n: int,
    configured: bool,
) -> LabelDiff | None:
    np = _np()
    pa = _pa()
    counts = _column_counts(a_t, b_t, match.added, match.removed, label, split)
    a_l, b_l = a_t, b_t
    rel = np.flatnonzero(masks[label])
    ex: list[dict[str, Any]] = []
    if len(rel):
        old_rows = pa.array(match.ia[rel])
        new_rows = pa.array(match.ib[rel])
        t = pa.table(
            {
                "s": b_l[split].take(new_rows) if split else pa.nulls(len(rel)),
                "a": a_l[label].take(old_rows),
                "b": b_l[label].take(new_rows),
            }
        )
        for (s, x, y), k in _group_counts(t, ["s", "a", "b"]).items():
            counts.transitions[(s, x, y)] += k
        if n and keys_new is not None:
            kv = keys_new.take(new_rows.slice(0, n)).to_pylist()
            for i, k in enumerate(kv):
                ex.append(
                    {
                        "key": jsonable(k),
                        "from": jsonable(t["a"][i].as_py()),
                        "to": jsonable(t["b"][i].as_py()),
                    }
                )
    resplit = int(np.count_nonzero(masks[split])) if split and split in masks else 0
    return _column_labels(
        d.path,
        label,
        split,
        counts,
        keyed=True,
        configured=configured,
        key=d.key,
        resplit=resplit,
        examples=ex,
    )


# ---------------------------------------------------------------------- keyless

_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(x: Arr) -> Arr:
    """splitmix64's finaliser, on a uint64 array (wrapping arithmetic)."""
    np = _np()
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(_MIX1)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(_MIX2)
    return x ^ (x >> np.uint64(31))


def _column_codes(a: Any, b: Any) -> tuple[Arr, Arr]:
    """Exact uint64 codes of two aligned-type columns: equal values, equal codes (nulls: 0 + flag)."""
    np = _np()
    pa = _pa()
    pc = _pc()
    t = a.type
    na = len(a)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        width = pa.float64() if pa.types.is_floating(t) else pa.int64()
        if pa.types.is_unsigned_integer(t) and t.bit_width == 64:
            width = pa.uint64()
        codes = []
        for col in (a, b):
            v = pc.fill_null(col.cast(width), 0)
            arr = _to_numpy(v)
            if arr.dtype == np.float64:
                arr = np.where(arr == 0.0, 0.0, arr)  # -0.0 and 0.0 are the same value
            codes.append(arr.view(np.uint64) if arr.dtype != np.uint64 else arr)
    else:
        joint = pa.chunked_array(list(a.chunks) + list(b.chunks), type=t).combine_chunks()
        enc = pc.dictionary_encode(joint)
        idx = pc.fill_null(enc.indices, -1)
        allc = _to_numpy(idx).astype(np.int64).view(np.uint64)
        codes = [allc[:na], allc[na:]]
    out = []
    for col, c in zip((a, b), codes):
        if col.null_count:
            valid = _np_bool(pc.is_valid(col))
            c = np.where(valid, c, np.uint64(0)) ^ (~valid).astype(np.uint64) * np.uint64(_GOLDEN)
        out.append(c)
    return out[0], out[1]


def _excess(inv: Arr, keep: Arr) -> Arr:
    """Rows beyond the first ``keep[code]`` occurrences of their code (in row order)."""
    np = _np()
    order = np.argsort(inv, kind="stable")
    sorted_codes = inv[order]
    starts = np.searchsorted(sorted_codes, sorted_codes, side="left")
    rank = np.arange(len(order)) - starts
    mask = np.empty(len(order), bool)
    mask[order] = rank >= keep[sorted_codes]
    return mask


def _diff_keyless(
    d: TableDiff,
    pair: _Pair,
    common: list[str],
    ta: dict[str, Any],
    tb: dict[str, Any],
    label: str | None,
    split: str | None,
    label_configured: bool,
    opts: TableOptions,
) -> None:
    np = _np()
    pa = _pa()
    a_t, b_t = pair.read(common)
    na, nb = a_t.num_rows, b_t.num_rows
    ha = np.full(na, np.uint64(_GOLDEN), np.uint64)
    hb = np.full(nb, np.uint64(_GOLDEN), np.uint64)
    with np.errstate(over="ignore"):
        for i, c in enumerate(common):
            ab = _comparable(d, c, a_t[c], b_t[c], ta[c], tb[c])
            if ab is None:
                continue
            try:
                ca, cb = _column_codes(*ab)
            except arrow_errors() as exc:
                d.warnings.append(f"{d.path}: column {c!r} not compared ({reason(exc)})")
                continue
            d.compared.append(c)
            salt = np.uint64((i + 1) * _GOLDEN & 0xFFFFFFFFFFFFFFFF)
            ha = _mix(ha ^ _mix(ca + salt))
            hb = _mix(hb ^ _mix(cb + salt))
    uniq, inv = np.unique(np.concatenate([ha, hb]), return_inverse=True)
    inv = inv.astype(np.int64, copy=False).reshape(-1)
    del ha, hb, uniq
    ia, ib = inv[:na], inv[na:]
    ncodes = int(inv.max()) + 1 if len(inv) else 0
    ca = np.bincount(ia, minlength=ncodes)
    cb = np.bincount(ib, minlength=ncodes)
    added_mask = _excess(ib, ca)
    removed_mask = _excess(ia, cb)
    added = np.flatnonzero(added_mask)
    removed = np.flatnonzero(removed_mask)
    d.added, d.removed = len(added), len(removed)
    d.modified = None
    n = max(0, opts.samples)
    if n:
        d.samples_added = _rows(b_t.take(pa.array(added[:n])))
        d.samples_removed = _rows(a_t.take(pa.array(removed[:n])))
    if label is not None and label in d.compared:
        counts = _column_counts(a_t, b_t, added, removed, label, split)
        d.labels = _column_labels(
            d.path, label, split, counts, keyed=False, configured=label_configured
        )


# ---------------------------------------------------------------------- one side only


def _one_sided(
    path: str, old: TableFile | None, new: TableFile | None, fmt: str, opts: TableOptions
) -> TableDiff:
    t = new if new is not None else old
    assert t is not None
    d = TableDiff(path=path, status="added" if new is not None else "removed", format=fmt)
    rows = t.num_rows
    if new is not None:
        d.rows_new, d.added = rows, rows
    else:
        d.rows_old, d.removed = rows, rows
    names = t.schema.names
    types = {f.name: f.type for f in t.schema}
    label, split, configured = (
        _label_columns(names, names, types, opts) if opts.labels else (None, None, False)
    )
    if label is None or label not in types:
        return d
    if split is not None and split not in types:
        split = None
    cols = [label] if split is None else [split, label]
    tab = t.read(cols, tuple(cols))
    counts = SplitCounts()
    c = _split_label_counts(tab, label, split)
    if new is not None:
        counts.after = c
        counts.added = Counter(c)
    else:
        counts.before = c
        counts.removed = Counter(c)
    d.labels = _column_labels(path, label, split, counts, keyed=True, configured=configured)
    return d


def describe_table(t: TableFile, st: PathSettings | None) -> dict[str, Any]:
    """Format, rows, columns, and the key and label columns a diff of this table would use."""
    names = t.schema.names
    types = {f.name: f.type for f in t.schema}
    label, split, configured = _label_columns(names, names, types, TableOptions(settings=st))
    key = source = None
    problem = None
    given = st.key if st is not None else None
    cands = [given] if given else [c for c in key_candidates(names) if _key_type_ok(types[c])]
    for c in cands:
        if c not in types:
            problem = f"key column {c!r} is not in the table"
            break
        col = t.read([c])[c]
        try:
            match_keys(col, col)
        except KeyProblem as exc:
            if given:
                problem = f"key column {c!r} {exc.args[0].replace(' in the old version', '')}"
                break
            continue
        key, source = c, "config" if given else "detected"
        break
    return {
        "format": t.format,
        "rows": t.num_rows,
        "columns": [{"name": f.name, "type": str(f.type)} for f in t.schema],
        "key": key,
        "key_source": source,
        "label": label if label in types else None,
        "split": split if split in types else None,
        "label_source": ("config" if configured else "detected") if label in types else None,
        "problem": problem,
    }


def safe_diff_table(
    path: str,
    old: TableFile | None,
    new: TableFile | None,
    opts: TableOptions,
    warn: Callable[[str], None],
) -> TableDiff | None:
    """:func:`diff_table`, or None (with a warning) when the table cannot be diffed."""
    try:
        return diff_table(path, old, new, opts)
    except KeyProblem as exc:
        warn(f"{path}: {exc}; showing a file-level change")
    except arrow_errors() as exc:
        warn(f"{path}: cannot diff rows ({reason(exc)}); showing a file-level change")
    return None
