"""Revisions and history: resolving names to commits, walking the commit graph.

Revision syntax (git's): ``HEAD``, a branch, a tag, a full or unique short id,
``refs/...``, followed by any number of ``~N`` (N-th first-parent ancestor),
``^`` / ``^N`` (N-th parent).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterator

from dsv.errors import CorruptObjectError, FormatError, NotFoundError
from dsv.objects import Commit, Tag
from dsv.refs import HEADS, REMOTES, TAGS
from dsv.repo import Repository

_SUFFIX = re.compile(r"~\d*|\^\d*")
_SUFFIXES = re.compile(r"(?:~\d*|\^\d*)+")
_HEX = re.compile(r"^[0-9a-f]{4,}$")
MIN_SHORT = 4
DEFAULT_SHORT = 10


def _peel(repo: Repository, oid: bytes, rev: str) -> bytes:
    """Follow tags to the commit they name."""
    for _ in range(16):
        obj = repo.read_object(oid)
        if isinstance(obj, Commit):
            return oid
        oid = obj.object
    raise NotFoundError(f"{rev}: tag chain too long")


def resolve_ref_name(repo: Repository, name: str) -> tuple[str, bytes] | None:
    """A branch, tag or remote-tracking ref by short or full name: (full name, id)."""
    if name in ("HEAD", "@"):
        head = repo.refs.head()
        if head.commit is None:
            return None
        return ("HEAD", head.commit)
    candidates = (
        [name]
        if name.startswith("refs/")
        else [f"refs/{name}", TAGS + name, HEADS + name, REMOTES + name]
    )
    for full in candidates:
        try:
            oid = repo.refs.read(full)
        except ValueError:
            continue
        if oid is not None:
            return full, oid
    return None


def resolve_object(repo: Repository, rev: str) -> bytes:
    """The id a revision names before peeling (a tag object stays a tag)."""
    if "~" in rev or "^" in rev:
        return resolve(repo, rev)
    hit = resolve_ref_name(repo, rev)
    if hit is not None:
        return hit[1]
    return _by_hex(repo, rev)


def _by_hex(repo: Repository, text: str) -> bytes:
    low = text.lower()
    if not _HEX.match(low) or len(low) > repo.algo.hex_size:
        raise NotFoundError(f"unknown revision: {text}")
    if len(low) == repo.algo.hex_size:
        oid = bytes.fromhex(low)
        if repo.store.has(oid):
            return oid
        raise NotFoundError(f"unknown revision: {text} (no such object)")
    prefix = bytes.fromhex(low[: len(low) // 2 * 2])
    matches = [m for m in repo.store.ids_with_prefix(prefix) if m.hex().startswith(low)]
    if len(matches) > 1:
        # chunks share the id space; only commits and tags count as revisions
        matches = [m for m in matches if _is_commit_or_tag(repo, m)]
    if not matches:
        raise NotFoundError(f"unknown revision: {text}")
    if len(matches) > 1:
        raise NotFoundError(f"short id {text} is ambiguous; give more digits")
    return matches[0]


def _is_commit_or_tag(repo: Repository, oid: bytes) -> bool:
    try:
        data = repo.store.get_bytes(oid, 1 << 20)
    except (FormatError, CorruptObjectError, NotFoundError):
        return False
    if not data.startswith(b"{"):
        return False
    try:
        repo.read_object(oid)
    except (FormatError, CorruptObjectError):
        return False
    return True


def split_rev(rev: str) -> tuple[str, list[str]]:
    """A revision's base name and its ``~N``/``^N`` suffixes, in order (git syntax)."""
    rev = rev.strip()
    if not rev:
        raise NotFoundError("empty revision")
    cut = min((i for i in (rev.find("~"), rev.find("^")) if i >= 0), default=len(rev))
    base, suffix = rev[:cut], rev[cut:]
    # ref names cannot contain ~ or ^, so everything after the first one is suffixes
    if not base or (suffix and not _SUFFIXES.fullmatch(suffix)):
        raise NotFoundError(f"bad revision syntax: {rev}")
    return base, _SUFFIX.findall(suffix)


