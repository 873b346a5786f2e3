"""Encodings of the objects in the store: chunk lists, trees, commits, tags.

Every encoding is deterministic (the same value always gives the same bytes,
hence the same id) and every decoder treats its input as untrusted: it either
returns a valid value or raises :class:`~dsv.errors.FormatError`.  The byte
layouts are specified in docs/format.md; each carries a format version that
decoders check.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from enum import IntEnum

from dsv.errors import FormatError, UnsafePathError, UnsupportedFormatError
from dsv.records import Record

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from array import array
    from typing import Any

# --------------------------------------------------------------------------- chunk lists

CHUNKLIST_VERSION = 1
_CL_HEADER = struct.Struct("<B3xIQ")  # version, count, total length
_CL_LEN = struct.Struct("<I")
# A chunk list names the chunks of one large object; nesting is not allowed.
MAX_CHUNKS = 1 << 26


class ChunkList(Record):
    """The ordered chunks of an object too large to be one chunk."""

    __slots__ = ("ids", "lengths")

    def __init__(self, ids: tuple[bytes, ...], lengths: tuple[int, ...]) -> None:
        self.ids = ids
        self.lengths = lengths

    @property
    def total(self) -> int:
        return sum(self.lengths)


def encode_chunklist(ids: list[bytes], lengths: list[int]) -> bytes:
    if len(ids) != len(lengths):
        raise ValueError("ids and lengths differ in length")
    out = bytearray(_CL_HEADER.pack(CHUNKLIST_VERSION, len(ids), sum(lengths)))
    for cid, n in zip(ids, lengths):
        out += cid
        out += _CL_LEN.pack(n)
    return bytes(out)


def decode_chunklist(data: bytes | memoryview, digest_size: int, max_chunk: int) -> ChunkList:
    if len(data) < _CL_HEADER.size:
        raise FormatError("chunk list: truncated header")
    version, count, total = _CL_HEADER.unpack_from(data, 0)
    if version != CHUNKLIST_VERSION:
        raise UnsupportedFormatError(f"chunk list: unknown format version {version}")
    width = digest_size + _CL_LEN.size
    if count > MAX_CHUNKS or len(data) != _CL_HEADER.size + count * width:
        raise FormatError("chunk list: length does not match its chunk count")
    mv = memoryview(data)[_CL_HEADER.size :]
    ids = []
    lengths = []
    for i in range(count):
        off = i * width
        n = _CL_LEN.unpack_from(mv, off + digest_size)[0]
        if not 0 < n <= max_chunk:
            raise FormatError(f"chunk list: chunk {i} has invalid length {n}")
        ids.append(bytes(mv[off : off + digest_size]))
        lengths.append(n)
    if sum(lengths) != total:
        raise FormatError("chunk list: chunk lengths do not add up to the declared total")
    return ChunkList(tuple(ids), tuple(lengths))


# --------------------------------------------------------------------------- trees

TREE_MAGIC = b"DSVT"
TREE_VERSION = 1
_TREE_HEADER = struct.Struct("<4sB3xI")  # magic, version, entry count
_ENTRY_FIXED = struct.Struct("<BHQ")  # kind, mode, size
_NAME_LEN = struct.Struct("<H")
MAX_NAME = 4096


class Kind(IntEnum):
    FILE = 1
    DIR = 2
    SYMLINK = 3


KIND_NAMES = {Kind.FILE: "file", Kind.DIR: "dir", Kind.SYMLINK: "symlink"}
# Kind by its code, without the cost of an enum call (a microsecond) per entry.
KINDS = {int(k): k for k in Kind}
# The permission bits a commit records of a file and a checkout gives one: read,
# write and execute for owner, group and others.  Setuid, setgid and sticky bits
# are neither recorded nor restored (a version from anywhere must not make a
# program run as its owner); a tree may still hold them (format up to 0o7777).
MODE_BITS = 0o777


class TreeEntry(Record):
    """One name in a directory.

    ``size`` is the content length for files and symlinks (the link target's
    length) and the total size of all files below for directories.  ``mode``
    holds the permission bits (``0o7777`` mask; dsv records ``MODE_BITS``).  Treat as
    immutable.
    """

    __slots__ = ("id", "kind", "mode", "name", "size")

    def __init__(self, name: str, kind: Kind, mode: int, size: int, id: bytes) -> None:
        self.name = name
        self.kind = kind
        self.mode = mode
        self.size = size
        self.id = id

    def renamed(self, name: str) -> TreeEntry:
        return TreeEntry(name, self.kind, self.mode, self.size, self.id)


def name_bytes(name: str) -> bytes:
    # surrogateescape keeps names that are not valid UTF-8 byte-exact.
    return name.encode("utf-8", "surrogateescape")


def check_name(name: str) -> None:
    """Refuse a tree entry name that could escape or corrupt a working tree."""
    if not name or name in (".", ".."):
        raise UnsafePathError(f"unsafe name in tree: {name!r}")
    if "/" in name or "\0" in name:
        raise UnsafePathError(f"unsafe name in tree: {name!r}")
    if name == ".dsv":
        raise UnsafePathError("tree entry named .dsv (reserved)")


def _entry_struct(digest_size: int) -> struct.Struct:
    st = _ENTRY_STRUCTS.get(digest_size)
    if st is None:
        st = _ENTRY_STRUCTS[digest_size] = struct.Struct(f"<BHQ{digest_size}sH")
    return st


_ENTRY_STRUCTS: dict[int, struct.Struct] = {}


def encode_tree(entries: list[TreeEntry]) -> bytes:
    """Encode entries (sorted here by the UTF-8 bytes of their names)."""
    keyed = sorted(((name_bytes(e.name), e) for e in entries), key=lambda t: t[0])
    return encode_tree_rows([(raw, int(e.kind), e.mode, e.size, e.id) for raw, e in keyed])


def encode_tree_rows(rows: Iterable[tuple[bytes, int, int, int, bytes]]) -> bytes:
    """Encode ``(name bytes, kind, mode, size, id)`` rows already sorted by name bytes.

    The fast path of commits that build trees from their own sorted listings:
    rows may come from a generator, and nothing is made per entry but its
    bytes.  Names are checked as a decoder would check them.
    """
    out = bytearray(_TREE_HEADER.size)
    pack: Callable[..., bytes] | None = None
    prev = b""
    count = 0
    for raw, kind, mode, size, oid in rows:
        if raw <= prev:
            if raw == prev:
                raise ValueError(f"duplicate name in tree: {raw!r}")
            raise ValueError("tree rows are not sorted by name")
        if not raw or raw[0] == 46 or b"/" in raw or b"\0" in raw or len(raw) > MAX_NAME:
            check_name(raw.decode("utf-8", "surrogateescape"))
            if len(raw) > MAX_NAME:
                raise ValueError("tree entry name too long")
        if pack is None:
            pack = _entry_struct(len(oid)).pack
        prev = raw
        out += pack(kind, mode, size, oid, len(raw))
        out += raw
        count += 1
    _TREE_HEADER.pack_into(out, 0, TREE_MAGIC, TREE_VERSION, count)
    return bytes(out)


def encode_tree_files(
    names: list[str], perms: Iterable[int], sizes: Iterable[int], ids: bytes, digest_size: int
) -> bytes | None:
    """``encode_tree_rows`` of regular files only, given as columns (names sorted as
    trees are, their permission bits, sizes and ids joined), with no Python work per
    entry: the bulk of a commit of a new directory of many files.  None when a name
    needs the per-entry checks (a leading dot, a slash, too long); the caller then
    encodes rows."""
    joined = "\0".join(names).encode("utf-8", "surrogateescape")
    raws = joined.split(b"\0")
    if (
        not names
        or len(raws) != len(names)  # a NUL in a name
        or len(ids) != len(raws) * digest_size
        or b"/" in joined
        or joined.startswith(b".")
        or b"\0." in joined
    ):
        return None
    lens = list(map(len, raws))
    if not 0 < min(lens) <= max(lens) <= MAX_NAME:
        return None
    # strictly increasing: sorted and without a duplicate
    if not all(map(bytes.__lt__, raws, itertools.islice(raws, 1, None))):
        return None
    entry = f"BHQ{digest_size}sH{{}}s".format
    oids = itertools.chain.from_iterable(struct.iter_unpack(f"{digest_size}s", ids))
    rows = zip(itertools.repeat(int(Kind.FILE)), perms, sizes, oids, lens, raws)
    out = [_TREE_HEADER.pack(TREE_MAGIC, TREE_VERSION, len(raws))]
    for k in range(0, len(raws), _ENCODE_BATCH):  # a struct of bounded size at a time
        part = lens[k : k + _ENCODE_BATCH]
        if part[0] == max(part) == min(part):  # names of one length (numbered files)
            fmt = struct.Struct("<" + entry(part[0]) * len(part))
        else:
            fmt = struct.Struct("<" + "".join(map(entry, part)))
        out.append(fmt.pack(*itertools.chain.from_iterable(itertools.islice(rows, len(part)))))
    return b"".join(out)


_ENCODE_BATCH = 4096


def patch_tree(
    data: bytes, digest_size: int, edits: list[tuple[int, bytes, int, int, int, bytes]]
) -> bytes | None:
    """``data`` (an encoded tree) with some entries' kind, mode, size and id replaced.

    Each edit is ``(offset of the entry, its name bytes, kind, mode, size, id)``.
    The names stay, so the result is what encoding the new rows would give,
    without a pass over the other entries.  None when an offset does not hold
    that name (the caller encodes the tree anew).
    """
    out = bytearray(data)
    st = _entry_struct(digest_size)
    for off, raw, kind, mode, size, oid in edits:
        p = off + _ENTRY_FIXED.size + digest_size
        if off < _TREE_HEADER.size or p + 2 + len(raw) > len(out):
            return None
        if out[p : p + 2] != _NAME_LEN.pack(len(raw)) or out[p + 2 : p + 2 + len(raw)] != raw:
            return None
        st.pack_into(out, off, kind, mode, size, oid, len(raw))
    return bytes(out)


class TreeTable:
    """A tree read in place: validated once, entries decoded only when asked for.

    Decoding a tree into one object per entry costs about a microsecond and
    200 bytes an entry, which dominates for directories of millions of files.
    This keeps the encoded bytes and the offset of each entry (4 bytes), so a
    lookup is a binary search and a walk that needs only kinds and ids never
    builds names.
    """

    __slots__ = ("_data", "_ds", "_offs")

    def __init__(self, data: bytes | memoryview, digest_size: int) -> None:
        buf = data if isinstance(data, bytes) else bytes(data)
        if len(buf) < _TREE_HEADER.size:
            raise FormatError("tree: truncated header")
        magic, version, count = _TREE_HEADER.unpack_from(buf, 0)
        if magic != TREE_MAGIC:
            raise FormatError("not a tree object (bad magic)")
        if version != TREE_VERSION:
            raise UnsupportedFormatError(f"tree: unknown format version {version}")
        fixed = _ENTRY_FIXED.size + digest_size
        if count * (fixed + _NAME_LEN.size + 1) > len(buf) - _TREE_HEADER.size:
            raise FormatError("tree: entry count larger than the data")
        # Offsets first, then every check over a batch of entries at a time in C (map, join,
        # comparisons); the walk entry by entry runs only to say what is wrong.
        offs = _tree_offsets(buf, count, fixed)
        if offs is None or not _tree_entries_valid(buf, offs, fixed):
            offs = _tree_offsets_checked(buf, count, fixed)
        self._data = buf
        self._ds = digest_size
        self._offs = offs

    def __len__(self) -> int:
        return len(self._offs)

    @property
    def nbytes(self) -> int:
        """Memory held: the encoded tree and 4 bytes an entry."""
        return len(self._data) + 4 * len(self._offs)

    def raw_name(self, i: int) -> bytes:
        p = self._offs[i] + _ENTRY_FIXED.size + self._ds
        d = self._data
        return d[p + 2 : p + 2 + (d[p] | d[p + 1] << 8)]

    def name(self, i: int) -> str:
        return self.raw_name(i).decode("utf-8", "surrogateescape")

    def kind(self, i: int) -> int:
        return self._data[self._offs[i]]

    def id(self, i: int) -> bytes:
        p = self._offs[i] + _ENTRY_FIXED.size
        return self._data[p : p + self._ds]

    def row(self, i: int) -> tuple[str, int, int, int, bytes]:
        """``(name, kind, mode, size, id)`` of entry ``i``."""
        kind, mode, size, oid, nlen = _entry_struct(self._ds).unpack_from(self._data, self._offs[i])
        p = self._offs[i] + _ENTRY_FIXED.size + self._ds + 2
        return self._data[p : p + nlen].decode("utf-8", "surrogateescape"), kind, mode, size, oid

    def entry(self, i: int) -> TreeEntry:
        name, kind, mode, size, oid = self.row(i)
        return TreeEntry(name, KINDS[kind], mode, size, oid)

    def rows(self) -> Iterator[tuple[str, int, int, int, bytes]]:
        unpack = _entry_struct(self._ds).unpack_from
        d = self._data
        skip = _ENTRY_FIXED.size + self._ds + 2
        for off in self._offs:
            kind, mode, size, oid, nlen = unpack(d, off)
            p = off + skip
            yield d[p : p + nlen].decode("utf-8", "surrogateescape"), kind, mode, size, oid

    def kinds_and_ids(self) -> Iterator[tuple[int, bytes]]:
        d = self._data
        ds = self._ds
        fixed = _ENTRY_FIXED.size
        for off in self._offs:
            yield d[off], d[off + fixed : off + fixed + ds]

    def names_and_kinds(self) -> Iterator[tuple[str, int]]:
        d = self._data
        skip = _ENTRY_FIXED.size + self._ds + 2
        for off in self._offs:
            p = off + skip
            yield d[p : p + (d[p - 2] | d[p - 1] << 8)].decode("utf-8", "surrogateescape"), d[off]

    def entries(self) -> list[TreeEntry]:
        return [TreeEntry(n, KINDS[k], m, s, i) for n, k, m, s, i in self.rows()]

    def find(self, name: str) -> int:
        """Index of the entry called ``name`` (binary search), or -1."""
        key = name_bytes(name)
        lo, hi = 0, len(self._offs)
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.raw_name(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(self._offs) and self.raw_name(lo) == key else -1


# Entries checked together by _tree_entries_valid (bounds the names held at a time).
_CHECK_BATCH = 1 << 16


def _tree_offsets(buf: bytes, count: int, fixed: int) -> array[int] | None:
    """Where each of a tree's ``count`` entries starts, following the name lengths only;
    None if they do not end exactly at the end of the data."""
    from array import array

    n = len(buf)
    head = _TREE_HEADER.size
    if count == 0:
        return array("I") if n == head else None
    # names of one length throughout (numbered files): every entry the same size
    first = buf[head + fixed] | buf[head + fixed + 1] << 8
    stride = fixed + 2 + first
    if stride * count == n - head:
        lo, hi = first & 0xFF, first >> 8
        if (
            buf[head + fixed :: stride] == bytes((lo,)) * count
            and buf[head + fixed + 1 :: stride] == bytes((hi,)) * count
        ):
            return array("I", range(head, n, stride))
    offs = array("I")
    add = offs.append
    pos = head
    step = fixed + 2
    try:
        for _ in range(count):
            add(pos)
            pos += step + (buf[pos + fixed] | buf[pos + fixed + 1] << 8)
    except IndexError:
        return None
    return offs if pos == n else None


def _tree_entries_valid(buf: bytes, offs: array[int], fixed: int) -> bool:
    """Whether the entries at ``offs`` pass every check of _tree_offsets_checked, judged a batch
    at a time: one struct unpacks the kind, the mode's high byte and the name of each entry of a
    batch. An unsafe name starting with a dot raises UnsafePathError as that would."""
    from array import array

    n = len(buf)
    entry = f"BxB{fixed - 1}x{{}}s".format  # kind, mode (high byte), name
    name_len = (-fixed - 2).__add__
    prev = b""
    for k in range(0, len(offs), _CHECK_BATCH):
        part = offs[k : k + _CHECK_BATCH]
        ends = offs[k + 1 : k + _CHECK_BATCH + 1]  # each entry ends where the next starts
        if len(ends) < len(part):
            ends.append(n)
        first, end = part[0], ends[-1]
        stride = ends[0] - first
        if end - first == stride * len(part) and part == array("I", range(first, end, stride)):
            short = long = name_len(stride)  # names of one length (numbered files)
            sizes = None
        else:
            sizes = list(map(operator.sub, ends, part))
            short, long = name_len(min(sizes)), name_len(max(sizes))
        if not 0 < short <= long <= MAX_NAME:
            return False
        if sizes is None:
            fmt = "<" + entry(short) * len(part)
        else:
            piece = {size: entry(name_len(size)) for size in set(sizes)}
            fmt = "<" + "".join(map(piece.__getitem__, sizes))
        row = struct.unpack_from(fmt, buf, first)
        # kind 1..3; mode at most 0o7777 (its high byte at most 0x0f)
        if bytes(row[0::3]).translate(None, b"\x01\x02\x03") or max(row[1::3]) > 0x0F:
            return False
        names = row[2::3]
        if not prev < names[0] or not all(
            map(operator.lt, names, itertools.islice(names, 1, None))
        ):
            return False
        joined = b"\0".join(names)
        if b"/" in joined or joined.count(b"\0") != len(names) - 1:
            return False
        if joined.startswith(b".") or b"\0." in joined:  # '.', '..', '.dsv' or a fine dot-name
            for raw in names:
                if raw[0] == 46:
                    check_name(raw.decode("utf-8", "surrogateescape"))
        prev = names[-1]
    return True


def _tree_offsets_checked(buf: bytes, count: int, fixed: int) -> array[int]:
    """The entries' offsets, each entry checked in turn: the first fault raises."""
    from array import array

    offs = array("I")
    add = offs.append
    n = len(buf)
    pos = _TREE_HEADER.size
    prev = b""
    for _ in range(count):
        start = pos + fixed + 2
        if start > n:
            raise FormatError("tree: truncated entry")
        nlen = buf[start - 2] | (buf[start - 1] << 8)
        end = start + nlen
        if nlen == 0 or nlen > MAX_NAME or end > n:
            raise FormatError("tree: bad name length")
        raw = buf[start:end]
        if raw <= prev:
            raise FormatError("tree: names not sorted or duplicated")
        # kind 1..3; mode at most 0o7777 (its high byte at most 0x0f)
        if not 0 < buf[pos] < 4:
            raise FormatError(f"tree: unknown entry kind {buf[pos]}")
        if buf[pos + 2] > 0x0F:
            raise FormatError(f"tree: bad mode {buf[pos + 1] | buf[pos + 2] << 8:o}")
        if raw[0] == 46 or b"/" in raw or b"\0" in raw:  # '.', '..', '.dsv' or worse
            check_name(raw.decode("utf-8", "surrogateescape"))
        prev = raw
        add(pos)
        pos = end
    if pos != n:
        raise FormatError("tree: trailing bytes after the last entry")
    return offs


