"""Training on exact versions: the ``dsv.Repo`` facade, ``dsv.open``, ``dsv.read_table``,
``dsv.lineage``, verify, copying a version out of a remote, and pin files.

The story (docs/training.md): a job checks a version out and verifies it, or
reads it without a checkout (``dsv.open``, ``dsv://``), then records
``dsv.lineage()`` in its experiment log; months later the ids in that log
bring back the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import stat as stat_mod
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsv.api.versions import (
    LocalSource,
    RemoteSource,
    Source,
    Version,
    normalize_url,
    remote_options,
    shared_remote,
)
from dsv.errors import (
    ConflictError,
    DsvError,
    FormatError,
    NotFoundError,
    UnsafePathError,
    UnsupportedFormatError,
    io_error,
)
from dsv.history import resolve
from dsv.objects import KIND_NAMES, MODE_BITS, Commit, Kind, TreeEntry
from dsv.progress import Progress
from dsv.records import Record
from dsv.refs import HEADS, TAGS
from dsv.repo import Repository

if TYPE_CHECKING:
    import pyarrow

    from dsv.api import CheckoutOutcome
    from dsv.worktree.snapshot import Status
    from dsv.worktree.verify import Verification

__all__ = [
    "LINEAGE_KEYS",
    "CommitInfo",
    "FileInfo",
    "GetResult",
    "MaterializeResult",
    "Pin",
    "Repo",
    "get",
    "lineage",
    "materialize",
    "open",
    "pin",
    "read_pin",
    "read_table",
    "verify",
]

LINEAGE_FORMAT = 1
PIN_FORMAT = 1
# The keys of dsv.lineage(), always all present (docs/training.md).
LINEAGE_KEYS = (
    "format",
    "dsv_version",
    "source",
    "repo",
    "remote",
    "remotes",
    "rev",
    "commit",
    "tree",
    "path",
    "path_id",
    "branch",
    "tags",
    "dirty",
    "changes",
    "commit_time",
    "message",
)
_READ_BUFFER = 256 << 10


# ---------------------------------------------------------------------- values


class CommitInfo(Record):
    """A commit as plain values (ids in hex), like ``dsv log --json``."""

    __slots__ = ("author", "id", "message", "meta", "parents", "summary", "time", "tree", "tz")

    def __init__(self, oid: bytes, c: Commit) -> None:
        self.id = oid.hex()
        self.tree = c.tree.hex()
        self.parents = [p.hex() for p in c.parents]
        self.author = c.author
        self.time = c.time
        self.tz = c.tz
        self.message = c.message
        self.summary = c.summary
        self.meta = dict(c.meta)

    def as_dict(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.__slots__}


class FileInfo(Record):
    """One entry of a version: ``kind`` is "file", "dir" or "symlink"; ``id`` in hex."""

    __slots__ = ("id", "kind", "mode", "path", "size")

    def __init__(self, path: str, e: TreeEntry) -> None:
        self.path = path
        self.kind = KIND_NAMES[e.kind]
        self.mode = e.mode
        self.size = e.size
        self.id = e.id.hex()


# ---------------------------------------------------------------------- sources


def _source(
    repo: str | os.PathLike[str] | Repo | Repository | None,
    remote: str | None,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Source, bool]:
    """The source to read from, and whether the caller owns (must close) it."""
    if remote:
        return shared_remote(
            remote, remote_options(endpoint_url, region, profile), cache_dir
        ), False
    if isinstance(repo, Repo):
        return LocalSource(repo.repository), False
    if isinstance(repo, Repository):
        return LocalSource(repo), False
    return LocalSource.discover(repo if repo is not None else "."), True


def open(
    path: str,
    rev: str = "HEAD",
    repo: str | os.PathLike[str] | Repo | None = ".",
    mode: str = "rb",
    *,
    remote: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    buffering: int = _READ_BUFFER,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> io.BufferedReader[Any] | io.TextIOWrapper[Any]:
    """Open ``path`` as it is in version ``rev``, without a checkout.

    The file is read-only and seekable; reads fetch only the chunks they
    overlap (from ``remote`` lazily, into the local cache) and verify each
    against its id, and a file read to its end is verified as a whole.
    ``path`` is relative to the repository root, ``/``-separated.  ``mode``
    is ``"rb"`` (default) or ``"r"``/``"rt"`` (text; UTF-8 unless
    ``encoding`` says otherwise).
    """
    if mode not in ("rb", "r", "rt"):
        raise ValueError(f"dsv.open is read-only: mode must be 'rb' or 'r', not {mode!r}")
    src, owned = _source(repo, remote, endpoint_url, region, profile, cache_dir)
    try:
        vf = src.version(rev).open(path)
    except BaseException:
        if owned:
            src.close()
        raise
    vf.owns_source = owned
    buf = io.BufferedReader(vf, buffer_size=max(1, buffering))
    if mode == "rb":
        return buf
    return io.TextIOWrapper(buf, encoding=encoding or "utf-8", errors=errors, newline=newline)


_TABLE_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".arrow": "feather",
    ".feather": "feather",
    ".ipc": "feather",
}


def read_table(
    path: str,
    rev: str = "HEAD",
    repo: str | os.PathLike[str] | Repo | None = ".",
    *,
    remote: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    format: str | None = None,
    columns: list[str] | None = None,
    **kwargs: Any,
) -> pyarrow.Table:
    """A table file (Parquet, CSV/TSV, JSON lines, Arrow/Feather) of a version as a ``pyarrow.Table``.

    ``path`` may also be a directory of such files (read as a
    ``pyarrow.dataset``).  ``format`` overrides the guess from the file
    extension; ``columns`` reads only those columns (Parquet reads only
    their bytes); other keyword arguments go to the pyarrow reader.
    """
    src, owned = _source(repo, remote, endpoint_url, region, profile, cache_dir)
    try:
        v = src.version(rev)
        e = v.require(path)
        if e.kind == Kind.DIR:
            return _read_dataset(src, v, path, format or "parquet", columns)
        fmt = format or _TABLE_FORMATS.get(os.path.splitext(path)[1].lower())
        if fmt is None:
            raise FormatError(
                f"cannot tell the table format of {path!r}",
                hint="pass format='parquet', 'csv', 'json' or 'feather'",
            )
        vf = v.open(path)
        with io.BufferedReader(vf, buffer_size=_READ_BUFFER) as f:
            return _read_file(f, fmt, path, columns, kwargs)
    finally:
        if owned:
            src.close()


def _read_file(
    f: io.BufferedReader[Any],
    fmt: str,
    path: str,
    columns: list[str] | None,
    kwargs: dict[str, Any],
) -> pyarrow.Table:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(f, columns=columns, **kwargs)
    if fmt == "feather":
        import pyarrow.feather as feather

        return feather.read_table(f, columns=columns, **kwargs)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        if path.lower().endswith(".tsv") and "parse_options" not in kwargs:
            kwargs["parse_options"] = pacsv.ParseOptions(delimiter="\t")
        if columns is not None and "convert_options" not in kwargs:
            kwargs["convert_options"] = pacsv.ConvertOptions(include_columns=columns)
        return pacsv.read_csv(f, **kwargs)
    if fmt == "json":
        import pyarrow.json as pajson

        t = pajson.read_json(f, **kwargs)
        return t.select(columns) if columns is not None else t
    raise FormatError(f"unknown table format {fmt!r} (parquet, csv, json, feather)")


def _read_dataset(
    src: Source, v: Version, path: str, fmt: str, columns: list[str] | None
) -> pyarrow.Table:
    import pyarrow.dataset as ds
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from dsv.api.fs import DsvFileSystem

    if isinstance(src, RemoteSource):
        opts = src.options
        fs = DsvFileSystem(
            remote=src.url,
            endpoint_url=opts.get("endpoint-url"),
            region=opts.get("region"),
            profile=opts.get("profile"),
            cache_dir=str(src.root.parent),
        )
    else:
        fs = DsvFileSystem(repo=str(src.repo.root))
    inner = "/".join(p for p in path.split("/") if p and p != ".")
    where = f"{v.commit_id.hex()}/{inner}".rstrip("/")
    pa_fs = PyFileSystem(FSSpecHandler(fs))
    return ds.dataset(where, filesystem=pa_fs, format=fmt).to_table(columns=columns)


# ---------------------------------------------------------------------- lineage


def lineage(
    path: str | os.PathLike[str] = ".",
    *,
    rev: str | None = None,
    remote: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """What to record in an experiment log so that the data can be had again.

    Three cases, one set of keys (``LINEAGE_KEYS``, table in docs/training.md):

    - ``lineage("data/")``: the working tree of the repository containing
      ``path`` (HEAD, and whether ``path`` has uncommitted changes);
    - ``lineage("data/", rev="v3")``: version ``v3`` of that repository as
      read without a checkout (never dirty);
    - ``lineage("labels.parquet", remote="s3://...", rev="v3")``: a version of a
      remote (``path`` is then a path inside the version).
    """
    from dsv import __version__

    out: dict[str, Any] = dict.fromkeys(LINEAGE_KEYS)
    out.update(
        format=LINEAGE_FORMAT,
        dsv_version=__version__,
        remotes={},
        tags=[],
        dirty=False,
        changes={"added": [], "modified": [], "deleted": []},
    )
    if remote:
        src = shared_remote(remote, remote_options(endpoint_url, region, profile), cache_dir)
        inner = "/".join(p for p in os.fspath(path).split("/") if p and p != ".")
        out.update(source="remote", remote=src.url, rev=rev or "HEAD", path=inner)
        v = src.version(rev or "HEAD")
        _describe(out, src, v, inner)
        return out

    repo = Repository.discover(path if os.path.isdir(path) else os.path.dirname(path) or ".")
    try:
        from dsv.sync import list_remotes

        full = Path(os.path.abspath(path))
        try:
            inner = full.relative_to(repo.root).as_posix()
        except ValueError:
            inner = ""
        inner = "" if inner == "." else inner
        out.update(
            repo=str(repo.root),
            path=inner,
            remotes={r.name: r.url for r in list_remotes(repo)},
        )
        local = LocalSource(repo)
        if rev is not None:
            out.update(source="repository", rev=rev)
            _describe(out, local, local.version(rev), inner)
            return out
        out.update(source="worktree", rev="HEAD")
        head = repo.refs.head()
        if head.branch is not None:
            out["branch"] = head.branch[len(HEADS) :]
        if head.commit is not None:
            v = Version(local, "HEAD", head.commit, repo.read_commit(head.commit))
            _describe(out, local, v, inner)
        from dsv.worktree import snapshot

        sparse = repo.sparse_paths()
        limit = [inner] if inner else sparse
        st = snapshot.status(repo, None, limit)
        out["dirty"] = not st.clean
        out["changes"] = {"added": st.added, "modified": st.modified, "deleted": st.deleted}
        return out
    finally:
        repo.close()


def _describe(out: dict[str, Any], src: Source, v: Version, inner: str) -> None:
    out["commit"] = v.commit_id.hex()
    out["tree"] = v.tree.hex()
    out["commit_time"] = v.commit.time
    out["message"] = v.commit.message.splitlines()[0] if v.commit.message else ""
    e = v.lookup(inner) if inner else v.root_entry()
    out["path_id"] = e.id.hex() if e is not None else None
    tags = []
    branches = []
    for full, oid in src.refs().items():
        if full.startswith(TAGS):
            with contextlib.suppress(DsvError):
                if _peel(src, oid) == v.commit_id:
                    tags.append(full[len(TAGS) :])
        elif full.startswith(HEADS) and oid == v.commit_id:
            branches.append(full[len(HEADS) :])
    out["tags"] = sorted(tags)
    if out.get("branch") is None and out["source"] != "worktree":
        rev = (out.get("rev") or "").strip()
        if rev in branches:
            out["branch"] = rev
        elif rev in ("HEAD", "@") and "main" in branches:
            out["branch"] = "main"


def _peel(src: Source, oid: bytes) -> bytes:
    """A tag's commit, reading only what is local (remote tag objects are fetched)."""
    from dsv.objects import Tag

    for _ in range(16):
        if isinstance(src, RemoteSource):
            obj = src._object(oid)
        else:
            obj = src.repo.read_object(oid)
        if not isinstance(obj, Tag):
            return oid
        oid = obj.object
    return oid


