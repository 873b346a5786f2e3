"""Object encodings: round trips, determinism, and decoders on untrusted bytes."""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dsv import objects
from dsv.errors import (
    CorruptObjectError,
    DsvError,
    FormatError,
    UnsafePathError,
    UnsupportedFormatError,
)
from dsv.objects import (
    MAX_NAME,
    TREE_MAGIC,
    TREE_VERSION,
    ChunkList,
    Commit,
    Kind,
    Tag,
    TreeEntry,
    TreeTable,
    _tree_offsets_checked,
    decode_chunklist,
    decode_commit,
    decode_object,
    decode_tree,
    encode_chunklist,
    encode_tree,
    encode_tree_files,
    encode_tree_rows,
    name_bytes,
)

DIGEST_SIZES = (16, 32)  # xxh3-128 and blake3
MAX_CHUNK = 1 << 20
# The exceptions a decoder may raise on bad input: all DsvErrors, all meaning "bad bytes".
DECODE_ERRORS = (FormatError, UnsupportedFormatError, CorruptObjectError)

# ------------------------------------------------------------------ strategies

UNSAFE_NAMES = {"", ".", "..", ".dsv"}
ds_st = st.sampled_from(DIGEST_SIZES)
# Valid Unicode (no surrogates), none of the characters a tree refuses.
text_name_st = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\0"),
    min_size=1,
    max_size=30,
).filter(lambda n: n not in UNSAFE_NAMES)
# Names as a filesystem gives them: any bytes, decoded with surrogateescape.
byte_name_st = (
    st.binary(min_size=1, max_size=30)
    .filter(lambda b: not any(c in b for c in b"/\\\0"))
    .map(lambda b: b.decode("utf-8", "surrogateescape"))
    .filter(lambda n: n not in UNSAFE_NAMES)
)
name_st = st.one_of(text_name_st, byte_name_st)
kind_st = st.sampled_from(list(Kind))
mode_st = st.integers(0, 0o7777)
size_st = st.integers(0, 2**64 - 1)


@st.composite
def trees(draw: st.DrawFn, ds: int | None = None) -> tuple[int, list[TreeEntry]]:
    if ds is None:
        ds = draw(ds_st)
    names = draw(st.lists(name_st, max_size=12, unique_by=name_bytes))
    entries = [
        TreeEntry(
            n,
            draw(kind_st),
            draw(mode_st),
            draw(size_st),
            draw(st.binary(min_size=ds, max_size=ds)),
        )
        for n in names
    ]
    return ds, entries


