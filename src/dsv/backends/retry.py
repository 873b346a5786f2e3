"""Wrappers around any backend: retries with backoff, and injected faults for tests.

``RetryingBackend`` retries transient failures (5xx, throttling, timeouts,
connection resets, short reads) with exponential backoff and full jitter, up to
a budget, then fails with the last error and a hint.  Conditional writes are
retried only when the failure happened before the request could have been
applied; a lost compare-and-swap is never retried here (the caller decides).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dsv.backends import Backend, BackendError, Sink

T = TypeVar("T")


class RetryingBackend(Backend):
    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = 6,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.stats = inner.stats
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.retries = 0

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except BackendError as exc:
                if not exc.transient or attempt == self.attempts:
                    if exc.transient:
                        raise BackendError(
                            f"{exc.message} (gave up after {attempt} attempts)",
                            transient=True,
                            hint="the remote or the network is failing; re-run the command"
                            " later: it only transfers what is still missing",
                        ) from exc
                    raise
                with self._lock:
                    self.retries += 1
                    cap = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
                    delay = self._rng.uniform(0, cap)  # full jitter
                self._sleep(delay)
        raise AssertionError("unreachable")

    def get(self, key: str) -> bytes:
        return self._run("get", lambda: self.inner.get(key))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._run("get_range", lambda: self.inner.get_range(key, start, length))

    def get_with_tag(self, key: str) -> tuple[bytes, str]:
        return self._run("get", lambda: self.inner.get_with_tag(key))

    def download(self, key: str, sink: Sink) -> int:
        # each attempt restarts the sink
        return self._run("get", lambda: self.inner.download(key, sink))

    def put(self, key: str, data: bytes) -> None:
        self._run("put", lambda: self.inner.put(key, data))

    def put_file(self, key: str, path: Path) -> None:
        self._run("put", lambda: self.inner.put_file(key, path))

    def put_if_absent(self, key: str, data: bytes) -> str:
        # A retried create that had in fact succeeded reports "exists": the
        # caller re-reads the ref and sees its own value, so this is safe.
        return self._run("put_if_absent", lambda: self.inner.put_if_absent(key, data))

    def put_if_match(self, key: str, data: bytes, tag: str) -> str:
        return self._run("put_if_match", lambda: self.inner.put_if_match(key, data, tag))

    def list(self, prefix: str) -> dict[str, int]:
        return self._run("list", lambda: self.inner.list(prefix))

    def delete(self, key: str) -> None:
        self._run("delete", lambda: self.inner.delete(key))

    def close(self) -> None:
        self.inner.close()

    def local_file(self, key: str) -> Path | None:
        return self.inner.local_file(key)
