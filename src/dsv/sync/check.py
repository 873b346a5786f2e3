"""``dsv fsck --remote``: check a remote without downloading more than needed.

Without ``full``: the format marker, every ref, every pack index (checksum,
and the size of its pack), every reachable commit and tree (read and
verified), and the presence in some index of every chunk list and chunk they
name (chunk lists are read; chunk data is not).  With ``full``: every
reachable chunk is also read and verified, and every file's chunks against
the file's id.
"""

from __future__ import annotations

from dsv.errors import DsvError, NotFoundError
from dsv.objects import Commit, Kind, Tag, decode_object, decode_tree
from dsv.progress import Progress
from dsv.records import Record
from dsv.repo import Repository
from dsv.store.pack import KIND_CHUNKLIST
from dsv.sync import PACKS, Remote
from dsv.sync.transfer import ObjectFetcher

_TRAILER = 32


class RemoteProblem(Record):
    __slots__ = ("kind", "message", "oid", "where")

    def __init__(self, kind: str, oid: str, message: str, where: list[str] | None = None) -> None:
        self.kind = kind  # "bad-ref", "bad-pack", "missing", "corrupt"
        self.oid = oid
        self.message = message
        self.where: list[str] = [] if where is None else where

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "object": self.oid, "message": self.message, "where": self.where}


class RemoteCheck(Record):
    __slots__ = (
        "bytes_read",
        "chunks",
        "commits",
        "files",
        "packs",
        "problems",
        "refs",
        "trees",
    )

    def __init__(
        self,
        problems: list[RemoteProblem] | None = None,
        refs: int = 0,
        packs: int = 0,
        commits: int = 0,
        trees: int = 0,
        files: int = 0,
        chunks: int = 0,
        bytes_read: int = 0,
    ) -> None:
        self.problems: list[RemoteProblem] = [] if problems is None else problems
        self.refs = refs
        self.packs = packs
        self.commits = commits
        self.trees = trees
        self.files = files
        self.chunks = chunks
        self.bytes_read = bytes_read

    @property
    def ok(self) -> bool:
        return not self.problems


