"""A repository on disk: the ``.dsv`` directory with its config, store and refs.

Layout (docs/format.md)::

    .dsv/config            INI; core.format, core.hash, [chunking], remotes
    .dsv/HEAD              "ref: refs/heads/<branch>" or a commit id
    .dsv/refs/...          one file per ref, holding an id in hex
    .dsv/logs/...          reflogs
    .dsv/objects/pack/     packs and their indexes
    .dsv/index             the stat cache (disposable)
    .dsv/lock              the repository write lock
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

from dsv.chunking import ChunkParams
from dsv.config import Config
from dsv.errors import ConflictError, FormatError, NotARepositoryError, NotFoundError, io_error
from dsv.hashing import HashAlgo
from dsv.objects import (
    KINDS,
    Commit,
    Kind,
    Tag,
    TreeEntry,
    TreeTable,
    decode_commit,
    decode_object,
    encode_tree,
)
from dsv.refs import HEADS, Refs, RepoLock, ensure_dirs
from dsv.store import Store

DSV_DIR = ".dsv"
DEFAULT_BRANCH = "main"
# Trees and commits are read whole; this bounds what a corrupt one can make us allocate.
MAX_TREE_BYTES = 1 << 30
# Commit and tag objects up to this size are stored uncompressed (see write_object).
RAW_OBJECT_MAX = 64 << 10
MAX_COMMIT_BYTES = 64 << 20
# Decoded tree entries kept for repeated lookups (about 200 bytes each).
TREE_CACHE_ENTRIES = 200_000
# Trees read in place (TreeTable) kept for repeated walks, by encoded bytes.
TABLE_CACHE_BYTES = 32 << 20


class Repository:
    """Config, store and refs of one repository, plus typed object access."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dsv_dir = root / DSV_DIR
        self.config = Config.load(self.dsv_dir / "config")
        self.algo: HashAlgo = self.config.algo
        self.store = Store(self.dsv_dir / "objects", self.algo, self.config.chunk_params)
        self.refs = Refs(self.dsv_dir, self.algo.digest_size)
        self._trees: OrderedDict[bytes, list[TreeEntry]] = OrderedDict()
        self._table_cache: OrderedDict[bytes, TreeTable] = OrderedDict()
        self._table_bytes = 0
        self._cached_entries = 0

    # ------------------------------------------------------------------ opening

    @classmethod
    def discover(cls, start: str | os.PathLike[str] = ".") -> Repository:
        """The repository containing ``start`` (searching upwards)."""
        here = Path(start).absolute()
        for d in (here, *here.parents):
            if (d / DSV_DIR / "config").is_file():
                return cls(d)
        raise NotARepositoryError(
            f"not a dsv repository (or any parent up to /): {here}",
            hint="run 'dsv init' to create one",
        )

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str],
        hash_name: str = "xxh3-128",
        chunking: ChunkParams | None = None,
    ) -> Repository:
        root = Path(path).absolute()
        d = root / DSV_DIR
        if (d / "config").exists():
            raise ConflictError(f"{root} is already a dsv repository")
        try:
            root.mkdir(parents=True, exist_ok=True)
            d.mkdir(exist_ok=True)
            ensure_dirs(d)
            (d / "objects" / "pack").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise io_error("create repository in", root, exc) from exc
        cfg = Config.new(d / "config", hash_name, chunking or ChunkParams())
        (d / "HEAD").write_text(f"ref: {HEADS}{DEFAULT_BRANCH}\n")
        cfg.save()  # written last: a directory without config is not a repository
        return cls(root)

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ locking

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold the write lock; waits up to DSV_LOCK_TIMEOUT seconds (default 30)."""
        try:
            timeout = float(os.environ.get("DSV_LOCK_TIMEOUT", "30"))
        except ValueError:
            timeout = 30.0
        with RepoLock(self.dsv_dir / "lock").held(timeout, command):
            try:
                yield
            except BaseException:
                self.store.abort()
                raise

    # ------------------------------------------------------------------ objects

    def read_tree(self, oid: bytes) -> list[TreeEntry]:
        cached = self._trees.get(oid)
        if cached is not None:
            self._trees.move_to_end(oid)
            return cached
        entries = self.tree_table(oid).entries()
        # a bounded cache: by entries, not trees (one directory may hold millions)
        self._trees[oid] = entries
        self._cached_entries += len(entries)
        while self._cached_entries > TREE_CACHE_ENTRIES and len(self._trees) > 1:
            _, gone = self._trees.popitem(last=False)
            self._cached_entries -= len(gone)
        return entries

    def tree_table(self, oid: bytes) -> TreeTable:
        """A tree, validated, without an object per entry (see TreeTable).

        The last ones read are kept (up to TABLE_CACHE_BYTES of tree data):
        a commit's changelog walks the trees it just wrote two or three times.
        """
        cache = self._table_cache
        table = cache.get(oid)
        if table is not None:
            cache.move_to_end(oid)
            return table
        try:
            table = TreeTable(self.store.get_bytes(oid, MAX_TREE_BYTES), self.algo.digest_size)
        except FormatError as exc:
            raise type(exc)(f"tree {oid.hex()}: {exc}") from None
        cache[oid] = table
        self._table_bytes += table.nbytes
        while self._table_bytes > TABLE_CACHE_BYTES and len(cache) > 1:
            _, gone = cache.popitem(last=False)
            self._table_bytes -= gone.nbytes
        return table

    def write_tree(self, entries: list[TreeEntry]) -> bytes:
        data = encode_tree(entries)
        oid = self.store.put_bytes(data)
        return oid

    def flatten(self, tree_id: bytes | None, prefix: str = "") -> dict[str, TreeEntry]:
        """Every file and symlink below a tree, by '/'-separated path."""
        out: dict[str, TreeEntry] = {}
        if tree_id is None:
            return out
        stack = [(prefix, tree_id)]
        while stack:
            base, tid = stack.pop()
            for e in self.tree_table(tid).entries():
                if e.kind == Kind.DIR:
                    stack.append((f"{base}{e.name}/", e.id))
                else:
                    out[base + e.name] = e
        return out

    def build_tree(self, flat: dict[str, TreeEntry]) -> bytes:
        """Write the trees for a flat path map; returns the root tree id."""
        dirs: dict[str, list[TreeEntry]] = {"": []}
        for path, e in flat.items():
            d, _, name = path.rpartition("/")
            lst = dirs.get(d)
            if lst is None:
                lst = dirs[d] = []
                # make sure every ancestor is listed, so that it gets written
                a = d
                while a:
                    a = a.rpartition("/")[0]
                    if a in dirs:
                        break
                    dirs[a] = []
            lst.append(e if e.name == name else e.renamed(name))
        root = b""
        for d in sorted(dirs, key=lambda x: x.count("/") + (1 if x else 0), reverse=True):
            entries = dirs[d]
            tid = self.write_tree(entries)
            if d:
                parent, _, name = d.rpartition("/")
                dirs[parent].append(
                    TreeEntry(name, Kind.DIR, 0o755, sum(e.size for e in entries), tid)
                )
            else:
                root = tid
        return root

    def read_object(self, oid: bytes) -> Commit | Tag:
        return decode_object(self.store.get_bytes(oid, MAX_COMMIT_BYTES), self.algo.digest_size)

    def read_commit(self, oid: bytes) -> Commit:
        try:
            return decode_commit(self.store.get_bytes(oid, MAX_COMMIT_BYTES), self.algo.digest_size)
        except NotFoundError:
            raise NotFoundError(f"commit {oid.hex()} is missing from the store") from None

    def write_object(self, obj: Commit | Tag) -> bytes:
        # Commits and tags (a few hundred bytes to a few KiB) are kept
        # uncompressed: zstd saves little on them, and then the commands that
        # only read HEAD's commit (a no-op status) never load zstd (~8 ms).
        data = obj.encode()
        return self.store.put_bytes(data, compress=len(data) > RAW_OBJECT_MAX)

    def sparse_paths(self) -> list[str] | None:
        """The paths a partial clone holds (None: the whole tree)."""
        raw = self.config.get("core", "sparse")
        if not raw:
            return None
        import json

        try:
            paths = json.loads(raw)
        except ValueError:
            raise FormatError(f"{self.config.path}: core.sparse is not a JSON list") from None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise FormatError(f"{self.config.path}: core.sparse is not a JSON list of paths")
        return paths

    @property
    def partial(self) -> bool:
        """A clone that holds the data of some versions (or paths) only."""
        return self.config.get("core", "partial") == "true"

    def head_commit(self) -> bytes | None:
        return self.refs.head().commit

    # ------------------------------------------------------------------ identity

    def identity(self) -> str:
        """``Name <email>`` for commits: env, then config ``[user]``, then the login."""
        name = os.environ.get("DSV_AUTHOR_NAME") or self.config.get("user", "name")
        email = os.environ.get("DSV_AUTHOR_EMAIL") or self.config.get("user", "email")
        if not name:
            name = _login_name()
        if not email:
            email = f"{name}@{os.uname().nodename or 'localhost'}"  # the host name
        return f"{name} <{email}>"


def _login_name() -> str:
    """The user's login name, as ``getpass.getuser`` finds it (without importing getpass
    and termios: a millisecond of every commit)."""
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        return "unknown"


class TreeFiles(Mapping[str, TreeEntry]):
    """The files and symlinks below a tree by path, read as they are asked for.

    For code that wants a ``{path: entry}`` map of a version but may only look
    at a few paths, or walk them once: nothing is held per path.
    """

    def __init__(self, repo: Repository, tree_id: bytes | None) -> None:
        self.repo = repo
        self.tree_id = tree_id
        self._len: int | None = None

    def __iter__(self) -> Iterator[str]:
        """The paths alone: no entry objects are made."""
        for base, table in self._tables():
            for name, kind in table.names_and_kinds():
                if kind != Kind.DIR:
                    yield base + name

    def items(self) -> Iterator[tuple[str, TreeEntry]]:  # type: ignore[override]
        for base, table in self._tables():
            for name, kind, mode, size, oid in table.rows():
                if kind != Kind.DIR:
                    yield base + name, TreeEntry(name, KINDS[kind], mode, size, oid)

    def by_directory(self) -> Iterator[tuple[str, list[str]]]:
        """``(directory, names of its files and symlinks)`` for each directory with some."""
        for base, table in self._tables():
            names = [n for n, k in table.names_and_kinds() if k != Kind.DIR]
            if names:
                yield base[:-1], names

    def _tables(self) -> Iterator[tuple[str, TreeTable]]:
        """Each tree below the root, depth first in name order, with its path prefix."""
        if self.tree_id is None:
            return
        stack = [("", self.tree_id)]
        while stack:
            base, tid = stack.pop()
            table = self.repo.tree_table(tid)
            yield base, table
            subdirs = [
                (f"{base}{table.name(i)}/", table.id(i))
                for i in range(len(table))
                if table.kind(i) == Kind.DIR
            ]
            stack.extend(reversed(subdirs))

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(1 for _ in self.items())
        return self._len

    def __getitem__(self, path: str) -> TreeEntry:
        tid = self.tree_id
        parts = path.split("/")
        for i, part in enumerate(parts):
            if tid is None:
                break
            table = self.repo.tree_table(tid)
            j = table.find(part)
            if j < 0:
                break
            e = table.entry(j)
            if i == len(parts) - 1:
                if e.kind != Kind.DIR:
                    return e
                break
            tid = e.id if e.kind == Kind.DIR else None
        raise KeyError(path)


def local_tz_minutes(t: float | None = None) -> int:
    lt = time.localtime(t)
    return (lt.tm_gmtoff or 0) // 60
