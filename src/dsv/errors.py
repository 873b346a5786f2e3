"""Exception types carrying a message a user can act on and a process exit code.

Every error that reaches the command line is a :class:`DsvError`; the CLI prints
its message (never a traceback) and exits with its ``exit_code``.  The codes
are part of the public interface and documented in docs/cli.md.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``dsv`` command (stable; see docs/cli.md)."""

    OK = 0
    FAILURE = 1  # a check failed (e.g. fsck found a problem)
    USAGE = 2  # bad command line (click's own code)
    NOT_A_REPO = 3
    NOT_FOUND = 4  # unknown revision, path, branch, tag
    CONFLICT = 5  # would overwrite uncommitted changes, ref exists, nothing to commit
    CORRUPT = 6  # a stored object or structure failed verification
    UNSUPPORTED = 7  # unknown format version, unknown algorithm
    IO = 8  # the OS refused a read or write (permissions, full disk, vanished file)
    LOCKED = 9  # another dsv process holds the repository lock
    REJECTED = 10  # a remote refused an update (non-fast-forward, lost race)
    INTERNAL = 70  # a bug in dsv (EX_SOFTWARE); please report it
    INTERRUPTED = 130


class DsvError(Exception):
    """Base class: a failure with a user-facing message and an exit code."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class NotARepositoryError(DsvError):
    exit_code = ExitCode.NOT_A_REPO


class BadNameError(DsvError):
    """A branch, tag or other name the user gave is not acceptable."""

    exit_code = ExitCode.USAGE


class NotFoundError(DsvError):
    exit_code = ExitCode.NOT_FOUND


class ConflictError(DsvError):
    exit_code = ExitCode.CONFLICT


class NothingToCommitError(ConflictError):
    pass


class CorruptObjectError(DsvError):
    """Stored bytes failed verification (hash, checksum, structure)."""

    exit_code = ExitCode.CORRUPT


class FormatError(CorruptObjectError):
    """Bytes that do not decode as the structure they claim to be (untrusted input)."""


class UnsupportedFormatError(DsvError):
    exit_code = ExitCode.UNSUPPORTED


class DsvIOError(DsvError):
    exit_code = ExitCode.IO


class LockedError(DsvError):
    exit_code = ExitCode.LOCKED


class RejectedError(DsvError):
    exit_code = ExitCode.REJECTED


class UnsafePathError(FormatError):
    """A path from an object would escape the working tree or touch ``.dsv``."""


def io_error(action: str, path: object, exc: OSError) -> DsvIOError:
    """Wrap an ``OSError`` into a message naming the action and the path."""
    reason = exc.strerror or exc.__class__.__name__
    return DsvIOError(f"cannot {action} {path}: {reason}")
