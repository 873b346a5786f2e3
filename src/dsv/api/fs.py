"""``dsv://``: any version of a dataset as a read-only fsspec file system.

Paths are ``REV/path/in/version``: ``dsv://v1.0/labels.parquet``,
``dsv://main~2/images``, ``dsv://5c6067925228/README.txt``.  The revision is
anything ``dsv rev-parse`` accepts (a branch name with ``/`` in it works too:
the shortest leading part that names a revision wins).  ``ls("")`` lists the
branches and tags.

Storage options:

- ``repo``: a local repository (a path inside it; default: the current
  directory), read from its store without touching the working tree;
- ``remote``: a remote URL (``s3://bucket/prefix``, a directory, any fsspec
  URL) with ``endpoint_url``, ``region``, ``profile`` as for ``dsv remote
  add``, and ``cache_dir`` (default ``~/.cache/dsv``).  Only the chunks that
  reads overlap are downloaded, with ranged requests, and kept in the cache.

Everything read is verified against its id.  Registered with fsspec through
the ``fsspec.specs`` entry point, so ``fsspec.open("dsv://...")``,
``pandas.read_parquet("dsv://...", storage_options=...)`` and
``pyarrow.dataset.dataset(..., filesystem=DsvFileSystem(...))`` work.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from dsv.api.versions import (
    LocalSource,
    Source,
    Version,
    VersionFile,
    remote_options,
    shared_remote,
)
from dsv.errors import DsvError
from dsv.objects import Kind, TreeEntry
from dsv.refs import HEADS, TAGS

__all__ = ["DsvFile", "DsvFileSystem"]

KIND_TYPES = {Kind.FILE: "file", Kind.DIR: "directory", Kind.SYMLINK: "other"}


class _Meta(type(AbstractFileSystem)):  # type: ignore[misc]
    """Makes ``repo="."`` mean the directory it was given in.

    fsspec caches instances by their arguments; a relative path would make
    two working directories share one instance.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args:  # DsvFileSystem("data"): the repository, given by position
            kwargs.setdefault("repo", args[0])
            args = args[1:]
        if not kwargs.get("remote"):
            kwargs["repo"] = os.path.abspath(kwargs.get("repo") or ".")
        return super().__call__(*args, **kwargs)


