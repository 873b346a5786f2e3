"""Fuzz every decoder of untrusted bytes: it decodes, or raises dsv's own error type.

Inputs are random bytes and mutations (flipped, truncated, extended,
spliced) of valid encodings.  Anything but a ``DsvError`` (an IndexError, a
MemoryError, a RecursionError, a struct.error...) is a failure.  Used by
tests/test_fuzz.py and bench/reliability.py.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsv.chunking import ChunkParams
from dsv.config import Config
from dsv.errors import DsvError
from dsv.hashing import XXH3_128
from dsv.objects import (
    Commit,
    Kind,
    Tag,
    TreeEntry,
    decode_chunklist,
    decode_object,
    decode_tree,
    encode_chunklist,
    encode_tree,
)
from dsv.refs import Refs
from dsv.store import Store
from dsv.store.pack import PackFile, scan_pack
from dsv.worktree.scan import STAT
from dsv.worktree.statcache import StatCache

D = 16


def _samples(tmp: Path) -> dict[str, bytes]:
    """One valid encoding of every structure, to mutate."""
    tree = encode_tree(
        [
            TreeEntry("a.png", Kind.FILE, 0o644, 10, b"\1" * D),
            TreeEntry("sub", Kind.DIR, 0o755, 99, b"\2" * D),
            TreeEntry("link", Kind.SYMLINK, 0o777, 3, b"\3" * D),
        ]
    )
    commit = Commit(
        b"\4" * D, (b"\5" * D,), "A <a@b>", 1, 0, "msg", {"files": {"added": 1}}, {"k": "v"}
    )
    tag = Tag(b"\6" * D, "v1", "A <a@b>", 1, 0, "release")
    store = Store(tmp / "objects", XXH3_128, ChunkParams(min=64, avg=256, max=1024))
    store.put_bytes(os.urandom(5000))
    store.put_bytes(b"hello " * 50)
    store.flush()
    pack = next((tmp / "objects" / "pack").glob("*.pack"))
    cache = StatCache(tmp / "index", XXH3_128)
    cache.merge("", {"a": (STAT.pack(1, 2, 3, 4, 0o100644), b"\7" * D)})
    cache.merge("b", {"c": (STAT.pack(5, 6, 7, 8, 0o100755), b"\x08" * D)})
    cache.set_block("b", cache.blocks["b"].with_tree(b"\x09" * D, 5))
    cache.loose["d"] = (STAT.pack(9, 10, 11, 12, 0o100644), b"\x0a" * D)
    cache.save(10**18, 50_000_000)
    return {
        "tree": tree,
        "commit": commit.encode(),
        "tag": tag.encode(),
        "chunklist": encode_chunklist([b"\1" * D, b"\2" * D], [100, 200]),
        "pack": pack.read_bytes(),
        "idx": pack.with_suffix(".idx").read_bytes(),
        "statcache": (tmp / "index").read_bytes(),
        "config": b"[core]\nformat = 1\nhash = xxh3-128\n[chunking]\nmin = 64\navg = 256\nmax = 1024\n",
        "ref": b"00" * D + b"\n",
        "remote": json.dumps({"format": 1, "hash": "xxh3-128"}).encode(),
    }


def _decoders(tmp: Path) -> dict[str, Callable[[bytes], object]]:
    def pack(data: bytes) -> object:
        p = tmp / "fuzz.pack"
        p.write_bytes(data)
        return scan_pack(p)

    def idx(data: bytes) -> object:
        (tmp / "fz.idx").write_bytes(data)
        return PackFile(tmp / "fz.pack", XXH3_128)

    def statcache(data: bytes) -> object:
        (tmp / "fz-index").write_bytes(data)
        c = StatCache(tmp / "fz-index", XXH3_128).load()  # a cache never raises: it resets
        assert isinstance(c.blocks, dict) and isinstance(c.loose, dict)
        return c

    def config(data: bytes) -> object:
        (tmp / "fz-config").write_bytes(data)
        cfg = Config.load(tmp / "fz-config")
        return cfg.algo, cfg.chunk_params

    def ref(data: bytes) -> object:
        d = tmp / "fz-refs"
        (d / "refs" / "heads").mkdir(parents=True, exist_ok=True)
        (d / "refs" / "heads" / "main").write_bytes(data)
        (d / "HEAD").write_bytes(
            data[:40] if data.startswith(b"ref:") else b"ref: refs/heads/main\n"
        )
        r = Refs(d, D)
        return r.read("refs/heads/main"), r.head()

    def remote(data: bytes) -> object:
        from dsv.sync import Remote, RemoteConfig

        class _Probe:
            algo = XXH3_128
            dsv_dir = tmp

        class _Mem:
            url = "fuzz"

            def get(self, key: str) -> bytes:
                return data

        r = Remote(_Probe(), RemoteConfig("fz", "fuzz"), backend=_Mem())  # type: ignore[arg-type]
        r.check_format(create=False)
        return r

    return {
        "tree": lambda b: decode_tree(b, D),
        "commit": lambda b: decode_object(b, D),
        "tag": lambda b: decode_object(b, D),
        "chunklist": lambda b: decode_chunklist(b, D, 1 << 20),
        "pack": pack,
        "idx": idx,
        "statcache": statcache,
        "config": config,
        "ref": ref,
        "remote": remote,
    }


@st.composite
def _mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "extend", "splice", "set"]))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif op == "extend":
            data += draw(st.binary(max_size=64))
        elif op == "splice" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i : i + draw(st.integers(0, 8))] = draw(st.binary(max_size=8))
        elif op == "set" and len(data) >= 8:
            i = draw(st.integers(0, len(data) - 8))
            data[i : i + 8] = struct.pack(
                "<Q", draw(st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1]))
            )
    return bytes(data)


def fuzz_one(name: str, examples: int = 300) -> tuple[int, list[str]]:
    """Run ``examples`` random and mutated inputs through one decoder; returns (cases, failures)."""
    with tempfile.TemporaryDirectory(prefix="dsv-fuzz-") as d:
        return _fuzz_in(Path(d), name, examples)


def _fuzz_in(tmp: Path, name: str, examples: int) -> tuple[int, list[str]]:
    base = _samples(tmp)[name]
    decode = _decoders(tmp)[name]
    cases = [0]
    failures: list[str] = []

    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.one_of(st.binary(max_size=4096), _mutated(base)))
    def run(data: bytes) -> None:
        cases[0] += 1
        try:
            decode(data)
        except DsvError:
            pass
        except Exception as exc:  # anything else is a bug
            failures.append(f"{type(exc).__name__}: {exc} on {data[:64]!r}")

    decode(base)  # the valid sample decodes
    run()
    return cases[0], failures


NAMES = [
    "tree",
    "commit",
    "tag",
    "chunklist",
    "pack",
    "idx",
    "statcache",
    "config",
    "ref",
    "remote",
]


def run_all(examples: int = 1000) -> list[tuple[str, bool]]:
    out = []
    total = 0
    for name in NAMES:
        n, failures = fuzz_one(name, examples)
        total += n
        out.append(
            (f"{name:<10} {n:>6} cases, {len(failures)} escaped dsv's error type", not failures)
        )
    out.append((f"total      {total:>6} cases", True))
    return out