def check_remote(
    repo: Repository, remote: Remote, *, full: bool = False, progress: Progress | None = None
) -> RemoteCheck:
    progress = progress or Progress()
    res = RemoteCheck()
    remote.check_format(create=False)
    try:
        refs = remote.refs()
    except DsvError as exc:
        res.problems.append(RemoteProblem("bad-ref", "refs", str(exc)))
        refs = {}
    res.refs = len(refs)
    try:
        packs = remote.packs(refresh=True)
    except DsvError as exc:
        res.problems.append(RemoteProblem("bad-pack", "packs", str(exc)))
        return res
    listing = remote.listing()
    res.packs = len(packs)
    for name, p in packs.items():
        size = listing.get(f"{PACKS}{name}.pack")
        ends = [e.offset + e.stored_len for _, e in p.entries()]
        expect = (max(ends) if ends else 16) + _TRAILER
        if size is None:
            res.problems.append(RemoteProblem("bad-pack", name, "index without its pack"))
        elif size != expect:
            res.problems.append(
                RemoteProblem("bad-pack", name, f"pack is {size} bytes, its index says {expect}")
            )
    fetcher = ObjectFetcher(repo, remote, progress)
    ds = repo.algo.digest_size

    def read(oids: list[bytes], where: dict[bytes, str]) -> dict[bytes, tuple[int, bytes]]:
        """Records of ``oids`` as (kind, raw bytes); problems recorded for the rest."""
        present = []
        for oid in oids:
            if remote.locate(oid) is None:
                res.problems.append(
                    RemoteProblem("missing", oid.hex(), "in no index", [where[oid]])
                )
            else:
                present.append(oid)
        out: dict[bytes, tuple[int, bytes]] = {}
        try:
            batch = fetcher.read(present)  # coalesced ranged reads
        except DsvError:
            batch = {}  # something in the batch is bad: one by one, to say which
        for oid in present:
            try:
                rec = batch.get(oid) or fetcher.read([oid])[oid]
                kind, codec, rlen, stored = rec
                raw = repo.store.decode_record(oid, kind, codec, rlen, stored, remote.url)
                res.bytes_read += len(stored)
                out[oid] = (kind, raw)
            except DsvError as exc:
                res.problems.append(RemoteProblem("corrupt", oid.hex(), str(exc), [where[oid]]))
        return out

    def whole(oid: bytes, where: str) -> bytes | None:
        """An object's bytes (commit or tree), assembled from its chunks if it has any."""
        got = read([oid], {oid: where})
        if oid not in got:
            return None
        kind, raw = got[oid]
        if kind != KIND_CHUNKLIST:
            return raw
        ids, _ = repo.store.decode_chunklist(oid, raw)
        parts = read(list(ids), dict.fromkeys(ids, where))
        if len(parts) != len(ids):
            return None
        data = b"".join(parts[c][1] for c in ids)
        if repo.algo.digest(data) != oid:
            res.problems.append(
                RemoteProblem("corrupt", oid.hex(), "chunks do not add up", [where])
            )
            return None
        return data

    # commits and tags
    stack = [(oid, ref) for ref, (oid, _) in refs.items()]
    seen: set[bytes] = set()
    trees: list[tuple[bytes, str]] = []
    while stack:
        oid, label = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        data = whole(oid, label)
        if data is None:
            continue
        try:
            obj = decode_object(data, ds)
        except DsvError as exc:
            res.problems.append(RemoteProblem("corrupt", oid.hex(), str(exc), [label]))
            continue
        if isinstance(obj, Tag):
            stack.append((obj.object, label))
        else:
            assert isinstance(obj, Commit)
            res.commits += 1
            trees.append((obj.tree, f"{oid.hex()}:/"))
            stack.extend((p, label) for p in obj.parents)
    # trees, then files
    files: dict[bytes, str] = {}
    seen_trees: set[bytes] = set()
    while trees:
        tid, where = trees.pop()
        if tid in seen_trees:
            continue
        seen_trees.add(tid)
        data = whole(tid, where)
        if data is None:
            continue
        try:
            entries = decode_tree(data, ds)
        except DsvError as exc:
            res.problems.append(RemoteProblem("corrupt", tid.hex(), str(exc), [where]))
            continue
        res.trees += 1
        base = where.rstrip("/")
        for e in entries:
            if e.kind == Kind.DIR:
                trees.append((e.id, f"{base}/{e.name}/"))
            else:
                files.setdefault(e.id, f"{base}/{e.name}")
    progress.start("checking remote files", len(files))
    checked_chunks: set[bytes] = set()
    for fid, where in files.items():
        res.files += 1
        progress.advance(1)
        loc = remote.locate(fid)
        if loc is None:
            res.problems.append(RemoteProblem("missing", fid.hex(), "in no index", [where]))
            continue
        if loc[4] != KIND_CHUNKLIST and not full:
            res.chunks += 1
            continue
        got = read([fid], {fid: where})
        if fid not in got:
            continue
        kind, raw = got[fid]
        if kind != KIND_CHUNKLIST:
            res.chunks += 1
            continue
        try:
            ids, _ = repo.store.decode_chunklist(fid, raw)
        except DsvError as exc:
            res.problems.append(RemoteProblem("corrupt", fid.hex(), str(exc), [where]))
            continue
        if not full:
            for cid in ids:
                if cid not in checked_chunks:
                    checked_chunks.add(cid)
                    if remote.locate(cid) is None:
                        res.problems.append(
                            RemoteProblem("missing", cid.hex(), "in no index", [where])
                        )
            continue
        parts = read(list(dict.fromkeys(ids)), dict.fromkeys(ids, where))
        checked_chunks.update(parts)
        ok = all(cid in parts for cid in ids)
        h = repo.algo.new()
        for cid in ids if ok else ():
            h.update(parts[cid][1])
        if ok and h.digest() != fid:
            res.problems.append(
                RemoteProblem("corrupt", fid.hex(), "chunks do not add up", [where])
            )
    progress.finish()
    res.chunks += len(checked_chunks)
    return res


__all__ = ["NotFoundError", "RemoteCheck", "RemoteProblem", "check_remote"]
