"""Status and commit: compare the working tree with HEAD, and snapshot it.

There is no staging area: a commit records the working tree as it is (or only
the given paths, the rest staying as in HEAD).  The stat cache makes an
unchanged file cost one ``lstat``; files whose stat changed are hashed
(status) or chunked into the store (commit).
"""

from __future__ import annotations

import bisect
import collections
import errno
import functools
import heapq
import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from pathlib import Path

from dsv.errors import DsvIOError, NothingToCommitError, io_error
from dsv.objects import (
    KINDS,
    MODE_BITS,
    Commit,
    Kind,
    TreeEntry,
    encode_tree_files,
    encode_tree_rows,
    name_bytes,
    patch_tree,
)
from dsv.progress import Progress
from dsv.records import Record
from dsv.refs import Head
from dsv.repo import MAX_TREE_BYTES, Repository, local_tz_minutes
from dsv.store import SMALL_FILE, Store
from dsv.worktree import helper as helper_mod
from dsv.worktree.helper import Helper
from dsv.worktree.scan import (
    DIR_FLAGS,
    FULL,
    OUT,
    SIZE_MODE,
    STAT,
    Limit,
    Scanner,
    join,
    pack_stat,
    scan_dir,
    stat_result,
)
from dsv.worktree.sharedcut import Ident, SharedBlocks, ident
from dsv.worktree.statcache import Block, StatCache, names_blob
from dsv.worktree.walk import (
    DirState,
    Row,
    Walk,
    align,
    block_row,
    differing,
    keep_out_of_scope,
    kind_of_mode,
    same_names,
)

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from typing import Any, TypeVar

    T = TypeVar("T")

_REC = STAT.size
# Changed entries of a directory up to which its tree is patched, not encoded anew.
PATCH_MAX = 64

READ_SIZE = 1 << 20
# Reading, chunking, compressing and writing large files release the GIL, so
# a few threads keep the disk and the cores busy.  For small files the work
# per call is short and threads only fight over the GIL (measured: a 20,000
# file commit ran 2.5x slower on 4 threads than on one), so they run serially.
WORKERS = max(2, min(4, os.cpu_count() or 2))
PARALLEL_MIN_AVG_BYTES = 1 << 20
# Small files of one directory from which a helper process reads half of them.
HELPER_MIN = 64


def run_parallel(
    fn: Callable[[T], None], items: Iterable[T], total_bytes: int, count: int | None = None
) -> None:
    """Call ``fn`` on every item, on a thread pool when the items are large.

    ``count``: how many items there are (default ``len(items)``).  The first
    error stops the rest and is raised.
    """
    if count is None:
        assert isinstance(items, Sized)
        count = len(items)
    if count < 2 or total_bytes < PARALLEL_MIN_AVG_BYTES * count:
        for it in items:
            fn(it)
        return
    from concurrent.futures import (  # imported here: status never needs it
        FIRST_COMPLETED,
        Future,
        ThreadPoolExecutor,
        as_completed,
        wait,
    )

    ex = ThreadPoolExecutor(WORKERS, thread_name_prefix="dsv-io")
    pending: set[Future[None]] = set()
    try:
        # a bounded window of futures: memory stays flat however many items
        for it in items:
            if len(pending) >= WORKERS * 4:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    fut.result()
            pending.add(ex.submit(fn, it))
        for fut in as_completed(pending):
            fut.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


class Status(Record):
    """Working tree against HEAD (``skipped``: special files dsv does not track)."""

    __slots__ = ("added", "deleted", "head", "modified", "skipped")

    def __init__(self, head: Head, skipped: list[str] | None = None) -> None:
        self.head = head
        self.added: list[str] = []
        self.modified: list[str] = []
        self.deleted: list[str] = []
        self.skipped: list[str] = skipped if skipped is not None else []

    @property
    def clean(self) -> bool:
        return not (self.added or self.modified or self.deleted)


class CommitResult(Record):
    __slots__ = ("branch", "commit", "id")

    def __init__(self, id: bytes, commit: Commit, branch: str | None) -> None:
        self.id = id
        self.commit = commit
        self.branch = branch


# Where a checkout stages the files it writes (inside .dsv).
STAGING = "tmp"


def clean_staging(repo: Repository) -> None:
    """Remove what an interrupted checkout left in the staging area (caller holds the lock)."""
    staging = repo.dsv_dir / STAGING
    if not os.path.lexists(staging):
        return  # the usual case: no shutil (and its compression modules) to import
    import shutil

    shutil.rmtree(staging, ignore_errors=True)


def cache_path(repo: Repository) -> Path:
    return repo.dsv_dir / "index"


def load_cache(repo: Repository) -> StatCache:
    return StatCache(cache_path(repo), repo.algo).load()


def kind_of(st: os.stat_result) -> Kind:
    return Kind.SYMLINK if stat_mod.S_ISLNK(st.st_mode) else Kind.FILE


def hash_path(repo: Repository, rel: str, st: os.stat_result) -> bytes:
    """Content id of a working-tree file or symlink, without storing it."""
    full = os.path.join(repo.root, rel)
    try:
        if stat_mod.S_ISLNK(st.st_mode):
            return repo.algo.digest(os.fsencode(os.readlink(full)))
        h = repo.algo.new()
        with open(full, "rb", buffering=0, opener=_open_to_read) as f:
            buf = bytearray(READ_SIZE)
            view = memoryview(buf)
            while n := f.readinto(buf):
                h.update(view[:n])
        return h.digest()
    except FileNotFoundError:
        raise DsvIOError(f"{rel} vanished while it was being read") from None
    except OSError as exc:
        raise io_error("read", rel, exc) from exc