def decode_tree(data: bytes | memoryview, digest_size: int) -> list[TreeEntry]:
    return TreeTable(data, digest_size).entries()


# --------------------------------------------------------------------------- commits and tags

OBJECT_FORMAT = 1
MAX_JSON_OBJECT = 64 << 20


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _load_json(data: bytes | memoryview, what: str) -> dict[str, Any]:
    if len(data) > MAX_JSON_OBJECT:
        raise FormatError(f"{what}: object too large")
    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError(f"{what}: not valid JSON") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{what}: not a JSON object")
    fmt = obj.get("format")
    if fmt != OBJECT_FORMAT:
        raise UnsupportedFormatError(f"{what}: unknown format version {fmt!r}")
    return obj


_HEX_ID = re.compile(r"[0-9a-f]+")


def _hexid(value: object, digest_size: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != digest_size * 2 or not _HEX_ID.fullmatch(value):
        raise FormatError(f"{what}: bad object id {str(value)[:80]!r}")
    return bytes.fromhex(value)


def _typed(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
        raise FormatError(f"{what}: field {key!r} missing or of the wrong type")
    return value


class Commit(Record):
    """A dataset version: a root tree, its parents and what changed.

    ``time`` is in seconds since the epoch (UTC), ``tz`` the author's UTC
    offset in minutes.
    """

    __slots__ = ("author", "message", "meta", "parents", "summary", "time", "tree", "tz")

    def __init__(
        self,
        tree: bytes,
        parents: tuple[bytes, ...],
        author: str,
        time: int,
        tz: int,
        message: str,
        summary: dict[str, Any] | None = None,
        meta: dict[str, str] | None = None,
    ) -> None:
        self.tree = tree
        self.parents = parents
        self.author = author
        self.time = time
        self.tz = tz
        self.message = message
        self.summary: dict[str, Any] = summary if summary is not None else {}
        self.meta: dict[str, str] = meta if meta is not None else {}

    def encode(self) -> bytes:
        return _canonical(
            {
                "type": "commit",
                "format": OBJECT_FORMAT,
                "tree": self.tree.hex(),
                "parents": [p.hex() for p in self.parents],
                "author": self.author,
                "time": self.time,
                "tz": self.tz,
                "message": self.message,
                "summary": self.summary,
                "meta": self.meta,
            }
        )


class Tag(Record):
    """An annotated tag: a name and message attached to an object."""

    __slots__ = ("message", "name", "object", "tagger", "time", "tz")

    def __init__(
        self,
        object: bytes,
        name: str,
        tagger: str,
        time: int,
        tz: int,
        message: str,
    ) -> None:
        self.object = object
        self.name = name
        self.tagger = tagger
        self.time = time
        self.tz = tz
        self.message = message

    def encode(self) -> bytes:
        return _canonical(
            {
                "type": "tag",
                "format": OBJECT_FORMAT,
                "object": self.object.hex(),
                "name": self.name,
                "tagger": self.tagger,
                "time": self.time,
                "tz": self.tz,
                "message": self.message,
            }
        )


def decode_object(data: bytes | memoryview, digest_size: int) -> Commit | Tag:
    """Decode a commit or a tag object."""
    obj = _load_json(data, "object")
    typ = obj.get("type")
    if typ == "commit":
        return _decode_commit(obj, digest_size)
    if typ == "tag":
        return _decode_tag(obj, digest_size)
    raise FormatError(f"unknown object type {typ!r}")


def decode_commit(data: bytes | memoryview, digest_size: int) -> Commit:
    obj = decode_object(data, digest_size)
    if not isinstance(obj, Commit):
        raise FormatError("object is a tag, not a commit")
    return obj


def _decode_commit(obj: dict[str, Any], ds: int) -> Commit:
    w = "commit"
    parents = _typed(obj, "parents", list, w)
    summary = obj.get("summary", {})
    meta = obj.get("meta", {})
    if not isinstance(summary, dict) or not isinstance(meta, dict):
        raise FormatError("commit: summary and meta must be objects")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise FormatError("commit: meta values must be strings")
    return Commit(
        tree=_hexid(obj.get("tree"), ds, w),
        parents=tuple(_hexid(p, ds, w) for p in parents),
        author=_typed(obj, "author", str, w),
        time=_typed(obj, "time", int, w),
        tz=_typed(obj, "tz", int, w),
        message=_typed(obj, "message", str, w),
        summary=summary,
        meta=meta,
    )


def _decode_tag(obj: dict[str, Any], ds: int) -> Tag:
    w = "tag"
    return Tag(
        object=_hexid(obj.get("object"), ds, w),
        name=_typed(obj, "name", str, w),
        tagger=_typed(obj, "tagger", str, w),
        time=_typed(obj, "time", int, w),
        tz=_typed(obj, "tz", int, w),
        message=_typed(obj, "message", str, w),
    )