safe_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), safe_text)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(safe_text, inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def commits(draw: st.DrawFn) -> tuple[int, Commit]:
    ds = draw(ds_st)
    oid = st.binary(min_size=ds, max_size=ds)
    c = Commit(
        tree=draw(oid),
        parents=tuple(draw(st.lists(oid, max_size=3))),
        author=draw(safe_text),
        time=draw(st.integers(-(2**63), 2**63)),
        tz=draw(st.integers(-24 * 60, 24 * 60)),
        message=draw(safe_text),
        summary=draw(st.dictionaries(safe_text, json_value, max_size=5)),
        meta=draw(st.dictionaries(safe_text, safe_text, max_size=5)),
    )
    return ds, c


@st.composite
def tags(draw: st.DrawFn) -> tuple[int, Tag]:
    ds = draw(ds_st)
    t = Tag(
        object=draw(st.binary(min_size=ds, max_size=ds)),
        name=draw(safe_text),
        tagger=draw(safe_text),
        time=draw(st.integers(-(2**63), 2**63)),
        tz=draw(st.integers(-24 * 60, 24 * 60)),
        message=draw(safe_text),
    )
    return ds, t


@st.composite
def chunklists(draw: st.DrawFn) -> tuple[int, list[bytes], list[int]]:
    ds = draw(ds_st)
    n = draw(st.integers(0, 20))
    ids = draw(st.lists(st.binary(min_size=ds, max_size=ds), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(1, MAX_CHUNK), min_size=n, max_size=n))
    return ds, ids, lengths


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one byte changed, removed, inserted, or cut short."""
    how = draw(st.sampled_from(["flip", "set", "truncate", "delete", "insert"]))
    if how == "truncate" or not data:
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    i = draw(st.integers(0, len(data) - 1))
    if how == "flip":
        return data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1 :]
    if how == "set":
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    if how == "delete":
        return data[:i] + data[i + 1 :]
    return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i:]


# ------------------------------------------------------------------ helpers


def raw_tree(names: list[bytes], ds: int, *, version: int = TREE_VERSION) -> bytes:
    """A tree built by hand from the documented layout (docs/format.md), bypassing encode_tree."""
    out = bytearray(TREE_MAGIC + struct.pack("<B3xI", version, len(names)))
    for i, raw in enumerate(names):
        out += struct.pack("<BHQ", int(Kind.FILE), 0o644, i)
        out += bytes([i + 1]) * ds
        out += struct.pack("<H", len(raw)) + raw
    return bytes(out)


def check_tree_entries(entries: list[TreeEntry], ds: int) -> None:
    """What a successfully decoded tree must satisfy, whatever bytes it came from."""
    raws = [name_bytes(e.name) for e in entries]
    assert raws == sorted(raws) and len(set(raws)) == len(raws)
    for e in entries:
        assert isinstance(e.kind, Kind)
        assert 0 <= e.mode <= 0o7777
        assert 0 <= e.size < 2**64
        assert len(e.id) == ds
        assert e.name not in UNSAFE_NAMES
        assert not any(c in e.name for c in "/\\\0")


def check_decoded_object(obj: Commit | Tag, ds: int) -> None:
    if isinstance(obj, Commit):
        assert all(len(i) == ds for i in (obj.tree, *obj.parents))
        assert all(isinstance(x, str) for x in (obj.author, obj.message))
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in obj.meta.items())
    else:
        assert len(obj.object) == ds
        assert all(isinstance(x, str) for x in (obj.name, obj.tagger, obj.message))
    assert type(obj.time) is int and type(obj.tz) is int


# ------------------------------------------------------------------ trees


@settings(max_examples=100, deadline=None)
@given(tree=trees())
def test_tree_round_trip(tree: tuple[int, list[TreeEntry]]) -> None:
    ds, entries = tree
    data = encode_tree(entries)
    decoded = decode_tree(data, ds)
    assert decoded == sorted(entries, key=lambda e: name_bytes(e.name))
    assert all(isinstance(e.kind, Kind) for e in decoded)
    # Re-encoding the decoded value gives the same bytes (hence the same id).
    assert encode_tree(decoded) == data
    # Also decodes from a memoryview (the store hands those out).
    assert decode_tree(memoryview(data), ds) == decoded


@settings(max_examples=50, deadline=None)
@given(tree=trees(), perm=st.randoms(use_true_random=False))
def test_tree_encoding_ignores_entry_order(tree: tuple[int, list[TreeEntry]], perm) -> None:
    _, entries = tree
    shuffled = list(entries)
    perm.shuffle(shuffled)
    assert encode_tree(shuffled) == encode_tree(entries)


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(min_size=1, max_size=40))
def test_tree_names_from_the_filesystem_are_byte_exact(raw: bytes) -> None:
    assume(not any(c in raw for c in b"/\\\0") and raw not in (b".", b"..", b".dsv"))
    name = raw.decode("utf-8", "surrogateescape")  # what os.listdir gives for these bytes
    entry = TreeEntry(name, Kind.FILE, 0o600, 5, b"\x07" * 16)
    data = encode_tree([entry])
    assert raw in data
    (back,) = decode_tree(data, 16)
    assert back == entry
    assert name_bytes(back.name) == raw


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(
        st.one_of(
            st.binary(min_size=0, max_size=12),
            st.sampled_from([b".", b"..", b".dsv", b".hidden", b"a/b", b"x" * (MAX_NAME + 1)]),
            st.integers(0, 99).map(lambda i: b"%08d.png" % i),
        ),
        min_size=1,
        max_size=30,
    ),
    sort=st.booleans(),
    ds=st.sampled_from(DIGEST_SIZES),
    data=st.data(),
)
def test_tree_of_files_from_columns_is_the_tree_of_rows_or_none(
    names: list[bytes], sort: bool, ds: int, data: st.DataObject
) -> None:
    """The column encoder (a commit's fast path) gives the bytes the row encoder gives,
    or None where a name needs the row encoder's checks; never a tree the row encoder
    would refuse."""
    if sort:
        names = sorted(names)
    strs = [n.decode("utf-8", "surrogateescape") for n in names]
    perms = [data.draw(st.integers(0, 0o7777)) for _ in names]
    sizes = [data.draw(st.integers(0, 2**63 - 1)) for _ in names]
    ids = b"".join(data.draw(st.binary(min_size=ds, max_size=ds)) for _ in names)
    got = encode_tree_files(strs, perms, sizes, ids, ds)
    rows = [
        (n, int(Kind.FILE), p, z, ids[i * ds : (i + 1) * ds])
        for i, (n, p, z) in enumerate(zip(names, perms, sizes, strict=True))
    ]
    try:
        want = encode_tree_rows(rows)
    except (ValueError, UnsafePathError):
        want = None
    if got is None:
        # only names the row encoder checks one by one fall back to it
        assert want is None or any(
            not n or n.startswith(b".") or b"/" in n or b"\0" in n or len(n) > MAX_NAME
            for n in names
        )
    else:
        assert got == want
        assert [e.name for e in decode_tree(got, ds)] == strs


def test_tree_of_many_files_from_columns_spans_batches() -> None:
    """More files than one struct holds: the same bytes as rows, names of mixed lengths."""
    names = sorted([f"{i:05d}.png" for i in range(5000)] + [f"{i}.txt" for i in range(5000)])
    raws = [n.encode() for n in names]
    ids = b"".join(i.to_bytes(16, "little") for i in range(len(names)))
    rows = [(r, 1, 0o644, i, ids[i * 16 : (i + 1) * 16]) for i, r in enumerate(raws)]
    got = encode_tree_files(names, [0o644] * len(names), range(len(names)), ids, 16)
    assert got is not None and got == encode_tree_rows(rows)


def test_tree_sorts_by_name_bytes_not_code_points() -> None:
    # The byte 0xff (held as U+DCFF by surrogateescape) sorts after U+E000 (EE 80 80)
    # by bytes, but before it by code point.
    names = ["\udcff", "\ue000", "a", "B"]
    entries = [TreeEntry(n, Kind.FILE, 0o644, 0, bytes(16)) for n in names]
    decoded = decode_tree(encode_tree(entries), 16)
    assert [e.name for e in decoded] == sorted(names, key=name_bytes)
    assert [e.name for e in decoded] != sorted(names)


def test_tree_with_duplicate_names_is_refused_by_encoder() -> None:
    e = TreeEntry("x", Kind.FILE, 0o644, 0, bytes(16))
    with pytest.raises(ValueError):
        encode_tree([e, TreeEntry("x", Kind.DIR, 0o755, 3, b"\1" * 16)])


def test_hand_built_tree_layout_matches_decoder() -> None:
    # Guards the helper the unsafe-name tests rely on.
    entries = decode_tree(raw_tree([b"a", b"b\xff"], 32), 32)
    assert entries == [
        TreeEntry("a", Kind.FILE, 0o644, 0, b"\1" * 32),
        TreeEntry("b\udcff", Kind.FILE, 0o644, 1, b"\2" * 32),
    ]
    assert encode_tree(entries) == raw_tree([b"a", b"b\xff"], 32)


@pytest.mark.parametrize(
    "raw",
    [b".", b"..", b".dsv", b"a/b", b"/", b"../x", b"a\0b", b"\0"],
)
@pytest.mark.parametrize("ds", DIGEST_SIZES)
def test_decode_tree_rejects_unsafe_names(raw: bytes, ds: int) -> None:
    with pytest.raises(UnsafePathError):
        decode_tree(raw_tree([raw], ds), ds)
    # Also when hidden among safe names (sorted, as a valid tree is).
    with pytest.raises(UnsafePathError):
        decode_tree(raw_tree(sorted([b"\x01first", raw, b"~last"]), ds), ds)


@pytest.mark.parametrize("ds", DIGEST_SIZES)
def test_backslash_is_an_ordinary_name_character(ds: int) -> None:
    # legal in POSIX file names (as in git); only '/' and NUL separate or end names
    entries = [TreeEntry(n, Kind.FILE, 0o644, 0, b"\1" * ds) for n in ("a\\b", "\\", "..\\x")]
    assert sorted(e.name for e in decode_tree(encode_tree(entries), ds)) == sorted(
        e.name for e in entries
    )


def test_decode_tree_rejects_empty_name() -> None:
    with pytest.raises(FormatError):
        decode_tree(raw_tree([b""], 16), 16)


def test_decode_tree_rejects_unsorted_duplicate_and_overlong_names() -> None:
    with pytest.raises(FormatError):
        decode_tree(raw_tree([b"b", b"a"], 16), 16)
    with pytest.raises(FormatError):
        decode_tree(raw_tree([b"a", b"a"], 16), 16)
    assert len(decode_tree(raw_tree([b"n" * MAX_NAME], 16), 16)) == 1
    with pytest.raises(FormatError):
        decode_tree(raw_tree([b"n" * (MAX_NAME + 1)], 16), 16)


def test_decode_tree_rejects_bad_kind_mode_and_trailing_bytes() -> None:
    good = encode_tree([TreeEntry("f", Kind.FILE, 0o644, 1, bytes(16))])
    kind_at = 12  # first byte after the 12-byte header
    mode_at = kind_at + 1
    for kind in (0, 4, 255):
        bad = good[:kind_at] + bytes([kind]) + good[kind_at + 1 :]
        with pytest.raises(FormatError):
            decode_tree(bad, 16)
    bad = good[:mode_at] + struct.pack("<H", 0o10000) + good[mode_at + 2 :]
    with pytest.raises(FormatError):
        decode_tree(bad, 16)
    with pytest.raises(FormatError):
        decode_tree(good + b"\0", 16)
    # The same bytes read with the other digest size do not line up.
    with pytest.raises(FormatError):
        decode_tree(good, 32)


@pytest.mark.parametrize("version", [0, TREE_VERSION + 1, 255])
def test_decode_tree_refuses_unknown_version(version: int) -> None:
    with pytest.raises(UnsupportedFormatError):
        decode_tree(raw_tree([b"a"], 16, version=version), 16)


def _decoded_or_refused(data: bytes, ds: int) -> tuple[str, object]:
    """What decoding gives: the entries' offsets, or the error's type and message."""
    try:
        return "ok", list(TreeTable(data, ds)._offs)
    except (FormatError, UnsafePathError) as exc:
        return type(exc).__name__, str(exc)


def _walked_or_refused(data: bytes, ds: int) -> tuple[str, object]:
    """The same from the walk that checks one entry at a time."""
    count = struct.unpack_from("<I", data, 8)[0]
    try:
        return "ok", list(_tree_offsets_checked(data, count, 11 + ds))
    except (FormatError, UnsafePathError) as exc:
        return type(exc).__name__, str(exc)


_tree_names = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=3),
        st.sampled_from([b".", b"..", b".dsv", b".a", b"a/b", b"a\0b"]),
        st.integers(0, 99).map(lambda i: b"f%02d" % i),
    ),
    max_size=14,
    unique=True,
).map(sorted)


@settings(max_examples=300, deadline=None)
@given(
    names=_tree_names,
    ds=st.sampled_from(DIGEST_SIZES),
    batch=st.integers(1, 5),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
    swap=st.booleans(),
)
def test_tree_checks_in_batches_judge_as_the_walk_entry_by_entry(
    names: list[bytes], ds: int, batch: int, flips: list[tuple[int, int]], swap: bool
) -> None:
    """Decoding checks a batch of entries at a time and walks entry by entry only to name the
    fault: for any bytes (valid trees, bytes changed, two entries swapped, batches of a few
    entries so that faults fall on their edges) it accepts what the walk accepts, at the same
    offsets, and refuses the rest with the walk's error."""
    if swap and len(names) > 1:
        i = len(names) // 2
        names[i - 1], names[i] = names[i], names[i - 1]
    data = bytearray(TREE_MAGIC + struct.pack("<B3xI", TREE_VERSION, len(names)))
    for i, raw in enumerate(names):
        data += struct.pack("<BHQ", int(Kind.FILE), 0o644, i) + bytes([i % 251 + 1]) * ds
        data += struct.pack("<H", len(raw)) + raw
    for at, byte in flips:
        if len(data) > 12:
            data[12 + at % (len(data) - 12)] = byte
    old = objects._CHECK_BATCH
    objects._CHECK_BATCH = batch
    try:
        got = _decoded_or_refused(bytes(data), ds)
    finally:
        objects._CHECK_BATCH = old
    assert got == _walked_or_refused(bytes(data), ds)


@pytest.mark.parametrize("width", ["fixed", "mixed"])
def test_tree_bigger_than_a_batch(width: str) -> None:
    """A directory bigger than a batch, names of one length (the stride path) or not: decoded
    whole, and a fault in its last entries (past the first batches) is still found."""
    n = 3 * objects._CHECK_BATCH + 7
    names = [(f"f{i:07d}" if width == "fixed" else f"f{i}").encode() for i in range(n)]
    names.sort()
    rows = [(raw, 1, 0o644, i, i.to_bytes(16, "little")) for i, raw in enumerate(names)]
    data = encode_tree_rows(rows)
    table = TreeTable(data, 16)
    assert len(table) == n
    assert table.find(names[-1].decode()) == n - 1 and table.find("zz") == -1
    assert [table.name(i) for i in (0, n // 2, n - 1)] == [
        names[i].decode() for i in (0, n // 2, n - 1)
    ]
    assert _encode_unchecked(rows) == data
    # the last two entries swapped: lengths that line up, names out of order
    swapped = [*rows[:-2], rows[-1], rows[-2]]
    with pytest.raises(FormatError, match="not sorted"):
        TreeTable(_encode_unchecked(swapped), 16)


def _encode_unchecked(rows: list[tuple[bytes, int, int, int, bytes]]) -> bytes:
    """A tree in the documented layout with rows as given (in any order)."""
    out = bytearray(TREE_MAGIC + struct.pack("<B3xI", TREE_VERSION, len(rows)))
    for raw, kind, mode, size, oid in rows:
        out += struct.pack("<BHQ", kind, mode, size) + oid + struct.pack("<H", len(raw)) + raw
    return bytes(out)


@pytest.mark.parametrize("name", ["a\\b", ".", "..", ".dsv", "a/b", "a\0b"])
def test_encode_tree_never_writes_a_tree_decode_tree_refuses(name: str) -> None:
    entries = [TreeEntry(name, Kind.FILE, 0o644, 1, bytes(16))]
    try:
        data = encode_tree(entries)
    except (ValueError, DsvError):
        return  # refusing to write is fine
    assert decode_tree(data, 16) == entries


# ------------------------------------------------------------------ commits and tags


@settings(max_examples=80, deadline=None)
@given(commit=commits())
def test_commit_round_trip_and_determinism(commit: tuple[int, Commit]) -> None:
    ds, c = commit
    data = c.encode()
    assert decode_commit(data, ds) == c
    assert decode_object(memoryview(data), ds) == c
    # Dict insertion order does not change the bytes.
    reordered = Commit(
        c.tree,
        c.parents,
        c.author,
        c.time,
        c.tz,
        c.message,
        dict(reversed(list(c.summary.items()))),
        dict(reversed(list(c.meta.items()))),
    )
    assert reordered.encode() == data
    assert decode_commit(data, ds).encode() == data


@settings(max_examples=50, deadline=None)
@given(tag=tags())
def test_tag_round_trip(tag: tuple[int, Tag]) -> None:
    ds, t = tag
    data = t.encode()
    assert decode_object(data, ds) == t
    assert decode_object(data, ds).encode() == data
    with pytest.raises(FormatError):
        decode_commit(data, ds)


def test_commit_decoded_with_the_wrong_digest_size_is_refused() -> None:
    c = Commit(b"\1" * 16, (b"\2" * 16,), "a", 0, 0, "m")
    with pytest.raises(FormatError):
        decode_commit(c.encode(), 32)


def _commit_dict() -> dict[str, Any]:
    return json.loads(Commit(b"\1" * 16, (), "me", 1700000000, 60, "msg").encode())


@pytest.mark.parametrize("fmt", [0, 2, "1", None])
@pytest.mark.parametrize("typ", ["commit", "tag"])
def test_unknown_object_format_is_refused(fmt: object, typ: str) -> None:
    if typ == "commit":
        d = _commit_dict()
    else:
        d = json.loads(Tag(b"\1" * 16, "v1", "me", 1, 0, "m").encode())
    d["format"] = fmt
    with pytest.raises(UnsupportedFormatError):
        decode_object(json.dumps(d).encode(), 16)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tree", "zz" * 16),
        ("tree", "01" * 15),
        ("tree", None),
        ("parents", "01" * 16),
        ("parents", [5]),
        ("time", 1.5),
        ("time", True),
        ("tz", "0"),
        ("author", 3),
        ("message", None),
        ("meta", {"k": 1}),
        ("summary", []),
        ("type", "blob"),
    ],
)
def test_commit_with_bad_field_is_refused(field: str, value: object) -> None:
    d = _commit_dict()
    d[field] = value
    with pytest.raises(FormatError):
        decode_object(json.dumps(d).encode(), 16)


@pytest.mark.parametrize("data", [b"", b"[]", b'"x"', b"\xff\xfe", b"{", b"null", b"1"])
def test_non_object_json_is_refused(data: bytes) -> None:
    with pytest.raises(FormatError):
        decode_object(data, 16)


@pytest.mark.parametrize("field", ["tree", "parents", "object"])
def test_object_ids_with_whitespace_are_refused(field: str) -> None:
    spaced = "00 00 " + "00" * 13  # 32 characters, but only 15 bytes of hex
    assert len(spaced) == 32
    if field == "object":
        d = json.loads(Tag(b"\1" * 16, "v1", "me", 1, 0, "m").encode())
        d["object"] = spaced
    else:
        d = _commit_dict()
        d[field] = [spaced] if field == "parents" else spaced
    try:
        obj = decode_object(json.dumps(d).encode(), 16)
    except FormatError:
        return
    check_decoded_object(obj, 16)


def test_deeply_nested_json_is_refused_with_format_error() -> None:
    with pytest.raises(FormatError):
        decode_object(b"[" * 100_000, 16)


# ------------------------------------------------------------------ chunk lists


@settings(max_examples=100, deadline=None)
@given(cl=chunklists())
def test_chunklist_round_trip(cl: tuple[int, list[bytes], list[int]]) -> None:
    ds, ids, lengths = cl
    data = encode_chunklist(ids, lengths)
    assert encode_chunklist(list(ids), list(lengths)) == data
    decoded = decode_chunklist(data, ds, MAX_CHUNK)
    assert decoded == ChunkList(tuple(ids), tuple(lengths))
    assert decoded.total == sum(lengths)
    assert decode_chunklist(memoryview(data), ds, MAX_CHUNK) == decoded


def test_chunklist_refuses_bad_lengths() -> None:
    ids = [b"\1" * 16, b"\2" * 16]
    for lengths in ([0, 5], [5, MAX_CHUNK + 1]):
        with pytest.raises(FormatError):
            decode_chunklist(encode_chunklist(ids, lengths), 16, MAX_CHUNK)
    with pytest.raises(ValueError):
        encode_chunklist(ids, [1])
    # The declared total must be the sum of the lengths.
    good = bytearray(encode_chunklist(ids, [5, 6]))
    good[8:16] = struct.pack("<Q", 12)
    with pytest.raises(FormatError):
        decode_chunklist(bytes(good), 16, MAX_CHUNK)
    # Read with the other digest size, the record widths do not add up.
    with pytest.raises(FormatError):
        decode_chunklist(encode_chunklist(ids, [5, 6]), 32, MAX_CHUNK)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_chunklist_refuses_unknown_version(version: int) -> None:
    data = bytearray(encode_chunklist([b"\1" * 16], [10]))
    assert decode_chunklist(bytes(data), 16, MAX_CHUNK).lengths == (10,)
    data[0] = version
    with pytest.raises(UnsupportedFormatError):
        decode_chunklist(bytes(data), 16, MAX_CHUNK)


# ------------------------------------------------------------------ decoders on hostile bytes


def _decode_all(data: bytes, ds: int) -> None:
    """Run every decoder; each must return a valid value or raise a decode error."""
    with contextlib.suppress(DECODE_ERRORS):
        check_tree_entries(decode_tree(data, ds), ds)
    with contextlib.suppress(DECODE_ERRORS):
        cl = decode_chunklist(data, ds, MAX_CHUNK)
        assert all(len(i) == ds for i in cl.ids)
        assert all(0 < n <= MAX_CHUNK for n in cl.lengths)
    with contextlib.suppress(DECODE_ERRORS):
        check_decoded_object(decode_object(data, ds), ds)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), ds=ds_st)