def _entry(name: str, rec: bytes, oid: bytes) -> TreeEntry:
    size, _m, _c, _i, mode = STAT.unpack(rec)
    return TreeEntry(name, KINDS[kind_of_mode(mode)], mode & MODE_BITS, size, oid)


def row_of(rec: bytes, oid: bytes | bytearray) -> Row:
    """The tree row (kind, mode, size, id) of a file with this stat record and id."""
    size, _m, _c, _i, mode = STAT.unpack(rec)
    return kind_of_mode(mode), mode & MODE_BITS, size, bytes(oid)


def _same(a: Row, b: Row) -> bool:
    return a[3] == b[3] and a[0] == b[0] and a[1] == b[1]


def _cached_id(cache: StatCache, b: Block | None, j: int, rel: str, rec: bytes) -> bytes | None:
    """The id the cache holds for a file with this stat (None: unknown or racily clean).

    ``j``: the file's position in its directory's block ``b`` (-1: not there).
    """
    if STAT.unpack(rec)[1] > cache.cutoff:
        return None
    if b is not None and j >= 0 and b.stat(j) == rec:
        return b.id(j, cache.algo.digest_size)
    lo = cache.loose.get(rel)
    if lo is not None and lo[0] == rec:
        return lo[1]
    return None


class Compare:
    """The working tree against a tree, one directory at a time (see dsv.worktree.walk).

    Status compares with HEAD, verify with any version.  Files whose stat the
    cache vouches for are not read (``full``: every file is); what gets hashed
    is remembered in the cache, and a directory found identical to the tree
    gets a block that mirrors it again.
    """

    def __init__(
        self, repo: Repository, walk: Walk, progress: Progress, full: bool = False
    ) -> None:
        self.repo = repo
        self.walk = walk
        self.cache = walk.cache
        self.progress = progress
        self.full = full
        self.added: list[str] = []
        self.modified: list[str] = []
        self.deleted: list[str] = []
        self.checked = 0  # files of the tree found on disk
        self.hashed = 0
        self.bytes_hashed = 0
        self.dirty = False  # the cache learnt something: save it
        self.clean: dict[str, bool] = {}  # open directories: nothing changed at or below
        # untrusted directories: the entries their rebuilt block will hold
        self.pending: dict[str, dict[str, tuple[bytes, bytes]]] = {}

    def run(self) -> Compare:
        self.progress.start("hashing")
        try:
            for st, leaving in self.walk:
                if leaving:
                    self.leave(st)
                else:
                    self.enter(st)
        finally:
            self.progress.finish()
        for lst in (self.added, self.modified, self.deleted):
            lst.sort()
        return self

    def enter(self, st: DirState) -> None:
        cache = self.cache
        ds = cache.algo.digest_size
        self.clean[st.path] = True
        lst, b = st.listing, st.block
        names = lst.names if lst is not None else []
        if st.trusted and st.scope == FULL and not self.full and st.unchanged(cache.cutoff):
            self.checked += len(names)
            return
        where: Sequence[int]
        todo: Iterable[int] = range(len(names))
        if lst is not None and b is not None and same_names(lst, b):
            where, extra = range(len(names)), list[int]()
            if st.trusted and not self.full:
                # the same files as the tree: only those whose stat differs can differ
                todo = differing(lst.stats, b.stats, lst.max_mtime > cache.cutoff, cache.cutoff)
                self.checked += len(names) - len(todo)
        else:
            where, extra = align(names, b.names if b is not None else [])
        # The tree's files here: the block's when it mirrors the tree, else read.
        ref = None if st.trusted else self.walk.ref_dir(st)
        if ref is None:
            assert b is not None
            gone = [b.names[j] for j in extra]
        else:
            on_disk = set(names)
            gone = [n for n in ref.files if n not in on_disk]
        keep: dict[str, tuple[bytes, bytes]] | None = None if st.trusted else {}
        refresh: dict[int, bytes] = {}
        for i in todo:
            assert lst is not None
            name = names[i]
            rel = join(st.path, name)
            rec = lst.stats[i * _REC : (i + 1) * _REC]
            j = where[i]
            if ref is None:
                row = block_row(b, j, ds) if j >= 0 and b is not None else None
            else:
                row = ref.files.get(name)
            oid = None if self.full else _cached_id(cache, b, j, rel, rec)
            if row is None:
                self._changed(st, self.added, rel)
                if oid is not None and keep is not None:
                    keep[name] = (rec, oid)
                continue
            self.checked += 1
            disk = row_of(rec, b"")
            if oid is None and disk[0] == row[0] == Kind.FILE and disk[2] != row[2]:
                self._changed(st, self.modified, rel)  # another size: no need to read it
                continue
            if oid is None:
                oid = hash_path(self.repo, rel, stat_result(rec))
                self.hashed += 1
                self.bytes_hashed += disk[2]
                self.progress.advance(1, disk[2])
                self.dirty = True
                if keep is None:
                    if _same(row, row_of(rec, oid)):
                        refresh[j] = rec  # same content: a fresher stat
                        cache.loose.pop(rel, None)
                    else:
                        cache.loose[rel] = (rec, oid)
            if keep is not None:
                keep[name] = (rec, oid)
            if not _same(row, row_of(rec, oid)):
                self._changed(st, self.modified, rel)
        for name in gone:
            rel = join(st.path, name)
            if st.scope == FULL or self.walk.scanner.limit.covers(rel):
                self._changed(st, self.deleted, rel)
        if refresh:
            assert b is not None
            stats = bytearray(b.stats)
            for j, rec in refresh.items():
                stats[j * _REC : (j + 1) * _REC] = rec
            newest = max(STAT.unpack(r)[1] for r in refresh.values())
            fresh = Block(b.blob, bytes(stats), b.ids, b.tree, b.size, max(b.max_mtime, newest))
            cache.set_block(st.path, fresh)
        if keep is not None:
            self.pending[st.path] = keep

    def known_id(self, st: DirState, name: str, rel: str, rec: bytes) -> bytes | None:
        """The id of a file of ``st`` with this stat, if the cache or this run knows it."""
        keep = self.pending.get(st.path)
        if keep is not None and name in keep and keep[name][0] == rec:
            return keep[name][1]
        b = st.block
        return _cached_id(self.cache, b, b.index(name) if b is not None else -1, rel, rec)

    def _changed(self, st: DirState, where: list[str], rel: str) -> None:
        where.append(rel)
        self.clean[st.path] = False

    def leave(self, st: DirState) -> None:
        clean = self.clean.pop(st.path)
        if st.path and not clean:
            self.clean[st.path.rpartition("/")[0]] = False
        keep = self.pending.pop(st.path, None)
        if keep is None:
            return
        # An untrusted block is rebuilt from what is known now; it mirrors the
        # tree again when nothing at or below it differs from the tree.
        old = st.block
        mirror = clean and st.scope == FULL and st.ref_id is not None
        # entries out of the command's paths are kept as they were
        keep_out_of_scope(st, keep, self.walk.scanner.limit, self.cache.algo.digest_size)
        new = Block.from_entries(keep, st.ref_id if mirror else None, max(st.ref_size, 0))
        if old is None or (old.blob, old.stats, old.ids, old.tree) != (
            new.blob,
            new.stats,
            new.ids,
            new.tree,
        ):
            self.cache.set_block(st.path, new)
            self.dirty = True


