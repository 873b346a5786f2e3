"""Encodings of the objects in the store: chunk lists, trees, commits, tags.

Every encoding is deterministic (the same value always gives the same bytes,
hence the same id) and every decoder treats its input as untrusted: it either
returns a valid value or raises :class:`~dsv.errors.FormatError`.  The byte
layouts are specified in docs/format.md; each carries a format version that
decoders check.
"""

from __future__ import annotations

import json
import re
import struct
from enum import IntEnum
from typing import Any

from dsv.errors import FormatError, UnsafePathError, UnsupportedFormatError
from dsv.records import Record

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


class TreeEntry(Record):
    """One name in a directory.

    ``size`` is the content length for files and symlinks (the link target's
    length) and the total size of all files below for directories.  ``mode``
    holds the permission bits (``0o7777`` mask).  Treat as immutable.
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


def encode_tree(entries: list[TreeEntry]) -> bytes:
    """Encode entries (sorted here by the UTF-8 bytes of their names)."""
    keyed = sorted(((name_bytes(e.name), e) for e in entries), key=lambda t: t[0])
    out = bytearray(_TREE_HEADER.pack(TREE_MAGIC, TREE_VERSION, len(keyed)))
    prev = None
    for raw, e in keyed:
        check_name(e.name)
        if raw == prev:
            raise ValueError(f"duplicate name in tree: {e.name!r}")
        prev = raw
        out += _ENTRY_FIXED.pack(int(e.kind), e.mode, e.size)
        out += e.id
        out += _NAME_LEN.pack(len(raw))
        out += raw
    return bytes(out)


def decode_tree(data: bytes | memoryview, digest_size: int) -> list[TreeEntry]:
    mv = memoryview(data)
    if len(mv) < _TREE_HEADER.size:
        raise FormatError("tree: truncated header")
    magic, version, count = _TREE_HEADER.unpack_from(mv, 0)
    if magic != TREE_MAGIC:
        raise FormatError("not a tree object (bad magic)")
    if version != TREE_VERSION:
        raise UnsupportedFormatError(f"tree: unknown format version {version}")
    min_entry = _ENTRY_FIXED.size + digest_size + _NAME_LEN.size + 1
    if count * min_entry > len(mv) - _TREE_HEADER.size:
        raise FormatError("tree: entry count larger than the data")
    pos = _TREE_HEADER.size
    entries: list[TreeEntry] = []
    prev = b""
    fixed = _ENTRY_FIXED.size
    for _ in range(count):
        if pos + fixed + digest_size + 2 > len(mv):
            raise FormatError("tree: truncated entry")
        kind, mode, size = _ENTRY_FIXED.unpack_from(mv, pos)
        pos += fixed
        oid = bytes(mv[pos : pos + digest_size])
        pos += digest_size
        (nlen,) = _NAME_LEN.unpack_from(mv, pos)
        pos += 2
        if nlen == 0 or nlen > MAX_NAME or pos + nlen > len(mv):
            raise FormatError("tree: bad name length")
        raw = bytes(mv[pos : pos + nlen])
        pos += nlen
        if raw <= prev:
            raise FormatError("tree: names not sorted or duplicated")
        prev = raw
        try:
            k = Kind(kind)
        except ValueError:
            raise FormatError(f"tree: unknown entry kind {kind}") from None
        if mode > 0o7777:
            raise FormatError(f"tree: bad mode {mode:o}")
        name = raw.decode("utf-8", "surrogateescape")
        check_name(name)
        entries.append(TreeEntry(name, k, mode, size, oid))
    if pos != len(mv):
        raise FormatError("tree: trailing bytes after the last entry")
    return entries


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
