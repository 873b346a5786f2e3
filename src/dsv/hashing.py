"""Digest functions for object ids.

An id is the digest of an object's bytes.  The algorithm is chosen at
``dsv init`` and recorded in the repository config: ``xxh3-128`` (fast,
detects accidental corruption) or ``blake3`` (cryptographic, for stores shared
with writers that are not trusted).  See docs/security.md.

Structural checksums (pack and index trailers) always use xxh3-128: they guard
against torn or flipped bytes, not against an adversary, whose reach is
bounded by the per-object ids.
"""

from __future__ import annotations

from collections.abc import Callable

import xxhash

from dsv.errors import UnsupportedFormatError

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Hasher(Protocol):
        def update(self, data: bytes | bytearray | memoryview, /) -> object: ...

        def digest(self) -> bytes: ...


class HashAlgo:
    """A named digest function with a fixed digest size."""

    __slots__ = ("digest", "digest_size", "name", "new")

    def __init__(
        self,
        name: str,
        digest_size: int,
        new: Callable[[], Hasher],
        digest: Callable[[bytes | bytearray | memoryview], bytes],
    ) -> None:
        self.name = name
        self.digest_size = digest_size
        self.new = new
        self.digest = digest

    def __repr__(self) -> str:
        return f"HashAlgo({self.name!r})"

    @property
    def hex_size(self) -> int:
        return self.digest_size * 2


def _blake3_new() -> Hasher:
    import blake3

    return blake3.blake3()


def _blake3_digest(data: bytes | bytearray | memoryview) -> bytes:
    import blake3

    return blake3.blake3(data).digest()


XXH3_128 = HashAlgo("xxh3-128", 16, xxhash.xxh3_128, xxhash.xxh3_128_digest)
BLAKE3 = HashAlgo("blake3", 32, _blake3_new, _blake3_digest)

ALGORITHMS: dict[str, HashAlgo] = {a.name: a for a in (XXH3_128, BLAKE3)}

# One-byte codes used inside binary formats (pack, index, stat cache headers).
ALGO_CODES: dict[str, int] = {"xxh3-128": 1, "blake3": 2}
ALGO_BY_CODE: dict[int, HashAlgo] = {code: ALGORITHMS[name] for name, code in ALGO_CODES.items()}


def get_algo(name: str) -> HashAlgo:
    try:
        return ALGORITHMS[name]
    except KeyError:
        known = ", ".join(sorted(ALGORITHMS))
        raise UnsupportedFormatError(f"unknown hash algorithm {name!r} (known: {known})") from None


def algo_from_code(code: int) -> HashAlgo:
    try:
        return ALGO_BY_CODE[code]
    except KeyError:
        raise UnsupportedFormatError(f"unknown hash algorithm code {code}") from None


def checksum(data: bytes | memoryview) -> bytes:
    """Structural checksum (xxh3-128) for pack and index trailers."""
    return xxhash.xxh3_128_digest(data)


def checksum_hasher() -> Hasher:
    return xxhash.xxh3_128()