def status(
    repo: Repository, progress: Progress | None = None, paths: list[str] | None = None
) -> Status:
    """Added, modified and deleted files of the working tree (or of ``paths``) against HEAD."""
    ref_ns = time.time_ns()
    head = repo.refs.head()
    head_tree = repo.read_commit(head.commit).tree if head.commit else None
    scanner = Scanner(repo.root, Limit(paths))
    walk = Walk(repo, scanner, load_cache(repo), head_tree)
    walk.make_helper = functools.partial(Helper.start, repo.store, {"scan": scan_dir})
    try:
        cmp = Compare(repo, walk, progress or Progress()).run()
    finally:
        if walk.helper is not None:
            walk.helper.close(wait=False)  # it only listed directories
    out = Status(head, skipped=scanner.skipped)
    out.added, out.modified, out.deleted = cmp.added, cmp.modified, cmp.deleted
    if cmp.dirty:
        walk.cache.save(ref_ns)
    return out


def _store_file(
    repo: Repository, rel: str, st: os.stat_result, shared: SharedBlocks | None = None
) -> tuple[os.stat_result, bytes]:
    """Chunk a file into the store; detects a file changing while it is read.

    ``shared``: a big regular file is read and cut by the helper process
    (dsv.worktree.sharedcut) unless it is busy with another.
    """
    full = os.path.join(repo.root, rel)
    if shared is not None and stat_mod.S_ISREG(st.st_mode) and st.st_size > SMALL_FILE:
        with shared.cutting() as cut:
            if cut is not None:
                if not cut.open(full, rel):
                    raise _unstable(rel, "vanished")
                oid, size = repo.store.put_chunks(cut.chunks(repo.algo.digest_size), cut.whole)
                assert cut.after is not None
                if not _unchanged(st, size, cut.after):
                    raise _unstable(rel, "changed")
                return st, oid
    try:
        if stat_mod.S_ISLNK(st.st_mode):
            target = os.fsencode(os.readlink(full))
            st2 = os.lstat(full)
            return st2, repo.store.put_bytes(target)
        # The scan's lstat stands for the state before the read: one fstat
        # after it tells whether the file changed since it was scanned (by a
        # write, a rename over it or a replacement), saving a call per file.
        with open(full, "rb", buffering=0, opener=_open_to_read) as f:
            oid, size = repo.store.put_file(f, st.st_size)
            after = os.fstat(f.fileno())
    except FileNotFoundError:
        raise _unstable(rel, "vanished") from None
    except OSError as exc:
        raise io_error("read", rel, exc) from exc
    if not _unchanged(st, size, ident(after)):
        raise _unstable(rel, "changed")
    return st, oid


def _unchanged(before: os.stat_result, size: int, after: Ident) -> bool:
    """Whether a file read whole (``size`` bytes, then ``after`` it) is as scanned."""
    mode, ino, st_size, mtime_ns, ctime_ns = after
    return (
        size == before.st_size
        and stat_mod.S_ISREG(mode)
        and ino == before.st_ino
        and st_size == before.st_size
        and mtime_ns == before.st_mtime_ns
        and ctime_ns == before.st_ctime_ns
    )


def _unstable(rel: str, what: str) -> DsvIOError:
    """The error for a file that ``what`` (vanished, changed) while it was being committed."""
    return DsvIOError(
        f"{rel} {what} while it was being committed; nothing was committed",
        hint="run the commit again once the files are stable",
    )


# Files are read without updating their access time (as git does): a first
# read of a new file would otherwise write its inode back (relatime), a
# quarter of what reading a small file costs here.  Only the files' owner (or
# root) may ask; for anyone else the flag is dropped on the first refusal.
_noatime = getattr(os, "O_NOATIME", 0)


