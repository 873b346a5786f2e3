"""File-level diff of two flat trees: added, removed, modified, moved.

A path that disappears while the same content (same id and kind) appears at
another path is a move, not a delete plus an add: ids are content digests, so
renames cost nothing to find.  When several paths share one content, pairs
with the same file name are made first, then the rest in path order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from dsv.objects import KIND_NAMES, Kind, TreeEntry
from dsv.records import Record

__all__ = ["FileDiff", "diff_changes", "diff_files"]


class FileDiff(Record):
    """What happened to each path.  Moved paths are not in ``added``/``removed``."""

    __slots__ = ("added", "modified", "moved", "removed", "unchanged")

    def __init__(
        self,
        added: Sequence[tuple[str, TreeEntry]] | None = None,
        removed: list[tuple[str, TreeEntry]] | None = None,
        modified: list[tuple[str, TreeEntry, TreeEntry]] | None = None,
        moved: list[tuple[str, str, TreeEntry]] | None = None,
        unchanged: int = 0,
    ) -> None:
        # a commit's summary may pass a compact sequence here (see diff_changes)
        self.added: Sequence[tuple[str, TreeEntry]] = [] if added is None else added
        self.removed: list[tuple[str, TreeEntry]] = [] if removed is None else removed
        self.modified: list[tuple[str, TreeEntry, TreeEntry]] = [] if modified is None else modified
        self.moved: list[tuple[str, str, TreeEntry]] = [] if moved is None else moved
        self.unchanged = unchanged

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.modified or self.moved)

    @property
    def bytes_added(self) -> int:
        """Sizes of added files plus growth of modified ones."""
        return sum(e.size for _, e in self.added) + sum(
            max(0, n.size - o.size) for _, o, n in self.modified
        )

    @property
    def bytes_removed(self) -> int:
        return sum(e.size for _, e in self.removed) + sum(
            max(0, o.size - n.size) for _, o, n in self.modified
        )

    def added_paths(self) -> Iterator[str]:
        """The added paths; a compact sequence yields them without making entries."""
        fast = getattr(self.added, "paths", None)
        if fast is not None:
            yield from fast()
        else:
            for p, _ in self.added:
                yield p

    def added_source(self) -> object:
        """The added paths for counting by directory: the compact sequence itself
        when it can list them directory by directory (``by_directory``), else paths."""
        return self.added if hasattr(self.added, "by_directory") else self.added_paths()

    def added_where(
        self, keep: Callable[[str], object], names: re.Pattern[str] | None = None
    ) -> list[tuple[str, TreeEntry]]:
        """The added ``(path, entry)`` pairs whose path ``keep`` is true for.

        ``names``: a pattern that the name of every such path matches (among
        NUL-separated names), for skipping whole directories at once.
        """
        fast = getattr(self.added, "select", None)
        if fast is not None:
            return list(fast(keep, names))
        return [(p, e) for p, e in self.added if keep(p)]

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "modified": len(self.modified),
            "moved": len(self.moved),
            "unchanged": self.unchanged,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "bytes_added": self.bytes_added,
            "bytes_removed": self.bytes_removed,
            "paths": {
                "added": [_entry_json(p, e) for p, e in self.added],
                "removed": [_entry_json(p, e) for p, e in self.removed],
                "modified": [
                    {
                        "path": p,
                        "old_size": o.size,
                        "new_size": n.size,
                        "old_id": o.id.hex(),
                        "new_id": n.id.hex(),
                        **({"old_mode": f"{o.mode:04o}"} if o.mode != n.mode else {}),
                        **({"old_type": KIND_NAMES[o.kind]} if o.kind != n.kind else {}),
                    }
                    for p, o, n in self.modified
                ],
                "moved": [
                    {"from": a, "to": b, "size": e.size, "id": e.id.hex()} for a, b, e in self.moved
                ],
            },
        }


def _entry_json(path: str, e: TreeEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path, "size": e.size, "id": e.id.hex()}
    if e.kind != Kind.FILE:
        out["type"] = KIND_NAMES[e.kind]
    return out


def diff_files(old: Mapping[str, TreeEntry], new: Mapping[str, TreeEntry]) -> FileDiff:
    """Compare two ``{path: entry}`` maps (files and symlinks)."""
    removed: list[tuple[str, TreeEntry]] = []
    modified: list[tuple[str, TreeEntry, TreeEntry]] = []
    unchanged = 0
    for path, o in old.items():
        n = new.get(path)
        if n is None:
            removed.append((path, o))
        elif n.id == o.id and n.kind == o.kind and n.mode == o.mode:
            unchanged += 1
        else:
            modified.append((path, o, n))
    added = [(path, n) for path, n in new.items() if path not in old]
    out = diff_changes(added, removed, modified)
    if not removed:
        out.added = sorted(added, key=lambda t: t[0])
    out.unchanged = unchanged
    return out


def diff_changes(
    added: Sequence[tuple[str, TreeEntry]],
    removed: list[tuple[str, TreeEntry]],
    modified: list[tuple[str, TreeEntry, TreeEntry]],
) -> FileDiff:
    """The file diff of known changes: pairs of removed and added paths with the
    same content become moves (``unchanged`` is left at 0).

    With nothing removed there is nothing to pair: ``added`` is kept as given
    (it may be a compact sequence of a million files; then in its own order).
    """
    out = FileDiff(modified=sorted(modified, key=lambda t: t[0]))
    if not removed:
        out.added = added
        return out
    gone: dict[tuple[bytes, Kind], list[tuple[str, TreeEntry]]] = {}
    for path, o in removed:
        gone.setdefault((o.id, o.kind), []).append((path, o))
    arrived: dict[tuple[bytes, Kind], list[tuple[str, TreeEntry]]] = {}
    fresh: list[tuple[str, TreeEntry]] = []
    for path, n in added:
        key = (n.id, n.kind)
        if key in gone:
            arrived.setdefault(key, []).append((path, n))
        else:
            fresh.append((path, n))  # nothing removed has its content: not a move
    out.added = fresh
    for key, srcs in gone.items():
        dsts = arrived.get(key)
        if not dsts:
            out.removed.extend(srcs)
            continue
        old = dict(srcs)
        new = dict(dsts)
        pairs, left_src, left_dst = _pair(sorted(old), sorted(new))
        out.moved.extend((a, b, new[b]) for a, b in pairs)
        out.removed.extend((p, old[p]) for p in left_src)
        fresh.extend((p, new[p]) for p in left_dst)
    fresh.sort(key=lambda t: t[0])
    out.removed.sort(key=lambda t: t[0])
    out.moved.sort(key=lambda t: t[0])
    return out


def _pair(srcs: list[str], dsts: list[str]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Pair removed and added paths of one content: same file name first, then in order."""
    if len(srcs) == 1 and len(dsts) == 1:
        return [(srcs[0], dsts[0])], [], []
    by_name: dict[str, list[str]] = {}
    for d in dsts:
        by_name.setdefault(d.rpartition("/")[2], []).append(d)
    pairs = []
    rest = []
    for s in srcs:
        cands = by_name.get(s.rpartition("/")[2])
        if cands:
            pairs.append((s, cands.pop(0)))
        else:
            rest.append(s)
    left = [d for ds in by_name.values() for d in ds]
    left.sort()
    n = min(len(rest), len(left))
    pairs.extend(zip(rest[:n], left[:n]))
    return pairs, rest[n:], left[n:]
