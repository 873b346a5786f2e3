"""Store maintenance: ``gc`` (drop unreachable data, repack) and ``fsck`` (verify what is reachable).

Reachable means: named by a ref, HEAD, or any reflog entry (so a deleted
branch's commits survive until its reflog is removed), then everything those
commits name, down to every chunk.
"""

from __future__ import annotations

import contextlib
import os

from dsv.atomic import TEMP_MARK
from dsv.errors import CorruptObjectError, DsvError, FormatError, NotFoundError
from dsv.objects import Commit, Kind, Tag
from dsv.progress import Progress
from dsv.records import Record
from dsv.repo import Repository
from dsv.store import PACK_TARGET, Store
from dsv.store.pack import MIDX_NAME, PackFile, PackWriter, scan_pack


class Problem(Record):
    __slots__ = ("kind", "message", "oid", "where")

    def __init__(self, kind: str, oid: str, message: str, where: list[str] | None = None) -> None:
        self.kind = kind  # "missing", "corrupt", "bad-ref", "bad-pack"
        self.oid = oid  # hex id, or the name of a file (pack, ref)
        self.message = message
        self.where: list[str] = [] if where is None else where  # "commit-id:path" that reference it

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "object": self.oid, "message": self.message, "where": self.where}


def root_commits(repo: Repository, problems: list[Problem] | None = None) -> dict[bytes, str]:
    """Every id a ref, HEAD or a reflog names, with a label for reports."""
    roots: dict[bytes, str] = {}
    try:
        refs = repo.refs.list_refs()
    except DsvError as exc:
        if problems is None:
            raise
        problems.append(Problem("bad-ref", "refs", str(exc)))
        refs = {}
    for name, oid in refs.items():
        roots.setdefault(oid, name)
    try:
        head = repo.refs.head()
        if head.commit is not None:
            roots.setdefault(head.commit, "HEAD")
    except DsvError as exc:
        if problems is None:
            raise
        problems.append(Problem("bad-ref", "HEAD", str(exc)))
    logs = repo.dsv_dir / "logs"
    for dirpath, _dirs, files in os.walk(logs):
        for f in files:
            name = os.path.relpath(os.path.join(dirpath, f), repo.dsv_dir).replace(os.sep, "/")
            refname = name[len("logs/") :]
            for e in repo.refs.reflog(refname):
                for logged in (e.old, e.new):
                    if logged is not None:
                        roots.setdefault(logged, f"reflog {refname}")
    return roots


class Walk(Record):
    """Ids reachable from the roots, split by role."""

    __slots__ = ("absent", "commits", "files", "problems", "tags", "trees")

    def __init__(
        self,
        commits: set[bytes] | None = None,
        tags: set[bytes] | None = None,
        trees: set[bytes] | None = None,
        files: dict[bytes, str] | None = None,
        problems: list[Problem] | None = None,
        absent: int = 0,
    ) -> None:
        self.commits: set[bytes] = set() if commits is None else commits
        self.tags: set[bytes] = set() if tags is None else tags
        self.trees: set[bytes] = set() if trees is None else trees
        # file id -> first "commit:path" seen
        self.files: dict[bytes, str] = {} if files is None else files
        self.problems: list[Problem] = [] if problems is None else problems
        self.absent = absent  # trees a partial clone did not fetch


def walk_reachable(
    repo: Repository, *, tolerant: bool, reflog: bool = True, allow_absent: bool = False
) -> Walk:
    """Walk commits, tags and trees.  ``tolerant`` records problems instead of raising.

    ``allow_absent``: a tree missing from the store is not a problem (a partial
    clone fetches the data of some versions only); it is counted in ``absent``.
    """
    w = Walk()
    roots = root_commits(repo, w.problems if tolerant else None)
    stack: list[tuple[bytes, str]] = [
        (oid, label) for oid, label in roots.items() if reflog or not label.startswith("reflog")
    ]
    trees: list[tuple[bytes, str, str]] = []
    while stack:
        oid, label = stack.pop()
        if oid in w.commits or oid in w.tags:
            continue
        try:
            obj = repo.read_object(oid)
        except DsvError as exc:
            if not tolerant:
                raise
            kind = "missing" if isinstance(exc, NotFoundError) else "corrupt"
            w.problems.append(Problem(kind, oid.hex(), str(exc), [label]))
            continue
        if isinstance(obj, Tag):
            w.tags.add(oid)
            stack.append((obj.object, label))
        else:
            assert isinstance(obj, Commit)
            w.commits.add(oid)
            trees.append((obj.tree, oid.hex(), ""))
            for p in obj.parents:
                stack.append((p, label))
    while trees:
        tid, cid, prefix = trees.pop()
        if tid in w.trees:
            continue
        if allow_absent and not repo.store.has(tid):
            w.absent += 1
            continue
        try:
            entries = repo.read_tree(tid)
        except DsvError as exc:
            if not tolerant:
                raise
            kind = "missing" if isinstance(exc, NotFoundError) else "corrupt"
            w.problems.append(Problem(kind, tid.hex(), str(exc), [f"{cid}:{prefix or '/'}"]))
            continue
        w.trees.add(tid)
        for e in entries:
            path = f"{prefix}{e.name}"
            if e.kind == Kind.DIR:
                trees.append((e.id, cid, path + "/"))
            else:
                w.files.setdefault(e.id, f"{cid}:{path}")
    return w