def _open_to_read(path: str, flags: int, dir_fd: int | None = None) -> int:
    """``os.open`` for reading working files: no wait on a FIFO found where a file
    was (no effect on files), no access-time update where allowed."""
    global _noatime
    flags |= getattr(os, "O_NONBLOCK", 0)
    if _noatime:
        try:
            return os.open(path, flags | _noatime, dir_fd=dir_fd)
        except PermissionError as exc:
            if exc.errno != errno.EPERM:
                raise  # EACCES: not readable at all
            _noatime = 0  # not the owner: plain opens from now on
    return os.open(path, flags, dir_fd=dir_fd)


def _read_small(
    full: str, d: str, name: str, rec: bytes, size: int, dir_fd: int | None = None
) -> bytes:
    """The bytes of a small regular file whose scan gave ``rec``; refuses one that changed.

    ``dir_fd``: its directory, open; ``full`` is then the name in it.
    """
    try:
        # a FIFO put in the file's place must not hang the commit; what was
        # opened is checked by fstat below
        fd = _open_to_read(full, os.O_RDONLY, dir_fd)
        try:
            data = os.read(fd, size + 1)  # one byte more reveals a file that grew
            # a short read (some network file systems); growth past the size
            # shows in the fstat below if not here
            while 0 < len(data) < size:
                more = os.read(fd, size + 1 - len(data))
                if not more:
                    break
                data += more
            after = os.fstat(fd)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise _unstable(join(d, name), "vanished") from None
    except OSError as exc:
        raise io_error("read", join(d, name), exc) from exc
    # size, mtime, ctime, inode and mode as the scan saw them: not written,
    # replaced or renamed over since
    if len(data) != size or pack_stat(after) != rec:
        raise _unstable(join(d, name), "changed")
    return data


def _open_dir(full: str, d: str) -> int | None:
    """A descriptor of the directory ``d`` for opening its files by name (None where
    the platform cannot)."""
    if os.open not in os.supports_dir_fd:
        return None
    try:
        return os.open(full, DIR_FLAGS)
    except FileNotFoundError:
        raise _unstable(d or ".", "vanished") from None
    except OSError as exc:
        raise io_error("read directory", d or ".", exc) from exc


def _recs(stats: bytes, which: list[int]) -> bytes:
    """The stat records at the indices ``which``, joined."""
    return b"".join(stats[i * _REC : (i + 1) * _REC] for i in which)


def read_small_files(
    store: Store,
    root: str | Path,
    d: str,
    names: list[str],
    recs: bytes,
    advance: Callable[[int, int], None] | None = None,
) -> bytes:
    """Store the small regular files ``names`` of the directory ``d``, as their scan
    records ``recs`` describe them; returns their ids, joined.  Refuses a file that
    changed since the scan."""
    if not names:
        return b""
    prefix = os.path.join(root, d, "")
    put = store.put_read
    unpack = STAT.unpack_from
    out: list[bytes] = []
    # files opened by name in their directory, open: no walk of the whole
    # path for each (as the scan lists it)
    dir_fd = _open_dir(prefix, d)
    base = prefix if dir_fd is None else ""
    try:
        for k, name in enumerate(names):
            rec = recs[k * _REC : (k + 1) * _REC]
            size = unpack(rec)[0]
            out.append(put(_read_small(base + name, d, name, rec, size, dir_fd)))
            if advance is not None:
                advance(1, size)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return b"".join(out)


class AddedFiles(Sequence[tuple[str, TreeEntry]]):
    """``(path, entry)`` of added files, kept per directory as packed arrays.

    A first commit adds every file: as tuples of a path and an entry object
    that would be some 350 bytes a file; here it is the name's bytes plus 53
    (the names of a directory are one NUL-separated blob, split again when
    read).  Entries are made as they are read.  In tree order.
    """

    def __init__(self, ds: int) -> None:
        self._ds = ds
        self._groups: list[tuple[str, bytes, bytes, bytes]] = []
        self._starts = [0]
        self._split: tuple[int, list[str]] = (-1, [])  # the last group's names, split
        self.size = 0  # bytes of all the files

    def add(self, d: str, names: list[str], stats: bytes, ids: bytes) -> None:
        if names:
            self._groups.append((d, names_blob(names), stats, ids))
            self._starts.append(self._starts[-1] + len(names))
            self.size += sum(r[0] for r in STAT.iter_unpack(stats))

    def _names(self, g: int) -> list[str]:
        if self._split[0] != g:
            self._split = (g, self._groups[g][1].decode("utf-8", "surrogateescape").split("\0"))
        return self._split[1]

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, i: int | slice) -> Any:  # an entry, or a list of them for a slice
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        g = bisect.bisect_right(self._starts, i) - 1
        return self._item(g, i - self._starts[g])

    def _item(self, g: int, j: int) -> tuple[str, TreeEntry]:
        d, _, stats, ids = self._groups[g]
        name = self._names(g)[j]
        rec = stats[j * _REC : (j + 1) * _REC]
        return join(d, name), _entry(name, rec, ids[j * self._ds : (j + 1) * self._ds])

    def __iter__(self) -> Iterator[tuple[str, TreeEntry]]:
        for g in range(len(self._groups)):
            for j in range(self._starts[g + 1] - self._starts[g]):
                yield self._item(g, j)

    def by_directory(self) -> Iterator[tuple[str, list[str]]]:
        """``(directory, names of its added files)``, directory by directory."""
        for g, (d, _, _, _) in enumerate(self._groups):
            yield d, self._names(g)

    def paths(self) -> Iterator[str]:
        """The paths alone (no entry objects are made)."""
        for g, (d, _, _, _) in enumerate(self._groups):
            prefix = f"{d}/" if d else ""
            for n in self._names(g):
                yield prefix + n

    def select(
        self, keep: Callable[[str], object], names: re.Pattern[str] | None = None
    ) -> list[tuple[str, TreeEntry]]:
        """``(path, entry)`` of the files whose path ``keep`` is true for (``names``: a
        pattern every such name matches, among the NUL-separated names of a directory)."""
        out = []
        for g, (d, blob, _, _) in enumerate(self._groups):
            if names is not None and not names.search(blob.decode("utf-8", "surrogateescape")):
                continue
            prefix = f"{d}/" if d else ""
            for j, n in enumerate(self._names(g)):
                if keep(prefix + n):
                    out.append(self._item(g, j))
        return out


