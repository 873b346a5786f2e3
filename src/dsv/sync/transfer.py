"""Push and fetch: moving exactly the missing objects, in few requests.

Push walks the history from the refs being pushed down to what the remote
already has (an object visible on the remote has its whole closure there, see
``dsv.sync``), sends local packs that hold only missing records as they are,
writes the other missing records into packs, uploads them, then their indexes
in dependency order, then moves the refs with compare-and-swap.

Fetch walks the remote's history the same way, reading only the records it
lacks with ranged reads that are grouped by pack and coalesced.  Every record
read so is verified before it is stored: a literal against its id, an object
made of chunks against its id once all its chunks are in.  A clone or a fetch takes
the packs of which it wants most whole instead (downloaded, or for a clone
hard-linked from a directory on the same file system): each is checked
against its checksum, and its records are verified as every read verifies
them.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dsv.directio import DirectAppender, open_direct
from dsv.errors import CorruptObjectError, DsvError, NotFoundError, RejectedError, io_error
from dsv.hashing import HashAlgo
from dsv.objects import Commit, Kind, Tag, decode_object
from dsv.progress import Progress
from dsv.records import Record
from dsv.refs import HEADS, REMOTES, TAGS
from dsv.repo import MAX_COMMIT_BYTES, Repository
from dsv.store import PACK_TARGET
from dsv.store.pack import KIND_LITERAL, PackCheck, PackFile, PackWriter, check_pack_file
from dsv.sync import PACKS, Remote

# How often a range that arrives short or fails verification is read again.
READ_ATTEMPTS = 3
# Ranged reads of the same pack closer than this are merged into one request.
COALESCE_GAP = 128 << 10
# Bounds memory: ranges in flight are at most jobs * MAX_RANGE, a batch BATCH_BYTES.
MAX_RANGE = 8 << 20
BATCH_BYTES = 16 << 20
# Objects looked up at a time and fetched in the order of the remote's packs.
SORT_WINDOW = 1 << 16
# A clone or fetch downloads a pack whole (one request, its records kept as
# they are) when it wants at least this share of the pack's bytes.
WHOLE_PACK_SHARE = 0.75
# Where a remote has an object (Remote.locate): pack, offset, stored and raw length, kind, codec.
Location = tuple[str, int, int, int, int, int]
# One ranged read: pack, start, length, and the (id, location) of each record in it.
Range = tuple[str, int, int, list[tuple[bytes, Location]]]


class TransferResult(Record):
    """What a push or fetch did (the ``--json`` summary)."""

    __slots__ = (
        "bytes",
        "bytes_received",
        "bytes_sent",
        "linked",
        "objects",
        "packs",
        "pruned",
        "refs",
        "requests",
        "retries",
        "seconds",
        "up_to_date",
        "whole",
    )

    def __init__(
        self,
        objects: int = 0,
        bytes: int = 0,
        packs: int = 0,
        refs: dict[str, str] | None = None,
        up_to_date: list[str] | None = None,
        seconds: float = 0.0,
        requests: int = 0,
        bytes_sent: int = 0,
        bytes_received: int = 0,
        retries: int = 0,
        linked: int = 0,
        whole: int = 0,
        pruned: dict[str, str] | None = None,
    ) -> None:
        self.objects = objects
        self.bytes = bytes  # stored (compressed) bytes of the records moved
        self.packs = packs
        self.refs: dict[str, str] = {} if refs is None else refs  # ref -> new id (hex)
        self.up_to_date: list[str] = [] if up_to_date is None else up_to_date
        self.seconds = seconds
        self.requests = requests
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received
        self.retries = retries
        self.linked = linked  # packs hard-linked from a local remote (a clone)
        self.whole = whole  # packs downloaded whole (ObjectFetcher._whole_packs)
        # remote-tracking refs deleted, with the id they held: the remote has no such branch
        self.pruned: dict[str, str] = {} if pruned is None else pruned


def _stats(result: TransferResult, remote: Remote, t0: float, before: tuple[int, int, int]) -> None:
    st = remote.stats
    result.requests = st.requests - before[0]
    result.bytes_sent = st.bytes_sent - before[1]
    result.bytes_received = st.bytes_received - before[2]
    result.retries = getattr(remote.backend, "retries", 0)
    result.seconds = time.perf_counter() - t0


# ---------------------------------------------------------------------- push


def _is_ancestor(repo: Repository, ancestor: bytes, tip: bytes) -> bool:
    seen: set[bytes] = set()
    stack = [tip]
    while stack:
        c = stack.pop()
        if c == ancestor:
            return True
        if c in seen:
            continue
        seen.add(c)
        stack.extend(repo.read_commit(c).parents)
    return False


def objects_to_push(
    repo: Repository,
    tips: Iterable[bytes],
    remote_has: Callable[[bytes], bool],
    names: dict[bytes, list[bytes]],
) -> list[bytes]:
    """Ids missing on the remote, ordered so that every object follows what it names.

    ``names`` receives, for each of them that names other objects (commit, tag,
    tree, chunk list), the objects it names.
    """
    store = repo.store
    commits: list[bytes] = []
    tags: list[bytes] = []
    seen: set[bytes] = set()
    stack = list(tips)
    while stack:
        oid = stack.pop()
        if oid in seen or remote_has(oid):
            continue
        seen.add(oid)
        obj = repo.read_object(oid)
        if isinstance(obj, Tag):
            tags.append(oid)
            stack.append(obj.object)
            names[oid] = [obj.object]
        else:
            commits.append(oid)
            stack.extend(obj.parents)
            names[oid] = [obj.tree, *obj.parents]
    commits.sort(key=lambda c: repo.read_commit(c).time)  # oldest first

    order: list[bytes] = []
    placed: set[bytes] = set()

    def place_object(oid: bytes) -> None:
        """An object's chunks, then its own record (chunk list or literal)."""
        if oid in placed or remote_has(oid):
            return
        if store.is_chunked(oid):
            chunks = names[oid] = list(store.chunks(oid))
            for cid in chunks:
                if cid not in placed and not remote_has(cid):
                    placed.add(cid)
                    order.append(cid)
        placed.add(oid)
        order.append(oid)

    for c in commits:
        tree = repo.read_commit(c).tree
        # iterative post-order: a tree is placed after everything below it
        todo: list[tuple[bytes, bool]] = [(tree, False)]
        while todo:
            tid, expanded = todo.pop()
            if tid in placed or remote_has(tid):
                continue
            if expanded:
                place_object(tid)
                continue
            todo.append((tid, True))
            kids = names[tid] = []
            for kind, oid in repo.tree_table(tid).kinds_and_ids():
                kids.append(oid)
                if kind == Kind.DIR:
                    todo.append((oid, False))
                else:
                    place_object(oid)
        place_object(c)
    for t in tags:
        place_object(t)
    return order


