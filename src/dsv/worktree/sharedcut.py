"""A commit's big files read and cut by its helper process, into memory both share.

Storing a big file takes two kinds of work: reading and cutting it, and
hashing, compressing and appending each chunk.  A thread of the command's own
can read and cut (both release the GIL), but it still takes the GIL once per
chunk, between the cuts, and so does the command for each chunk it stores:
the two convoy on the GIL.  Measured on 1 GiB (16,384 chunks) with the disk
writes left out: 0.77-0.97 s with a cutting thread, 0.56-0.64 s with the
cutting done in another process.

So when a commit has a helper process (dsv.worktree.helper), the helper reads
and cuts each big file in turn.  The blocks go into ``BLOCKS`` buffers of an
anonymous shared mapping, made before the fork, so no byte of the file goes
through a pipe: the helper answers each request ``cut_next(which)`` with
where the block starts and where its chunks end, as a cutting thread would
(``dsv.chunking.BlockCut``), and each chunk's id.  The command asks for the
next block into a buffer once it is done with the chunks in it, so the helper
never writes into a buffer being read.  Every ``STORE_EVERY``-th block the
helper stores itself, into its own packs (which the command adopts before
anything names them, as for small files): storing is the busier side.  The
helper also hashes the whole file and, at its end, reports the file's identity
(``fstat``), which the command compares with the scan's, as when it reads a
file itself.

One file at a time goes to the helper; a thread that finds it busy cuts on a
thread of its own.
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import os
import threading

from dsv.chunking import BLOCKS, BlockCut, ChunkParams, block_bytes
from dsv.errors import io_error
from dsv.store import ChunkSink, Store

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

    from dsv.worktree.helper import Helper

# The helper stores every STORE_EVERY-th block itself (into its own packs), the
# command the others: storing is the busier side (measured on 1 GiB of random
# bytes, the command's thread was busy 97 % of the time with the helper only
# reading, cutting and hashing).
STORE_EVERY = 3

# A file's identity as the commit checks it: mode, inode, size, mtime, ctime (ns).
Ident = tuple[int, int, int, int, int]


def ident(st: os.stat_result) -> Ident:
    return st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class SharedBlocks:
    """The block buffers, mapped before the fork; the helper's handlers and the command's
    side of a cut."""

    def __init__(self, params: ChunkParams, opener: Callable[[str, int], int]) -> None:
        size = block_bytes(params)
        # MAP_SHARED (mmap's default): the helper's writes are the command's to read
        self._map = mmap.mmap(-1, BLOCKS * size)
        self.bufs = [memoryview(self._map)[i * size : (i + 1) * size] for i in range(BLOCKS)]
        self._opener = opener
        self._lock = threading.Lock()  # one file at a time (the command's side)
        self.helper: Helper | None = None
        # the helper's side: the file being cut
        self._store: Store | None = None
        self._file: BinaryIO | None = None
        self._cut: BlockCut | None = None
        self._sink: ChunkSink | None = None
        self._blocks = 0  # blocks of this file cut so far
        self._rel = ""

    # ------------------------------------------------------------------ the helper's side

    def handlers(self, store: Store) -> dict[str, Callable[..., Any]]:
        """The requests the helper answers for a cut (its copy of ``store`` chunks)."""
        self._store = store
        return {"cut_open": self._open, "cut_next": self._next}

    def _open(self, path: str, rel: str) -> bool:
        """Open a file to cut; False if it is gone."""
        assert self._store is not None
        self._end()
        try:
            fd = self._opener(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                self._file = open(fd, "rb", buffering=0)  # noqa: SIM115 (closed by _end)
            except BaseException:
                os.close(fd)
                raise
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise io_error("read", rel, exc) from exc
        self._rel = rel
        self._cut = self._store._chunker().block_cut(self._store.algo.new())
        self._sink = self._store.chunk_sink()
        self._blocks = 0
        return True

    def _next(self, which: int) -> tuple[Any, ...] | None:
        """Read and cut the next block into buffer ``which``: (which, start, ends, the
        chunks' ids joined, whether this process stored them, eof, and at the end the
        file's id and identity); None past the end."""
        cut, f = self._cut, self._file
        if cut is None or f is None:
            return None
        assert self._store is not None
        try:
            buf = self.bufs[which]
            start, ends, eof = cut.fill(buf, f.readinto)  # type: ignore[attr-defined]
            after = ident(os.fstat(f.fileno())) if eof else None
        except OSError as exc:
            self._end()
            raise io_error("read", self._rel, exc) from exc
        # the chunks' ids too: the bytes are in this core's cache now, and the
        # command's thread, which stores them, is the busier of the two
        digest, ids, a = self._store.algo.digest, [], start
        for b in ends:
            ids.append(digest(buf[a:b]))
            a = b
        self._blocks += 1
        mine = self._blocks % STORE_EVERY == 0
        if mine:  # stored here, into this process's packs
            assert self._sink is not None
            sink = self._sink
            a = start
            for k, b in enumerate(ends):
                sink.put(ids[k], buf[a:b])
                a = b
        if not eof:
            return which, start, ends, b"".join(ids), mine, False, None, None
        self._end()
        assert cut.whole is not None
        return which, start, ends, b"".join(ids), mine, True, cut.whole.digest(), after

    def _end(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._cut = self._sink = None

    # ------------------------------------------------------------------ the command's side

    @contextlib.contextmanager
    def cutting(self) -> Iterator[RemoteCut | None]:
        """A cut by the helper, or None if there is no helper or it is cutting another file."""
        helper = self.helper
        if helper is None or not self._lock.acquire(blocking=False):
            yield None
            return
        cut = RemoteCut(self, helper)
        try:
            yield cut
        finally:
            try:
                cut.drain()
            finally:
                self._lock.release()


class RemoteCut:
    """The chunks of one file as the helper cuts them, with their ids."""

    def __init__(self, shared: SharedBlocks, helper: Helper) -> None:
        self._bufs = shared.bufs
        self._helper = helper
        self._tickets: collections.deque[int] = collections.deque()
        self._digest: bytes | None = None
        self.after: Ident | None = None  # the file's identity once read to its end

    def open(self, path: str, rel: str) -> bool:
        """Have the helper open the file and read ahead; False if it is gone."""
        h = self._helper
        if not h.result(h.submit("cut_open", path, rel)):
            return False
        self._tickets.extend(h.submit("cut_next", i) for i in range(len(self._bufs)))
        return True

    def chunks(self, ds: int) -> Iterator[tuple[memoryview | int, bytes]]:
        """Each chunk (a view valid until the next is asked for, or its length if the
        helper stored it) and its id (``ds`` bytes)."""
        h = self._helper
        while True:
            which, start, ends, ids, stored, eof, digest, after = h.result(self._tickets.popleft())
            if stored and not eof:  # the buffer is free at once
                self._tickets.append(h.submit("cut_next", which))
            view = self._bufs[which]
            for k, end in enumerate(ends):
                yield (end - start if stored else view[start:end]), ids[k * ds : (k + 1) * ds]
                start = end
            if eof:
                self._digest, self.after = digest, tuple(after)
                return
            if not stored:
                self._tickets.append(h.submit("cut_next", which))

    def whole(self) -> bytes:
        """The file's id (once its last chunk was taken)."""
        assert self._digest is not None
        return self._digest

    def drain(self) -> None:
        """Take the answers still due (requests past the end), so the next cut starts
        clean.  After an error, the error that stopped the cut is the one raised."""
        while self._tickets:
            ticket = self._tickets.popleft()
            with contextlib.suppress(Exception):
                self._helper.result(ticket)