class Changes(Record):
    """What a commit changes against its first parent, path by path.

    ``files`` and ``size`` count the files (and symlinks) of the new tree and
    their bytes; ``old_tree`` and ``new_tree`` are the two root trees.
    """

    __slots__ = ("added", "files", "modified", "new_tree", "old_tree", "removed", "size")

    def __init__(self, ds: int = 16) -> None:
        self.added = AddedFiles(ds)
        self.removed: list[tuple[str, TreeEntry]] = []
        self.modified: list[tuple[str, TreeEntry, TreeEntry]] = []
        self.files = 0
        self.size = 0
        self.old_tree: bytes | None = None
        self.new_tree: bytes | None = None


def summarize(changes: Changes) -> dict[str, Any]:
    """The change summary stored in a commit (schema in docs/format.md)."""
    grown = sum(max(0, n.size - o.size) for _, o, n in changes.modified)
    shrunk = sum(max(0, o.size - n.size) for _, o, n in changes.modified)
    return {
        "files": {
            "added": len(changes.added),
            "removed": len(changes.removed),
            "modified": len(changes.modified),
            "total": changes.files,
        },
        "bytes": {
            "added": changes.added.size + grown,
            "removed": sum(e.size for _, e in changes.removed) + shrunk,
            "total": changes.size,
        },
    }


Summarizer = Callable[[Repository, Changes], "dict[str, Any]"]


def _file_summary(repo: Repository, changes: Changes) -> dict[str, Any]:
    return summarize(changes)


def _ref_entry(name: str, row: Row) -> TreeEntry:
    return TreeEntry(name, Kind(row[0]), row[1], row[2], row[3])


class _Plan:
    """A directory being committed: its files (ids complete after ``enter``) and its subtrees."""

    __slots__ = (
        "base",
        "ids",
        "kept",
        "kids",
        "names",
        "newest",
        "restored",
        "reuse",
        "stats",
        "subdirs",
    )

    def __init__(self, names: list[str], stats: bytes, ids: bytearray, newest: int) -> None:
        self.names = names
        self.stats = stats
        self.ids = ids
        self.newest = newest
        self.reuse = False  # the block's tree stands for this directory, unless a subtree differs
        # The tree the block mirrors, when the same files are here: a few changed
        # entries are then patched into its bytes instead of encoding every entry.
        self.base: bytes | None = None
        self.restored: list[int] = []  # files stored again
        self.kids: dict[str, tuple[bytes, int]] = {}  # the block's subtrees: name -> (id, size)
        self.subdirs: list[tuple[bytes, int, int, int, bytes]] = []  # tree rows
        self.kept: list[tuple[bytes, int, int, int, bytes]] = []  # rows out of the paths


