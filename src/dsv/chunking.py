"""Content-defined chunking (FastCDC, via pyfastcdc).

Boundaries depend on the bytes around them, not on offsets, so an insert or an
edit only changes the chunks it touches: the rest of a file dedups against
earlier versions.  Parameters are fixed per repository at ``dsv init``.
"""

from __future__ import annotations

from collections.abc import Iterator

from dsv.errors import UnsupportedFormatError
from dsv.records import Record

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

# Reads are this large so that the per-call overhead of Python is paid rarely.
READ_SIZE = 8 << 20


class ChunkParams(Record):
    """FastCDC sizes in bytes.

    ``avg`` is FastCDC's normal-size parameter; the mean chunk length comes out
    near ``avg + min`` (cut-point skipping, FastCDC paper section 3.4).
    """

    __slots__ = ("avg", "max", "min")

    def __init__(self, min: int = 16 * 1024, avg: int = 64 * 1024, max: int = 256 * 1024) -> None:
        self.min = min
        self.avg = avg
        self.max = max

    def validate(self) -> ChunkParams:
        # the bounds pyfastcdc accepts, and min <= avg <= max
        ok = (
            64 <= self.min <= 1 << 20
            and 256 <= self.avg <= 4 << 20
            and 1024 <= self.max <= 16 << 20
            and self.min <= self.avg <= self.max
        )
        if not ok:
            raise UnsupportedFormatError(
                f"invalid chunk sizes min={self.min} avg={self.avg} max={self.max} (need"
                " 64 <= min <= 1 MiB, 256 <= avg <= 4 MiB, 1 KiB <= max <= 16 MiB, min <= avg <= max)"
            )
        return self


class Chunker:
    """Cuts buffers and streams into content-defined chunks."""

    def __init__(self, params: ChunkParams | None = None) -> None:
        from pyfastcdc import FastCDC  # only commands that write pay for the import

        self.params = (params or ChunkParams()).validate()
        self._cdc = FastCDC(self.params.avg, min_size=self.params.min, max_size=self.params.max)

    def cut_buf(self, buf: bytes | bytearray | memoryview) -> Iterator[memoryview]:
        """Chunks of an in-memory buffer (views into it)."""
        if len(buf) == 0:
            return
        for ch in self._cdc.cut_buf(buf):
            yield ch.data

    def cut_stream(self, stream: BinaryIO, whole: Any = None) -> Iterator[memoryview]:
        """Chunks of a stream, read and cut in bounded blocks on a second thread.

        Each view is valid only until the next one is produced (the consumer
        must copy or write it before asking for more).  A thread reads each
        block into one of ``BLOCKS`` reused buffers and finds its cut points
        (both release the GIL) while the caller hashes and stores the chunks
        of the block before, so on two cores cutting and storing overlap
        (measured on 1 GiB: 1.2 s instead of 1.75 s when the caller's thread
        also cut; hashing on the cutting thread as well made it the slower
        of the two).  Reusing the buffers avoids a page fault per 4 KiB of
        input: measured, a fresh buffer per block cost about 0.2 s of system
        time per GiB.  Memory use is bounded by ``BLOCKS`` times the read
        size, whatever the stream's length.  ``whole``: a hasher that the
        thread gives every byte read (the stream's hash is complete once the
        last chunk is out), which keeps a third pass over the bytes off the
        caller's thread.
        """
        cutter = _BlockCutter(self, stream, whole)
        try:
            while True:
                which, start, ends, eof = cutter.take()
                view = memoryview(cutter.bufs[which])
                for end in ends:
                    yield view[start:end]
                    start = end
                if eof:
                    return
                cutter.release(which)
        finally:
            cutter.close()

    def block_cut(self, whole: Any = None) -> BlockCut:
        """The cutting state of one stream read in blocks (see ``BlockCut``)."""
        return BlockCut(self._cdc, self.params.max, whole)


def block_bytes(params: ChunkParams) -> int:
    """The size of one block buffer: the tail carried over, then ``READ_SIZE`` bytes read."""
    return 2 * params.max + READ_SIZE


class BlockCut:
    """Reads a stream block by block into buffers and finds each block's cut points.

    Block ``k`` is ``[tail of block k-1 | READ_SIZE bytes read]`` in a buffer
    of ``block_bytes`` bytes: the tail is the cut-off chunk (< max) and the
    bytes after the last cut that may still move when more bytes arrive
    (< max), so it fits in the ``2 * max`` bytes kept in front of the read.
    The tail is copied out before the buffer is handed over, so the consumer
    and the reader never share bytes being written.  ``whole``: a hasher
    given every byte read, in order (None: none).
    """

    def __init__(self, cdc: Any, mx: int, whole: Any = None) -> None:
        self.cdc = cdc
        self.mx = mx
        self.room = 2 * mx
        self.whole = whole
        self.tail = b""

    def fill(
        self, buf: memoryview, readinto: Callable[[memoryview], int]
    ) -> tuple[int, list[int], bool]:
        """Read the next block into ``buf`` and cut it: where it starts, its chunks'
        ends, whether the stream ended."""
        room, mx, tail = self.room, self.mx, self.tail
        block, got, eof = buf[room:], 0, False
        while got < len(block):
            n = readinto(block[got:])
            if not n:
                eof = True
                break
            got += n
        if self.whole is not None:
            self.whole.update(block[:got])
        start = room - len(tail)
        buf[start:room] = tail
        filled = buf[start : room + got]
        # Keep the tail: a cut near the end of the block may move once more
        # bytes arrive, unless the stream has ended.
        limit = len(filled) if eof else len(filled) - mx
        ends: list[int] = []
        done = 0
        for ch in self.cdc.cut_buf(filled) if len(filled) else ():
            end = ch.offset + ch.length
            if end > limit:
                break
            ends.append(start + end)
            done = end
        self.tail = bytes(filled[done:])
        return start, ends, eof


# Block buffers of a stream being cut (a _BlockCutter's, the helper's shared
# ones): one being cut, one ready, one being consumed.
BLOCKS = 3


class _BlockCutter:
    """Blocks of a stream read and cut (``BlockCut``) on a thread of its own."""

    def __init__(self, chunker: Chunker, stream: BinaryIO, whole: Any = None) -> None:
        import queue
        import threading

        self.stream = stream
        self.cut = chunker.block_cut(whole)
        self.bufs = [bytearray(block_bytes(chunker.params)) for _ in range(BLOCKS)]
        self.ready: queue.SimpleQueue[tuple[int, int, list[int], bool] | BaseException] = (
            queue.SimpleQueue()
        )
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(BLOCKS):
            self.free.put(i)
        self.stop = False
        self.thread = threading.Thread(target=self._run, name="dsv-cut", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        readinto = self.stream.readinto  # type: ignore[attr-defined]
        try:
            while True:
                which = self.free.get()
                if self.stop:
                    return
                start, ends, eof = self.cut.fill(memoryview(self.bufs[which]), readinto)
                self.ready.put((which, start, ends, eof))
                if eof:
                    return
        except BaseException as exc:  # handed to the consumer
            self.ready.put(exc)

    def take(self) -> tuple[int, int, list[int], bool]:
        """The next block: its buffer, where it starts, its chunks' ends, whether it is the last."""
        item = self.ready.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def release(self, which: int) -> None:
        self.free.put(which)

    def close(self) -> None:
        self.stop = True
        self.free.put(-1)
        self.thread.join()
