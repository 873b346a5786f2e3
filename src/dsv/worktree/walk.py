"""The working tree, its stat cache and a tree of the store, directory by directory.

Status, commit and verify compare three things: the files on disk (a
:class:`~dsv.worktree.scan.Listing` per directory), the stat cache (a
:class:`~dsv.worktree.statcache.Block` per directory) and a reference tree
(HEAD, or the version being verified).  :func:`walk` visits the union of the
three, one directory at a time, parents first and then again after their
children (so that trees can be built bottom-up).  Memory holds the open
directories only, never a map of every path.

Where a cache block mirrors the reference tree at that directory (it names
the same tree id), the block stands for the tree: nothing is read from the
store, and a directory whose listing packs to the block's bytes is unchanged
without looking at any file.  Only the other directories read their tree.
"""

from __future__ import annotations

import stat as stat_mod
from collections.abc import Callable, Iterator

from dsv.objects import MODE_BITS, Kind, TreeTable
from dsv.repo import Repository
from dsv.worktree.scan import (
    FULL,
    OUT,
    STAT,
    Limit,
    Listing,
    Scanner,
    has_surrogates,
    join,
    tree_order,
)
from dsv.worktree.statcache import Block, StatCache, names_blob

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dsv.worktree.helper import Helper

_REC = STAT.size
# Directories the helper process lists ahead of the walk, at most.
AHEAD = 4
# Records compared at once when looking for the few that differ.
_RUN = 512

# One file of a tree: (kind, mode, size, id).
Row = tuple[int, int, int, bytes]


def kind_of_mode(st_mode: int) -> int:
    return int(Kind.SYMLINK) if stat_mod.S_ISLNK(st_mode) else int(Kind.FILE)


class RefDir:
    """The files and subdirectories of a tree at one directory.

    Read from the store (``table``; ``pos``: each file's position in it), or
    taken from a cache block that mirrors the tree (its files are then built
    only when asked for).
    """

    __slots__ = ("_block", "_ds", "_files", "dirs", "pos", "table")

    def __init__(self, block: Block | None = None, ds: int = 0) -> None:
        self._files: dict[str, Row] | None = None if block is not None else {}
        self._block = block
        self._ds = ds
        self.dirs: dict[str, tuple[bytes, int]] = {}  # name -> (tree id, size)
        self.table: TreeTable | None = None
        self.pos: dict[str, int] = {}

    @property
    def files(self) -> dict[str, Row]:
        if self._files is None:
            b = self._block
            assert b is not None
            self._files = {n: block_row(b, i, self._ds) for i, n in enumerate(b.names)}
        return self._files


class DirState:
    """One directory as the three sides see it.

    ``listing``: on disk (None: absent, or out of the command's paths);
    ``block``: in the stat cache; ``ref_id``: the reference tree's id here
    (None: absent).  ``trusted``: the block mirrors exactly that tree.
    """

    __slots__ = (
        "_ref",
        "_target",
        "block",
        "listing",
        "path",
        "ref_id",
        "ref_size",
        "scope",
        "target_id",
        "trusted",
    )

    def __init__(
        self,
        path: str,
        scope: int,
        listing: Listing | None,
        block: Block | None,
        ref_id: bytes | None,
        ref_size: int = -1,
    ) -> None:
        self.path = path
        self.scope = scope
        self.listing = listing
        self.block = block
        self.ref_id = ref_id
        self.ref_size = ref_size  # the reference tree's total size here (-1: not known yet)
        self.trusted = block is not None and ref_id is not None and block.tree == ref_id
        self.target_id: bytes | None = None  # a second tree's id here (checkout's target)
        self._ref: RefDir | None = None
        self._target: RefDir | None = None

    def unchanged(self, cutoff: int) -> bool:
        """Disk holds exactly the block's files with the same stat (none racily clean)."""
        lst, b = self.listing, self.block
        return (
            lst is not None
            and b is not None
            and lst.stats == b.stats
            and lst.max_mtime <= cutoff
            and names_blob(lst.names) == b.blob
        )


def same_names(lst: Listing, b: Block) -> bool:
    return len(lst.stats) == len(b.stats) and names_blob(lst.names) == b.blob


def differing(a: bytes, b: bytes, racy: bool, cutoff: int) -> list[int]:
    """Indices of the records that differ between two equally long stat arrays,
    and, if ``racy``, of those whose mtime is racily clean (above ``cutoff``)."""
    out: list[int] = []
    n = len(a) // _REC
    step = _RUN * _REC
    for lo in range(0, len(a), step):
        if a[lo : lo + step] != b[lo : lo + step]:
            first = lo // _REC
            for i in range(first, min(n, first + _RUN)):
                if a[i * _REC : (i + 1) * _REC] != b[i * _REC : (i + 1) * _REC]:
                    out.append(i)
    if racy:
        late = {i for i, r in enumerate(STAT.iter_unpack(a)) if r[1] > cutoff}
        out = sorted(late.union(out))
    return out