def follow_suffixes(
    read_commit: Callable[[bytes], Commit], oid: bytes, ops: list[str], rev: str
) -> bytes:
    """Apply ``~N`` (first parents) and ``^N`` (the N-th parent) to a commit."""
    for op in ops:
        n = int(op[1:]) if len(op) > 1 else 1
        c = read_commit(oid)
        if op[0] == "~":
            for _ in range(n):
                if not c.parents:
                    raise NotFoundError(f"{rev}: history is not that deep")
                oid = c.parents[0]
                c = read_commit(oid)
        elif n:
            if n > len(c.parents):
                raise NotFoundError(f"{rev}: commit has no parent {n}")
            oid = c.parents[n - 1]
    return oid


def resolve(repo: Repository, rev: str) -> bytes:
    """The commit a revision names."""
    rev = rev.strip()
    base, ops = split_rev(rev)
    hit = resolve_ref_name(repo, base)
    if hit is None:
        if base in ("HEAD", "@"):
            raise NotFoundError("HEAD has no commits yet")
        oid = _by_hex(repo, base)
    else:
        oid = hit[1]
    try:
        oid = _peel(repo, oid, rev)
    except FormatError:
        raise NotFoundError(f"{base} does not name a commit") from None
    return follow_suffixes(repo.read_commit, oid, ops, rev)


def short_id(repo: Repository, oid: bytes, length: int = DEFAULT_SHORT) -> str:
    """The shortest prefix of at least ``length`` hex digits naming only ``oid``."""
    full = oid.hex()
    n = max(MIN_SHORT, length)
    while n < len(full):
        prefix = full[:n]
        pb = bytes.fromhex(prefix[: n // 2 * 2])
        if all(m == oid or not m.hex().startswith(prefix) for m in repo.store.ids_with_prefix(pb)):
            return prefix
        n += 2
    return full


def walk(
    repo: Repository, starts: list[bytes], limit: int | None = None
) -> Iterator[tuple[bytes, Commit]]:
    """Commits reachable from ``starts``, newest first (by commit time), each once."""
    seen: set[bytes] = set()
    heap: list[tuple[int, int, bytes, Commit]] = []
    counter = 0
    for s in starts:
        if s not in seen:
            seen.add(s)
            c = repo.read_commit(s)
            heapq.heappush(heap, (-c.time, counter, s, c))
            counter += 1
    emitted = 0
    while heap and (limit is None or emitted < limit):
        _, _, oid, c = heapq.heappop(heap)
        yield oid, c
        emitted += 1
        for p in c.parents:
            if p not in seen:
                seen.add(p)
                pc = repo.read_commit(p)
                heapq.heappush(heap, (-pc.time, counter, p, pc))
                counter += 1


def decorations(repo: Repository) -> dict[bytes, list[str]]:
    """Names pointing at each commit: HEAD, branches, tags (peeled), remote refs."""
    out: dict[bytes, list[str]] = {}
    head = repo.refs.head()
    for full, oid in repo.refs.list_refs().items():
        if full.startswith(HEADS):
            name = full[len(HEADS) :]
            if head.branch == full:
                name = f"HEAD -> {name}"
        elif full.startswith(TAGS):
            name = f"tag: {full[len(TAGS) :]}"
            try:
                oid = _peel(repo, oid, full)
            except (FormatError, NotFoundError):
                continue
        elif full.startswith(REMOTES):
            name = full[len(REMOTES) :]
        else:
            continue
        out.setdefault(oid, []).append(name)
    if head.branch is None and head.commit is not None:
        out.setdefault(head.commit, []).insert(0, "HEAD")
    return out


def read_tag(repo: Repository, oid: bytes) -> Tag | None:
    obj = repo.read_object(oid)
    return obj if isinstance(obj, Tag) else None
