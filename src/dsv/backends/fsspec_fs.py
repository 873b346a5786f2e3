"""Any fsspec file system as a remote (``memory://`` in tests, ``gcs://``, ``az://``, ...).

fsspec has no portable conditional write: compare-and-swap is emulated under a
lock of this process, which is atomic only between threads of one process.
Use a local directory or S3 for remotes shared by several writers.
"""

from __future__ import annotations

import threading
from typing import Any

import xxhash

from dsv.backends import Backend, BackendError, KeyNotFoundError, PreconditionFailedError, Stats

_CAS_LOCK = threading.Lock()


def _tag(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


class FsspecBackend(Backend):
    def __init__(self, url: str) -> None:
        import fsspec

        try:
            fs, path = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise BackendError(f"unsupported remote URL {url!r}: {exc}") from None
        self.fs: Any = fs
        self.base = path.rstrip("/")
        self.url = url
        self.stats = Stats()

    def _p(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise BackendError(f"invalid remote key {key!r}")
        return f"{self.base}/{key}"

    def _wrap(self, exc: Exception, action: str, key: str) -> Exception:
        if isinstance(exc, FileNotFoundError):
            return KeyNotFoundError(f"{key} not found in {self.url}")
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return BackendError(f"cannot {action} {key} in {self.url}: {exc}", transient=True)
        if isinstance(exc, OSError):
            return BackendError(f"cannot {action} {key} in {self.url}: {exc}")
        return exc

    def get(self, key: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self._p(key))
        except Exception as exc:
            raise self._wrap(exc, "read", key) from None
        self.stats.count("get", received=len(data))
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self._p(key), start=start, end=start + length)
        except Exception as exc:
            raise self._wrap(exc, "read", key) from None
        self.stats.count("get_range", received=len(data))
        return data

    def get_with_tag(self, key: str) -> tuple[bytes, str]:
        data = self.get(key)
        return data, _tag(data)

    def put(self, key: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._p(key), data)
        except Exception as exc:
            raise self._wrap(exc, "write", key) from None
        self.stats.count("put", sent=len(data))

    def _current(self, key: str) -> str | None:
        try:
            return _tag(self.fs.cat_file(self._p(key)))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._wrap(exc, "read", key) from None

    def put_if_absent(self, key: str, data: bytes) -> str:
        with _CAS_LOCK:
            if self._current(key) is not None:
                self.stats.count("put_if_absent")
                raise PreconditionFailedError(f"{key} already exists in {self.url}")
            self.put(key, data)
        return _tag(data)

    def put_if_match(self, key: str, data: bytes, tag: str) -> str:
        with _CAS_LOCK:
            if self._current(key) != tag:
                self.stats.count("put_if_match")
                raise PreconditionFailedError(f"{key} changed in {self.url}")
            self.put(key, data)
        return _tag(data)

    def list(self, prefix: str) -> dict[str, int]:
        base = f"{self.base}/{prefix.strip('/')}".rstrip("/")
        self.stats.count("list")
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        except Exception as exc:
            raise self._wrap(exc, "list", prefix) from None
        out: dict[str, int] = {}
        root = self.base.rstrip("/") + "/"
        for path, info in found.items():
            p = path if path.startswith("/") or not root.startswith("/") else "/" + path
            if p.startswith(root):
                out[p[len(root) :]] = int(info.get("size") or 0)
        return dict(sorted(out.items()))

    def delete(self, key: str) -> None:
        self.stats.count("delete")
        try:
            self.fs.rm_file(self._p(key))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._wrap(exc, "delete", key) from None