def align(a: list[str], b: list[str]) -> tuple[list[int], list[int]]:
    """Match two name lists in tree order: for each name of ``a`` its index in
    ``b`` (-1: absent), and the indices of ``b`` that ``a`` lacks."""
    if has_surrogates(a) or has_surrogates(b):
        ka = [n.encode("utf-8", "surrogateescape") for n in a]
        kb = [n.encode("utf-8", "surrogateescape") for n in b]
        return _align(ka, kb)
    return _align(a, b)


def _align(a: list[Any], b: list[Any]) -> tuple[list[int], list[int]]:
    where = [-1] * len(a)
    extra: list[int] = []
    j, nb = 0, len(b)
    for i, x in enumerate(a):
        while j < nb and b[j] < x:
            extra.append(j)
            j += 1
        if j < nb and b[j] == x:
            where[i] = j
            j += 1
    extra.extend(range(j, nb))
    return where, extra


def block_row(b: Block, i: int, ds: int) -> Row:
    size, _m, _c, _i, mode = STAT.unpack_from(b.stats, i * _REC)
    return kind_of_mode(mode), mode & MODE_BITS, size, b.ids[i * ds : (i + 1) * ds]


class Walk:
    """Visits directories of the union of disk, cache and reference tree.

    Iterating yields ``(state, leaving)``: each directory once with
    ``leaving`` False (before its subdirectories) and once with True (after).
    Directories out of the scanner's limit are not visited; see
    :meth:`ref_dir` for what the reference tree holds there.  With a
    ``target`` tree (checkout), its directories are visited too.
    """

    def __init__(
        self,
        repo: Repository,
        scanner: Scanner,
        cache: StatCache,
        ref_root: bytes | None,
        target_root: bytes | None = None,
    ) -> None:
        self.repo = repo
        self.scanner = scanner
        self.cache = cache
        self.ref_root = ref_root
        self.target_root = target_root
        self.ds = repo.algo.digest_size
        # A helper process (dsv.worktree.helper) lists every other directory
        # ahead of the walk: path -> its ticket, or None for one left to us.
        self.helper: Helper | None = None
        # makes the helper once there are directories ahead (the caller closes it)
        self.make_helper: Callable[[], Helper | None] | None = None
        self._ahead: dict[str, int | None] = {}
        self._give = False  # whether the next directory ahead goes to the helper

    def _read(self, tree_id: bytes | None, block: Block | None, path: str) -> RefDir:
        if tree_id is not None and block is not None and block.tree == tree_id:
            out = RefDir(block, self.ds)
            for c in self.cache.children(path):
                cb = self.cache.blocks[join(path, c)]
                if cb.tree is not None:
                    out.dirs[c] = (cb.tree, cb.size)
            return out
        out = RefDir()
        if tree_id is not None:
            table = out.table = self.repo.tree_table(tree_id)
            for i, (name, kind, mode, size, oid) in enumerate(table.rows()):
                if kind == Kind.DIR:
                    out.dirs[name] = (oid, size)
                else:
                    out.files[name] = (kind, mode, size, oid)
                    out.pos[name] = i
        return out

    def target_dir(self, st: DirState) -> RefDir:
        """The target tree's content at ``st``."""
        if st._target is None:
            if st.target_id is not None and st.target_id == st.ref_id:
                st._target = self.ref_dir(st)
            else:
                st._target = self._read(st.target_id, st.block, st.path)
        return st._target

    def ref_dir(self, st: DirState) -> RefDir:
        """The reference tree's content at ``st`` (read from the store unless trusted)."""
        if st._ref is not None:
            return st._ref
        out = st._ref = self._read(st.ref_id, st.block, st.path)
        if st.ref_size < 0:
            if st.trusted:
                assert st.block is not None
                st.ref_size = st.block.size
            else:
                st.ref_size = sum(r[2] for r in out.files.values()) + sum(
                    s for _, s in out.dirs.values()
                )
        return out

    def __iter__(self) -> Iterator[tuple[DirState, bool]]:
        limit = self.scanner.limit
        cache = self.cache
        root = DirState("", limit.scope(""), None, cache.blocks.get(""), self.ref_root)
        root.target_id = self.target_root
        stack: list[tuple[DirState, bool]] = [(root, False)]
        while stack:
            st, leaving = stack.pop()
            if leaving:
                yield st, True
                continue
            st.listing = self._listing(st.path)
            if (
                st.listing is None
                and st.block is not None
                and st.ref_id is None
                and st.target_id is None
                and st.scope == FULL
            ):
                # Gone from disk and in no tree of this command: its block is stale.
                cache.set_block(st.path, None)
                st.block = None
                st.trusted = False
            yield st, False
            stack.append((st, True))
            names: set[str] = set(cache.children(st.path))
            if st.listing is not None:
                names.update(st.listing.dirs)
            ref = self.ref_dir(st) if st.ref_id is not None else None
            if ref is not None:
                names.update(ref.dirs)
            target = self.target_dir(st) if st.target_id is not None else None
            if target is not None:
                names.update(target.dirs)
            for name in reversed(tree_order(list(names))):
                path = join(st.path, name)
                scope = limit.scope(path)
                if scope == OUT:
                    continue
                rid, rsize = ref.dirs.get(name, (None, 0)) if ref is not None else (None, 0)
                kid = DirState(path, scope, None, cache.blocks.get(path), rid, rsize)
                if target is not None and name in target.dirs:
                    kid.target_id = target.dirs[name][0]
                stack.append((kid, False))
            if self.helper is not None or self.make_helper is not None:
                self._prefetch(stack)

    def _listing(self, d: str) -> Listing | None:
        ticket = self._ahead.pop(d, None)
        if ticket is None:
            return self.scanner.listing(d)
        assert self.helper is not None
        return self.scanner.listing_scanned(d, self.helper.result(ticket))

    def _prefetch(self, stack: list[tuple[DirState, bool]]) -> None:
        """Hand the helper every other directory the walk visits next (a few at a time)."""
        if self.helper is None:
            assert self.make_helper is not None
            if sum(1 for _, leaving in stack if not leaving) < 2:
                return  # nothing to share yet
            self.helper, self.make_helper = self.make_helper(), None
            if self.helper is None:
                return
        helper, ahead, scanner = self.helper, self._ahead, self.scanner
        looked = 0
        for st, leaving in reversed(stack):
            if helper.pending >= AHEAD or looked >= 4 * AHEAD:
                return
            if leaving:
                continue
            looked += 1
            if st.path in ahead or not scanner.prefetchable(st.path):
                continue
            give, self._give = self._give, not self._give
            ahead[st.path] = helper.submit("scan", scanner.full_path(st.path)) if give else None


