"""Checkout: make the working tree hold a version's exact bytes and modes.

Nothing is half-done: every file to write is first written in full, verified
chunk by chunk and as a whole, into a staging directory inside ``.dsv``; only
when all of them are ready are old files removed and the new ones renamed into
place (rename is atomic, so each path holds either its old or its new version,
even if the process is killed).  Local changes are never overwritten without
``force``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat as stat_mod
import time
from dataclasses import dataclass, field
from pathlib import Path

from dsv.errors import ConflictError, DsvError, NotFoundError, UnsafePathError, io_error
from dsv.objects import Kind, TreeEntry
from dsv.progress import Progress
from dsv.repo import Repository
from dsv.store.pack import Buffer
from dsv.worktree.scan import DSV_DIR, scan
from dsv.worktree.snapshot import hash_path, load_cache, run_parallel
from dsv.worktree.statcache import entry_from_stat, granularity_for

STAGING = "tmp"


@dataclass
class CheckoutResult:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # local changes left alone
    bytes_written: int = 0


def _state(e: TreeEntry | None) -> tuple[int, int, bytes] | None:
    return None if e is None else (int(e.kind), e.mode, e.id)


def clean_staging(repo: Repository) -> None:
    """Remove what an interrupted checkout left in the staging area (caller holds the lock)."""
    shutil.rmtree(repo.dsv_dir / STAGING, ignore_errors=True)


def _under(path: str, prefixes: list[str]) -> bool:
    return any(not p or path == p or path.startswith(p + "/") for p in prefixes)


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
    ref_ns = time.time_ns()
    head = repo.refs.head()
    head_tree = repo.read_commit(head.commit).tree if head.commit else None
    H = repo.flatten(head_tree)
    T = repo.flatten(target_tree)
    if paths is not None:
        for want in paths:
            if want and not any(_under(q, [want]) for q in (*T, *H)):
                raise NotFoundError(f"path not in that version: {want}")
    limit = paths if paths is not None else sparse
    sc = scan(repo.root, limit)
    cache = load_cache(repo)
    root = repo.root

    def wstate(p: str) -> tuple[int, int, bytes] | None:
        st = sc.files.get(p)
        if st is None:
            return None
        oid = cache.lookup(p, st)
        if oid is None:
            oid = hash_path(repo, p, st)
            cache.entries[p] = entry_from_stat(st, oid)
        kind = Kind.SYMLINK if stat_mod.S_ISLNK(st.st_mode) else Kind.FILE
        return (int(kind), st.st_mode & 0o7777, oid)

    result = CheckoutResult()
    writes: list[tuple[str, TreeEntry]] = []
    deletes: list[str] = []
    conflicts: list[str] = []
    candidates = set(H) | set(T)
    if limit is not None:
        candidates = {p for p in candidates if _under(p, limit)}
    for p in sorted(candidates):
        t, h = T.get(p), H.get(p)
        ts, hs = _state(t), _state(h)
        if paths is None and not force and ts == hs:
            # this version does not change the path: a local change to it is kept
            if wstate(p) != ts:
                result.kept.append(p)
            continue
        ws = wstate(p)
        if ws == ts:
            continue
        if ws is not None and ws != hs and not force:
            conflicts.append(p)  # a local change would be lost
        elif t is None:
            deletes.append(p)
        else:
            writes.append((p, t))

    deleting = set(deletes)
    for p, _ in writes:
        # a file or link where the new path needs a directory
        a = p
        while "/" in a:
            a = a.rpartition("/")[0]
            if a in sc.files and a not in deleting:
                conflicts.append(a)
        full = os.path.join(root, p)
        if os.path.isdir(full) and not os.path.islink(full):
            blocking = _files_below(full)
            if any(f"{p}/{b}" not in deleting for b in blocking):
                conflicts.append(p)
    if conflicts and not force:
        shown = "\n  ".join(sorted(set(conflicts))[:20])
        more = len(set(conflicts)) - 20
        raise ConflictError(
            f"checkout would overwrite local changes in:\n  {shown}"
            + (f"\n  ... and {more} more" if more > 0 else ""),
            hint="commit them first, or use --force to discard them",
        )

    stage = repo.dsv_dir / STAGING / f"checkout-{os.getpid()}"
    clean_staging(repo)
    try:
        stage.mkdir(parents=True)
    except OSError as exc:
        raise io_error("create", stage, exc) from exc
    try:
        staged = _stage_all(repo, stage, writes, progress)
        for p in deletes:
            _remove(root, p)
            result.removed.append(p)
        _prune_empty_dirs(root, deletes)
        made: set[str] = set()
        for (p, t), tmp in zip(writes, staged):
            full = os.path.join(root, p)
            _make_parents(root, p, made)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)  # only files being deleted were below (checked above)
            try:
                os.replace(tmp, full)
                st = os.lstat(full)
            except OSError as exc:
                raise io_error("write", p, exc) from exc
            cache.entries[p] = entry_from_stat(st, t.id)
            result.written.append(p)
            result.bytes_written += t.size
    finally:
        shutil.rmtree(stage, ignore_errors=True)

    for p in result.removed:
        cache.entries.pop(p, None)
    for p in [
        p
        for p in cache.entries
        if p not in T and p not in sc.files and (limit is None or _under(p, limit))
    ]:
        del cache.entries[p]
    mirrors = limit is None and not result.kept and all(p in cache.entries for p in T)
    cache.tree = target_tree if mirrors and set(cache.entries) == set(T) else None
    cache.save(ref_ns, granularity_for([s.st_mtime_ns for s in sc.files.values()]))
    return result


def _files_below(full: str) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(full):
        rel = os.path.relpath(dirpath, full)
        for f in files:
            out.append(f if rel == "." else f"{rel.replace(os.sep, '/')}/{f}")
    return out


def _stage_all(
    repo: Repository, stage: Path, writes: list[tuple[str, TreeEntry]], progress: Progress
) -> list[str]:
    progress.start("checking out", len(writes), sum(t.size for _, t in writes))
    names = [str(stage / str(i)) for i in range(len(writes))]

    def one(i: int) -> None:
        p, t = writes[i]
        _stage_one(repo, names[i], p, t)
        progress.advance(1, t.size)

    try:
        run_parallel(one, range(len(writes)), sum(t.size for _, t in writes))
    finally:
        progress.finish()
    return names


def _stage_one(repo: Repository, tmp: str, p: str, t: TreeEntry) -> None:
    try:
        if t.kind == Kind.SYMLINK:
            target = repo.store.get_bytes(t.id, 1 << 20)
            os.symlink(target, tmp)
            return
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for parts in repo.store.iter_content_runs(t.id):
                _write_all(fd, parts)
            os.fchmod(fd, t.mode)
        finally:
            os.close(fd)
    except DsvError as exc:
        raise type(exc)(f"{p}: {exc.message}") from None
    except OSError as exc:
        raise io_error("write", p, exc) from exc


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
