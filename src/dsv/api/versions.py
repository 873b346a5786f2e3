"""Reading any version without a checkout: from a local repository, or lazily from a remote.

A :class:`Source` answers the few questions a reader asks: which commit a
revision names, what a tree lists, which chunks make up a file, and the bytes
of a chunk (verified against its id).  :class:`LocalSource` reads a
repository's store.  :class:`RemoteSource` reads a remote through a local
cache repository: commits and trees are fetched as they are needed, and of a
file only the chunks that a read overlaps, with ranged requests.

The cache (``$DSV_CACHE_DIR``, else ``$XDG_CACHE_HOME/dsv``, else
``~/.cache/dsv``; one directory per remote URL and endpoint) is an ordinary
dsv repository with an empty working tree: everything in its store was
verified when it arrived.  Chunk lists of files whose chunks are not all
there are kept beside it (``chunklists/``), never in the store, so that the
store keeps its rule that a chunked object is present only with all its
chunks.  Deleting the cache is always safe.

:class:`VersionFile` is the seekable file object over one file of a version.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import copy
import hashlib
import json
import os
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dsv.errors import (
    ConflictError,
    CorruptObjectError,
    DsvError,
    FormatError,
    NotFoundError,
)
from dsv.history import follow_suffixes, split_rev
from dsv.objects import Commit, Kind, Tag, TreeEntry, decode_object
from dsv.progress import Progress
from dsv.refs import HEADS, TAGS
from dsv.repo import MAX_COMMIT_BYTES, Repository
from dsv.store.reader import SeekableReader

__all__ = [
    "LocalSource",
    "RemoteSource",
    "Source",
    "Version",
    "VersionFile",
    "default_cache_dir",
    "remote_options",
]

_HEX = re.compile(r"^[0-9a-f]{4,}$")
MAX_LINK_HOPS = 40
MIN_AHEAD = 1 << 20
MAX_AHEAD = 32 << 20


def default_cache_dir() -> Path:
    """Where remote reads are cached: ``$DSV_CACHE_DIR``, ``$XDG_CACHE_HOME/dsv`` or ``~/.cache/dsv``."""
    env = os.environ.get("DSV_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dsv"


def remote_options(
    endpoint_url: str | None = None, region: str | None = None, profile: str | None = None
) -> dict[str, str]:
    """Backend options as the remote configuration spells them."""
    opts = {"endpoint-url": endpoint_url, "region": region, "profile": profile}
    return {k: v for k, v in opts.items() if v}


def normalize_url(url: str) -> str:
    """Local paths absolute (as ``dsv remote add`` stores them), URLs as given."""
    if "://" not in url:
        return str(Path(url).expanduser().absolute())
    return url.rstrip("/")


# ---------------------------------------------------------------------- sources


class Source:
    """Where a version's objects come from.  Safe to share between threads."""

    repo: Repository
    label: str  # for messages: a repository root or a remote URL

    def resolve(self, rev: str) -> bytes:
        raise NotImplementedError

    def read_commit(self, cid: bytes) -> Commit:
        return self.repo.read_commit(cid)

    def read_tree(self, tid: bytes) -> list[TreeEntry]:
        return self.repo.read_tree(tid)

    def chunk_table(self, oid: bytes, size: int) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        """Chunk ids and lengths of a file's content (``size`` as its tree entry says)."""
        raise NotImplementedError

    def ensure(self, oid: bytes, cids: Sequence[bytes]) -> None:
        """Make the chunks ``cids`` of ``oid`` readable (a remote fetches those it lacks)."""

    def read_chunk(self, oid: bytes, cid: bytes, single: bool) -> bytes:
        """One chunk of ``oid``, verified against its id."""
        store = self.repo.store
        return store.read_chunk(cid) if single else store.read_listed_chunk(oid, cid)

    def read_blob(self, oid: bytes, size: int, limit: int = 1 << 20) -> bytes:
        """A small object whole (a symlink target), verified."""
        if size > limit:
            raise FormatError(f"object {oid.hex()}: {size} bytes is larger than expected")
        ids, _ = self.chunk_table(oid, size)
        self.ensure(oid, ids)
        data = b"".join(self.read_chunk(oid, c, len(ids) == 1) for c in ids)
        if self.repo.algo.digest(data) != oid:
            raise CorruptObjectError(f"object {oid.hex()}: chunks do not add up to its id")
        return data

    def refs(self) -> dict[str, bytes]:
        """Branches and tags (full names) with the ids they hold."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def version(self, rev: str) -> Version:
        """The version ``rev`` names now (one object per commit, reused: it caches lookups)."""
        cid = self.resolve(rev)
        cache: dict[bytes, Version] = self.__dict__.setdefault("_versions", {})
        v = cache.get(cid)
        if v is None:
            v = Version(self, rev, cid, self.read_commit(cid))
            cache[cid] = v
            if len(cache) > 16:
                cache.pop(next(iter(cache)))
        elif v.rev != rev:
            v = copy.copy(v)  # the same caches, named as asked (for messages)
            v.rev = rev
        return v


class LocalSource(Source):
    """A repository on this machine."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.label = str(repo.root)
        self._lock = threading.Lock()

    @classmethod
    def discover(cls, path: str | os.PathLike[str] = ".") -> LocalSource:
        return cls(Repository.discover(path))

    def resolve(self, rev: str) -> bytes:
        from dsv.history import resolve

        try:
            return resolve(self.repo, rev)
        except NotFoundError:
            # another process may have committed since the packs were listed
            with self._lock:
                self.repo.store.reload()
            return resolve(self.repo, rev)

    def chunk_table(self, oid: bytes, size: int) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        try:
            return self.repo.store.chunk_table(oid)
        except NotFoundError:
            if self.repo.partial:
                raise NotFoundError(
                    f"object {oid.hex()} was not fetched into this partial clone",
                    hint="check that version out (it downloads its data), or read it with"
                    " remote=URL",
                ) from None
            raise

    def refs(self) -> dict[str, bytes]:
        out = dict(self.repo.refs.list_refs(HEADS))
        out.update(self.repo.refs.list_refs(TAGS))
        return out

    def close(self) -> None:
        self.repo.close()