# ---------------------------------------------------------------------- verify


def verify(
    repo: Repository,
    rev: str = "HEAD",
    *,
    paths: list[str] | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> Verification:
    """Whether the working tree (or ``paths``) holds exactly version ``rev``; see ``dsv verify``."""
    from dsv.api import lookup
    from dsv.worktree.verify import verify as _verify

    cid = resolve(repo, rev)
    tree = repo.read_commit(cid).tree
    if paths:
        for p in paths:
            if p and lookup(repo, tree, p) is None and not os.path.lexists(repo.root / p):
                raise NotFoundError(f"path {p!r} is neither in {rev} nor on disk")
    limit = paths if paths else repo.sparse_paths()
    return _verify(repo, tree, paths=limit, full=full, progress=progress)


# ---------------------------------------------------------------------- get


class GetResult(Record):
    """What ``get`` wrote: the commit it read, files, bytes, and the traffic it cost."""

    __slots__ = ("bytes", "bytes_received", "commit", "files", "output", "requests")

    def __init__(self, commit: bytes, output: Path) -> None:
        self.commit = commit
        self.output = output
        self.files = 0
        self.bytes = 0
        self.bytes_received = 0
        self.requests = 0


def get(
    url: str,
    path: str = "",
    out: str | os.PathLike[str] | None = None,
    *,
    rev: str = "HEAD",
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    force: bool = False,
    jobs: int = 8,
    progress: Progress | None = None,
) -> GetResult:
    """Copy a file or folder of version ``rev`` of a remote to ``out``; no repository is made.

    Only the data below ``path`` is downloaded (verified, then kept in the
    cache unless ``use_cache`` is false).  ``out`` defaults to the last
    component of ``path`` (of the URL for the whole version) in the current
    directory.  An existing ``out`` is refused unless ``force``.
    """
    progress = progress or Progress()
    tmp_cache = None if use_cache else tempfile.mkdtemp(prefix="dsv-get-")
    src = RemoteSource(
        url,
        remote_options(endpoint_url, region, profile),
        tmp_cache if tmp_cache is not None else cache_dir,
        jobs,
    )
    try:
        st = src.stats
        before = (st.requests, st.bytes_received)
        v = src.version(rev)
        inner = "/".join(p for p in path.split("/") if p and p != ".")
        top = v.require(inner)
        name = inner.rpartition("/")[2] or Path(src.url.rstrip("/")).name or "dataset"
        dest = Path(out) if out is not None else Path(name)
        files = list(v.walk_files(inner))
        _check_dest(dest, top.kind == Kind.DIR, force)
        res = GetResult(v.commit_id, dest.absolute())
        total = sum(e.size for _, e in files)
        progress.start("downloading", len(files), total)
        try:
            # data in batches: the cache holds each batch verified, then it is written out
            batch: list[tuple[str, TreeEntry]] = []
            size = 0
            for item in files:
                batch.append(item)
                size += item[1].size
                if size >= 256 << 20 or len(batch) >= 4096:
                    _get_batch(src, batch, inner, dest, top.kind == Kind.DIR, res, progress)
                    batch, size = [], 0
            if batch:
                _get_batch(src, batch, inner, dest, top.kind == Kind.DIR, res, progress)
        finally:
            progress.finish()
        res.requests = st.requests - before[0]
        res.bytes_received = st.bytes_received - before[1]
        return res
    finally:
        src.close()
        if tmp_cache is not None:
            shutil.rmtree(tmp_cache, ignore_errors=True)


def _check_dest(dest: Path, is_dir: bool, force: bool) -> None:
    if not os.path.lexists(dest):
        return
    if force:
        if is_dir and not dest.is_dir():
            raise ConflictError(f"{dest} exists and is not a directory")
        return
    if dest.is_dir() and not dest.is_symlink() and is_dir and not any(dest.iterdir()):
        return
    raise ConflictError(f"{dest} already exists", hint="choose another -o, or use --force")


def _get_batch(
    src: RemoteSource,
    batch: list[tuple[str, TreeEntry]],
    inner: str,
    dest: Path,
    is_dir: bool,
    res: GetResult,
    progress: Progress,
) -> None:
    src.fetch([e.id for _, e in batch])
    store = src.repo.store
    made: set[str] = set()
    for p, e in batch:
        rel = p[len(inner) :].lstrip("/") if inner else p
        target = dest / rel if is_dir else dest
        if is_dir:
            _make_dirs(dest, rel.rpartition("/")[0], made)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".dsv-tmp-{target.name}.{os.getpid()}")
        try:
            if e.kind == Kind.SYMLINK:
                os.symlink(store.get_bytes(e.id, 1 << 20), tmp)
            else:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    for data in store.iter_content(e.id):  # verified chunk by chunk and whole
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view) :]
                    os.fchmod(fd, e.mode & MODE_BITS)  # no setuid, setgid, sticky
                finally:
                    os.close(fd)
            if target.is_dir() and not target.is_symlink():
                raise ConflictError(f"{target} is a directory; the version has a file there")
            os.replace(tmp, target)
        except DsvError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise type(exc)(f"{p}: {exc.message}", hint=exc.hint) from None
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise io_error("write", target, exc) from exc
        res.files += 1
        res.bytes += e.size
        progress.advance(1, e.size)