class FsckResult(Record):
    __slots__ = (
        "bytes_checked",
        "chunks",
        "commits",
        "files",
        "not_fetched",
        "packs",
        "problems",
        "trees",
    )

    def __init__(
        self,
        problems: list[Problem],
        commits: int = 0,
        trees: int = 0,
        files: int = 0,
        chunks: int = 0,
        packs: int = 0,
        bytes_checked: int = 0,
        not_fetched: int = 0,
    ) -> None:
        self.problems = problems
        self.commits = commits
        self.trees = trees
        self.files = files
        self.chunks = chunks
        self.packs = packs
        self.bytes_checked = bytes_checked
        self.not_fetched = not_fetched  # trees and files a partial clone has not downloaded

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(repo: Repository, progress: Progress | None = None) -> FsckResult:
    """Verify packs (checksums, indexes) and every reachable object's bytes."""
    progress = progress or Progress()
    problems: list[Problem] = []
    res = FsckResult(problems)
    store = repo.store
    for pack in store.packs:
        res.packs += 1
        try:
            _algo, records, digest = scan_pack(pack.path)
        except DsvError as exc:
            problems.append(Problem("bad-pack", pack.path.name, str(exc)))
            continue
        if digest != pack.pack_checksum:
            problems.append(Problem("bad-pack", pack.path.name, "index belongs to another pack"))
            continue
        for rec in records:
            e = pack.find(rec[0])
            if e is None or (rec[0], e.offset, e.stored_len, e.raw_len, e.kind, e.codec) != rec:
                problems.append(
                    Problem(
                        "bad-pack",
                        pack.path.name,
                        f"index entry for {rec[0].hex()} does not match the pack",
                    )
                )
        if pack.count != len(records):
            problems.append(
                Problem("bad-pack", pack.path.name, "index and pack differ in object count")
            )
    w = walk_reachable(repo, tolerant=True, allow_absent=repo.partial)
    problems.extend(w.problems)
    res.not_fetched = w.absent
    res.commits, res.trees, res.files = len(w.commits), len(w.trees), len(w.files)
    seen_chunks: set[bytes] = set()
    progress.start("checking files", len(w.files))
    for fid, where in w.files.items():
        if repo.partial and not store.has(fid):
            res.not_fetched += 1
            progress.advance(1)
            continue
        try:
            ids, lengths = store.chunk_table(fid)
            whole = repo.algo.new() if len(ids) > 1 else None
            for cid, n in zip(ids, lengths):
                if whole is None and cid in seen_chunks:
                    continue
                data = store.read_chunk(cid)  # verifies the chunk's own id
                if whole is not None:
                    whole.update(data)
                if cid not in seen_chunks:
                    seen_chunks.add(cid)
                    res.bytes_checked += n
            if whole is not None and whole.digest() != fid:
                raise CorruptObjectError(f"object {fid.hex()}: chunks do not add up to its id")
        except DsvError as exc:
            kind = "missing" if isinstance(exc, NotFoundError) else "corrupt"
            problems.append(Problem(kind, fid.hex(), str(exc), [where]))
        progress.advance(1)
    progress.finish()
    res.chunks = len(seen_chunks)
    if problems:
        _locate_paths(repo, w, problems)
    return res


def _locate_paths(repo: Repository, w: Walk, problems: list[Problem]) -> None:
    """Name every commit:path that references a bad file (not just the first seen)."""
    bad = {
        bytes.fromhex(p.oid): p
        for p in problems
        if p.kind in ("missing", "corrupt") and len(p.oid) == repo.algo.hex_size
    }
    if not bad:
        return
    for cid in w.commits:
        try:
            flat = repo.flatten(repo.read_commit(cid).tree)
        except DsvError:
            continue
        for path, e in flat.items():
            p = bad.get(e.id)
            if p is not None:
                ref = f"{cid.hex()}:{path}"
                if ref not in p.where:
                    p.where.append(ref)
    for p in bad.values():
        p.where.sort()


def _refresh_multi_index(store: Store) -> None:
    """After a repack: one multi-pack index over what is left (none for a single pack)."""
    if not store.write_multi_index():
        with contextlib.suppress(FileNotFoundError):
            (store.pack_dir / MIDX_NAME).unlink()
        store.reload()


def _expire_reflogs(repo: Repository) -> None:
    logs = repo.dsv_dir / "logs"
    for dirpath, _dirs, files in os.walk(logs):
        for f in files:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(dirpath, f))


