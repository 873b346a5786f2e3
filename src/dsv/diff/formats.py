"""Which files are tables, and reading them with pyarrow.

A file is read as a table only when its extension names a table format *and*
its first bytes agree (Parquet and Arrow magic numbers; for text formats:
UTF-8 without NUL bytes, and ``{`` first for JSON Lines).  A PNG renamed to
``.csv`` is therefore never parsed.

pyarrow is imported inside the functions that need it: ``dsv status`` and
``dsv log`` must not pay its import time.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, BinaryIO

from dsv.diff.source import Source
from dsv.errors import DsvError
from dsv.objects import Kind, TreeEntry

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FORMATS", "TableError", "TableFile", "table_format"]

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}
TEXT_FORMATS = frozenset({"csv", "tsv", "jsonl"})
# read whole into memory by a diff (Arrow files from the store; on disk they are mapped)
WHOLE_FORMATS = TEXT_FORMATS | {"arrow"}
# Text tables are parsed whole; larger ones get a file-level diff (config diff.max-text-table).
DEFAULT_MAX_TEXT_BYTES = 1 << 30
# Peak memory of a row diff, as measured (docs/diff.md, "Speed and memory"): a
# text table parsed whole takes about this many times its size (the bytes read,
# then the columns); a Parquet table about this many bytes per row (key column,
# its numpy copy, the row match, label and split codes and their counts) plus
# one column pair read whole.
TEXT_MEMORY_FACTOR = 3
PARQUET_ROW_MEMORY = 56
_SNIFF = 64 << 10


class TableError(Exception):
    """A file that cannot be read as a table (the diff falls back to the file level)."""


# Every name ``table_format`` accepts has a match here (in NUL-separated names;
# it matches a few more, e.g. ".csv", which table_format then refuses).
TABLE_NAMES = re.compile(
    "(?:" + "|".join(re.escape(ext) for ext in FORMATS) + r")(?=\0|\Z)", re.IGNORECASE
)


def table_format(path: str, entry: TreeEntry | None = None) -> str | None:
    """The table format named by ``path``'s extension (None: not a table)."""
    if entry is not None and entry.kind != Kind.FILE:
        return None
    name = path.rpartition("/")[2].lower()
    dot = name.rfind(".")
    if dot <= 0:
        return None
    return FORMATS.get(name[dot:])


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sample is fine
        return exc.start >= len(head) - 3 and len(head) == _SNIFF
    return True


def sniff(fmt: str, head: bytes, tail: bytes, size: int) -> str | None:
    """Why the bytes are not a ``fmt`` table (None: they look like one)."""
    if fmt == "parquet":
        if size < 12 or head[:4] != b"PAR1" or tail[-4:] != b"PAR1":
            return "no Parquet magic bytes"
        return None
    if fmt == "arrow":
        if head[:6] == b"ARROW1" or head[:4] in (b"FEA1", b"\xff\xff\xff\xff"):
            return None
        return "no Arrow IPC magic bytes"
    if not _looks_like_text(head):
        return "binary content"
    if fmt == "jsonl":
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if text and text[:1] != b"{":
            return "does not start with a JSON object"
    return None


def _pa() -> Any:
    import pyarrow

    return pyarrow