class DsvFileSystem(AbstractFileSystem, metaclass=_Meta):  # type: ignore[misc]
    """Read-only file system over the versions of a dsv repository or remote."""

    protocol = "dsv"
    root_marker = ""
    # fsspec's default is 5 MiB; reads of a remote fetch whole chunks anyway,
    # and VersionFile reads ahead by itself when access is sequential.
    blocksize = 1 << 20

    def __init__(
        self,
        repo: str | None = None,
        remote: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.repo_path = repo
        self.remote_url = remote
        self._opts = remote_options(endpoint_url, region, profile)
        self._cache_dir = cache_dir
        self._pid = -1
        self._src: Source | None = None
        self._versions: dict[str, Version] = {}
        self.source  # noqa: B018 - fail now on a bad repo or remote, not at first read

    # -- where the data comes from

    @property
    def source(self) -> Source:
        if self._src is None or self._pid != os.getpid():
            try:
                if self.remote_url:
                    self._src = shared_remote(self.remote_url, self._opts, self._cache_dir)
                else:
                    self._src = LocalSource.discover(self.repo_path or ".")
            except DsvError as exc:
                raise _os_error(exc) from None
            self._pid = os.getpid()
            self._versions = {}
        return self._src

    def invalidate_cache(self, path: str | None = None) -> None:
        """Resolve revisions again (a remote's branches may have moved)."""
        self._versions = {}
        src = self._src
        if src is not None and hasattr(src, "refresh"):
            src.refresh()
        super().invalidate_cache(path)

    # -- paths

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("dsv://"):
            path = path[len("dsv://") :]
        elif path.startswith("dsv::"):
            path = path[len("dsv::") :]
        return path.strip("/")

    def _version(self, rev: str) -> Version:
        v = self._versions.get(rev)
        if v is None:
            src = self.source
            # a local repository's refs are re-read on each use (cheap, and a
            # new commit is seen at once); a remote's are resolved once
            v = src.version(rev)
            if not isinstance(src, LocalSource):
                self._versions[rev] = v
        return v

    def _split(self, path: str) -> tuple[Version, str]:
        """The version and the path inside it."""
        path = self._strip_protocol(path)
        if not path:
            raise FileNotFoundError("dsv://: give a revision first: dsv://REV/path")
        parts = path.split("/")
        last: DsvError | None = None
        for n in range(1, len(parts) + 1):
            rev = "/".join(parts[:n])
            try:
                return self._version(rev), "/".join(parts[n:])
            except DsvError as exc:
                last = last or exc
        assert last is not None
        raise _os_error(last, path)

    # -- listing

    def _entry_info(self, v: Version, name: str, path: str, e: TreeEntry) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": name,
            "size": e.size,
            "type": KIND_TYPES[e.kind],
            "mode": e.mode,
            "id": e.id.hex(),
            "commit": v.commit_id.hex(),
            "islink": e.kind == Kind.SYMLINK,
        }
        if e.kind == Kind.SYMLINK:
            target = v.lookup(path)
            if target is not None:
                info["type"] = KIND_TYPES[target.kind]
                info["size"] = target.size
                info["id"] = target.id.hex()
        return info

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        if not path:
            out: list[dict[str, Any]] = []
            for full in self.source.refs():
                short = full[len(HEADS) :] if full.startswith(HEADS) else full[len(TAGS) :]
                out.append({"name": short, "size": 0, "type": "directory", "ref": full})
            return out if detail else [x["name"] for x in out]
        v, inner = self._split(path)
        try:
            e = v.lookup(inner)  # a link to a directory lists the directory
        except DsvError as exc:
            raise _os_error(exc, path) from None
        if e is None:
            raise FileNotFoundError(f"dsv://{path}: no such file or directory")
        if e.kind != Kind.DIR:
            return [self.info(path)] if detail else [path]
        entries = self.source.read_tree(e.id)
        base = path.rstrip("/")
        prefix = f"{inner}/" if inner else ""
        infos = [self._entry_info(v, f"{base}/{x.name}", prefix + x.name, x) for x in entries]
        return infos if detail else [x["name"] for x in infos]

    def _info_of(self, v: Version, path: str, inner: str, e: TreeEntry) -> dict[str, Any]:
        if not inner:
            return {
                "name": path,
                "size": 0,
                "type": "directory",
                "id": v.tree.hex(),
                "commit": v.commit_id.hex(),
            }
        return self._entry_info(v, path, inner, e)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if not path:
            return {"name": "", "size": 0, "type": "directory"}
        v, inner = self._split(path)
        try:
            e = v.lookup(inner, follow=False)
        except DsvError as exc:
            raise _os_error(exc, path) from None
        if e is None:
            raise FileNotFoundError(f"dsv://{path}: no such file or directory")
        return self._info_of(v, path, inner, e)

    def ukey(self, path: str) -> str:
        """The content id: equal ids, equal bytes, whatever the version or path."""
        return str(self.info(path)["id"])

    def created(self, path: str) -> datetime.datetime:
        v, _ = self._split(path)
        return datetime.datetime.fromtimestamp(v.commit.time, datetime.timezone.utc)

    modified = created

    # -- reading

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: Any = None,
        autocommit: bool = True,
        cache_options: Any = None,
        **kwargs: Any,
    ) -> DsvFile:
        if mode != "rb":
            raise PermissionError(f"dsv:// is read-only (mode {mode!r})")
        path = self._strip_protocol(path)
        v, inner = self._split(path)
        try:
            vf = v.open(inner)
        except DsvError as exc:
            raise _os_error(exc, path) from None
        kwargs.pop("size", None)
        return DsvFile(
            self,
            path,
            vf,
            block_size=block_size,
            cache_options=cache_options,
            **kwargs,
        )

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        path = self._strip_protocol(path)
        v, inner = self._split(path)
        try:
            vf = v.open(inner)
            size = vf.size
            lo = 0 if start is None else (start if start >= 0 else max(0, size + start))
            hi = size if end is None else (end if end >= 0 else max(0, size + end))
            return vf.pread(lo, max(0, hi - lo))
        except DsvError as exc:
            raise _os_error(exc, path) from None

    # -- writing: not here

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("dsv:// is read-only: commit changes with dsv commit")

    mkdir = makedirs = rm = rm_file = _rm = rmdir = mv = cp_file = put_file = pipe_file = touch = (
        _read_only
    )


class DsvFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of a version, as fsspec's buffered file (picklable, with read-ahead)."""

    def __init__(self, fs: DsvFileSystem, path: str, vfile: VersionFile, **kwargs: Any) -> None:
        self.vfile = vfile
        kwargs.setdefault("cache_type", "readahead")
        block_size = kwargs.pop("block_size", None) or fs.blocksize
        super().__init__(fs, path, mode="rb", block_size=block_size, size=vfile.size, **kwargs)
        self.details = {"name": path, "size": vfile.size, "type": "file", "id": vfile.oid.hex()}

    def _fetch_range(self, start: int, end: int) -> bytes:
        try:
            return self.vfile.pread(start, end - start)
        except DsvError as exc:
            raise _os_error(exc, self.path) from None

    def close(self) -> None:
        super().close()
        self.vfile.close()


def _os_error(exc: DsvError, path: str | None = None) -> OSError:
    """fsspec callers (pandas, pyarrow) expect OSError types, with the dsv message kept."""
    from dsv.errors import NotARepositoryError, NotFoundError

    where = f"dsv://{path}: " if path else ""
    msg = f"{where}{exc.message}" + (f" ({exc.hint})" if exc.hint else "")
    if isinstance(exc, (NotFoundError, NotARepositoryError)):
        err: OSError = FileNotFoundError(msg)
    else:
        err = OSError(msg)
    err.__cause__ = exc
    return err