def keep_out_of_scope(
    st: DirState, entries: dict[str, tuple[bytes, bytes]], limit: Limit, ds: int
) -> dict[str, tuple[bytes, bytes]]:
    """Add to ``entries`` the cached ones of ``st`` that a limited command did not look at."""
    if st.scope != FULL and st.block is not None:
        for n, e in st.block.entries(ds):
            if n not in entries and not limit.covers(join(st.path, n)):
                entries[n] = e
    return entries


__all__ = [
    "FULL",
    "DirState",
    "RefDir",
    "Row",
    "Walk",
    "align",
    "block_row",
    "differing",
    "keep_out_of_scope",
    "kind_of_mode",
    "mirror",
    "same_names",
]


def mirror(repo: Repository, cache: StatCache, tree: bytes | None, limit: Limit) -> None:
    """Mark the blocks that hold exactly the files of ``tree`` as mirroring it.

    After a checkout wrote a version, a directory whose block lists that
    tree's files (same names, ids, kinds and modes), and whose subdirectories
    all mirror theirs, names its tree again: status and commit then need no
    read of it.  Subtrees whose blocks already name the right tree are skipped.
    """
    if tree is None:
        return
    ds = repo.algo.digest_size
    ok: dict[str, bool] = {}
    subdirs: dict[str, set[str]] = {}
    # (path, tree id, leaving, its size)
    stack: list[tuple[str, bytes, bool, int]] = [("", tree, False, -1)]
    while stack:
        path, tid, leaving, size = stack.pop()
        parent = path.rpartition("/")[0]
        if leaving:
            good = ok.pop(path)
            b = cache.blocks.get(path)
            if good and b is not None:
                cache.set_block(path, b.with_tree(tid, size))
                # A block that mirrors a tree stands for it: its children with a
                # tree are taken as the tree's subdirectories, so no other child
                # may name one (say, a directory of another version, gone from disk).
                for c in cache.children(path):
                    if c not in subdirs[path]:
                        cb = cache.blocks[join(path, c)]
                        if cb.tree is not None:
                            cache.blocks[join(path, c)] = cb.with_tree(None)
            elif path and not good:
                ok[parent] = False
            subdirs.pop(path, None)
            continue
        scope = limit.scope(path)
        b = cache.blocks.get(path)
        if scope == FULL and b is not None and b.tree == tid:
            continue  # mirrors it already, and so does everything below
        table = repo.tree_table(tid)
        names: list[bytes] = []
        ids: list[bytes] = []
        rows: list[tuple[int, int]] = []
        kids: list[tuple[str, bytes, int]] = []
        total = 0
        for name, kind, mode, sz, oid in table.rows():
            total += sz
            if kind == Kind.DIR:
                kids.append((name, oid, sz))
            else:
                names.append(name.encode("utf-8", "surrogateescape"))
                ids.append(oid)
                rows.append((kind, mode))
        good = (
            scope == FULL
            and b is not None
            and b.blob == b"\0".join(names)
            and b.ids == b"".join(ids)
            and all(block_row(b, i, ds)[:2] == r for i, r in enumerate(rows))
        )
        ok[path] = good
        subdirs[path] = {name for name, _, _ in kids}
        stack.append((path, tid, True, total if size < 0 else size))
        for name, oid, sz in reversed(kids):
            kid = join(path, name)
            if limit.scope(kid) != OUT:
                stack.append((kid, oid, False, sz))
            else:
                ok[path] = False