class RemoteSource(Source):
    """A remote read through a local cache repository; fetches lazily, verifies everything."""

    def __init__(
        self,
        url: str,
        options: dict[str, str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        jobs: int = 8,
    ) -> None:
        self.url = normalize_url(url)
        self.label = self.url
        self.options = dict(options or {})
        self.jobs = jobs
        key = hashlib.sha256(
            f"{self.url}\n{self.options.get('endpoint-url', '')}".encode()
        ).hexdigest()[:32]
        base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.root = base / key
        self.lists_dir = self.root / "chunklists"
        self._refs: dict[str, bytes] | None = None
        self._lists: dict[bytes, tuple[tuple[bytes, ...], tuple[int, ...]]] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._setup()
        _open_sources.add(self)

    def _setup(self) -> None:
        """Backend, cache repository and fetcher of this process."""
        from dsv.backends import open_backend
        from dsv.backends.retry import RetryingBackend
        from dsv.sync import FORMAT_KEY, Remote, RemoteConfig
        from dsv.sync.transfer import ObjectFetcher

        self._pid = os.getpid()
        backend = RetryingBackend(open_backend(self.url, self.options))
        try:
            info = json.loads(backend.get(FORMAT_KEY))
            algo = str(info["hash"])
        except NotFoundError:
            backend.close()
            raise NotFoundError(f"{self.url} is not a dsv remote (no {FORMAT_KEY})") from None
        except (ValueError, KeyError, TypeError):
            backend.close()
            raise FormatError(f"{self.url}: malformed {FORMAT_KEY}") from None
        self.repo = _open_cache_repo(self.root, algo)
        _remove_dead_temp_packs(self.repo.store.pack_dir)
        self.remote = Remote(
            self.repo,
            RemoteConfig("origin", self.url, self.options),
            backend=backend,
            jobs=self.jobs,
        )
        self.remote.check_format(create=False)
        self.fetcher = ObjectFetcher(self.repo, self.remote, Progress())

    def _live(self) -> None:
        """After a fork (DataLoader workers), start afresh: the parent's pack writer,
        file descriptors and HTTP connections are the parent's, never to be touched."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._setup()

    # -- fetching

    @property
    def stats(self) -> Any:
        """Requests and bytes exchanged with the remote (``dsv.backends.Stats``)."""
        return self.remote.stats

    def fetch(self, oids: Sequence[bytes], *, chunks_only: bool = False) -> None:
        """Make objects present in the cache store (verified); one batch of ranged reads."""
        self._live()
        store = self.repo.store
        want = [o for o in dict.fromkeys(oids) if not store.has(o)]
        if not want:
            return
        with self._lock:
            want = [o for o in want if not store.has(o)]
            if want:
                self.fetcher.fetch_objects(want, chunks_only=chunks_only)

    def _object(self, oid: bytes) -> Commit | Tag:
        self.fetch([oid])
        return decode_object(
            self.repo.store.get_bytes(oid, MAX_COMMIT_BYTES), self.repo.algo.digest_size
        )

    def read_commit(self, cid: bytes) -> Commit:
        obj = self._object(cid)
        if not isinstance(obj, Commit):
            raise NotFoundError(f"{cid.hex()} does not name a commit")
        return obj

    def read_tree(self, tid: bytes) -> list[TreeEntry]:
        self.fetch([tid])
        return self.repo.read_tree(tid)

    def chunk_table(self, oid: bytes, size: int) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        self._live()
        store = self.repo.store
        if store.has(oid):
            return store.chunk_table(oid)
        hit = self._lists.get(oid)
        if hit is not None:
            return hit
        loc = self.remote.locate(oid)
        if loc is None:
            raise NotFoundError(
                f"object {oid.hex()} is missing on {self.url}",
                hint="the remote is incomplete; run 'dsv fsck --remote' there",
            )
        from dsv.store.pack import KIND_LITERAL

        if loc[4] == KIND_LITERAL:
            table: tuple[tuple[bytes, ...], tuple[int, ...]] = ((oid,), (loc[3],))
        else:
            table = self._remote_chunklist(oid)
        if sum(table[1]) != size:
            raise CorruptObjectError(
                f"object {oid.hex()} on {self.url}: {sum(table[1])} bytes where its tree says {size}"
            )
        with self._lock:
            self._lists[oid] = table
            if len(self._lists) > 4096:
                self._lists.pop(next(iter(self._lists)))
        return table

    def _remote_chunklist(self, oid: bytes) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        """The chunk list record of ``oid``: from the side cache, else one ranged read."""
        from dsv.atomic import write_atomic
        from dsv.store.pack import KIND_CHUNKLIST

        store = self.repo.store
        path = self.lists_dir / oid.hex()
        with contextlib.suppress(OSError, DsvError):
            return store.decode_chunklist(oid, path.read_bytes())
        rec = self.fetcher.read([oid])[oid]
        kind, codec, rlen, stored = rec
        if kind != KIND_CHUNKLIST:
            raise CorruptObjectError(f"object {oid.hex()} on {self.url}: not a chunk list")
        raw = store.decode_record(oid, kind, codec, rlen, stored, f"remote {self.url}")
        table = store.decode_chunklist(oid, raw)
        self.lists_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(DsvError):  # a cache that cannot be written only costs speed
            write_atomic(path, raw, durable=False)
        return table

    def ensure(self, oid: bytes, cids: Sequence[bytes]) -> None:
        self.fetch(cids, chunks_only=True)

    # -- names

    def read_chunk(self, oid: bytes, cid: bytes, single: bool) -> bytes:
        self._live()
        return super().read_chunk(oid, cid, single)

    def refs(self) -> dict[str, bytes]:
        self._live()
        if self._refs is None:
            refs = {k: v[0] for k, v in self.remote.refs().items()}
            self.remote.packs(refresh=True)
            self._refs = refs
        return self._refs

    def refresh(self) -> None:
        """Forget the remote's refs and pack list (read again on next use)."""
        with self._lock:
            self._refs = None

    def _default_branch(self) -> bytes:
        refs = self.refs()
        heads = [k for k in refs if k.startswith(HEADS)]
        if not heads:
            raise NotFoundError(f"{self.url} has no branches yet")
        full = HEADS + "main" if HEADS + "main" in refs else heads[0]
        if len(heads) > 1 and full != HEADS + "main":
            raise NotFoundError(
                f"{self.url} has several branches and no main; name one instead of HEAD"
            )
        return refs[full]

    def _by_name(self, name: str) -> bytes | None:
        if name in ("HEAD", "@"):
            return self._default_branch()
        refs = self.refs()
        cands = [name] if name.startswith("refs/") else [f"refs/{name}", TAGS + name, HEADS + name]
        for full in cands:
            if full in refs:
                return refs[full]
        return None

    def _by_hex(self, text: str) -> bytes:
        low = text.lower()
        hex_size = self.repo.algo.hex_size
        if not _HEX.match(low) or len(low) > hex_size:
            raise NotFoundError(f"unknown revision: {text}")
        self.refs()  # lists the packs
        if len(low) == hex_size:
            oid = bytes.fromhex(low)
            if self.repo.store.has(oid) or self.remote.has(oid):
                return oid
            raise NotFoundError(f"unknown revision: {text} (not on {self.url})")
        prefix = bytes.fromhex(low[: len(low) // 2 * 2])
        found: set[bytes] = set(self.repo.store.ids_with_prefix(prefix))
        for p in self.remote.packs().values():
            found.update(p.ids_with_prefix(prefix))
        matches = [m for m in found if m.hex().startswith(low)]
        if len(matches) > 1:
            matches = [m for m in matches if self._is_commit_or_tag(m)]
        if not matches:
            raise NotFoundError(f"unknown revision: {text}")
        if len(matches) > 1:
            raise NotFoundError(f"short id {text} is ambiguous; give more digits")
        return matches[0]

    def _is_commit_or_tag(self, oid: bytes) -> bool:
        loc = self.remote.locate(oid)
        if loc is not None and loc[3] > MAX_COMMIT_BYTES:
            return False
        try:
            self._object(oid)
        except DsvError:
            return False
        return True

    def resolve(self, rev: str) -> bytes:
        """The commit a revision names, with the remote's branches and tags (git syntax)."""
        rev = rev.strip()
        base, ops = split_rev(rev)
        oid = self._by_name(base)
        if oid is None:
            oid = self._by_hex(base)
        for _ in range(16):
            try:
                obj = self._object(oid)
            except FormatError:
                raise NotFoundError(f"{base} does not name a commit") from None
            if isinstance(obj, Commit):
                break
            oid = obj.object
        else:
            raise NotFoundError(f"{rev}: tag chain too long")
        return follow_suffixes(self.read_commit, oid, ops, rev)

    # -- lifetime

    def flush(self) -> None:
        """Seal what was fetched into a pack, visible to other processes."""
        with self._lock:
            if not self._closed and self._pid == os.getpid():
                self.repo.store.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._pid != os.getpid():
                self._closed = True  # inherited through fork: the parent's to close
                return
            try:
                self.repo.store.flush()
            finally:
                self._closed = True
                self.remote.close()
                self.repo.close()
        _open_sources.discard(self)


_open_sources: weakref.WeakSet[RemoteSource] = weakref.WeakSet()
_shared: dict[tuple[Any, ...], RemoteSource] = {}
_shared_lock = threading.Lock()


def shared_remote(
    url: str, options: dict[str, str] | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> RemoteSource:
    """One RemoteSource per remote, cache and process, reused by dsv.open and dsv://.

    Its branch and tag names are read once (call ``refresh()`` to see moved
    refs): reads during one job keep seeing the same versions.
    """
    opts = dict(options or {})
    base = str(Path(cache_dir).expanduser()) if cache_dir is not None else str(default_cache_dir())
    key = (os.getpid(), normalize_url(url), tuple(sorted(opts.items())), base)
    with _shared_lock:
        src = _shared.get(key)
        if src is None or src._closed:
            src = _shared[key] = RemoteSource(url, opts, base)
        return src


@atexit.register
def _flush_open_sources() -> None:
    # What a process fetched stays in the cache for the next one.
    for src in list(_open_sources):
        with contextlib.suppress(Exception):
            src.close()


def _open_cache_repo(root: Path, algo: str) -> Repository:
    if not (root / ".dsv" / "config").is_file():
        with contextlib.suppress(ConflictError):  # another process created it meanwhile
            Repository.init(root, algo).close()
    repo = Repository(root)
    if repo.algo.name != algo:
        repo.close()
        raise ConflictError(
            f"the cache {root} holds {repo.algo.name} ids but the remote uses {algo}",
            hint=f"delete {root} (it is only a cache)",
        )
    return repo


def _remove_dead_temp_packs(pack_dir: Path) -> None:
    """Temp packs of processes that died before sealing them (``.dsv-tmp-pack-PID-...``)."""
    from dsv.atomic import TEMP_MARK

    try:
        names = os.listdir(pack_dir)
    except OSError:
        return
    for name in names:
        if not name.startswith(f"{TEMP_MARK}pack-"):
            continue
        try:
            pid = int(name[len(TEMP_MARK) + 5 :].split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(pack_dir / name)
        except OSError:
            pass  # alive (or not ours to signal)


# ---------------------------------------------------------------------- versions


class Version:
    """One commit of a source: path lookups, listings and file objects."""

    def __init__(self, source: Source, rev: str, commit_id: bytes, commit: Commit) -> None:
        self.source = source
        self.rev = rev
        self.commit_id = commit_id
        self.commit = commit
        self.tree = commit.tree
        self._index: dict[bytes, dict[str, TreeEntry]] = {}
        self._lock = threading.Lock()

    def _find(self, tid: bytes, name: str) -> TreeEntry | None:
        entries = self.source.read_tree(tid)
        if len(entries) < 64:
            return next((x for x in entries if x.name == name), None)
        # big directories (ImageFolder classes): one dict, kept for the next lookups
        with self._lock:
            index = self._index.get(tid)
            if index is None:
                index = {x.name: x for x in entries}
                self._index[tid] = index
                if len(self._index) > 64:
                    self._index.pop(next(iter(self._index)))
        return index.get(name)

    def root_entry(self) -> TreeEntry:
        return TreeEntry("", Kind.DIR, 0o755, 0, self.tree)

    def lookup(self, path: str, *, follow: bool = True) -> TreeEntry | None:
        """The entry at ``path`` ('' is the root); symlinks inside the version are followed."""
        parts = [p for p in path.split("/") if p and p != "."]
        stack: list[TreeEntry] = [self.root_entry()]
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if len(stack) == 1:
                    return None  # above the root: outside the version
                stack.pop()
                continue
            cur = stack[-1]
            if cur.kind != Kind.DIR:
                return None
            entry = self._find(cur.id, part)
            if entry is None:
                return None
            if entry.kind == Kind.SYMLINK and (parts or follow):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise NotFoundError(f"{path}: too many levels of symbolic links")
                target = self.source.read_blob(entry.id, entry.size).decode(
                    "utf-8", "surrogateescape"
                )
                if target.startswith("/"):
                    return None  # points outside the version
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            stack.append(entry)
        return stack[-1]

    def require(self, path: str) -> TreeEntry:
        e = self.lookup(path)
        if e is None:
            raise NotFoundError(f"path {path!r} does not exist in {self.rev}")
        return e

    def listdir(self, path: str) -> list[TreeEntry]:
        e = self.require(path)
        if e.kind != Kind.DIR:
            raise NotFoundError(f"{path!r} is not a directory in {self.rev}")
        return self.source.read_tree(e.id)

    def walk_files(self, path: str = "") -> Iterator[tuple[str, TreeEntry]]:
        """Every file and symlink at or below ``path``, by path relative to the root."""
        e = self.require(path)
        path = "/".join(p for p in path.split("/") if p and p != ".")
        if e.kind != Kind.DIR:
            yield path, e
            return
        stack = [(f"{path}/" if path else "", e.id)]
        while stack:
            prefix, tid = stack.pop()
            for x in self.source.read_tree(tid):
                if x.kind == Kind.DIR:
                    stack.append((f"{prefix}{x.name}/", x.id))
                else:
                    yield prefix + x.name, x

    def open(self, path: str) -> VersionFile:
        e = self.require(path)
        if e.kind == Kind.DIR:
            raise NotFoundError(f"{path!r} is a directory in {self.rev}")
        return VersionFile(self.source, e.id, e.size, path)


class VersionFile(SeekableReader):
    """A read-only, seekable view of one file of a version.

    Reads touch only the chunks that overlap them (a remote source fetches
    them on first use); each chunk is verified against its id.  A file read
    from start to end is also verified as a whole against its content id.
    """

    def __init__(self, source: Source, oid: bytes, size: int, name: str = "") -> None:
        super().__init__(size)
        self.source = source
        self.oid = oid
        self.name = name
        self._table: tuple[tuple[bytes, ...], list[int]] | None = None
        self._last: tuple[int, bytes] = (-1, b"")
        self._hash: Any = source.repo.algo.new()
        self._hashed = 0  # bytes of the prefix fed to the whole-content check
        self._lock = threading.Lock()
        self.owns_source = False  # close the source with the file (dsv.open's own)
        self._seq_end = -1  # where the previous read ended
        self._ahead = 0  # read-ahead window, grows while reads are sequential

    # -- random access

    def _chunks(self) -> tuple[tuple[bytes, ...], list[int]]:
        if self._table is None:
            ids, lengths = self.source.chunk_table(self.oid, self.size)
            starts = [0]
            for n in lengths:
                starts.append(starts[-1] + n)
            if starts[-1] != self.size:
                raise CorruptObjectError(
                    f"{self.name or self.oid.hex()}: chunks hold {starts[-1]} bytes,"
                    f" the version says {self.size}"
                )
            self._table = (ids, starts)
        return self._table

    def pread(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end); the position does not move."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        end = min(offset + max(0, length), self.size)
        if offset >= end:
            self._check_whole(offset)
            return b""
        ids, starts = self._chunks()
        first = bisect.bisect_right(starts, offset) - 1
        last = bisect.bisect_left(starts, end) - 1  # chunk holding byte end-1
        single = len(ids) == 1
        # Sequential reads fetch ahead (in few, large requests from a remote);
        # a seek resets the window so random access fetches only what it reads.
        if offset == self._seq_end:
            self._ahead = min(max(2 * self._ahead, MIN_AHEAD), MAX_AHEAD)
        else:
            self._ahead = 0
        self._seq_end = end
        upto = bisect.bisect_left(starts, min(end + self._ahead, self.size)) - 1
        self.source.ensure(self.oid, ids[first : max(last, upto) + 1])
        parts = []
        for i in range(first, last + 1):
            data = self._chunk(i, ids[i], single)
            lo = max(offset, starts[i]) - starts[i]
            hi = min(end, starts[i + 1]) - starts[i]
            parts.append(data if lo == 0 and hi == len(data) else data[lo:hi])
        out = parts[0] if len(parts) == 1 else b"".join(parts)
        self._feed(offset, out)
        return out

    def _chunk(self, i: int, cid: bytes, single: bool) -> bytes:
        last = self._last
        if last[0] == i:
            return last[1]
        data = self.source.read_chunk(self.oid, cid, single)
        self._last = (i, data)
        return data

    def _feed(self, offset: int, data: bytes) -> None:
        # A read that continues the verified prefix extends it; at the end the
        # whole content is checked against the file's id.
        with self._lock:
            if offset <= self._hashed < offset + len(data):
                self._hash.update(memoryview(data)[self._hashed - offset :])
                self._hashed = offset + len(data)
                if self._hashed == self.size:
                    self._check_whole(self.size)

    def _check_whole(self, offset: int) -> None:
        if offset >= self.size and self._hashed == self.size and self._hash is not None:
            digest = self._hash.digest()
            self._hash = None  # checked once
            if digest != self.oid:
                raise CorruptObjectError(
                    f"{self.name or self.oid.hex()}: content does not match its id"
                )

    def close(self) -> None:
        if not self.closed and self.owns_source:
            self.source.close()
        super().close()

    @property
    def verified(self) -> bool:
        """Whether the whole content was read in order and matched its id."""
        return self._hash is None and self._hashed == self.size