def arrow_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "pyarrow could not read or compare this"."""
    pa = _pa()
    return (pa.ArrowException, OSError, ValueError, TypeError, UnicodeDecodeError)


class TableFile:
    """One version of a table file; columns are read on demand.

    Parquet reads only the columns asked for (so a diff can go column by
    column with bounded memory); Arrow files are memory-mapped when on disk;
    text formats (CSV, TSV, JSON Lines) are parsed once, whole.
    """

    def __init__(
        self,
        path: str,
        entry: TreeEntry,
        source: Source,
        fmt: str,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    ) -> None:
        self.path = path
        self.entry = entry
        self.source = source
        self.format = fmt
        self.max_text_bytes = max_text_bytes
        self._files: list[Any] = []
        self._parquet: Any = None
        self._table: Any = None
        self._schema: Any = None
        self._raw_chunks: BinaryIO | None = None

    # ------------------------------------------------------------------ opening

    def open(self) -> TableFile:
        """Check the magic bytes and read the schema; raises :class:`TableError`."""
        try:
            self._open()
        except TableError:
            self.close()
            raise
        except DsvError:
            self.close()
            raise
        except arrow_errors() as exc:
            self.close()
            raise TableError(reason(exc)) from None
        return self

    def _raw(self) -> BinaryIO:
        f = self.source.open(self.path, self.entry)
        self._files.append(f)
        return f

    def _open(self) -> None:
        size = self.entry.size
        f = self._raw()
        head = f.read(_SNIFF)
        tail = b""
        if size >= 4:
            f.seek(max(0, size - 4))
            tail = f.read(4)
        f.seek(0)
        why = sniff(self.format, head, tail, size)
        if why is not None:
            raise TableError(f"not a {self.format} table ({why})")
        if self.format in TEXT_FORMATS and size > self.max_text_bytes:
            raise TableError(
                f"{size:,} bytes of {self.format} is more than the text-table limit"
                f" ({self.max_text_bytes:,}; config diff.max-text-table)"
            )
        pa = _pa()
        local = self.source.local_path(self.path, self.entry)
        if self.format == "parquet":
            import pyarrow.parquet as pq

            self._parquet = pq.ParquetFile(local if local else f, memory_map=bool(local))
            self._schema = self._parquet.schema_arrow
        elif self.format == "arrow":
            self._table = self._read_arrow(pa, local, f)
            self._schema = self._table.schema
        else:
            self._table = self._read_text(f)
            self._schema = self._table.schema

    def _read_arrow(self, pa: Any, local: str | None, f: BinaryIO) -> Any:
        src: Any = pa.memory_map(local) if local else f
        if local:
            self._files.append(src)
        head = f.read(8)
        f.seek(0)
        if head[:4] == b"FEA1":
            import pyarrow.feather as feather

            return feather.read_table(src)
        if head[:6] == b"ARROW1":
            return pa.ipc.open_file(src).read_all()
        return pa.ipc.open_stream(src).read_all()

    def _read_text(self, f: BinaryIO) -> Any:
        pa = _pa()
        if self.format == "jsonl":
            import pyarrow.json as pajson

            return pajson.read_json(f)
        import pyarrow.csv as pacsv

        parse = pacsv.ParseOptions(delimiter="\t" if self.format == "tsv" else ",")
        try:
            return pacsv.read_csv(f, parse_options=parse)
        except pa.ArrowInvalid as exc:
            if "conversion error" not in str(exc).lower():
                raise
        # A column changed type after the first block (e.g. ids that turn into
        # text): read every column as text instead.
        f.seek(0)
        names = pacsv.open_csv(f, parse_options=parse).schema.names
        f.seek(0)
        conv = pacsv.ConvertOptions(column_types={n: pa.string() for n in names})
        return pacsv.read_csv(f, parse_options=parse, convert_options=conv)

    def close(self) -> None:
        for f in self._files:
            with contextlib.suppress(Exception):
                f.close()
        self._files = []
        self._parquet = None
        self._table = None
        self._raw_chunks = None

    def __enter__(self) -> TableFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    @property
    def num_rows(self) -> int:
        if self._parquet is not None:
            return int(self._parquet.metadata.num_rows)
        return int(self._table.num_rows)

    def read(self, columns: list[str], dictionary: tuple[str, ...] = ()) -> pa.Table:
        """The given columns, as a table.

        Parquet columns named in ``dictionary`` (text labels, splits) are read
        as dictionaries, as Parquet mostly stores such columns: no string is
        built per row (label and split of 5M rows: 0.03 s instead of 0.25 s).
        Other formats ignore it.
        """
        if self._parquet is None:
            return self._table.select(columns)
        want = [c for c in columns if c in dictionary]
        if not want:
            return self._parquet.read(columns=columns, use_threads=True)
        import pyarrow.parquet as pq

        # ParquetFile takes read_dictionary when it opens, not per read
        local = self.source.local_path(self.path, self.entry)
        src = local if local else self._raw()
        reader = pq.ParquetFile(src, memory_map=bool(local), read_dictionary=want)
        self._files.append(reader)  # closed with the others
        return reader.read(columns=columns, use_threads=True)

    # ------------------------------------------------------------------ Parquet row groups

    def row_group_rows(self) -> list[int] | None:
        """Rows per row group (None: not Parquet)."""
        if self._parquet is None:
            return None
        md = self._parquet.metadata
        return [md.row_group(i).num_rows for i in range(md.num_row_groups)]

    def read_row_group(self, i: int, columns: list[str]) -> pa.Table:
        return self._parquet.read_row_group(i, columns=columns, use_threads=False)

    def chunk_bytes(self, i: int, name: str) -> tuple[str, bytes] | None:
        """The stored bytes (and codec) of column ``name`` in row group ``i``.

        Equal bytes (same codec, same column type) mean equal values: a diff can
        skip decoding them.  None when the column is not one leaf column.
        """
        if self._parquet is None:
            return None
        leaves = [
            j
            for j in range(len(self._parquet.schema))
            if self._parquet.schema.column(j).path == name
        ]
        if len(leaves) != 1 or "." in name:
            return None
        col = self._parquet.metadata.row_group(i).column(leaves[0])
        start = col.data_page_offset
        if col.has_dictionary_page and col.dictionary_page_offset:
            start = min(start, col.dictionary_page_offset)
        if self._raw_chunks is None:
            self._raw_chunks = self._raw()
        self._raw_chunks.seek(start)
        return str(col.compression), self._raw_chunks.read(col.total_compressed_size)

    def chunk_size(self, i: int, name: str) -> int | None:
        """Stored size of column ``name`` in row group ``i`` (from the footer; no read)."""
        if self._parquet is None:
            return None
        md = self._parquet.metadata.row_group(i)
        for j in range(md.num_columns):
            c = md.column(j)
            if c.path_in_schema == name:
                return int(c.total_compressed_size)
        return None

    def diff_memory(self) -> int:
        """Bytes a row diff is expected to hold for this version (see ``PARQUET_ROW_MEMORY``).

        From the Parquet footer alone (rows, uncompressed column sizes): nothing
        is read.  Text and Arrow tables are already in memory: their estimate is
        :func:`text_memory`, judged before they are parsed.
        """
        if self._parquet is None:
            return 0
        md = self._parquet.metadata
        widest: dict[str, int] = {}
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            for j in range(rg.num_columns):
                c = rg.column(j)
                widest[c.path_in_schema] = widest.get(c.path_in_schema, 0) + int(
                    c.total_uncompressed_size
                )
        return PARQUET_ROW_MEMORY * int(md.num_rows) + max(widest.values(), default=0)

    @property
    def in_memory(self) -> bool:
        """Whether the whole table is already parsed (text formats and Arrow)."""
        return self._parquet is None


def text_memory(size: int) -> int:
    """Bytes a text table of ``size`` bytes is expected to take once read and parsed."""
    return TEXT_MEMORY_FACTOR * size


def reason(exc: BaseException) -> str:
    """A one-line reason from a pyarrow error, for warnings."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]


def open_table(
    path: str, entry: TreeEntry, source: Source, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
) -> TableFile:
    fmt = table_format(path, entry)
    if fmt is None:
        raise TableError("not a table format")
    return TableFile(path, entry, source, fmt, max_text_bytes).open()
