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

from dsv.progress import Progress
from dsv.records import Record
from dsv.repo import Repository
from dsv.worktree.scan import Limit, Scanner
from dsv.worktree.snapshot import Compare, load_cache
from dsv.worktree.walk import Walk


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
    ref_ns = time.time_ns()
    # files of the version are compared even where .dsvignore matches them; only
    # "extra" files are judged by the ignore rules
    scanner = Scanner(repo.root, Limit(paths), keep_ignored=True)
    walk = Walk(repo, scanner, load_cache(repo), tree)
    cmp = Compare(repo, walk, progress or Progress(), full=full).run()
    res = Verification(tree)
    res.modified = cmp.modified
    res.missing = cmp.deleted
    res.extra = sorted([p for p in cmp.added if p not in scanner.ignored] + scanner.skipped)
    res.checked = cmp.checked
    res.hashed = cmp.hashed
    res.bytes_hashed = cmp.bytes_hashed
    if cmp.dirty:
        walk.cache.save(ref_ns)
    return res
