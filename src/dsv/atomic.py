"""Crash-safe file writes: temp file, fsync, rename, fsync of the directory.

A reader sees either the old file or the complete new one, never a torn
write.  Temp files carry the ``TEMP_MARK`` in their name so that scans skip
them and later runs can clean up what a killed process left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from dsv.errors import io_error

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

TEMP_MARK = ".dsv-tmp-"


def temp_name(path: Path) -> Path:
    return path.with_name(f"{TEMP_MARK}{path.name}.{os.getpid()}.{os.urandom(4).hex()}")


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. platforms that cannot open directories; rename is still atomic
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, *, durable: bool = True, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Open a temp file next to ``path``; on success rename it over ``path``.

    With ``durable`` the data is fsynced before the rename and the directory
    after it, so the new content survives a power loss once this returns.
    On an exception the temp file is removed and ``path`` is untouched.
    """
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise io_error("create", tmp, exc) from exc
    f = os.fdopen(fd, "wb")
    try:
        try:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        finally:
            f.close()
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise io_error("write", path, exc) from exc
        raise
    if durable:
        fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    with atomic_writer(path, durable=durable) as f:
        f.write(data)


# copy_file_range cannot cross file systems on older kernels (EXDEV) and some
# file systems do not offer it at all: then the bytes go through user space.
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM}


def drop_cached(fd: int, offset: int = 0, length: int = 0) -> None:
    """Hint that the clean cached pages of ``fd`` in the range (0: to its end) are not needed
    again soon (``POSIX_FADV_DONTNEED``): the memory is reused for the next pages read or
    written instead of more being taken.  Dirty pages stay until written; errors are ignored."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def copy_range(src: int, dst: int, offset: int, length: int) -> int:
    """Copy ``length`` bytes of ``src`` from ``offset`` to ``dst`` at its position.

    In the kernel (``copy_file_range``) where it can, else read and written.
    Returns the bytes copied: fewer than ``length`` only if ``src`` ends first.
    """
    left = length
    kernel = hasattr(os, "copy_file_range")
    while left:
        if kernel:
            try:
                n = os.copy_file_range(src, dst, left, offset)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                kernel = False
                continue
        else:
            data = os.pread(src, min(left, 8 << 20), offset)
            n = len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view) :]
        if not n:
            break  # the end of src
        offset += n
        left -= n
    return length - left