def _whole_packs(
    repo: Repository, order: list[bytes], names: dict[bytes, list[bytes]]
) -> tuple[list[PackFile], list[bytes]]:
    """Local packs that go to the remote as they are, in the order their indexes may follow,
    and the rest of ``order`` (what goes into new packs).

    A candidate is a pack whose every record is to be pushed (see
    ``whole_pack_order`` for which of them are sent whole).  Sending a pack
    whole saves reading and rewriting each of its records into a temporary
    pack, and copying that one in turn.  Packs are looked at through their
    indexes, one id at a time: nothing per object is kept but a position.
    """
    at = {oid: i for i, oid in enumerate(order)}
    cands = [
        p for p in repo.store.packs if 0 < p.count <= len(at) and all(i in at for i in p.iter_ids())
    ]
    if not cands:
        return [], order
    chosen, where = whole_pack_order([p.iter_ids for p in cands], names, at)
    del at
    taken = set(chosen)
    rest = [oid for oid, k in zip(order, where) if k not in taken]
    return [cands[k] for k in chosen], rest


def whole_pack_order(
    packs: list[Callable[[], Iterable[bytes]]],
    names: dict[bytes, list[bytes]],
    at: dict[bytes, int],
) -> tuple[list[int], array[int]]:
    """Which of the candidate packs to send whole, in the order of their indexes, and for each
    object to push (by its position ``at[id]``) the first candidate holding it (-1: none).

    ``packs``: each candidate's ids (a fresh iterable per call).  A pack's
    index may become visible only after those of the packs holding what its
    records name (an object visible on the remote has what it names visible
    too; ``names``: object -> the objects it names; what is not in ``at`` is
    on the remote already).  A pack whose records name an object that goes
    into a new pack (pushed after every whole one), or that is in a cycle of
    packs, is not sent whole, and neither is one that waits for it.
    """
    where = array("i", [-1]) * len(at)
    for k, ids in enumerate(packs):
        for i in ids():
            j = at[i]
            if where[j] < 0:
                where[j] = k
    deps: list[set[int]] = [set() for _ in packs]
    alive = set(range(len(packs)))
    for k, ids in enumerate(packs):
        for i in ids():
            for c in names.get(i, ()):
                n = at.get(c)
                if n is None:
                    continue  # on the remote already
                if where[n] < 0:
                    alive.discard(k)
                elif where[n] != k:
                    deps[k].add(where[n])
    # take packs whose dependencies are all taken; what is left waits on a pack
    # that is not sent whole, or is in a cycle
    done: list[int] = []
    taken: set[int] = set()
    more = True
    while more:
        more = False
        for k in sorted(alive - taken):
            if deps[k] <= taken:
                taken.add(k)
                done.append(k)
                more = True
    return done, where