def test_decoders_on_random_bytes(data: bytes, ds: int) -> None:
    _decode_all(data, ds)


@settings(max_examples=200, deadline=None)
@given(
    head=st.sampled_from(
        [TREE_MAGIC + bytes([TREE_VERSION, 0, 0, 0]), bytes([1, 0, 0, 0]), b'{"format":1,'],
    ),
    rest=st.binary(max_size=300),
    ds=ds_st,
)
def test_decoders_on_random_bytes_after_a_valid_header(head: bytes, rest: bytes, ds: int) -> None:
    _decode_all(head + rest, ds)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_decoders_on_mutated_valid_encodings(data: st.DataObject) -> None:
    which = data.draw(st.sampled_from(["tree", "commit", "tag", "chunklist"]))
    if which == "tree":
        ds, entries = data.draw(trees())
        encoded = encode_tree(entries)
    elif which == "commit":
        ds, c = data.draw(commits())
        encoded = c.encode()
    elif which == "tag":
        ds, t = data.draw(tags())
        encoded = t.encode()
    else:
        ds, ids, lengths = data.draw(chunklists())
        encoded = encode_chunklist(ids, lengths)
    _decode_all(data.draw(mutations(encoded)), ds)


@settings(max_examples=60, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(
            [
                "tree",
                "parents",
                "object",
                "author",
                "tagger",
                "name",
                "time",
                "tz",
                "message",
                "summary",
                "meta",
                "extra",
            ]
        ),
        st.one_of(
            json_value,
            st.text("0123456789abcdefABCDEF", min_size=30, max_size=66),
            st.lists(st.text("0123456789abcdef", min_size=32, max_size=32), max_size=3),
        ),
    ),
    typ=st.sampled_from(["commit", "tag", "other"]),
)
def test_decode_object_on_arbitrary_json_fields(fields: dict[str, Any], typ: str) -> None:
    doc = {**fields, "type": typ, "format": 1}
    try:
        obj = decode_object(json.dumps(doc).encode(), 16)
    except DECODE_ERRORS:
        return
    check_decoded_object(obj, 16)
