"""A remote in a local directory (or a mounted network file system).

Values are written to a temp name, fsynced and renamed, so readers never see
a partial value.  Conditional writes hold an exclusive ``flock`` on
``<root>/.lock`` for the compare and the rename, which makes them atomic
between processes on this machine.  Tags are digests of the content.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import xxhash

from dsv.atomic import TEMP_MARK, copy_range, drop_cached, fsync_dir, temp_name
from dsv.backends import Backend, BackendError, KeyNotFoundError, PreconditionFailedError, Stats


def _tag(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


class LocalBackend(Backend):
    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.url = str(self.root)
        self.stats = Stats()

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\0" in key:
            raise BackendError(f"invalid remote key {key!r}")
        return self.root.joinpath(*parts)

    def _fail(self, action: str, key: str, exc: OSError) -> BackendError:
        transient = exc.errno in (errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT)
        return BackendError(
            f"cannot {action} {key} in {self.url}: {exc.strerror or exc}", transient=transient
        )

    def local_file(self, key: str) -> Path | None:
        return self._path(key)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFoundError(f"{key} not found in {self.url}") from None
        except OSError as exc:
            raise self._fail("read", key, exc) from exc
        self.stats.count("get", received=len(data))
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(length)
        except FileNotFoundError:
            raise KeyNotFoundError(f"{key} not found in {self.url}") from None
        except OSError as exc:
            raise self._fail("read", key, exc) from exc
        self.stats.count("get_range", received=len(data))
        return data

    def get_with_tag(self, key: str) -> tuple[bytes, str]:
        data = self.get(key)
        return data, _tag(data)

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_name(path)
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)
            raise self._fail("write", key, exc) from exc
        fsync_dir(path.parent)

    def put(self, key: str, data: bytes) -> None:
        self._write(key, data)
        self.stats.count("put", sent=len(data))

    def put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_name(dest)
            size = path.stat().st_size
            with open(path, "rb") as src, open(tmp, "xb") as dst:
                copy_range(src.fileno(), dst.fileno(), 0, size)
                dst.flush()
                os.fsync(dst.fileno())
                # neither copy is read again soon: the next file's pages reuse this memory
                drop_cached(src.fileno())
                drop_cached(dst.fileno())
            os.replace(tmp, dest)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)
            raise self._fail("write", key, exc) from exc
        fsync_dir(dest.parent)
        self.stats.count("put", sent=size)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._fail("lock", ".lock", exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _current_tag(self, key: str) -> str | None:
        try:
            return _tag(self._path(key).read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail("read", key, exc) from exc

    def put_if_absent(self, key: str, data: bytes) -> str:
        with self._locked():
            self.stats.count("put_if_absent", sent=len(data))
            if self._current_tag(key) is not None:
                raise PreconditionFailedError(f"{key} already exists in {self.url}")
            self._write(key, data)
        return _tag(data)

    def put_if_match(self, key: str, data: bytes, tag: str) -> str:
        with self._locked():
            self.stats.count("put_if_match", sent=len(data))
            if self._current_tag(key) != tag:
                raise PreconditionFailedError(f"{key} changed in {self.url}")
            self._write(key, data)
        return _tag(data)

    def list(self, prefix: str) -> dict[str, int]:
        base = self.root / prefix.strip("/") if prefix.strip("/") else self.root
        out: dict[str, int] = {}
        self.stats.count("list")
        if not base.is_dir():
            return out
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                if f.startswith(TEMP_MARK) or f == ".lock":
                    continue
                full = os.path.join(dirpath, f)
                key = os.path.relpath(full, self.root).replace(os.sep, "/")
                with contextlib.suppress(OSError):
                    out[key] = os.stat(full).st_size
        return dict(sorted(out.items()))

    def delete(self, key: str) -> None:
        self.stats.count("delete")
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._fail("delete", key, exc) from exc