def _write_packs(repo: Repository, order: list[bytes], tmp: Path, progress: Progress) -> list[Path]:
    """Local packs holding ``order``'s records, in order (not fsynced: they are uploaded)."""
    store = repo.store
    paths: list[Path] = []
    writer: PackWriter | None = None
    progress.start("packing", len(order))
    for oid in order:
        if writer is None:
            writer = PackWriter(tmp, repo.algo, durable=False)
        kind, codec, raw_len, stored = store.raw_record(oid)
        writer.add(oid, kind, codec, raw_len, stored)
        progress.advance(1, len(stored))
        if writer.size >= PACK_TARGET:
            p = writer.finish()
            writer = None
            if p:
                paths.append(p)
    if writer is not None:
        p = writer.finish()
        if p:
            paths.append(p)
    progress.finish()
    return paths


def push(
    repo: Repository,
    remote: Remote,
    refs: list[str],
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> TransferResult:
    """Push local refs (full names) to the remote; see the module docstring."""
    progress = progress or Progress()
    t0 = time.perf_counter()
    st = remote.stats
    before = (st.requests, st.bytes_sent, st.bytes_received)
    result = TransferResult()
    remote.check_format(create=True)
    remote_refs = remote.refs()
    updates: list[tuple[str, bytes, tuple[bytes, str] | None]] = []
    for ref in refs:
        new = repo.refs.read(ref)
        if new is None:
            raise NotFoundError(f"nothing to push: {ref} does not exist here")
        old = remote_refs.get(ref)
        if old is not None and old[0] == new:
            result.up_to_date.append(ref)
            continue
        if (
            old is not None
            and not force
            and ref.startswith(HEADS)
            and (not repo.store.has(old[0]) or not _is_ancestor(repo, old[0], new))
        ):
            raise RejectedError(
                f"rejected: {ref} on {remote.url} has commits this repository does not"
                " (fetch first)",
                hint="run 'dsv pull' to bring them in, then push again",
            )
        if old is not None and not force and ref.startswith(TAGS):
            raise RejectedError(f"rejected: tag {ref[len(TAGS) :]} already exists on {remote.url}")
        updates.append((ref, new, old))

    if updates:
        names: dict[bytes, list[bytes]] = {}
        order = objects_to_push(repo, [n for _, n, _ in updates], remote.has, names)
        whole, rest = _whole_packs(repo, order, names)
        del names  # a million files' worth of tree entries
        tmp = repo.dsv_dir / "tmp" / f"push-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            # whole packs first: their indexes may be visible before the rest
            packs = [p.path for p in whole] + _write_packs(repo, rest, tmp, progress)
            result.objects = len(order)
            result.packs = len(packs)
            result.bytes = sum(p.stat().st_size for p in packs)
            _upload(remote, packs, progress)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for ref, new, old in updates:
            remote.set_ref(ref, new, old)
            result.refs[ref] = new.hex()
            if ref.startswith(HEADS):
                _track(repo, remote.name, ref, new)
    _stats(result, remote, t0, before)
    return result


def _upload(remote: Remote, packs: list[Path], progress: Progress) -> None:
    """Pack files in parallel, then their indexes in order (an index makes a pack visible)."""
    listing = remote.listing()
    todo = [p for p in packs if listing.get(f"{PACKS}{p.name}") != p.stat().st_size]
    progress.start("uploading", len(todo), sum(p.stat().st_size for p in todo))

    def up(p: Path) -> None:
        remote.backend.put_file(f"{PACKS}{p.name}", p)
        progress.advance(1, p.stat().st_size)

    try:
        if len(todo) > 1:
            with ThreadPoolExecutor(min(remote.jobs, len(todo))) as ex:
                list(ex.map(up, todo))
        else:
            for p in todo:
                up(p)
    finally:
        progress.finish()
    for p in packs:
        idx = p.with_suffix(".idx")
        data = idx.read_bytes()
        remote.backend.put(f"{PACKS}{idx.name}", data)
        remote.cache_index(idx.name, data)


def _track(repo: Repository, remote_name: str, ref: str, new: bytes) -> None:
    tracking = f"{REMOTES}{remote_name}/{ref[len(HEADS) :]}"
    with repo.lock("update remote-tracking ref"):
        if repo.refs.read(tracking) != new:
            repo.refs.update(tracking, new, message=f"update by push/fetch from {remote_name}")


# ---------------------------------------------------------------------- fetch


class _PackSink:
    """A pack downloaded into a new temporary file with direct I/O (``dsv.directio``: no
    page-cache page per byte, which costs a host page fault on some VMs), its checks
    (``PackCheck``) made as the bytes arrive rather than by reading the file back."""

    def __init__(self, tmp: Path, pack: Path, algo: HashAlgo) -> None:
        self.tmp = tmp
        self.check = PackCheck(pack, algo)
        self._fd = -1
        self._out: DirectAppender | None = None

    def restart(self) -> None:
        self.close()
        self.tmp.unlink(missing_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        self._fd, direct = open_direct(self.tmp, flags, 0o444)
        self._out = DirectAppender(self.tmp, self._fd, direct)
        self.check.restart()

    def write(self, block: bytes) -> None:
        assert self._out is not None
        self._out.write((block,))
        self.check.update(block)

    def finish(self) -> bytes:
        """The pack's checksum (raises if its checks fail); the file written and synced."""
        assert self._out is not None
        checksum = self.check.finish()
        self._out.finish()
        os.fsync(self._fd)
        return checksum

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ObjectFetcher:
    """Reads missing records from a remote into the local store, verified."""

    def __init__(
        self, repo: Repository, remote: Remote, progress: Progress, whole: bool = False
    ) -> None:
        self.repo = repo
        self.remote = remote
        self.store = repo.store
        self.progress = progress
        self.objects = 0
        self.bytes = 0
        self.rereads = 0
        self.whole = whole  # download packs whole where most of one is wanted
        self.whole_packs = 0
        self._lock = threading.Lock()  # the counts, from the download threads

    def _whole_packs(self, want: list[bytes]) -> list[bytes]:
        """Download whole the remote's packs that hold at least WHOLE_PACK_SHARE of their
        bytes in ``want``, in parallel; what is left to fetch record by record.

        A pack is one request instead of one per range, and its records go into the
        store as they are, not decoded and written again: the download is checked
        against the pack's checksum (its name, which its index cached by
        ``Remote.packs`` carries), as a pack hard-linked from a local remote is
        (``_link_packs``), and every read verifies each record against its id.
        A pack that fails the check, or cannot be downloaded, is left to the
        ranged reads, which verify each record as it arrives.
        """
        if not self.whole or not want:
            return want
        wanted: dict[str, int] = {}
        where: list[str | None] = []  # the remote pack of each id in want
        for oid in want:
            loc = self.remote.locate(oid)
            where.append(None if loc is None else loc[0])
            if loc is not None:
                wanted[loc[0]] = wanted.get(loc[0], 0) + loc[2]
        sizes = self.remote.listing()
        local = {p.path.stem for p in self.store.packs}
        picks = []
        for name, n in wanted.items():
            size = sizes.get(f"{PACKS}{name}.pack")  # unlisted: left to the ranged reads
            if name not in local and size and n >= WHOLE_PACK_SHARE * size:
                picks.append(name)
        if not picks:
            return want
        with ThreadPoolExecutor(min(self.remote.jobs, len(picks))) as ex:
            got = [p for p in ex.map(self._download_pack, picks) if p is not None]
        if not got:
            return want
        from dsv.atomic import fsync_dir

        fsync_dir(self.store.pack_dir)
        self.store.add_packs(got)
        self.whole_packs += len(got)
        # an id is in the store now if its pack came whole (its index says so)
        done = {p.stem for p in got}
        return [o for o, name in zip(want, where) if name not in done]

    def _download_pack(self, name: str) -> Path | None:
        """One pack of the remote and its index into the store's pack directory, checked
        against its checksum; None if it could not be (the ranged reads fetch its records)."""
        from dsv.atomic import TEMP_MARK, write_atomic

        idx = self.remote.packs()[name]
        pack_dir = self.store.pack_dir
        final = pack_dir / f"{name}.pack"
        sink = _PackSink(
            pack_dir / f"{TEMP_MARK}fetch-{os.getpid()}-{os.urandom(6).hex()}",
            final,
            self.repo.algo,
        )
        try:
            size = self.remote.backend.download(f"{PACKS}{name}.pack", sink)
            if sink.finish() != idx.pack_checksum:
                return None
            sink.close()
            os.replace(sink.tmp, final)
            # the pack is visible once its index is there
            write_atomic(final.with_suffix(".idx"), idx.idx_path.read_bytes())
        except DsvError:
            return None  # a failed download or a damaged copy: the ranged reads
        except OSError as exc:
            raise io_error("write pack", final, exc) from exc
        finally:
            sink.close()
            sink.tmp.unlink(missing_ok=True)
        count = int(idx.count)
        with self._lock:
            self.objects += count
            self.bytes += size
        self.progress.advance(count, size)
        return final

    def _ranges(self, oids: list[bytes], located: dict[bytes, Location | None]) -> list[Range]:
        """Group records by pack and coalesce nearby ones into (pack, start, length, members)."""
        by_pack: dict[str, list[tuple[int, bytes, Location]]] = {}
        for oid in oids:
            loc = located[oid] if oid in located else self.remote.locate(oid)
            if loc is None:
                raise NotFoundError(
                    f"object {oid.hex()} is missing on {self.remote.url}",
                    hint="the remote is incomplete; run 'dsv fsck --remote' there",
                )
            by_pack.setdefault(loc[0], []).append((loc[1], oid, loc))
        out = []
        for pack, items in by_pack.items():
            items.sort(key=lambda t: t[0])
            cur: list[tuple[bytes, Location]] = []
            start = end = 0
            for off, oid, loc in items:
                slen = loc[2]
                if cur and (off - end > COALESCE_GAP or off + slen - start > MAX_RANGE):
                    out.append((pack, start, end - start, cur))
                    cur = []
                if not cur:
                    start = off
                cur.append((oid, loc))
                end = max(end, off + slen)
            if cur:
                out.append((pack, start, end - start, cur))
        return out

    def read(
        self, oids: list[bytes], located: dict[bytes, Location | None] | None = None
    ) -> dict[bytes, tuple[int, int, int, bytes]]:
        """Records (kind, codec, raw_len, stored) of ``oids``, as the remote has them
        (``located``: where some of them are, already looked up in the remote's index)."""
        return self._read_ranges(self._ranges(list(dict.fromkeys(oids)), located or {}))

    def _read_ranges(self, ranges: list[Range]) -> dict[bytes, tuple[int, int, int, bytes]]:
        """The records of ``ranges`` (``_ranges``), verified; the ranges read in parallel."""
        out: dict[bytes, tuple[int, int, int, bytes]] = {}

        def one(r: Range) -> list[tuple[bytes, tuple[int, int, int, bytes]]]:
            pack, start, length, members = r
            # A short or damaged response may be the network's fault: read the
            # range again a few times before calling the remote corrupt.
            for attempt in range(READ_ATTEMPTS):
                data = self.remote.backend.get_range(f"{PACKS}{pack}.pack", start, length)
                got = []
                try:
                    if len(data) != length:
                        raise CorruptObjectError(
                            f"{self.remote.url}: short read of {pack}.pack"
                            f" ({len(data)} of {length} bytes)"
                        )
                    for oid, loc in members:
                        _, off, slen, rlen, kind, codec = loc
                        stored = data[off - start : off - start + slen]
                        if kind == KIND_LITERAL:
                            self.store.decode_record(oid, kind, codec, rlen, stored, pack)
                        got.append((oid, (kind, codec, rlen, stored)))
                except CorruptObjectError:
                    self.rereads += 1
                    if attempt == READ_ATTEMPTS - 1:
                        raise
                    continue
                self.progress.advance(len(members), length)
                return got
            raise AssertionError("unreachable")

        if len(ranges) > 1:
            with ThreadPoolExecutor(min(self.remote.jobs, len(ranges))) as ex:
                for got in ex.map(one, ranges):
                    out.update(got)
        else:
            for r in ranges:
                out.update(one(r))
        return out

    def _batches(self, oids: list[bytes], budget: int, window: int) -> Iterator[list[Range]]:
        """The ranged reads (``_ranges``) that fetch ``oids``, in batches of about
        ``budget`` bytes (a batch ends where a read does).

        Up to ``window`` objects at a time are looked up and read in the order
        of the remote's packs, not in the order asked, and a batch never splits
        a read: a version's files lie in the packs of every push that brought
        some of them, so batches of the order asked each read a few records
        from many places, one request apiece (the images data set's v2, a
        tenth of whose files moved to other directories, took 261 requests
        and 8.5 s to clone from a moto S3 server; 52 requests and 3.6 s in the
        order of the packs).  Only one window's locations are held at a time
        (a million objects' would not be).
        """
        for i in range(0, len(oids), window):
            part = oids[i : i + window]
            located = {oid: self.remote.locate(oid) for oid in part}
            batch: list[Range] = []
            size = 0
            for r in self._ranges(part, located):
                if batch and size + r[2] > budget:
                    yield batch
                    batch, size = [], 0
                batch.append(r)
                size += r[2]
            if batch:
                yield batch

    def fetch_objects(self, oids: list[bytes], *, chunks_only: bool = False) -> None:
        """Make whole objects (literal or made of chunks) present locally, verified."""
        want = self._whole_packs([o for o in dict.fromkeys(oids) if not self.store.has(o)])
        where = f"remote {self.remote.name}"
        for batch in self._batches(want, BATCH_BYTES, SORT_WINDOW):
            chunked: dict[bytes, tuple[tuple[int, int, int, bytes], tuple[bytes, ...]]] = {}
            for oid, rec in self._read_ranges(batch).items():
                kind, codec, rlen, stored = rec
                if kind == KIND_LITERAL:  # read() verified it (decompressed and hashed)
                    if self.store.put_raw(oid, kind, codec, rlen, stored):
                        self.objects += 1
                        self.bytes += len(stored)
                    continue
                raw = self.store.decode_record(oid, kind, codec, rlen, stored, where)
                if chunks_only:
                    raise CorruptObjectError(
                        f"object {oid.hex()} from {self.remote.url}: a chunk list where a chunk"
                        " was expected"
                    )
                chunked[oid] = (rec, self.store.decode_chunklist(oid, raw)[0])
            if not chunked:
                continue
            self.fetch_objects([c for _, ids in chunked.values() for c in ids], chunks_only=True)
            for oid, (rec, ids) in chunked.items():
                h = self.repo.algo.new()
                for cid in ids:
                    h.update(self.store.read_chunk(cid))
                if h.digest() != oid:
                    raise CorruptObjectError(
                        f"object {oid.hex()} from {self.remote.url}: its chunks do not add up to"
                        " its id; it was not stored"
                    )
                if self.store.put_raw(oid, *rec):
                    self.objects += 1
                    self.bytes += len(rec[3])


def _under(path: str, prefixes: list[str] | None) -> bool:
    return prefixes is None or any(not p or path == p or path.startswith(p + "/") for p in prefixes)


def missing_data(repo: Repository, commit: bytes, paths: list[str] | None) -> bool:
    """Whether any tree, or any file below ``paths``, of a commit is not in the local store."""
    store = repo.store
    if not store.has(commit):
        return True
    stack = [(repo.read_commit(commit).tree, "")]
    while stack:
        tid, prefix = stack.pop()
        if not store.has(tid):
            return True
        for name, kind, _mode, _size, oid in repo.tree_table(tid).rows():
            path = prefix + name
            if kind == Kind.DIR:
                stack.append((oid, path + "/"))
            elif _under(path, paths) and not store.has(oid):
                return True
    return False


def fetch(
    repo: Repository,
    remote: Remote,
    *,
    data_for: list[bytes] | Callable[[], list[bytes]] | None = None,
    paths: list[str] | None = None,
    history_data: bool = True,
    tips_data: bool = True,
    link_packs: bool = False,
    whole_packs: bool = False,
    progress: Progress | None = None,
) -> TransferResult:
    """Fetch the remote's refs, every commit and tree they reach, and the files wanted.

    ``link_packs`` (a clone): hard-link the packs of a remote in a directory on
    the same file system into the empty store first (``_link_packs``).
    ``whole_packs`` (a clone, fetch or pull): download whole the packs of which most is wanted
    (``ObjectFetcher._whole_packs``).

    The history is walked from the remote's refs down to what the local refs
    reach (``_Reached``); every commit and every tree on the way that the
    store lacks is fetched, below ones it has too.  Files are fetched for
    ``data_for`` (ids, or a function called once the commits are in, e.g. to
    resolve a revision), for every commit walked (``history_data``) and for
    the remote's ref tips (``tips_data``).  ``paths`` limits the files to
    those paths (a partial clone).  Remote-tracking refs and tags this
    repository lacks are updated once all that is in.
    """
    progress = progress or Progress()
    t0 = time.perf_counter()
    st = remote.stats
    before = (st.requests, st.bytes_sent, st.bytes_received)
    result = TransferResult()
    remote.check_format(create=False)
    remote_refs = remote.refs()
    remote.packs(refresh=True)
    if link_packs:
        result.linked = _link_packs(repo, remote)
    # Every pack of the remote linked: the store holds all the remote has, so a
    # walk of the wanted versions looking for objects to fetch could only find
    # ones the remote lacks too.  (A checkout then reads and verifies every file
    # of its version; a missing one fails it with the object named.)
    linked_all = bool(result.linked) and result.linked == len(remote.packs())
    f = ObjectFetcher(repo, remote, progress, whole=whole_packs)
    progress.start("fetching")
    try:
        tips = [oid for oid, _ in remote_refs.values()]
        # Commits (and tag objects): all of the history, they are small.  The
        # walk goes from the remote's refs down to what the local refs reach
        # (``_Reached``), through every commit on the way whether the store has
        # it already or not: a clone's store may hold the newest commits in
        # linked packs while an older one was in a pack that failed its check.
        reached = _Reached(repo)
        walked: list[bytes] = []  # commits the remote's refs reach and no local ref did
        frontier = [t for t in dict.fromkeys(tips) if not reached.has(t)]
        seen = set(frontier)
        while frontier:
            f.fetch_objects(frontier)  # those the store lacks
            nxt: list[bytes] = []
            for oid in frontier:
                obj = decode_object(
                    repo.store.get_bytes(oid, MAX_COMMIT_BYTES), repo.algo.digest_size
                )
                if isinstance(obj, Tag):
                    cand = [obj.object]
                else:
                    walked.append(oid)
                    cand = list(obj.parents)
                for c in cand:
                    if c not in seen and not reached.has(c):
                        seen.add(c)
                        nxt.append(c)
            frontier = nxt
        # which commits need their data (trees and files); every tree of the
        # others comes along too (``_fetch_trees_and_files``)
        wanted: list[bytes] = list(data_for() if callable(data_for) else data_for or [])
        if history_data:
            wanted.extend(walked)
        for oid in tips if tips_data else []:
            peeled = _peel(repo, oid)
            if peeled is not None:
                wanted.append(peeled)
        if not linked_all:
            _fetch_trees_and_files(repo, f, list(dict.fromkeys(wanted)), walked, paths)
        repo.store.flush()
    except BaseException:
        repo.store.abort()
        raise
    finally:
        progress.finish()
    result.objects, result.bytes, result.whole = f.objects, f.bytes, f.whole_packs
    # refs: remote-tracking branches, and tags we do not have; a tracking ref
    # whose branch the remote no longer has is deleted (the result names its id)
    with repo.lock("fetch"):
        mine = f"{REMOTES}{remote.name}/"
        for tracking, old in repo.refs.list_refs(mine).items():
            if HEADS + tracking[len(mine) :] not in remote_refs:
                repo.refs.update(tracking, None, message=f"fetch from {remote.name}: pruned")
                result.pruned[tracking] = old.hex()
        for ref, (oid, _) in remote_refs.items():
            if ref.startswith(HEADS):
                tracking = f"{REMOTES}{remote.name}/{ref[len(HEADS) :]}"
                if repo.refs.read(tracking) != oid:
                    repo.refs.update(tracking, oid, message=f"fetch from {remote.name}")
                    result.refs[tracking] = oid.hex()
            elif ref.startswith(TAGS) and repo.refs.read(ref) is None:
                repo.refs.update(ref, oid, message=f"fetch from {remote.name}")
                result.refs[ref] = oid.hex()
    _stats(result, remote, t0, before)
    return result


def _link_packs(repo: Repository, remote: Remote) -> int:
    """Hard-link the packs of a remote in a local directory into an empty store.

    A clone from a path on the same file system then copies no data, as
    ``git clone`` from a path does: packs never change once written and are
    named by their checksum, which is verified here before a pack is linked
    (its index is the copy ``Remote.packs`` cached and checked); every read
    still verifies each record against its id.  The clone holds all of the
    remote's data, at no cost in disk space.  A pack that fails the check, or
    a link the file system refuses (another device, no permission), is left
    to the object-by-object fetch, which copies and verifies what is needed.
    Returns how many packs were linked.
    """
    src = remote.backend.local_file(PACKS.rstrip("/"))
    store = repo.store
    dst = store.pack_dir
    if src is None or store.packs:
        return 0
    try:
        if os.stat(src).st_dev != os.stat(dst).st_dev:
            return 0
    except OSError:
        return 0
    linked = 0
    for name, idx in remote.packs().items():
        pack, out = src / f"{name}.pack", dst / f"{name}.pack"
        try:
            if check_pack_file(pack, repo.algo) != idx.pack_checksum:
                continue
            os.link(pack, out)
            try:
                os.link(idx.idx_path, out.with_suffix(".idx"))  # the pack is visible from here
            except OSError:
                out.unlink()
                raise
        except (OSError, DsvError):
            continue
        linked += 1
    if linked:
        from dsv.atomic import fsync_dir

        fsync_dir(dst)
        store.reload()
        store.write_multi_index()  # a checkout then looks each object up once
    return linked


class _Reached:
    """The commits the local refs reach, where a fetch's walk of the history stops.

    What a ref reaches is in the store, every commit and every tree of it: a
    commit is written after its trees and its parent, and a fetch (or a
    clone) moves a ref only once its walk has made all that the remote's refs
    reach present.  The refs' own commits answer at once; the commits below
    them are read only if the walk comes upon a commit the store has but no
    ref names (a remote branch moved back, a new tag on an old commit, a
    clone's linked packs), and then once.
    """

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.tips: set[bytes] = set(repo.refs.list_refs("refs/").values())
        try:
            head = repo.refs.head().commit
        except DsvError:
            head = None  # a damaged HEAD only stops the walk nowhere
        if head is not None:
            self.tips.add(head)
        self._all: set[bytes] | None = None

    def has(self, oid: bytes) -> bool:
        if oid in self.tips:
            return True
        if not self.repo.store.has(oid):
            return False  # what a ref reaches is in the store
        if self._all is None:
            self._all = self._walk()
        return oid in self._all

    def _walk(self) -> set[bytes]:
        out: set[bytes] = set()
        stack = list(self.tips)
        while stack:
            oid = stack.pop()
            if oid in out or not self.repo.store.has(oid):
                continue
            out.add(oid)
            obj = self.repo.read_object(oid)
            stack.extend([obj.object] if isinstance(obj, Tag) else obj.parents)
        return out


def _peel(repo: Repository, oid: bytes) -> bytes | None:
    for _ in range(16):
        try:
            obj = repo.read_object(oid)
        except DsvError:
            return None
        if isinstance(obj, Commit):
            return oid
        oid = obj.object
    return None


def _fetch_trees_and_files(
    repo: Repository,
    f: ObjectFetcher,
    commits: list[bytes],
    shapes: list[bytes],
    paths: list[str] | None,
) -> None:
    """Every tree of ``commits`` and ``shapes``, and the files of ``commits`` (below ``paths``).

    Level by level: the trees of a level in one batch, the files in batches as
    found.  A tree the store holds already is walked all the same (what it
    names may not be there: a clone's pack that failed its check, a fetch cut
    short); each tree is walked once for its shape, and once more at most for
    its files.  Files are fetched SORT_WINDOW (65,536) at a time while the
    walk goes on, so that a clone of a million files never holds a million
    ids, and each lot is read in the order of the remote's packs
    (``ObjectFetcher._batches``).
    """
    # a level: (tree, its path with a trailing "/" when ``paths`` limits the
    # files, whether its files are wanted); those whose files are wanted first,
    # so that the walk of a tree's shape alone is the one skipped
    level: list[tuple[bytes, str, bool]] = []
    for c in commits:
        level.append((repo.read_commit(c).tree, "", True))
    for c in dict.fromkeys(shapes):
        level.append((repo.read_commit(c).tree, "", False))
    shaped: set[bytes] = set()  # trees walked: they and all the trees below them are in
    filled: set[tuple[bytes, str]] = set()  # (tree, path) walked for its files
    files: list[bytes] = []
    while level:
        f.fetch_objects([t for t, _, _ in level if t not in shaped])
        nxt: list[tuple[bytes, str, bool]] = []
        for tid, prefix, data in level:
            if data:
                if (tid, prefix) in filled:
                    continue
                filled.add((tid, prefix))
            elif tid in shaped:
                continue
            shaped.add(tid)
            table = repo.tree_table(tid)
            # all trees come along (they are small, and log, ls-tree, diff,
            # status and commit need the whole shape); file data only for the
            # versions wanted, below ``paths``
            if not data:
                nxt.extend(
                    (oid, "", False) for kind, oid in table.kinds_and_ids() if kind == Kind.DIR
                )
                continue
            if paths is None:
                for kind, oid in table.kinds_and_ids():
                    if kind == Kind.DIR:
                        nxt.append((oid, "", True))
                    elif not repo.store.has(oid):
                        files.append(oid)
                files = _fetch_some(f, files)
                continue
            for name, kind, _mode, _size, oid in table.rows():
                path = prefix + name
                if kind == Kind.DIR:
                    nxt.append((oid, path + "/", True))
                elif _under(path, paths) and not repo.store.has(oid):
                    files.append(oid)
            files = _fetch_some(f, files)
        nxt.sort(key=lambda e: not e[2])
        level = nxt
    f.fetch_objects(files)


def _fetch_some(f: ObjectFetcher, files: list[bytes], batch: int = SORT_WINDOW) -> list[bytes]:
    """Fetch ``files`` once there are ``batch`` of them; what is left to fetch."""
    if len(files) < batch:
        return files
    f.fetch_objects(files)
    return []
