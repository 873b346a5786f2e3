"""Verify: does a directory hold exactly the files of a version?

The first line of a training job: after a checkout (or a materialised pin),
prove that nothing was modified, deleted or added since.  Every file either
matches the stat cache (one ``lstat``: its id was computed when it was
written or last hashed, and the racily-clean rule of the cache holds) or is
hashed again; ``full`` hashes every file whatever the cache says.

Compared with ``status``: the target is any tree (not only HEAD), files the
version does not have are reported as ``extra`` (status calls them added)
and special files (FIFOs, sockets, devices) count as extra too: a directory
that holds something the version does not, does not match it.
"""

from __future__ import annotations

import time

from dsv.objects import Kind, TreeEntry
from dsv.progress import Progress
from dsv.records import Record
from dsv.repo import Repository
from dsv.worktree.scan import scan
from dsv.worktree.snapshot import hash_path, kind_of, load_cache
from dsv.worktree.statcache import entry_from_stat, granularity_for


class Verification(Record):
    """What a verify found; ``ok`` only when nothing is modified, missing or extra."""

    __slots__ = ("bytes_hashed", "checked", "extra", "hashed", "missing", "modified", "tree")

    def __init__(self, tree: bytes) -> None:
        self.tree = tree
        self.modified: list[str] = []  # content, type or permission bits differ
        self.missing: list[str] = []  # in the version, not on disk
        self.extra: list[str] = []  # on disk (not ignored), not in the version
        self.checked = 0  # files of the version compared
        self.hashed = 0  # files read because the stat cache could not vouch for them
        self.bytes_hashed = 0

    @property
    def ok(self) -> bool:
        return not (self.modified or self.missing or self.extra)


def _under(path: str, prefixes: list[str]) -> bool:
    return any(not p or path == p or path.startswith(p + "/") for p in prefixes)


def verify(
    repo: Repository,
    tree: bytes,
    *,
    paths: list[str] | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> Verification:
    """Compare the working tree (or ``paths`` of it) with ``tree``, byte for byte.

    Read-only for the data; the stat cache is updated with what was hashed
    (it is a cache of ids, valid whatever version is compared against).
    """
    progress = progress or Progress()
    ref_ns = time.time_ns()
    sc = scan(repo.root, paths)
    cache = load_cache(repo)
    res = Verification(tree)

    # Fast path, as in status: the cache mirrors this very tree, every entry
    # is trusted and the same paths are on disk.
    if (
        not full
        and paths is None
        and cache.tree == tree
        and not sc.skipped
        and len(sc.files) == len(cache.entries)
        and all(cache.lookup(rel, st) is not None for rel, st in sc.files.items())
    ):
        res.checked = len(sc.files)
        return res

    want: dict[str, TreeEntry] = repo.flatten(tree)
    if paths is not None:
        want = {p: e for p, e in want.items() if _under(p, paths)}
    res.extra = sorted([p for p in sc.files if p not in want] + sc.skipped)
    res.missing = sorted(p for p in want if p not in sc.files)

    todo: list[str] = []
    for rel, e in want.items():
        st = sc.files.get(rel)
        if st is None:
            continue
        res.checked += 1
        if kind_of(st) != e.kind or (st.st_mode & 0o7777) != e.mode:
            res.modified.append(rel)
            continue
        if e.kind == Kind.FILE and st.st_size != e.size:
            res.modified.append(rel)  # no need to read it
            continue
        oid = None if full else cache.lookup(rel, st)
        if oid is None:
            todo.append(rel)
        elif oid != e.id:
            res.modified.append(rel)

    progress.start("verifying", len(todo), sum(sc.files[r].st_size for r in todo))
    try:
        for rel in todo:
            st = sc.files[rel]
            oid = hash_path(repo, rel, st)
            cache.entries[rel] = entry_from_stat(st, oid)
            res.hashed += 1
            res.bytes_hashed += st.st_size
            if oid != want[rel].id:
                res.modified.append(rel)
            progress.advance(1, st.st_size)
    finally:
        progress.finish()
    res.modified.sort()

    # The cache may claim to mirror a tree only if its entries are exactly that
    # tree's files; an entry just rewritten could contradict another tree.
    mirrors = paths is None and res.ok
    if todo or (mirrors and cache.tree != tree):
        if mirrors:
            for p in [p for p in cache.entries if p not in sc.files]:
                del cache.entries[p]
            cache.tree = tree
        else:
            cache.tree = None
        cache.save(ref_ns, granularity_for([s.st_mtime_ns for s in sc.files.values()]))
    return res
