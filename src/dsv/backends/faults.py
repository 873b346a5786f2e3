"""A backend wrapper that injects faults on chosen requests (for tests and drills).

Each rule says which operation to hit (``get``, ``get_range``, ``put``, ...,
or ``*``), which calls (the n-th matching call, every call, or with a
probability from a seeded generator) and what happens: a transient or
permanent error, a throttling error, a timeout, a truncated or bit-flipped
response, or a slow response.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from dsv.backends import Backend, BackendError
from dsv.records import Record

FAULTS = ("error", "transient", "throttle", "timeout", "truncate", "flip", "slow")


class Rule(Record):
    __slots__ = (
        "calls",
        "delay",
        "fault",
        "injected",
        "key_contains",
        "limit",
        "op",
        "probability",
    )

    def __init__(
        self,
        op: str,
        fault: str,
        calls: set[int] | None = None,
        probability: float = 1.0,
        key_contains: str = "",
        delay: float = 0.05,
        limit: int | None = None,
        injected: int = 0,
    ) -> None:
        self.op = op  # operation name or "*"
        self.fault = fault  # one of FAULTS
        # 1-based indexes of matching calls; empty: all
        self.calls: set[int] = set() if calls is None else calls
        self.probability = probability
        self.key_contains = key_contains
        self.delay = delay
        self.limit = limit  # stop after injecting this many times
        self.injected = injected


class FaultInjectingBackend(Backend):
    def __init__(self, inner: Backend, rules: list[Rule], seed: int = 0) -> None:
        self.inner = inner
        self.url = inner.url
        self.stats = inner.stats
        self.rules = rules
        self._rng = random.Random(seed)
        self._counts: dict[int, int] = {}
        self._lock = threading.Lock()
        self.log: list[tuple[str, str, str]] = []  # (op, key, fault)

    def _pick(self, op: str, key: str) -> Rule | None:
        with self._lock:
            for i, r in enumerate(self.rules):
                if r.op not in ("*", op) or r.key_contains not in key:
                    continue
                n = self._counts[i] = self._counts.get(i, 0) + 1
                if r.limit is not None and r.injected >= r.limit:
                    continue
                if r.calls and n not in r.calls:
                    continue
                if self._rng.random() >= r.probability:
                    continue
                r.injected += 1
                self.log.append((op, key, r.fault))
                return r
        return None

    def _before(self, op: str, key: str) -> Rule | None:
        r = self._pick(op, key)
        if r is None:
            return None
        if r.fault == "error":
            raise BackendError(f"injected permanent error on {op} {key}")
        if r.fault == "transient":
            raise BackendError(f"injected 503 on {op} {key}", transient=True)
        if r.fault == "throttle":
            raise BackendError(f"injected SlowDown on {op} {key}", transient=True)
        if r.fault == "timeout":
            raise BackendError(f"injected timeout on {op} {key}", transient=True)
        if r.fault == "slow":
            time.sleep(r.delay)
        return r

    def _mangle(self, r: Rule | None, data: bytes) -> bytes:
        if r is None or not data:
            return data
        if r.fault == "truncate":
            return data[: len(data) // 2]
        if r.fault == "flip":
            b = bytearray(data)
            with self._lock:
                pos = self._rng.randrange(len(b))
            b[pos] ^= 1 << (pos % 8)
            return bytes(b)
        return data

    def get(self, key: str) -> bytes:
        r = self._before("get", key)
        return self._mangle(r, self.inner.get(key))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        r = self._before("get_range", key)
        return self._mangle(r, self.inner.get_range(key, start, length))

    def get_with_tag(self, key: str) -> tuple[bytes, str]:
        r = self._before("get", key)
        data, tag = self.inner.get_with_tag(key)
        return self._mangle(r, data), tag

    def put(self, key: str, data: bytes) -> None:
        self._before("put", key)
        self.inner.put(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self._before("put", key)
        self.inner.put_file(key, path)

    def put_if_absent(self, key: str, data: bytes) -> str:
        self._before("put_if_absent", key)
        return self.inner.put_if_absent(key, data)

    def put_if_match(self, key: str, data: bytes, tag: str) -> str:
        self._before("put_if_match", key)
        return self.inner.put_if_match(key, data, tag)

    def list(self, prefix: str) -> dict[str, int]:
        self._before("list", prefix)
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self._before("delete", key)
        self.inner.delete(key)