class GcResult(Record):
    __slots__ = (
        "bytes_after",
        "bytes_before",
        "objects_after",
        "objects_before",
        "packs_after",
        "packs_before",
    )

    def __init__(
        self,
        packs_before: int,
        packs_after: int,
        objects_before: int,
        objects_after: int,
        bytes_before: int,
        bytes_after: int,
    ) -> None:
        self.packs_before = packs_before
        self.packs_after = packs_after
        self.objects_before = objects_before
        self.objects_after = objects_after
        self.bytes_before = bytes_before
        self.bytes_after = bytes_after

    def as_dict(self) -> dict[str, int]:
        """The counts in the order ``dsv gc --json`` has always printed them."""
        return {
            "packs_before": self.packs_before,
            "packs_after": self.packs_after,
            "objects_before": self.objects_before,
            "objects_after": self.objects_after,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
        }


def _dir_bytes(repo: Repository) -> int:
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(repo.store.pack_dir):
            with contextlib.suppress(OSError):
                total += entry.stat().st_size
    return total


def gc(
    repo: Repository, progress: Progress | None = None, *, keep_reflogs: bool = True
) -> GcResult:
    """Keep only reachable objects, in as few packs as possible.  Caller holds the lock.

    With ``keep_reflogs=False`` only refs and HEAD count as roots and the
    reflogs are emptied: what only a reflog remembered is deleted.

    New packs are complete and indexed before any old pack is removed, so a
    crash at any point leaves every reachable object readable.
    """
    progress = progress or Progress()
    store = repo.store
    # Leftovers of killed processes: under the lock, no writer is running.
    for entry in list(os.scandir(store.pack_dir)) if store.pack_dir.is_dir() else []:
        if entry.name.startswith(TEMP_MARK):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    w = walk_reachable(repo, tolerant=False, reflog=keep_reflogs, allow_absent=repo.partial)
    keep: set[bytes] = set(w.commits) | set(w.tags)
    for tid in w.trees:
        keep.add(tid)
        keep.update(store.chunks(tid))
    for fid in w.files:
        if repo.partial and not store.has(fid):
            continue
        keep.add(fid)
        keep.update(store.chunks(fid))
    packs = list(store.packs)
    bytes_before = _dir_bytes(repo)
    objects_before = sum(p.count for p in packs)
    # Unindexed packs (a crash between pack and index) hold nothing readable.
    indexed = {p.path.name for p in packs}
    orphans = (
        [
            e.path
            for e in os.scandir(store.pack_dir)
            if e.name.endswith(".pack") and e.name not in indexed
        ]
        if store.pack_dir.is_dir()
        else []
    )
    # A pack is kept as it is when all of it is reachable and it is big enough;
    # only packs with garbage, and small packs, are rewritten (merged).
    full_size = PACK_TARGET // 2
    keep_as_is: list[PackFile] = []
    rewrite: list[PackFile] = []
    for p in packs:
        live = sum(1 for oid in p.ids() if oid in keep)
        if live == p.count and p.path.stat().st_size >= full_size:
            keep_as_is.append(p)
        else:
            rewrite.append(p)
    small_clean = [p for p in rewrite if sum(1 for oid in p.ids() if oid in keep) == p.count]
    if not orphans and (not rewrite or (len(rewrite) == 1 and small_clean == rewrite)):
        if not keep_reflogs:
            _expire_reflogs(repo)
        store.write_multi_index(min_loose=1)  # nothing to repack: just index what is loose
        return GcResult(
            len(packs), len(packs), objects_before, objects_before, bytes_before, bytes_before
        )
    kept_ids = {oid for p in keep_as_is for oid in p.ids()}
    packs_before = len(packs)
    packs = rewrite
    progress.start("repacking", len(keep))
    writer: PackWriter | None = None
    written: set[bytes] = set()
    new_paths = []
    for pack in packs:
        for oid, e in pack.entries():
            if oid not in keep or oid in written or oid in kept_ids:
                continue
            if writer is None or writer.size >= PACK_TARGET:
                if writer is not None:
                    path = writer.finish()
                    if path:
                        new_paths.append(path)
                writer = PackWriter(store.pack_dir, repo.algo)
            stored = pack.read_stored(e)
            writer.add(oid, e.kind, e.codec, e.raw_len, stored)
            written.add(oid)
            progress.advance(1)
    if writer is not None:
        path = writer.finish()
        if path:
            new_paths.append(path)
    progress.finish()
    missing = keep - written - kept_ids
    if missing:
        raise NotFoundError(
            f"{len(missing)} reachable objects are missing; run 'dsv fsck' (nothing was deleted)"
        )
    if not keep_reflogs:
        _expire_reflogs(repo)
    new_names = {p.name for p in new_paths}
    for pack in packs:
        pack.close()
        if pack.path.name in new_names:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pack.idx_path)  # index first: a pack without index is invisible
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pack.path)
    for o in orphans:
        with contextlib.suppress(OSError):
            os.unlink(o)
    store.reload()
    _refresh_multi_index(store)
    return GcResult(
        packs_before,
        len(store.packs),
        objects_before,
        sum(p.count for p in store.packs),
        bytes_before,
        _dir_bytes(repo),
    )


__all__ = ["FormatError", "FsckResult", "GcResult", "Problem", "fsck", "gc", "walk_reachable"]