def _make_dirs(dest: Path, parent: str, made: set[str]) -> None:
    """Create ``dest/parent``, refusing to write through an existing symlink."""
    cur = dest
    steps = [""] + (parent.split("/") if parent else [])
    key = ""
    for part in steps:
        if part:
            cur = cur / part
            key = f"{key}/{part}"
        if key in made:
            continue
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            try:
                os.mkdir(cur)
            except OSError as exc:
                raise io_error("create directory", cur, exc) from exc
        else:
            if not stat_mod.S_ISDIR(st.st_mode):
                raise UnsafePathError(f"refusing to write below {cur}: not a directory")
        made.add(key)


# ---------------------------------------------------------------------- pin files


class Pin(Record):
    """A pin file: which remote, which commit, which paths (docs/training.md)."""

    __slots__ = ("commit", "endpoint_url", "paths", "region", "remote", "rev")

    def __init__(
        self,
        remote: str,
        commit: str,
        rev: str | None = None,
        paths: list[str] | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.remote = remote
        self.commit = commit
        self.rev = rev
        self.paths = list(paths or [])
        self.endpoint_url = endpoint_url
        self.region = region

    def dumps(self) -> str:
        """The file's text: TOML, one ``key = value`` a line, values written as JSON."""
        import json

        lines = [
            "# dsv pin: the exact dataset version this code uses.",
            "# Recreate it with: dsv materialize <this file> [DIR]",
            f"format = {PIN_FORMAT}",
            f"remote = {json.dumps(self.remote, ensure_ascii=False)}",
            f"commit = {json.dumps(self.commit)}",
        ]
        if self.rev:
            lines.append(f"rev = {json.dumps(self.rev, ensure_ascii=False)}")
        if self.paths:
            lines.append(f"paths = {json.dumps(self.paths, ensure_ascii=False)}")
        if self.endpoint_url:
            lines.append(f"endpoint_url = {json.dumps(self.endpoint_url)}")
        if self.region:
            lines.append(f"region = {json.dumps(self.region)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def loads(cls, text: str, where: str = "pin file") -> Pin:
        data = _parse_toml_subset(text, where)
        fmt = data.get("format")
        if fmt != PIN_FORMAT:
            raise UnsupportedFormatError(
                f"{where}: pin format {fmt!r} is not supported (this dsv reads {PIN_FORMAT})"
            )
        remote, commit = data.get("remote"), data.get("commit")
        if not isinstance(remote, str) or not remote:
            raise FormatError(f"{where}: 'remote' must be a URL")
        if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{32}|[0-9a-f]{64}", commit):
            raise FormatError(f"{where}: 'commit' must be a full commit id (32 or 64 hex digits)")
        paths = data.get("paths", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise FormatError(f"{where}: 'paths' must be a list of strings")
        opt: dict[str, str | None] = {}
        for k in ("rev", "endpoint_url", "region"):
            val = data.get(k)
            if val is not None and not isinstance(val, str):
                raise FormatError(f"{where}: {k!r} must be a string")
            opt[k] = val
        clean = sorted({p.strip("/") for p in paths if p.strip("/")})
        return cls(remote, commit, opt["rev"], clean, opt["endpoint_url"], opt["region"])


def _parse_toml_subset(text: str, where: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FormatError(f"{where}: not a valid pin file ({exc})") from None
        return data
    # no tomllib: the subset dsv writes (values are JSON)
    return _parse_json_lines(text, where)


def _parse_json_lines(text: str, where: str) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    dec = json.JSONDecoder()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, rest = line.partition("=")
        key, rest = key.strip(), rest.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", key):
            raise FormatError(f"{where}:{n}: expected 'key = value'")
        try:
            val, end = dec.raw_decode(rest)
        except ValueError:
            raise FormatError(f"{where}:{n}: cannot read the value of {key!r}") from None
        tail = rest[end:].strip()
        if tail and not tail.startswith("#"):
            raise FormatError(f"{where}:{n}: unexpected text after the value")
        out[key] = val
    return out


def pin(
    repo: Repository,
    rev: str = "HEAD",
    *,
    remote: str | None = None,
    paths: list[str] | None = None,
    check: bool = True,
) -> Pin:
    """A pin of commit ``rev`` on ``remote`` (default origin), optionally of ``paths`` only.

    With ``check`` (default), refuses to pin a commit the remote does not
    have: a pin that cannot be materialised is worse than none.
    """
    from dsv.api import lookup
    from dsv.sync import get_remote_config, open_remote

    cid = resolve(repo, rev)
    tree = repo.read_commit(cid).tree
    clean = sorted({p.strip("/") for p in paths or [] if p.strip("/")})
    for p in clean:
        if lookup(repo, tree, p) is None:
            raise NotFoundError(f"path {p!r} does not exist in {rev}")
    cfg = get_remote_config(repo, remote)
    if check:
        r = open_remote(repo, cfg.name)
        try:
            r.check_format(create=False)
            if not r.has(cid):
                raise NotFoundError(
                    f"commit {cid.hex()[:10]} ({rev}) is not on remote {cfg.name} ({cfg.url})",
                    hint=f"push it first: dsv push {cfg.name} BRANCH-OR-TAG",
                )
        finally:
            r.close()
    label = None if re.fullmatch(r"[0-9a-fA-F]{4,}", rev.strip()) else rev.strip()
    return Pin(
        cfg.url,
        cid.hex(),
        label,
        clean,
        cfg.options.get("endpoint-url") or None,
        cfg.options.get("region") or None,
    )


def read_pin(path: str | os.PathLike[str]) -> Pin:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"pin file {os.fspath(path)} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, OSError):
            raise io_error("read", path, exc) from exc
        raise FormatError(f"{os.fspath(path)}: not UTF-8 text") from None
    return Pin.loads(text, os.fspath(path))


class MaterializeResult(Record):
    __slots__ = ("bytes_received", "cloned", "commit", "removed", "root", "verification", "written")

    def __init__(self, root: Path, commit: bytes, cloned: bool) -> None:
        self.root = root
        self.commit = commit
        self.cloned = cloned  # a new directory (else an existing one was brought to the pin)
        self.written = 0
        self.removed = 0
        self.bytes_received = 0
        self.verification: Verification | None = None


def materialize(
    pinned: Pin | str | os.PathLike[str],
    directory: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    full: bool = False,
    jobs: int = 8,
    progress: Progress | None = None,
) -> MaterializeResult:
    """Bring ``directory`` to exactly the pinned data, then verify it.

    A missing or empty directory becomes a partial clone of the pinned remote
    (only the pinned commit's data, only the pinned paths) with HEAD detached
    at the commit.  A directory that is already such a clone is moved to the
    commit (downloading only what changed; local changes are refused unless
    ``force``).  The result carries the verification (``full`` re-hashes
    every file); the data matches only if ``verification.ok``.
    """
    from dsv.api import checkout
    from dsv.api import remote as rapi
    from dsv.sync import list_remotes

    p = pinned if isinstance(pinned, Pin) else read_pin(pinned)
    url = normalize_url(p.remote)
    if directory is None:
        directory = Path(url.rstrip("/")).name or "dataset"
    target = Path(directory)
    paths = p.paths or None
    commit = bytes.fromhex(p.commit)
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        repo, _cid, _branch, tr = rapi.clone(
            url,
            target,
            rev=p.commit,
            paths=paths,
            endpoint_url=p.endpoint_url,
            region=p.region,
            jobs=jobs,
            progress=progress,
        )
        res = MaterializeResult(repo.root, commit, True)
        res.bytes_received = tr.bytes_received
    else:
        if not (target / ".dsv" / "config").is_file():
            raise ConflictError(
                f"{target} exists and is not a dsv clone",
                hint="materialize into a new or empty directory",
            )
        repo = Repository(target.absolute())
        try:
            names = [r.name for r in list_remotes(repo) if normalize_url(r.url) == url]
            if not names:
                raise ConflictError(f"{target} is not a clone of {url}")
            if (repo.sparse_paths() or None) != (sorted(paths) if paths else None):
                raise ConflictError(
                    f"{target} holds other paths than the pin ({repo.sparse_paths() or 'all'})",
                    hint="materialize into a new directory",
                )
            res = MaterializeResult(repo.root, commit, False)
            if not repo.store.has(commit):
                tr = rapi.fetch(repo, names[0], jobs=jobs, progress=progress)
                res.bytes_received = tr.bytes_received
                if not repo.store.has(commit):
                    raise NotFoundError(f"the pinned commit {p.commit} is not on {url}")
            out = checkout(repo, p.commit, force=force, progress=progress)
            res.written = out.result.written
            res.removed = len(out.result.removed)
            # local edits to paths the pin does not change are kept by checkout:
            # the verification below reports them
        except BaseException:
            repo.close()
            raise
    try:
        res.verification = verify(repo, p.commit, full=full, progress=progress)
        return res
    finally:
        repo.close()


# ---------------------------------------------------------------------- the facade


class Repo:
    """A repository, for scripts and notebooks: ``dsv.Repo("data").log()``.

    Paths given to its methods are relative to the repository root and
    ``/``-separated, whatever the current directory.  Ids are hex strings.
    """

    def __init__(self, path: str | os.PathLike[str] = ".") -> None:
        self.repository = Repository.discover(path)

    @property
    def root(self) -> Path:
        return self.repository.root

    def close(self) -> None:
        self.repository.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"dsv.Repo({str(self.root)!r})"

    # -- history

    def rev_parse(self, rev: str = "HEAD", short: bool = False) -> str:
        """The commit id ``rev`` names (``short``: the shortest unique prefix, 10+ digits)."""
        from dsv import api

        return api.rev_parse(self.repository, rev, short)

    def log(self, rev: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        """Commits reachable from ``rev`` (default HEAD), newest first."""
        from dsv import api

        return [CommitInfo(oid, c) for oid, c in api.log(self.repository, rev, limit)]

    def branches(self) -> dict[str, str]:
        from dsv import api

        return {k: v.hex() for k, v in api.branches(self.repository).items()}

    def tags(self) -> dict[str, str]:
        from dsv import api

        return {k: v.hex() for k, v in api.tags(self.repository).items()}

    def ls(self, rev: str = "HEAD", path: str = "", recursive: bool = False) -> list[FileInfo]:
        """The entries of ``path`` (a directory or file) in ``rev``."""
        from dsv import api

        return [
            FileInfo(p, e) for p, e in api.ls_tree(self.repository, rev, path.strip("/"), recursive)
        ]

    # -- the working tree

    def status(self) -> Status:
        """Added, modified and deleted files against HEAD (``.clean`` when none)."""
        from dsv import api

        return api.status(self.repository)

    def commit(
        self,
        message: str,
        *,
        paths: list[str] | None = None,
        meta: dict[str, str] | None = None,
        allow_empty: bool = False,
    ) -> CommitInfo:
        """Snapshot the working tree (or ``paths``); raises NothingToCommitError if unchanged."""
        from dsv import api

        r = api.commit(self.repository, message, paths=paths, meta=meta, allow_empty=allow_empty)
        return CommitInfo(r.id, r.commit)

    def checkout(
        self, rev: str, *, paths: list[str] | None = None, force: bool = False
    ) -> CheckoutOutcome:
        """Bring the working tree (or ``paths``) to ``rev``; refuses to lose local changes."""
        from dsv import api

        return api.checkout(self.repository, rev, paths=paths, force=force)

    def verify(
        self, rev: str = "HEAD", *, paths: list[str] | None = None, full: bool = False
    ) -> Verification:
        """Whether the working tree holds exactly ``rev`` (see ``dsv verify``)."""
        return verify(self.repository, rev, paths=paths, full=full)

    def diff(
        self,
        rev: str = "HEAD",
        to: str | None = None,
        *,
        paths: list[str] | None = None,
        **options: Any,
    ) -> Any:
        """What changed from ``rev`` to ``to`` (default: the working tree): files, rows, labels.

        ``rev`` may also be a range ``"v1..v2"``.  Options (``key``,
        ``tables``, ``labels``, ...) are those of ``dsv diff``; the result
        has ``as_dict()`` in the shape of ``dsv diff --json``.
        """
        import importlib

        try:
            mod = importlib.import_module("dsv.api.diff")
        except ImportError:
            raise DsvError(
                "diff is not available in this version of dsv",
                hint="compare listings meanwhile: Repo.ls(rev, recursive=True)",
            ) from None
        revs = (rev,) if to is None else (rev, to)
        return mod.diff(self.repository, revs, paths=paths, **options)

    # -- reading versions

    def open(
        self, path: str, rev: str = "HEAD", mode: str = "rb"
    ) -> io.BufferedReader[Any] | io.TextIOWrapper[Any]:
        """``dsv.open`` on this repository."""
        return open(path, rev, self, mode)

    def read_table(self, path: str, rev: str = "HEAD", **kwargs: Any) -> pyarrow.Table:
        """``dsv.read_table`` on this repository."""
        return read_table(path, rev, self, **kwargs)

    def lineage(self, path: str = "", rev: str | None = None) -> dict[str, Any]:
        """``dsv.lineage`` of ``path`` (relative to the root) in this repository."""
        return lineage(self.root / path if path else self.root, rev=rev)

    def filesystem(self) -> Any:
        """A ``dsv://`` fsspec file system over this repository."""
        from dsv.api.fs import DsvFileSystem

        return DsvFileSystem(repo=str(self.root))