class _CommitBuild:
    """Commit, one directory at a time: store what changed, then build trees bottom-up."""

    def __init__(self, repo: Repository, walk: Walk, progress: Progress) -> None:
        self.repo = repo
        self.walk = walk
        self.cache = walk.cache
        self.store = repo.store
        self.ds = repo.algo.digest_size
        self.progress = progress
        self.changes = Changes(self.ds)
        self.plans: dict[str, _Plan] = {}
        self.root: bytes | None = None
        self.shared: SharedBlocks | None = None  # big files cut by the helper process
        # Directories entered whose ids may still be with the helper process, in the
        # order entered: (path, wait for the helper's ids, record the changes).
        self._unsettled: collections.deque[
            tuple[str, Callable[[], None] | None, Callable[[], None]]
        ] = collections.deque()

    def enter(self, st: DirState) -> None:
        cache, ds, store = self.cache, self.ds, self.store
        lst, b = st.listing, st.block
        names = lst.names if lst is not None else []
        stats = lst.stats if lst is not None else b""
        n = len(names)
        # ids of a block that names a tree in the store are in the store too
        stored = b is not None and b.tree is not None and store.has(b.tree)
        aligned = lst is not None and b is not None and same_names(lst, b)
        todo: list[int] = []
        where: Sequence[int]
        if aligned:
            assert lst is not None and b is not None
            where, extra = range(n), list[int]()
            ids = bytearray(b.ids)
            todo = differing(stats, b.stats, lst.max_mtime > cache.cutoff, cache.cutoff)
            if not stored:
                skip = set(todo)
                todo += (i for i in range(n) if i not in skip and not store.has(b.id(i, ds)))
                todo.sort()
        elif b is None and not cache.loose:
            # nothing known of any file here (a new directory, a first commit)
            where, extra = [-1] * n, []
            ids = bytearray(n * ds)
            todo = list(range(n))
        else:
            where, extra = align(names, b.names if b is not None else [])
            ids = bytearray(n * ds)
            for i in range(n):
                rec = stats[i * _REC : (i + 1) * _REC]
                j = where[i]
                oid = _cached_id(cache, b, j, join(st.path, names[i]), rec)
                from_block = stored and b is not None and j >= 0 and b.stat(j) == rec
                if oid is not None and (from_block or store.has(oid)):
                    ids[i * ds : (i + 1) * ds] = oid
                else:
                    todo.append(i)
        newest = lst.max_mtime if lst is not None else 0
        pending = None
        if todo:
            stats, newest, pending = self._store(st.path, names, stats, ids, todo, newest)
        plan = _Plan(names, stats, ids, newest)
        plan.reuse = stored and aligned and not todo and st.scope == FULL
        if stored and aligned and st.scope == FULL and b is not None:
            plan.base = b.tree
            plan.restored = todo
            for c in cache.children(st.path):
                cb = cache.blocks[join(st.path, c)]
                if cb.tree is not None:
                    plan.kids[c] = (cb.tree, cb.size)
        self.plans[st.path] = plan
        only = todo if aligned and st.trusted and st.scope == FULL else None
        changes = functools.partial(self._changes, st, plan, where, extra, only)
        self._unsettled.append((st.path, pending, changes))

    def settle(self, path: str) -> None:
        """Finish the directories entered up to ``path`` (if not finished yet), in the order
        entered: wait for the ids of the files the helper read, record their changes."""
        if not any(d == path for d, _, _ in self._unsettled):
            return  # finished with a directory entered after it (one below it)
        while self._unsettled:
            d, pending, changes = self._unsettled.popleft()
            if pending is not None:
                pending()
            changes()
            if d == path:
                return

    def _store(
        self,
        d: str,
        names: list[str],
        stats: bytes,
        ids: bytearray,
        todo: list[int],
        newest: int,
    ) -> tuple[bytes, int, Callable[[], None] | None]:
        """Store the files ``todo``: their stat records (as read), the newest mtime, and
        what fills in the ids the helper process is still reading (None: all done)."""
        total = sum(STAT.unpack_from(stats, i * _REC)[0] for i in todo)
        if total < PARALLEL_MIN_AVG_BYTES * len(todo) or len(todo) < 2:
            return self._store_small(d, names, stats, ids, todo, newest)
        ds = self.ds
        fresh = bytearray(stats)

        def one(i: int) -> None:
            rel = join(d, names[i])
            st, oid = _store_file(self.repo, rel, stat_result(stats, i * _REC), self.shared)
            fresh[i * _REC : (i + 1) * _REC] = pack_stat(st)
            ids[i * ds : (i + 1) * ds] = oid
            self.progress.advance(1, st.st_size)

        run_parallel(one, todo, total)
        newest = max(newest, max(STAT.unpack_from(fresh, i * _REC)[1] for i in todo))
        return bytes(fresh), newest, None

    def _store_small(
        self,
        d: str,
        names: list[str],
        stats: bytes,
        ids: bytearray,
        todo: list[int],
        newest: int,
    ) -> tuple[bytes, int, Callable[[], None] | None]:
        """``_store`` for files that are small on average: one thread, few calls a file.

        A regular file is opened, read whole (one byte more than its size:
        growth shows), fstat'ed and closed; it is unchanged since the scan
        when its stat record is the scan's, byte for byte.  Symlinks and big
        files take the general path.  With a helper process, it reads the
        second half of the small files meanwhile; their ids are waited for
        later (``settle``), so that the helper reads while the command goes on.
        """
        repo, ds, advance = self.repo, self.ds, self.progress.advance
        rec_size = _REC
        fresh: bytearray | None = None
        small: list[int] = []
        for i in todo:
            rec = stats[i * rec_size : (i + 1) * rec_size]
            size, _m, _c, _i, mode = STAT.unpack(rec)
            if size <= SMALL_FILE and stat_mod.S_ISREG(mode):
                small.append(i)
                continue
            st, oid = _store_file(repo, join(d, names[i]), stat_result(rec), self.shared)
            if fresh is None:
                fresh = bytearray(stats)
            fresh[i * rec_size : (i + 1) * rec_size] = pack_stat(st)
            newest = max(newest, st.st_mtime_ns)
            ids[i * ds : (i + 1) * ds] = oid
            advance(1, size)
        helper = self.walk.helper
        shared = small[len(small) // 2 :] if helper is not None and len(small) >= HELPER_MIN else []
        if shared:
            assert helper is not None
            ticket = helper.submit("files", d, [names[i] for i in shared], _recs(stats, shared))
        mine = small[: len(small) - len(shared)]
        got = read_small_files(
            repo.store, repo.root, d, [names[i] for i in mine], _recs(stats, mine), advance
        )
        for k, i in enumerate(mine):
            ids[i * ds : (i + 1) * ds] = got[k * ds : (k + 1) * ds]
        out = bytes(fresh) if fresh is not None else stats
        if not shared:
            return out, newest, None
        assert helper is not None

        def pending() -> None:
            theirs = helper.result(ticket)
            advance(len(shared), sum(STAT.unpack_from(stats, i * rec_size)[0] for i in shared))
            for k, i in enumerate(shared):
                ids[i * ds : (i + 1) * ds] = theirs[k * ds : (k + 1) * ds]

        return out, newest, pending

    def _changes(
        self,
        st: DirState,
        plan: _Plan,
        where: Sequence[int],
        extra: list[int],
        only: list[int] | None,
    ) -> None:
        """Record what differs from the parent commit here (``only``: the indices that can)."""
        ch, ds = self.changes, self.ds
        limit = self.walk.scanner.limit
        b = st.block
        # the parent commit's files here: the block's when it mirrors them
        ref = None if st.trusted and st.scope == FULL else self.walk.ref_dir(st)
        names = plan.names
        if ref is not None and not ref.files:
            # nothing here before (a new directory, a first commit): all added
            ch.added.add(st.path, names, plan.stats, bytes(plan.ids))
            only = []
        added: list[int] = []
        for i in range(len(names)) if only is None else only:
            rec = plan.stats[i * _REC : (i + 1) * _REC]
            oid = plan.ids[i * ds : (i + 1) * ds]
            if ref is None:
                assert b is not None
                row = block_row(b, where[i], ds) if where[i] >= 0 else None
            else:
                row = ref.files.get(names[i])
            rel = join(st.path, names[i])
            if row is None:
                added.append(i)
            elif not _same(row, row_of(rec, bytes(oid))):
                ch.modified.append(
                    (rel, _ref_entry(names[i], row), _entry(names[i], rec, bytes(oid)))
                )
        if added:
            ch.added.add(
                st.path,
                [names[i] for i in added],
                b"".join(plan.stats[i * _REC : (i + 1) * _REC] for i in added),
                b"".join(plan.ids[i * ds : (i + 1) * ds] for i in added),
            )
        if ref is None:
            assert b is not None or not extra
            gone = [(b.names[j], block_row(b, j, ds)) for j in extra] if b is not None else []
        else:
            on_disk = set(names)
            gone = [(n, r) for n, r in ref.files.items() if n not in on_disk]
        for name, row in gone:
            rel = join(st.path, name)
            if st.scope == FULL or limit.covers(rel):
                ch.removed.append((rel, _ref_entry(name, row)))
            else:
                plan.kept.append((name_bytes(name), *row))
        if st.scope != FULL and ref is not None:
            for name, (tid, size) in ref.dirs.items():
                if limit.scope(join(st.path, name)) == OUT:
                    plan.kept.append((name_bytes(name), int(Kind.DIR), 0o755, size, tid))
                    ch.files += _count_files(self.repo, tid)

    def leave(self, st: DirState) -> None:
        self.settle(st.path)
        plan = self.plans.pop(st.path)
        ds = self.ds
        b = st.block
        tree: bytes | None
        if plan.reuse and b is not None and b.tree is not None:
            # nothing changed here or below: the tree the block mirrors is this one
            tree, size = b.tree, b.size
            self.changes.files += len(plan.names)
        else:
            others = sorted(plan.subdirs + plan.kept, key=lambda r: r[0])
            self.changes.files += len(plan.names) + sum(1 for r in others if r[1] != Kind.DIR)
            sizes, modes = zip(*SIZE_MODE.iter_unpack(plan.stats)) if plan.names else ((), ())
            size = sum(sizes) + sum(r[3] for r in others)
            data = self._patched(plan, others) if plan.base is not None else None
            if data is None and plan.names and not others:
                data = _encode_files(plan, sizes, modes, ds)
            if data is None and (plan.names or others or not st.path):
                files = _file_rows(plan, ds)
                # a directory of files only (most of a dataset's) needs no merge
                rows = heapq.merge(files, others, key=lambda r: r[0]) if others else files
                data = encode_tree_rows(rows)
            # no files at or below: not in the tree
            tree = self.store.put_bytes(data) if data is not None else None
        if st.scope == FULL:
            block = Block.of(plan.names, plan.stats, bytes(plan.ids), tree, size, plan.newest)
        else:
            block = self._partial_block(st, plan)
        self.cache.set_block(st.path, block)
        if not st.path:
            self.root = tree
            self.changes.size = size
            return
        parent = self.plans[st.path.rpartition("/")[0]]
        if tree is not None:
            name = name_bytes(st.path.rpartition("/")[2])
            parent.subdirs.append((name, int(Kind.DIR), 0o755, size, tree))
        if tree != (b.tree if b is not None else None):
            parent.reuse = False  # a subtree differs from what the parent's block mirrors

    def _patched(
        self, plan: _Plan, others: list[tuple[bytes, int, int, int, bytes]]
    ) -> bytes | None:
        """The new tree as the base tree's bytes with the changed entries patched in.

        For a directory with the same files and subdirectories as the tree its
        block mirrors, and few of them changed: a one-file change in a directory
        of a million entries costs a copy of its bytes, not a million rows.
        """
        assert plan.base is not None
        ds = self.ds
        if len(others) != len(plan.kids) or len(plan.restored) + len(others) > PATCH_MAX:
            return None
        names = plan.names
        subs = [r[0] for r in others]  # sorted
        if [
            n.encode("utf-8", "surrogateescape") for n in sorted(plan.kids, key=name_bytes)
        ] != subs:
            return None  # other subdirectories: encode
        fixed = 11 + ds + 2  # kind, mode, size, id, name length

        def offset(files_before: int, raw: bytes) -> int:
            k = bisect.bisect_left(subs, raw)
            name_bytes_before = len(names_blob(names[:files_before])) - max(files_before - 1, 0)
            return (
                12 + (files_before + k) * fixed + name_bytes_before + sum(len(x) for x in subs[:k])
            )

        edits = []
        for i in plan.restored:
            raw, kind, mode, size, oid = next(_file_rows(plan, ds, i))
            edits.append((offset(i, raw), raw, kind, mode, size, oid))
        for raw, kind, mode, size, oid in others:
            name = raw.decode("utf-8", "surrogateescape")
            if plan.kids.get(name) == (oid, size):
                continue
            i = bisect.bisect_left(names, raw, key=lambda n: n.encode("utf-8", "surrogateescape"))
            edits.append((offset(i, raw), raw, kind, mode, size, oid))
        return patch_tree(self.store.get_bytes(plan.base, MAX_TREE_BYTES), ds, edits)

    def _partial_block(self, st: DirState, plan: _Plan) -> Block:
        """Committed files under the paths, and the cached ones out of them as they were."""
        ds = self.ds
        entries = {
            n: (plan.stats[i * _REC : (i + 1) * _REC], bytes(plan.ids[i * ds : (i + 1) * ds]))
            for i, n in enumerate(plan.names)
        }
        return Block.from_entries(keep_out_of_scope(st, entries, self.walk.scanner.limit, ds))


def _file_rows(
    plan: _Plan, ds: int, start: int = 0
) -> Iterator[tuple[bytes, int, int, int, bytes]]:
    """The tree rows of a directory's files (from ``start``), made one at a time."""
    ids = plan.ids
    rest = memoryview(plan.stats)[start * _REC :]
    for i, (name, (size, _m, _c, _i, mode)) in enumerate(
        zip(plan.names[start:] if start else plan.names, STAT.iter_unpack(rest)), start
    ):
        yield (
            name.encode("utf-8", "surrogateescape"),
            kind_of_mode(mode),
            mode & MODE_BITS,
            size,
            bytes(ids[i * ds : (i + 1) * ds]),
        )


def _encode_files(
    plan: _Plan, sizes: tuple[int, ...], modes: tuple[int, ...], ds: int
) -> bytes | None:
    """The tree of a directory of regular files only (their sizes and st_modes from its
    stat records), encoded without a row per file (None if there is another kind of
    file or a name the rows must check)."""
    if set(map(stat_mod.S_IFMT, modes)) != {stat_mod.S_IFREG}:
        return None
    perms = [m & MODE_BITS for m in modes]
    return encode_tree_files(plan.names, perms, sizes, bytes(plan.ids), ds)


def _count_files(repo: Repository, tree_id: bytes) -> int:
    n = 0
    stack = [tree_id]
    while stack:
        for kind, oid in repo.tree_table(stack.pop()).kinds_and_ids():
            if kind == Kind.DIR:
                stack.append(oid)
            else:
                n += 1
    return n


def commit(
    repo: Repository,
    message: str,
    *,
    paths: list[str] | None = None,
    meta: dict[str, str] | None = None,
    allow_empty: bool = False,
    progress: Progress | None = None,
    summarizer: Summarizer | None = None,
) -> CommitResult:
    """Snapshot the working tree (or ``paths`` only) as a new commit on HEAD.

    The caller holds the repository lock.  Objects are made durable before
    the commit, and the commit before the ref that names it.  ``summarizer``
    computes the change summary stored in the commit (default: file counts and
    bytes); it may add keys, e.g. table rows and label changes.
    """
    progress = progress or Progress()
    ref_ns = time.time_ns()
    head = repo.refs.head()
    parent_tree = repo.read_commit(head.commit).tree if head.commit else None
    limit = Limit(paths)
    walk = Walk(repo, Scanner(repo.root, limit), load_cache(repo), parent_tree)
    store = repo.store
    written_before = store.written_bytes
    build = _CommitBuild(repo, walk, progress)
    # made before any thread of this process starts (progress, compression)
    shared = SharedBlocks(store.chunk_params, _open_to_read) if helper_mod.wanted() else None
    handlers: dict[str, Callable[..., Any]] = {
        "files": functools.partial(read_small_files, store, repo.root),
        "scan": scan_dir,
    }
    helper = walk.helper = Helper.start(
        store, handlers | (shared.handlers(store) if shared is not None else {})
    )
    if shared is not None and helper is not None:
        shared.helper, build.shared = helper, shared
    try:
        progress.start("committing")
        try:
            with store.background_compression():
                # A directory is left once the next one is entered: the helper then
                # reads its share of that one while this process builds the tree of
                # the one before (it would otherwise wait between directories).
                held: list[DirState] = []
                for st, leaving in walk:
                    if leaving:
                        held.append(st)
                        continue
                    build.enter(st)
                    for h in held:
                        build.leave(h)
                    held.clear()
                for h in held:
                    build.leave(h)
        finally:
            progress.finish()
        if helper is not None:
            helper.finish()  # it seals its packs while the summary is made
            # ... unless the summary reads an object the helper stored (a table)
            store.pending = helper.adopt

        tree = build.root
        assert tree is not None
        changes = build.changes
        changes.old_tree, changes.new_tree = parent_tree, tree
        unchanged = tree == parent_tree or (parent_tree is None and not changes.files)
        if unchanged and not allow_empty:
            store.abort()
            raise NothingToCommitError("nothing to commit, working tree clean")
        summary = (summarizer or _file_summary)(repo, changes)
        if helper is not None:
            helper.adopt()  # its packs, durable, join the store
    finally:
        store.pending = None
        if helper is not None:
            helper.close()
    summary["stored_bytes"] = store.written_bytes - written_before
    now = time.time()
    c = Commit(
        tree=tree,
        parents=(head.commit,) if head.commit else (),
        author=repo.identity(),
        time=int(now),
        tz=local_tz_minutes(now),
        message=message,
        summary=summary,
        meta=dict(meta or {}),
    )
    oid = repo.write_object(c)
    store.flush()  # objects durable before any ref names them
    who = repo.identity()
    first = message.splitlines()[0] if message else ""
    if head.branch is not None:
        repo.refs.append_reflog("HEAD", head.commit, oid, f"commit: {first}", who)
        repo.refs.update(head.branch, oid, expect=head.commit, message=f"commit: {first}", who=who)
    else:
        repo.refs.set_head(commit=oid, message=f"commit: {first}", who=who)

    # The stat cache now mirrors the new tree (where the commit looked).
    cache = walk.cache
    cache.loose = {p: v for p, v in cache.loose.items() if not limit.covers(p)}
    cache.save(ref_ns)
    return CommitResult(oid, c, head.branch)
