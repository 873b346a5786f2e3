"""A forked helper process that does part of a scan or a commit (both cores busy).

Status and commit are bound by the main thread: per file an ``lstat`` (and,
for a commit, an ``open``, ``read``, ``fstat`` and ``close``) and the Python
around them, which threads cannot overlap (they serialise on the GIL;
measured: a commit 2.5x slower on 4 threads).  A copy of the process made
with ``fork`` has no GIL in common with it: the walk hands it directories to
list ahead of time, and a commit hands it half of each large directory's
small files, while the main process goes on with its own share.

Requests and answers are frames on two pipes (``marshal``: tuples, lists,
strings, bytes and numbers are all they hold).  Each request gets a
ticket; answers come back in the order asked and wait in a buffer until the
caller asks for them.  The parent never blocks on a write while an answer is
waiting to be read (it reads meanwhile), so neither side waits for the other
forever.

A commit's helper writes its objects into packs of its own, sealed (fsynced,
renamed and indexed) before it reports them; the commit adds those packs to
its store before it writes the commit object, so nothing names an object
that is not durable.  A helper is only made while this process has a single
thread (a fork copies no other thread, and a lock another thread held would
stay held in the copy), and only on Linux, as for checkout's second process.  If either process dies, the other sees its pipe
close: a helper whose parent is gone discards its unsealed pack and exits; a
command whose helper is gone fails with a clear error, changing nothing.

``DSV_HELPER_PROCESS=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from dsv import errors
from dsv.errors import DsvError, DsvIOError
from dsv.store import Store

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_LEN = struct.Struct("<Q")
# Pipes are made this large where the system allows (fewer waits on a full pipe).
_PIPE_SIZE = 1 << 20
_READ = 1 << 20

# A request: (ticket, kind, args); kind None: finish (seal what was written).
# An answer: (ticket, "ok", result), (ticket, "error", class name, message,
# hint) or, to a finish, (ticket, "done", paths of its packs, stored bytes,
# stored objects).


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether this process may fork a copy of itself to share work (Linux, no other thread).

    fork is not safe everywhere (macOS), and a thread of the caller's (an
    application using the API) could hold a lock the copy would need.
    """
    return sys.platform.startswith("linux") and threading.active_count() == 1


def wanted() -> bool:
    """Whether a helper may be made here and now (see the module's notes)."""
    return os.environ.get("DSV_HELPER_PROCESS", "1") != "0" and _cores() >= 2 and can_fork()


def _frame(msg: Any) -> bytes:
    data = marshal.dumps(msg)
    return _LEN.pack(len(data)) + data


def _grow(fd: int) -> None:
    """Make a pipe ``_PIPE_SIZE`` bytes large where the system allows (Linux)."""
    import fcntl

    f_setpipe_sz = getattr(fcntl, "F_SETPIPE_SZ", None)
    if f_setpipe_sz is not None:
        with contextlib.suppress(OSError):  # over the system's limit: the default
            fcntl.fcntl(fd, f_setpipe_sz, _PIPE_SIZE)


class Helper:
    """The parent's end: ``submit`` requests, ``result`` of each; ``finish``/``adopt``."""

    def __init__(self, pid: int, to_child: int, from_child: int, store: Store) -> None:
        self.pid = pid
        self._to = to_child
        self._from = from_child
        self._store = store
        self._inbox = bytearray()
        self._answers: dict[int, tuple[Any, ...]] = {}
        self._next = 0
        self.pending = 0  # requests without a result taken yet
        self._closed = False
        self._finish: int | None = None
        self._adopted = False
        self.written_bytes = 0

    @classmethod
    def start(cls, store: Store, handlers: dict[str, Callable[..., Any]]) -> Helper | None:
        """Fork a helper that calls ``handlers[kind](*args)`` for each request (None if
        not wanted here).

        A helper that writes objects writes them to ``store`` (its copy of it):
        the store must have no pack being written, and nothing queued.
        """
        if not wanted():
            return None
        _ = store.packs  # listed once, before the fork: the child's copy knows them
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        for fd in (down_w, up_w):
            _grow(fd)
        pid = os.fork()
        if pid == 0:  # the helper: never returns
            code = 1
            try:
                os.close(down_w)
                os.close(up_r)
                code = _serve(store, handlers, down_r, up_w)
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        os.set_blocking(down_w, False)
        return cls(pid, down_w, up_r, store)

    def submit(self, kind: str, *args: Any) -> int:
        """Ask for ``handlers[kind](*args)``; returns the ticket for ``result``."""
        ticket = self._next
        self._next += 1
        self._send(_frame((ticket, kind, args)))
        self.pending += 1
        return ticket

    def result(self, ticket: int) -> Any:
        """What the request returned; raises the error it raised."""
        answer = self._wait(ticket)
        self.pending -= 1
        if answer[0] != "ok":
            raise _error(answer)
        return answer[1]

    def finish(self) -> None:
        """Tell the helper to seal its packs (``adopt`` waits for them)."""
        self._finish = self._next
        self._next += 1
        self._send(_frame((self._finish, None, ())))

    def adopt(self) -> None:
        """Wait for the helper's packs and add them to the store; the helper then exits.
        Once only: later calls do nothing."""
        assert self._finish is not None
        if self._adopted:
            return
        self._adopted = True
        answer = self._wait(self._finish)
        if answer[0] != "done":
            raise _error(answer)
        _, paths, self.written_bytes, objects = answer
        self._store.adopt([Path(p) for p in paths], self.written_bytes, objects)
        self.close(wait=False)  # its packs are sealed and adopted: nothing left to wait for

    def close(self, wait: bool = True) -> None:
        """Stop the helper (it discards what it did not seal) and reap it.

        ``wait=False``, for a helper whose work is over (it wrote nothing, or
        its packs are adopted): do not wait for it to exit (its exit, unmapping
        its copy of this process, took 3 ms of a 3-digit-millisecond status, 4-10
        ms of a commit); it is reaped by a later ``close`` or, once this process
        exits, by the system.
        """
        if self._closed:
            return
        self._closed = True
        for fd in (self._to, self._from):
            with contextlib.suppress(OSError):
                os.close(fd)
        _reap(self.pid, wait)

    def _send(self, data: bytes) -> None:
        """Write a request, reading answers whenever the pipe is full."""
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(self._to, view) :]
                    continue
                except BlockingIOError:
                    pass
                readable, _, _ = select.select([self._from], [self._to], [])
                if readable:
                    self._receive()
        except OSError:
            raise self._gone() from None

    def _wait(self, ticket: int) -> tuple[Any, ...]:
        while ticket not in self._answers:
            try:
                self._receive()
            except OSError:
                raise self._gone() from None
        return self._answers.pop(ticket)

    def _receive(self) -> None:
        """Read what the helper wrote (waiting for something) and keep its whole answers."""
        if not self._receive_more():
            raise self._gone()

    def _receive_more(self) -> bool:
        """``_receive``; False at the end of the stream."""
        data = os.read(self._from, _READ)
        if not data:
            return False
        inbox = self._inbox
        inbox += data
        start = 0
        while len(inbox) - start >= _LEN.size:
            (n,) = _LEN.unpack_from(inbox, start)
            end = start + _LEN.size + n
            if end > len(inbox):
                break
            answer = marshal.loads(memoryview(inbox)[start + _LEN.size : end])
            self._answers[answer[0]] = answer[1:]
            start = end
        del inbox[:start]
        return True

    def _gone(self) -> Exception:
        """The error to raise when the helper's pipe closed: the one it reported
        before it stopped, if it did."""
        with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
            os.set_blocking(self._from, True)
            while not self._closed and self._receive_more():
                pass
        self.close()
        for answer in self._answers.values():
            if answer[0] == "error":
                return _error(answer)
        return DsvIOError(
            "the helper process stopped unexpectedly; nothing was changed",
            hint="run the command again; DSV_HELPER_PROCESS=0 runs without it",
        )


