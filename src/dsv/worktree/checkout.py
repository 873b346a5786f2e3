"""Checkout: make the working tree hold a version's exact bytes and modes.

Nothing is half-done: every file to write is first written in full, verified
chunk by chunk and as a whole, into a staging directory inside ``.dsv``; only
when all of them are ready are old files removed and the new ones renamed into
place (rename is atomic, so each path holds either its old or its new version,
even if the process is killed).  A directory that is not on disk is staged
whole, its files under their own names, and renamed into place in one step.
Local changes are never overwritten without ``force``.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import signal
import stat as stat_mod
import struct
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dsv.atomic import copy_range, drop_cached
from dsv.errors import (
    ConflictError,
    CorruptObjectError,
    DsvError,
    NotFoundError,
    UnsafePathError,
    io_error,
)
from dsv.objects import MODE_BITS, Kind, TreeTable
from dsv.progress import Progress
from dsv.records import Record
from dsv.repo import Repository
from dsv.store import Store
from dsv.store.pack import Buffer, PackRange
from dsv.worktree.helper import can_fork
from dsv.worktree.scan import DSV_DIR, FULL, STAT, Limit, Scanner, join, pack_stat, stat_result
from dsv.worktree.snapshot import (
    PARALLEL_MIN_AVG_BYTES,
    STAGING,
    Compare,
    clean_staging,
    hash_path,
    load_cache,
    row_of,
    run_parallel,
)
from dsv.worktree.statcache import COARSE_GRANULARITY_NS
from dsv.worktree.walk import DirState, RefDir, Row, Walk, mirror

# Staged files are spread over directories of 2**STAGE_SHIFT: creating files in
# one directory of a million entries gets slower as it grows.
STAGE_SHIFT = 10
# Under the staging directory: new directories, staged whole (_new_dir_tops).
NEW_DIRS = "new"
# Files at least this big are written on a second thread while the next bytes are read.
PIPELINE_MIN = 32 << 20
# The GIL's switch interval while they are (seconds).
SWITCH_INTERVAL = 0.0002

# A checkout of at least this many small files is staged by two processes.
FORK_MIN_FILES = 2000
# Files of a directory handed to one of the two processes together.
FORK_BLOCK = 512
_COUNTS = struct.Struct("<QQ")  # files and bytes the forked copy has staged

# (name, kind, mode, size, id) of a file to write
_File = tuple[str, int, int, int, bytes]
# (position in the plan, where it is staged, path, file)
_Item = tuple[int, str, str, _File]


class CheckoutResult(Record):
    __slots__ = ("bytes_written", "kept", "removed", "written")

    def __init__(
        self,
        written: int = 0,
        removed: list[str] | None = None,
        kept: list[str] | None = None,
        bytes_written: int = 0,
    ) -> None:
        self.written = written  # files (a count: a clone may write millions)
        self.removed: list[str] = [] if removed is None else removed
        self.kept: list[str] = [] if kept is None else kept  # local changes left alone
        self.bytes_written = bytes_written


class _Writes:
    """The files of one directory to write: positions in its target tree, or rows."""

    __slots__ = ("dir", "idx", "rows", "table")

    def __init__(self, d: str, table: TreeTable | None) -> None:
        self.dir = d
        self.table = table
        self.idx = array("I")
        self.rows: list[_File] = []

    def add(self, name: str, target: RefDir) -> None:
        if self.table is not None:
            self.idx.append(target.pos[name])
        else:
            k, m, sz, oid = target.files[name]
            self.rows.append((name, k, m, sz, oid))

    def __iter__(self) -> Iterator[_File]:
        """``(name, kind, mode, size, id)`` of each file."""
        return self.range(0, len(self))

    def range(self, lo: int, hi: int) -> Iterator[_File]:
        """The files from the ``lo``-th to before the ``hi``-th."""
        if self.table is not None:
            row = self.table.row
            for i in self.idx[lo:hi]:
                yield row(i)
        else:
            yield from self.rows[lo:hi]

    def __len__(self) -> int:
        return len(self.idx) + len(self.rows)


class _Plan:
    """Decides, directory by directory, what a checkout writes, removes, keeps or refuses."""

    def __init__(self, repo: Repository, walk: Walk, paths_only: bool, force: bool) -> None:
        self.repo = repo
        self.walk = walk
        self.paths_only = paths_only
        self.force = force
        self.local = Compare(repo, walk, Progress())  # the working tree against HEAD
        self.writes: list[_Writes] = []
        self.count = 0
        self.bytes = 0
        self.deletes: list[str] = []
        self.conflicts: list[str] = []
        self.kept: list[str] = []
        self.in_way: set[str] = set()  # directories where files will be written
        self.blocked: dict[str, str] = {}  # directory -> the file on disk in its way

    def finish(self) -> None:
        """Conflicts only known once every directory was seen."""
        deleting = set(self.deletes)
        for p in self.in_way:
            full = os.path.join(self.repo.root, p)
            if any(join(p, b) not in deleting for b in _files_below(full)):
                self.conflicts.append(p)

    def enter(self, st: DirState) -> None:
        loc = self.local
        marks = (len(loc.added), len(loc.modified), len(loc.deleted))
        loc.enter(st)
        added = set(loc.added[marks[0] :])
        changed = set(loc.modified[marks[1] :])
        gone = set(loc.deleted[marks[2] :])
        same_version = st.ref_id == st.target_id
        if same_version and not (changed or gone) and st.path not in self.blocked:
            return  # the version changes nothing here, nor did anyone locally
        d = st.path
        head = self.walk.ref_dir(st)
        target = self.walk.target_dir(st)
        names = set(changed) | gone
        if not same_version:
            names |= {join(d, n) for n in head.files.keys() | target.files.keys()}
        writes = _Writes(d, target.table)
        lst = st.listing
        on_disk = set(lst.names) if lst is not None else set()
        dels: set[str] = set()
        for rel in sorted(names):
            name = rel.rpartition("/")[2]
            if st.scope != FULL and not self.walk.scanner.limit.covers(rel):
                continue
            t, h = target.files.get(name), head.files.get(name)
            ts, hs = _state(t), _state(h)
            if not self.paths_only and not self.force and ts == hs:
                # this version does not change the path: a local change to it is kept
                if rel in changed or rel in gone:
                    self.kept.append(rel)
                continue
            if rel in gone or name not in on_disk:
                ws = None
            elif rel in changed or rel in added:
                ws = self._disk_state(st, name)
            else:
                ws = hs
            if ws == ts:
                continue
            if ws is not None and ws != hs and not self.force:
                self.conflicts.append(rel)  # a local change would be lost
            elif t is None:
                self.deletes.append(rel)
                dels.add(rel)
            else:
                writes.add(name, target)
                self.bytes += t[2]
        # a file or link where the new version needs a directory with files to write
        blocker = self.blocked.pop(d, None)
        if blocker is not None and len(writes):
            self.conflicts.append(blocker)
        for name in target.dirs:
            kid = join(d, name)
            if blocker is not None:
                self.blocked[kid] = blocker
            elif name in on_disk and kid not in dels:
                self.blocked[kid] = kid
        # a directory where the new version has a file (ignored ones are not listed)
        if lst is not None:
            for name, *_ in writes:
                if name in on_disk:
                    continue
                p = join(d, name)
                full = os.path.join(self.repo.root, p)
                if os.path.isdir(full) and not os.path.islink(full):
                    self.in_way.add(p)
        if len(writes):
            self.writes.append(writes)
            self.count += len(writes)

    def _disk_state(self, st: DirState, name: str) -> tuple[int, int, bytes]:
        """(kind, mode, id) of a file on disk that differs from HEAD (hashed unless cached)."""
        lst = st.listing
        assert lst is not None
        i = lst.find(name)
        rec = lst.stats[i * STAT.size : (i + 1) * STAT.size]
        rel = join(st.path, name)
        oid = self.local.known_id(st, name, rel, rec)
        if oid is None:
            oid = hash_path(self.repo, rel, stat_result(rec))
        k, m, _, _ = row_of(rec, oid)
        return (k, m, oid)


def _state(row: Row | None) -> tuple[int, int, bytes] | None:
    return None if row is None else (row[0], row[1], row[3])


def _has_path(repo: Repository, tree: bytes | None, path: str) -> bool:
    """Whether ``path`` (a file, or a directory with files) is in ``tree``."""
    for part in path.split("/"):
        if tree is None:
            return False
        table = repo.tree_table(tree)
        i = table.find(part)
        if i < 0:
            return False
        tree = table.id(i) if table.kind(i) == Kind.DIR else None
    return True


def checkout(
    repo: Repository,
    target_tree: bytes | None,
    *,
    paths: list[str] | None = None,
    sparse: list[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> CheckoutResult:
    """Bring the working tree (or ``paths``) to ``target_tree``.

    ``paths`` restores those paths only (HEAD stays); ``sparse`` limits a
    whole-tree checkout to the paths a partial clone holds.

    The caller holds the repository lock and moves HEAD afterwards (for a
    whole-tree checkout).  Returns what was written, removed and kept.
    """
    progress = progress or Progress()
    start_ns = time.time_ns()
    head = repo.refs.head()
    head_tree = repo.read_commit(head.commit).tree if head.commit else None
    if paths is not None:
        for want in paths:
            if want and not (
                _has_path(repo, target_tree, want) or _has_path(repo, head_tree, want)
            ):
                raise NotFoundError(f"path not in that version: {want}")
    limit = Limit(paths if paths is not None else sparse)
    cache = load_cache(repo)
    walk = Walk(repo, Scanner(repo.root, limit), cache, head_tree, target_tree)
    plan = _Plan(repo, walk, paths is not None, force)
    for st, leaving in walk:
        if leaving:
            plan.local.leave(st)
        else:
            plan.enter(st)
    plan.finish()
    if plan.conflicts and not force:
        conflicts = sorted(set(plan.conflicts))
        shown = "\n  ".join(conflicts[:20])
        more = len(conflicts) - 20
        raise ConflictError(
            f"checkout would overwrite local changes in:\n  {shown}"
            + (f"\n  ... and {more} more" if more > 0 else ""),
            hint="commit them first, or use --force to discard them",
        )

    result = CheckoutResult()
    result.kept = sorted(plan.kept)
    root = repo.root
    stage = repo.dsv_dir / STAGING / f"checkout-{os.getpid()}"
    clean_staging(repo)
    try:
        stage.mkdir(parents=True)
    except OSError as exc:
        raise io_error("create", stage, exc) from exc
    # The cache is saved as of the end of the checkout, so that the files it
    # wrote are trusted on stat alone (but for those of its last tick, as in
    # git).  What the scan above hashed that was racily clean as of its start
    # is dropped: the later reference time would trust it.
    cache.drop_newer(start_ns - COARSE_GRANULARITY_NS)
    try:
        tops = _new_dir_tops(root, plan)
        stats = _stage_all(repo, stage, plan, tops, progress)
        deletes = sorted(plan.deletes)
        for p in deletes:
            _remove(root, p)
            result.removed.append(p)
        _prune_empty_dirs(root, deletes)
        cache.forget(deletes)
        made: set[str] = set()
        # directories not on disk arrive whole: one rename each
        for top in sorted(set(tops.values())):
            _make_parents(root, top, made)
            try:
                os.rename(os.path.join(stage, NEW_DIRS, top), os.path.join(root, top))
            except OSError as exc:
                raise io_error("write", top, exc) from exc
        staged = str(stage)
        n = 0
        size = STAT.size
        for group in plan.writes:
            fresh: dict[str, tuple[bytes, bytes]] = {}
            placed = group.dir in tops
            for name, _kind, _mode, sz, oid in group:
                p = join(group.dir, name)
                # zeros: a symlink, or a file renamed on its own (which changes its ctime)
                rec = bytes(stats[n * size : (n + 1) * size]) if placed else None
                if rec is None or not any(rec):
                    full = os.path.join(root, p)
                    try:
                        if not placed:
                            _make_parents(root, p, made)
                            if (
                                p in plan.in_way
                                and os.path.isdir(full)
                                and not os.path.islink(full)
                            ):
                                shutil.rmtree(full)  # only files being deleted were below (checked)
                            os.replace(_staged(staged, n), full)
                        rec = pack_stat(os.lstat(full))
                    except OSError as exc:
                        raise io_error("write", p, exc) from exc
                n += 1
                fresh[name] = (rec, oid)
                result.written += 1
                result.bytes_written += sz
            cache.merge(group.dir, fresh)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if not (plan.kept or plan.conflicts):
        mirror(repo, cache, target_tree, limit)
    cache.save(time.time_ns())
    return result


def _files_below(full: str) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(full):
        rel = os.path.relpath(dirpath, full)
        for f in files:
            out.append(f if rel == "." else f"{rel.replace(os.sep, '/')}/{f}")
    return out


def _new_dir_tops(root: Path, plan: _Plan) -> dict[str, str]:
    """Directories to write files in that are not on disk: each one's highest such ancestor.

    Their files are staged under their own names in a copy of that
    ancestor (``NEW_DIRS``), which is then renamed into place whole: one
    rename for a new directory of any size instead of one per file (a clone,
    or a checkout into a workspace without its data directory).
    """
    known: dict[str, bool] = {"": True}

    def on_disk(d: str) -> bool:
        got = known.get(d)
        if got is None:
            got = known[d] = os.path.lexists(os.path.join(root, d))
        return got

    tops: dict[str, str] = {}
    for g in plan.writes:
        d = g.dir
        if on_disk(d):
            continue
        if DSV_DIR in d.split("/"):
            raise UnsafePathError(f"refusing to write inside {DSV_DIR}: {d}")
        top, parent = d, d.rpartition("/")[0]
        while not on_disk(parent):
            top, parent = parent, parent.rpartition("/")[0]
        tops[d] = top
    return tops


def _stage_all(
    repo: Repository, stage: Path, plan: _Plan, tops: dict[str, str], progress: Progress
) -> bytearray | mmap.mmap:
    """Write every file of the plan under ``stage``.

    Files of a directory in ``tops`` go under ``NEW_DIRS`` with their own
    paths; the others are named 0, 1, ... in the plan's order.  Returns the
    stat records (``STAT``, in the plan's order) of the files that keep them
    once in place, those renamed with their directory; zeros for the others
    (a rename of the file itself changes its ctime).
    """
    progress.start("checking out", plan.count, plan.bytes)
    base = str(stage)
    new_base = os.path.join(base, NEW_DIRS)
    for k in range((plan.count >> STAGE_SHIFT) + 1):
        try:
            os.mkdir(os.path.join(base, str(k)))
        except OSError as exc:
            raise io_error("create", os.path.join(base, str(k)), exc) from exc
    for d in tops:
        try:
            os.makedirs(os.path.join(new_base, d), exist_ok=True)
        except OSError as exc:
            raise io_error("create", os.path.join(new_base, d), exc) from exc
    umask = os.umask(0o022)
    os.umask(umask)
    size = STAT.size
    new_prefix = new_base + "/"

    blocks = _blocks(plan)

    def items(which: Iterable[int] | None) -> Iterator[_Item]:
        """The files of the blocks ``which`` (of all of them, for None), in that order."""
        for b in range(len(blocks)) if which is None else which:
            g, lo, hi, n = blocks[b]
            d = g.dir
            new = d in tops
            for f in g.range(lo, hi):
                p = join(d, f[0])
                yield n, (new_prefix + p if new else _staged(base, n)), p, f
                n += 1

    def write(item: _Item, stats: bytearray | mmap.mmap) -> int:
        n, tmp, p, f = item
        rec = _stage_one(repo, tmp, p, f, umask)
        if rec is not None and tmp.startswith(new_prefix):  # in a directory renamed whole
            stats[n * size : (n + 1) * size] = rec
        return f[3]

    small = plan.bytes < PARALLEL_MIN_AVG_BYTES * plan.count
    if not (small and plan.count >= FORK_MIN_FILES and can_fork()):
        stats = bytearray(plan.count * size)

        def one(item: _Item) -> None:
            progress.advance(1, write(item, stats))

        try:
            run_parallel(one, items(None), plan.bytes, plan.count)
        finally:
            progress.finish()
        return stats
    try:
        return _stage_forked(plan, blocks, items, write, progress)
    finally:
        progress.finish()


def _stage_forked(
    plan: _Plan,
    blocks: list[_Block],
    items: Callable[[Iterable[int] | None], Iterator[_Item]],
    write: Callable[[_Item, bytearray | mmap.mmap], int],
    progress: Progress,
) -> mmap.mmap:
    """Stage with a forked copy of this process: the two take the plan's units
    (``_units``) from a queue, biggest first, until none is left.

    Small files cost Python work and the kernel's file creation, one core's
    worth each; a second process, in other directories, uses the second core.
    A queue rather than a split decided beforehand: either process can fall
    behind (the machine's other work, a slower disk), and the other then takes
    more.  The copy writes its files' stat records, the units it took and its
    progress into shared memory.  If it fails for any reason, what it took is
    staged again here, so that an error is raised, with its own type and
    message, in this process.
    """
    size = STAT.size
    units = _units(plan, blocks)
    counts = plan.count * size  # the copy's progress (files, bytes) follows the records
    taken_at = counts + _COUNTS.size  # then who took each unit (0: no one yet)
    stats = mmap.mmap(-1, taken_at + len(units))
    queue_r = _queue(len(units))
    parent = os.getpid()
    try:
        pid = os.fork() if queue_r is not None else -1
    except OSError:
        pid = -1  # no second process now (memory, process limits): all is done here
    if pid == 0:  # the copy: stage what it takes, report through shared memory, never return
        assert queue_r is not None
        code = 1
        try:
            nbytes = done = 0
            orphan = False  # the command was killed: so is its work (and its lock, now)
            while not orphan and (u := _take(queue_r)) is not None:
                stats[taken_at + u] = _BY_COPY
                for item in items(units[u]):
                    nbytes += write(item, stats)
                    done += 1
                    _COUNTS.pack_into(stats, counts, done, nbytes)
                    if not done & 63 and os.getppid() != parent:
                        orphan = True
                        break
            code = 1 if orphan else 0
        finally:
            os._exit(code)
    seen = (0, 0)
    status = 1
    todo = iter(range(len(units))) if queue_r is None else iter(lambda: _take(queue_r), None)
    try:
        k = 0
        for u in todo:
            stats[taken_at + u] = _BY_US
            for item in items(units[u]):
                progress.advance(1, write(item, stats))
                if not k & 255:
                    now = _COUNTS.unpack_from(stats, counts)
                    progress.advance(now[0] - seen[0], now[1] - seen[1])
                    seen = now
                k += 1
        if pid > 0:
            _, status = os.waitpid(pid, 0)
            pid = -1
    except BaseException:
        if pid > 0:  # interrupted, or an error here: the copy's work is not wanted
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    finally:
        if queue_r is not None:
            os.close(queue_r)
    now = _COUNTS.unpack_from(stats, counts)
    progress.advance(now[0] - seen[0], now[1] - seen[1])
    if status != 0:
        # what the copy took, in the order it took it (and a unit it may have
        # taken without saying so); what it reported is counted already
        redo = [u for u in range(len(units)) if stats[taken_at + u] != _BY_US]
        for k, item in enumerate(items(b for u in redo for b in units[u])):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(item[1])
            nbytes = write(item, stats)
            if k >= now[0]:
                progress.advance(1, nbytes)
    return stats


_BY_US, _BY_COPY = 1, 2  # who took a unit of a forked staging
_UNIT = struct.Struct("<I")


def _queue(n: int) -> int | None:
    """The read end of a pipe holding the units 0 .. n-1 (None: it cannot hold them all;
    ``MAX_UNITS`` fit in the smallest pipe Linux makes, one page)."""
    r, w = os.pipe()
    try:
        os.set_blocking(w, False)
        view = memoryview(b"".join(_UNIT.pack(u) for u in range(n)))
        while view:
            view = view[os.write(w, view) :]
    except BlockingIOError:
        os.close(r)
        return None
    finally:
        os.close(w)
    return r


def _take(fd: int) -> int | None:
    """The next unit from the queue (None: none left).  Both processes read it: a
    pipe hands each read of a few bytes to one reader, whole."""
    data = os.read(fd, _UNIT.size)
    return _UNIT.unpack(data)[0] if data else None


# (directory, first file, end, position in the plan of the first file)
_Block = tuple[_Writes, int, int, int]


def _blocks(plan: _Plan) -> list[_Block]:
    """The plan's files by blocks of at most ``FORK_BLOCK`` of one directory, in order."""
    out: list[_Block] = []
    n = 0
    for g in plan.writes:
        for lo in range(0, len(g), FORK_BLOCK):
            hi = min(len(g), lo + FORK_BLOCK)
            out.append((g, lo, hi, n))
            n += hi - lo
    return out


# The most units a forked staging queues: 4 bytes each in a pipe, whose capacity is
# one page (4 KiB) at least.
MAX_UNITS = 1 << 10


def _units(plan: _Plan, blocks: list[_Block]) -> list[list[int]]:
    """What one of the two staging processes takes at a time: lists of blocks, biggest first.

    A directory of at most an eighth of the files is one unit: two processes
    creating files in one directory wait for each other on its lock (20,000
    files in 20 directories: 4 % of the checkout's time spent spinning on it,
    and the checkout 4 % slower).  A bigger one is a unit per block.
    """
    units: list[tuple[int, list[int]]] = []  # (files, blocks)
    whole = plan.count // 8
    b = 0
    for g in plan.writes:  # the order of _blocks: each directory's blocks follow each other
        e = b + -(-len(g) // FORK_BLOCK)
        if len(g) <= whole:
            units.append((len(g), list(range(b, e))))
        else:
            units += [(blocks[i][2] - blocks[i][1], [i]) for i in range(b, e)]
        b = e
    units.sort(key=lambda u: -u[0])  # stable: same-sized ones stay in the plan's order
    if len(units) > MAX_UNITS:  # units of about the same size together (many directories)
        step = -(-len(units) // MAX_UNITS)
        merged = [units[i : i + step] for i in range(0, len(units), step)]
        return [[b for _, bs in group for b in bs] for group in merged]
    return [bs for _, bs in units]


def _staged(base: str, n: int) -> str:
    """Where the ``n``-th file of a checkout is staged: 1024 to a directory."""
    return f"{base}/{n >> STAGE_SHIFT}/{n}"


def _stage_one(repo: Repository, tmp: str, p: str, f: _File, umask: int) -> bytes | None:
    """Write one file (or symlink) at ``tmp``; the file's stat record (None for a symlink)."""
    _name, kind, mode, size, oid = f
    mode &= MODE_BITS  # never a setuid, setgid or sticky file (see MODE_BITS)
    try:
        if kind == Kind.SYMLINK:
            target = repo.store.get_bytes(oid, 1 << 20)
            os.symlink(target, tmp)
            return None
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            try:
                # The staged file is renamed into place only once its whole
                # content matched its id: one hash of it is enough.
                _write_content(fd, repo.store, oid, size, False)
            except CorruptObjectError:
                # Again chunk by chunk, which names the damaged chunk (or
                # reads around a damaged record header through the index).
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                _write_content(fd, repo.store, oid, size, True)
            if mode & (umask | 0o7000):  # open() gave another mode than the one recorded
                os.fchmod(fd, mode)
            return pack_stat(os.fstat(fd))
        finally:
            os.close(fd)
    except DsvError as exc:
        raise type(exc)(f"{p}: {exc.message}") from None
    except OSError as exc:
        raise io_error("write", p, exc) from exc


def _write_content(fd: int, store: Store, oid: bytes, size: int, check_chunks: bool) -> None:
    if size >= PIPELINE_MIN:
        # chunks stored as they are go from the pack to the file inside the kernel
        ranges = hasattr(os, "copy_file_range")
        _write_pipelined(fd, store.iter_content_runs(oid, check_chunks, ranges))
    else:
        for parts in store.iter_content_runs(oid, check_chunks):
            _write_all(fd, parts)  # type: ignore[arg-type]  # no ranges were asked for


def _write_pipelined(fd: int, runs: Iterator[list[Buffer | PackRange]]) -> None:
    """Write the runs on a second thread while this one reads and verifies the next.

    Writes, copies and reads of the pack (mapped) release the GIL, so the
    copy into the new file overlaps the hashing.  At most a few runs wait in
    between.
    """
    import queue
    import threading

    q: queue.Queue[list[Buffer | PackRange] | None] = queue.Queue(maxsize=3)
    failed: list[BaseException] = []

    def writer() -> None:
        while (parts := q.get()) is not None:
            if not failed:
                try:
                    _write_parts(fd, parts)
                except BaseException as exc:
                    failed.append(exc)

    th = threading.Thread(target=writer, name="dsv-write", daemon=True)
    # Both threads take the GIL back after every call that released it, the
    # writer once per chunk copied: at the default interval (5 ms) it waits
    # most of the time for the reader to hand it over.  1 GiB: 0.9-1.2 s at
    # 5 ms, 0.7-0.8 s at 0.2 ms (copying it alone takes 0.55-0.6 s here).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
    th.start()
    try:
        for parts in runs:
            if failed:
                break
            q.put(parts)
    finally:
        q.put(None)
        th.join()
        sys.setswitchinterval(interval)
    if failed:
        raise failed[0]


def _write_parts(fd: int, parts: list[Buffer | PackRange]) -> None:
    """Write buffers and pack ranges in order.

    The pack's pages that were copied are then dropped from the page cache
    (``POSIX_FADV_DONTNEED``, a hint): the file now holds the same bytes, and
    the next pages the checkout reads or writes reuse the memory instead of
    taking more.  On a VM whose host reclaims free guest memory, fresh pages
    are the expensive part of a big checkout (1 GiB read and written: 0.74-
    0.83 s with the source pages dropped as read, 1.8-2.3 s without).
    """
    bufs: list[Buffer] = []
    spans: dict[int, tuple[int, int]] = {}  # pack fd -> first and last byte copied from it
    for x in parts:
        if isinstance(x, PackRange):
            if bufs:
                _write_all(fd, bufs)
                bufs = []
            _copy_range(x, fd)
            end = x.offset + x.length
            lo, hi = spans.get(x.fd, (x.offset, end))
            spans[x.fd] = (min(lo, x.offset), max(hi, end))
        else:
            bufs.append(x)
    if bufs:
        _write_all(fd, bufs)
    for pack_fd, (lo, hi) in spans.items():
        drop_cached(pack_fd, lo, hi - lo)


def _copy_range(r: PackRange, fd: int) -> None:
    """Copy a range of a pack to the end of ``fd``."""
    if copy_range(r.fd, fd, r.offset, r.length) != r.length:
        raise CorruptObjectError("pack truncated under a checkout")


def _write_all(fd: int, parts: list[Buffer]) -> None:
    """Write the parts in order with as few calls as the OS allows."""
    left = sum(len(x) for x in parts)
    while left:
        n = os.writev(fd, parts[:1024])  # IOV_MAX
        left -= n
        while parts and n >= len(parts[0]):
            n -= len(parts[0])
            parts = parts[1:]
        if n:
            parts = [memoryview(parts[0])[n:], *parts[1:]]


def _remove(root: Path, p: str) -> None:
    full = os.path.join(root, p)
    try:
        os.unlink(full)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(full)
    except OSError as exc:
        raise io_error("remove", p, exc) from exc


def _prune_empty_dirs(root: Path, removed: list[str]) -> None:
    dirs = set()
    for p in removed:
        while "/" in p:
            p = p.rpartition("/")[0]
            dirs.add(p)
    for d in sorted(dirs, key=lambda x: x.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(root, d))


def _make_parents(root: Path, p: str, made: set[str]) -> None:
    """Create the directories above ``p``, refusing to go through a symlink."""
    parent = p.rpartition("/")[0]
    if not parent or parent in made:
        return
    cur = ""
    for part in parent.split("/"):
        cur = f"{cur}/{part}" if cur else part
        if cur in made:
            continue
        if part == DSV_DIR:
            raise UnsafePathError(f"refusing to write inside {DSV_DIR}: {p}")
        full = os.path.join(root, cur)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            try:
                os.mkdir(full)
            except OSError as exc:
                raise io_error("create directory", cur, exc) from exc
        except OSError as exc:
            raise io_error("stat", cur, exc) from exc
        else:
            if not stat_mod.S_ISDIR(st.st_mode):
                raise UnsafePathError(f"refusing to write {p}: {cur} is not a directory")
        made.add(cur)
