"""References (HEAD, branches, tags, remote-tracking refs), their reflogs and the repository lock.

The model is git's: ``HEAD`` names a branch (``ref: refs/heads/main``) or holds a
commit id (detached); each ref is a file holding an id in hex.  Updates are
atomic (temp file, fsync, rename) and compare-and-swap against the value the
caller expects; every change is appended to the ref's reflog.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from dsv.atomic import TEMP_MARK, fsync_dir, write_atomic
from dsv.errors import BadNameError, ConflictError, FormatError, LockedError, io_error
from dsv.records import Record

HEADS = "refs/heads/"
TAGS = "refs/tags/"
REMOTES = "refs/remotes/"

_BAD_REF = re.compile(
    r"(^[./-])|(\.\.)|([\x00-\x20\x7f~^:?*\[\\])|(@\{)|(/[./])|([./]$)|(\.lock(/|$))|(//)"
)
_HEX = re.compile(r"[0-9a-fA-F]+")


def check_ref_name(name: str, what: str = "name") -> str:
    """Validate a branch or tag name (git's check-ref-format rules)."""
    if not name or _BAD_REF.search(name) or name == "@" or name == "HEAD":
        raise BadNameError(
            f"invalid {what}: {name!r}",
            hint="names cannot contain spaces, '..', '~', '^', ':', '?', '*', '[', '\\' or end in '.lock'",
        )
    return name


class _Any:
    """Sentinel: update a ref whatever it holds."""


ANY = _Any()


class Head(Record):
    """What HEAD says: a branch (full ref name; it may have no commits yet) or a detached commit."""

    __slots__ = ("branch", "commit")

    def __init__(self, branch: str | None, commit: bytes | None) -> None:
        self.branch = branch
        self.commit = commit


class ReflogEntry(Record):
    __slots__ = ("message", "new", "old", "time", "who")

    def __init__(
        self, old: bytes | None, new: bytes | None, time: int, who: str, message: str
    ) -> None:
        self.old = old
        self.new = new
        self.time = time
        self.who = who
        self.message = message


class Refs:
    def __init__(self, dsv_dir: Path, digest_size: int) -> None:
        self.dir = dsv_dir
        self.ds = digest_size

    # ------------------------------------------------------------------ reading

    def _path(self, name: str) -> Path:
        if name != "HEAD" and not name.startswith("refs/"):
            raise ValueError(f"not a full ref name: {name}")
        return self.dir / name

    def _parse_id(self, text: str, where: str) -> bytes:
        text = text.strip()
        if len(text) != self.ds * 2 or not _HEX.fullmatch(text):
            raise FormatError(f"ref {where}: malformed value {text[:80]!r}")
        return bytes.fromhex(text)

    def read(self, name: str) -> bytes | None:
        """The id a ref points to, or None if it does not exist."""
        try:
            text = self._path(name).read_text(encoding="ascii")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None  # absent (a directory of refs, or a ref where a directory would be)
        except (OSError, UnicodeDecodeError) as exc:
            raise FormatError(f"ref {name}: unreadable ({exc})") from None
        if text.startswith("ref: "):
            raise FormatError(f"ref {name}: symbolic refs are only allowed in HEAD")
        return self._parse_id(text, name)

    def head(self) -> Head:
        try:
            text = (self.dir / "HEAD").read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise FormatError(f"HEAD is unreadable ({exc})") from None
        if text.startswith("ref: "):
            ref = text[5:].strip()
            if not ref.startswith(HEADS):
                raise FormatError(f"HEAD points outside refs/heads: {ref!r}")
            try:
                check_ref_name(ref[len(HEADS) :], "branch in HEAD")
            except BadNameError:
                raise FormatError(f"HEAD names an invalid branch: {ref!r}") from None
            return Head(ref, self.read(ref))
        return Head(None, self._parse_id(text, "HEAD"))

    def list_refs(self, prefix: str = "refs/") -> dict[str, bytes]:
        """All refs below ``prefix`` (full names), sorted."""
        out: dict[str, bytes] = {}
        base = self.dir / prefix.rstrip("/")
        if not base.is_dir():
            return out
        for root, dirs, files in os.walk(base):
            dirs.sort()
            for f in sorted(files):
                if f.startswith(TEMP_MARK):
                    continue
                full = os.path.relpath(os.path.join(root, f), self.dir).replace(os.sep, "/")
                oid = self.read(full)
                if oid is not None:
                    out[full] = oid
        return dict(sorted(out.items()))

    # ------------------------------------------------------------------ writing

    def update(
        self,
        name: str,
        new: bytes | None,
        *,
        expect: bytes | _Any | None = ANY,
        message: str,
        who: str = "",
    ) -> None:
        """Point ``name`` at ``new`` (None deletes it), if it still holds ``expect``.

        Callers hold the repository lock; the check and the rename are then
        atomic with respect to other dsv processes.  The reflog line is written
        first: if that fails (a full disk), the ref has not moved and the
        command fails as a whole, never after its effect.
        """
        old = self.read(name)
        if not isinstance(expect, _Any) and old != expect:
            raise ConflictError(
                f"ref {name} changed meanwhile (expected {_hx(expect)}, found {_hx(old)})"
            )
        path = self._path(name)
        if new is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._prune_dirs(path.parent)
            # like git, a deleted ref takes its reflog along (HEAD's reflog still
            # remembers every commit that was checked out or made), so that the
            # name, or names below it, can be used again
            self.delete_reflog(name)
            return
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTDIR):
                    raise ConflictError(
                        f"cannot create ref {name}: a ref with a prefix of it exists"
                    ) from None
                raise io_error("create", path.parent, exc) from exc
            if path.is_dir():
                raise ConflictError(f"cannot create ref {name}: refs exist below it")
            self.append_reflog(name, old, new, message, who)
            write_atomic(path, (new.hex() + "\n").encode())

    def set_head(
        self, *, branch: str | None = None, commit: bytes | None = None, message: str, who: str = ""
    ) -> None:
        """Point HEAD at a branch (symbolic) or detach it at a commit (reflog first)."""
        prev = self.head().commit
        if branch is not None:
            new = self.read(branch)
            content = f"ref: {branch}\n"
        else:
            assert commit is not None
            new = commit
            content = commit.hex() + "\n"
        if prev != new or branch is not None:
            self.append_reflog("HEAD", prev, new, message, who)
        write_atomic(self.dir / "HEAD", content.encode())

    def _prune_dirs(self, d: Path) -> None:
        refs_root = self.dir / "refs"
        while d != refs_root and refs_root in d.parents:
            try:
                d.rmdir()
            except OSError:
                return
            d = d.parent

    # ------------------------------------------------------------------ reflog

    def _log_path(self, name: str) -> Path:
        return self.dir / "logs" / name

    def append_reflog(
        self, name: str, old: bytes | None, new: bytes | None, message: str, who: str
    ) -> None:
        zero = "0" * (self.ds * 2)
        msg = message.replace("\n", " ").replace("\t", " ")
        who = who.replace("\n", " ").replace("\t", " ")
        line = f"{old.hex() if old else zero} {new.hex() if new else zero} {int(time.time())} {who}\t{msg}\n"
        path = self._log_path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = "\n" + line  # end the line a crash cut short
                os.write(fd, line.encode("utf-8", "surrogateescape"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise io_error("write reflog", path, exc) from exc

    def reflog(self, name: str) -> list[ReflogEntry]:
        """Entries oldest first; lines a crash left half-written are skipped."""
        path = self._log_path(name)
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise io_error("read reflog", path, exc) from exc
        out = []
        zero = "0" * (self.ds * 2)
        lines = text.split("\n")
        lines.pop()  # the part after the last newline: empty, or a line a crash cut short
        for line in lines:
            head, _, msg = line.partition("\t")
            parts = head.split(" ", 3)
            if len(parts) < 3:
                continue
            try:
                old = None if parts[0] == zero else self._parse_id(parts[0], name)
                new = None if parts[1] == zero else self._parse_id(parts[1], name)
                t = int(parts[2])
            except (FormatError, ValueError):
                continue
            out.append(ReflogEntry(old, new, t, parts[3] if len(parts) > 3 else "", msg))
        return out

    def delete_reflog(self, name: str) -> None:
        path = self._log_path(name)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()
        d = path.parent
        logs = self.dir / "logs"
        while d != logs and logs in d.parents:
            try:
                d.rmdir()
            except OSError:
                break
            d = d.parent


def _hx(v: object) -> str:
    return v.hex()[:12] if isinstance(v, bytes) else "nothing"


class RepoLock:
    """An exclusive lock on the repository (flock on ``.dsv/lock``).

    Held by every command that writes objects or refs.  The kernel drops it
    when the process dies, so a killed command never leaves a stale lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float, command: str) -> None:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise io_error("open lock file", self.path, exc) from exc
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = ""
                    with contextlib.suppress(OSError):
                        holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise LockedError(
                        "another dsv process is writing to this repository"
                        + (f" ({holder})" if holder else ""),
                        hint="wait for it to finish, or set DSV_LOCK_TIMEOUT to wait longer",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: {command}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def held(self, timeout: float, command: str) -> Iterator[None]:
        self.acquire(timeout, command)
        try:
            yield
        finally:
            self.release()


def ensure_dirs(dsv_dir: Path) -> None:
    for sub in ("refs/heads", "refs/tags", "logs"):
        (dsv_dir / sub).mkdir(parents=True, exist_ok=True)
    fsync_dir(dsv_dir)


__all__ = [
    "HEADS",
    "REMOTES",
    "TAGS",
    "Head",
    "ReflogEntry",
    "Refs",
    "RepoLock",
    "check_ref_name",
    "ensure_dirs",
]