# Helpers closed without waiting for them to exit, not reaped yet.
_unreaped: list[int] = []


def _reap(pid: int, wait: bool) -> None:
    """Reap ``pid`` (waiting for it if ``wait``), and the helpers left before it that exited."""
    for old in [*_unreaped, pid]:
        try:
            done = os.waitpid(old, 0 if wait and old == pid else os.WNOHANG)[0] != 0
        except ChildProcessError:
            done = True
        if done and old in _unreaped:
            _unreaped.remove(old)
        elif not done and old == pid:
            _unreaped.append(pid)


def _error(answer: tuple[Any, ...]) -> Exception:
    """The helper's error, raised again here; a bug in the helper stays a bug (no DsvError)."""
    if answer[0] != "error":
        return RuntimeError(f"the helper process answered {answer[0]!r}")
    _, kind, message, hint = answer
    cls = getattr(errors, kind, None) if kind else None
    if not (isinstance(cls, type) and issubclass(cls, DsvError)):
        return RuntimeError(f"in the helper process: {message}")
    return cls(message, hint=hint)


class _Stop(Exception):
    """Leaves the helper's loop, discarding what is queued."""


def _read_exactly(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``; None at the end of the stream."""
    parts = []
    while n:
        data = os.read(fd, min(n, _READ))
        if not data:
            return None
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def _serve(store: Store, handlers: dict[str, Callable[..., Any]], down: int, up: int) -> int:
    """The helper's loop: requests until told to finish (or its parent is gone)."""
    before = {p.path for p in store.packs}
    written = store.written_bytes, store.written_objects
    answer: tuple[Any, ...]
    ticket = -1
    try:
        with store.background_compression():
            while True:
                head = _read_exactly(down, _LEN.size)
                body = _read_exactly(down, _LEN.unpack(head)[0]) if head is not None else None
                if body is None:  # the parent is gone (or done with a scan)
                    raise _Stop
                ticket, kind, args = marshal.loads(body)
                if kind is None:
                    break
                try:
                    answer = (ticket, "ok", handlers[kind](*args))
                except DsvError as exc:
                    answer = (ticket, "error", type(exc).__name__, exc.message, exc.hint)
                _write_frame(up, answer)
                if answer[1] != "ok":
                    raise _Stop  # the command fails: what this helper wrote goes
        store.seal()
        paths = [str(p.path) for p in store.packs if p.path not in before]
        answer = (
            ticket,
            "done",
            paths,
            store.written_bytes - written[0],
            store.written_objects - written[1],
        )
    except _Stop:
        store.abort()
        return 1
    except DsvError as exc:
        store.abort()
        answer = (ticket, "error", type(exc).__name__, exc.message, exc.hint)
    except BaseException as exc:  # a bug: reported, as the command would report it
        store.abort()
        answer = (ticket, "error", "", f"{type(exc).__name__}: {exc}", None)
    try:
        _write_frame(up, answer)
    except OSError:
        return 1
    return 0 if answer[1] == "done" else 1


def _write_frame(fd: int, answer: tuple[Any, ...]) -> None:
    """Write an answer whole (the helper's side: a blocking pipe)."""
    view = memoryview(_frame(answer))
    while view:
        view = view[os.write(fd, view) :]
