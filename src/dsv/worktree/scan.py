"""Walking the working tree: which files and symlinks there are, with their stat.

Skips ``.dsv`` (at any depth: a nested repository is not part of this one),
files a killed dsv left behind (temp names) and what ``.dsvignore`` excludes.
Special files (sockets, FIFOs, devices) are reported and skipped.

The unit is one directory (:class:`Listing`): its tracked files in tree order
(by the bytes of their names, as trees store them) with their stat packed into
one bytes object, and its subdirectories.  Nothing is kept per file beyond its
name and 36 bytes, so that a million files cost tens of megabytes, and two
listings of an unchanged directory compare equal with one ``memcmp``.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import stat as stat_mod
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from dsv.atomic import TEMP_MARK
from dsv.errors import io_error
from dsv.worktree.ignore import IGNORE_FILE, IgnoreRules

DSV_DIR = ".dsv"

# One file's stat as the stat cache keeps it: size, mtime_ns, ctime_ns, inode, st_mode.
STAT = struct.Struct("<QqqQI")
_REC = STAT.size
# The same record's size and st_mode only (its first and last fields).
SIZE_MODE = struct.Struct(f"<Q{_REC - 12}xI")
_TRACKED_MODES = frozenset((stat_mod.S_IFREG, stat_mod.S_IFLNK))
# Directories are listed (and their files opened) through a descriptor where
# the platform can.
_SCANDIR_FD = os.scandir in os.supports_fd
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
# scan_dir opens a directory without following a symlink in its place (made since
# its parent was listed): that is not a directory of the working tree
_SCAN_FLAGS = DIR_FLAGS | getattr(os, "O_NOFOLLOW", 0)

# Scope of a directory under a path limit: all of it, only some of its
# children (those on the way to a limit path), or none of it.
FULL, PARTIAL, OUT = 0, 1, 2


def stat_result(rec: bytes | memoryview, offset: int = 0) -> os.stat_result:
    """An ``os.stat_result`` with the fields of a packed ``STAT`` record."""
    size, mtime, ctime, ino, mode = STAT.unpack_from(rec, offset)
    return os.stat_result(
        (mode, ino, 0, 0, 0, 0, size, mtime // 10**9, mtime // 10**9, ctime // 10**9),
        {"st_mtime_ns": mtime, "st_ctime_ns": ctime},
    )


def pack_stat(st: os.stat_result) -> bytes:
    return STAT.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def tree_order(names: list[str]) -> list[str]:
    """``names`` sorted by their bytes (UTF-8, surrogateescape), as trees are."""
    names.sort()
    if has_surrogates(names):
        names.sort(key=lambda n: n.encode("utf-8", "surrogateescape"))
    return names


def dir_key(path: str) -> bytes:
    """Sort key of directory paths in tree order (parents first, '/' below any byte)."""
    return path.encode("utf-8", "surrogateescape").replace(b"/", b"\0")


def join(d: str, name: str) -> str:
    return f"{d}/{name}" if d else name


class Limit:
    """The paths a command was limited to (None: the whole tree)."""

    def __init__(self, paths: Iterable[str] | None) -> None:
        self.paths: set[str] | None = None if paths is None else set(paths)
        # directory -> names of its children that lead to (or are) limit paths
        self.through: dict[str, set[str]] = {}
        if self.paths is None or "" in self.paths:
            self.paths = None
            return
        for p in self.paths:
            parts = p.split("/")
            for i in range(len(parts)):
                self.through.setdefault("/".join(parts[:i]), set()).add(parts[i])

    @property
    def whole(self) -> bool:
        return self.paths is None

    def covers(self, path: str) -> bool:
        """Whether ``path`` (a file or directory) is at or below a limit path."""
        if self.paths is None:
            return True
        p = path
        while True:
            if p in self.paths:
                return True
            if "/" not in p:
                return False
            p = p.rpartition("/")[0]

    def scope(self, d: str) -> int:
        if self.covers(d):
            return FULL
        return PARTIAL if d in self.through else OUT

    def wanted(self, d: str) -> set[str]:
        """In a PARTIAL directory: the children to look at."""
        return self.through.get(d, set())


class Listing:
    """The tracked files and the subdirectories of one directory, in tree order.

    ``stats`` holds one ``STAT`` record per name; ``max_mtime`` is the newest
    of their mtimes (for the racily-clean rule).  ``raw`` (when asked for)
    keeps the ``os.stat_result`` of each file.
    """

    __slots__ = ("_pos", "dirs", "max_mtime", "names", "raw", "stats")

    def __init__(self) -> None:
        self._pos: dict[str, int] | None = None
        self.names: list[str] = []
        self.stats = b""
        self.dirs: list[str] = []
        self.max_mtime = 0
        self.raw: list[os.stat_result] | None = None

    def find(self, name: str) -> int:
        """Position of the file ``name`` (-1: not listed)."""
        if self._pos is None:
            self._pos = {n: i for i, n in enumerate(self.names)}
        return self._pos.get(name, -1)

    def stat(self, i: int) -> os.stat_result:
        if self.raw is not None:
            return self.raw[i]
        return stat_result(self.stats, i * STAT.size)


# What scan_dir finds in a directory: tracked names, subdirectories, special
# files, the STAT record of each tracked name, the newest mtime, and whether a
# .dsvignore is there.
Scanned = tuple[list[str], list[str], list[str], list[bytes], int, bool]


def scan_dir(
    full: str,
    raw: list[os.stat_result] | None = None,
    *,
    split: bool = False,
    root: bool = False,
) -> Scanned | None:
    """The entries of the directory ``full``, unsorted and unfiltered (None: not a
    directory, or a symlink unless it is the ``root`` of the working tree).  ``raw``:
    gets the ``os.stat_result`` of each tracked name.  ``split`` (without ``raw``): the
    files of a directory of many are stat'ed by this process and a forked copy of it,
    half each (see _stat_shared)."""
    names: list[str] = []
    dirs: list[str] = []
    special: list[str] = []
    recs: list[bytes] = []
    rest: list[str] = []  # files listed but not stat'ed yet (split)
    pack = STAT.pack
    tracked = _TRACKED_MODES.__contains__
    newest = 0
    has_ignore = False
    # stat'ed here until this many are done, then listed only (-1: never)
    budget = SPLIT_MIN if split and raw is None else -1
    # The hot loop of status and commit: one lstat per file, little else,
    # and nothing kept per entry but its name and 36 bytes (a directory of
    # a million files must not become a million DirEntry and stat objects).
    where: int | str = full
    try:
        if _SCANDIR_FD:
            # listed through a descriptor: each lstat then looks up one name
            # in the directory instead of walking the whole path again (20 %
            # less time for the scan of 20,000 files, measured)
            where = os.open(full, DIR_FLAGS if root else _SCAN_FLAGS)
        elif not root and os.path.islink(full):
            return None
        with os.scandir(where) as it:
            for entry in it:
                name = entry.name
                if name[0] == ".":
                    if name == DSV_DIR or name.startswith(TEMP_MARK):
                        continue
                    has_ignore = has_ignore or name == IGNORE_FILE
                try:
                    if entry.is_dir(follow_symlinks=False):
                        dirs.append(name)
                        continue
                    if budget == 0:
                        rest.append(name)
                        continue
                    budget -= 1
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # vanished while we looked: not there
                except OSError as exc:
                    raise io_error("stat", os.path.join(full, name), exc) from exc
                mode = st.st_mode
                if not tracked(mode & 0o170000):
                    special.append(name)
                    continue
                mtime = st.st_mtime_ns
                if mtime > newest:
                    newest = mtime
                names.append(name)
                recs.append(pack(st.st_size, mtime, st.st_ctime_ns, st.st_ino, mode))
                if raw is not None:
                    raw.append(st)
        if rest:
            newest = max(newest, _stat_shared(where, full, rest, names, special, recs))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None  # a symlink where the directory was (see _SCAN_FLAGS)
        raise io_error("read directory", full, exc) from exc
    finally:
        if isinstance(where, int):
            os.close(where)
    return names, dirs, special, recs, newest, has_ignore


# A directory of more files than this has the rest stat'ed by two processes (scan_dir):
# an lstat is a few microseconds in the kernel, which threads cannot overlap with the
# Python around it (the GIL), and a directory of a million files takes seconds of them.
SPLIT_MIN = 20_000
# What _stat_names found of a name: tracked (a STAT record follows), special, vanished.
_TRACKED, _SPECIAL, _GONE = 1, 2, 3


def _stat_names(
    where: int | str, full: str, todo: list[str], codes: bytearray, recs: list[bytes]
) -> int:
    """lstat each name of ``todo`` (a code for each in ``codes``, the STAT record of each
    tracked one in ``recs``); the newest mtime of those."""
    pack = STAT.pack
    tracked = _TRACKED_MODES.__contains__
    fd = where if isinstance(where, int) else None
    base = "" if fd is not None else full
    lstat = os.lstat
    newest = 0
    for name in todo:
        try:
            st = lstat(name, dir_fd=fd) if fd is not None else lstat(os.path.join(base, name))
        except FileNotFoundError:
            codes.append(_GONE)  # vanished while we looked: not there
            continue
        except OSError as exc:
            raise io_error("stat", os.path.join(full, name), exc) from exc
        mode = st.st_mode
        if not tracked(mode & 0o170000):
            codes.append(_SPECIAL)
            continue
        mtime = st.st_mtime_ns
        if mtime > newest:
            newest = mtime
        codes.append(_TRACKED)
        recs.append(pack(st.st_size, mtime, st.st_ctime_ns, st.st_ino, mode))
    return newest


def _stat_shared(
    where: int | str,
    full: str,
    todo: list[str],
    names: list[str],
    special: list[str],
    recs: list[bytes],
) -> int:
    """Stat ``todo`` into ``names``/``special``/``recs`` (as scan_dir's loop does), the last
    half of them in a forked copy of this process where one may be made: it writes what it
    found into memory shared with this one and exits.  A copy that fails or dies leaves its
    half to this process, so the outcome (and any error) is the same as without it.  The
    newest mtime of those stat'ed."""
    import mmap

    from dsv.worktree.helper import wanted

    # the copy takes half of all the directory's files, if that is worth a fork
    half = min((len(todo) + len(names)) // 2, len(todo))
    if half < SPLIT_MIN // 4 or not wanted():
        half = 0
    mine, theirs = todo[: len(todo) - half], todo[len(todo) - half :]
    shared = pid = None
    if theirs:
        # the copy's answer: a done flag, its newest mtime, a code per name, the records
        shared = mmap.mmap(-1, 9 + len(theirs) * (1 + _REC))
        pid = os.fork()
        if pid == 0:  # the copy
            status = 1
            try:
                their_codes = bytearray()
                their_recs: list[bytes] = []
                latest = _stat_names(where, full, theirs, their_codes, their_recs)
                body = b"".join(their_recs)
                at = 9 + len(their_codes)
                shared[9:at] = their_codes
                shared[at : at + len(body)] = body
                shared[1:9] = latest.to_bytes(8, "little")
                shared[0] = 1
                status = 0
            finally:
                os._exit(status)
    try:
        codes = bytearray()
        found: list[bytes] = []
        newest = _stat_names(where, full, mine, codes, found)
        if pid is not None:
            assert shared is not None
            _, status = os.waitpid(pid, 0)
            pid = None
            if status == 0 and shared[0] == 1:
                codes += shared[9 : 9 + len(theirs)]
                at = 9 + len(theirs)
                count = codes.count(_TRACKED) - len(found)
                body = shared[at : at + count * _REC]
                found.extend(body[i : i + _REC] for i in range(0, len(body), _REC))
                newest = max(newest, int.from_bytes(shared[1:9], "little"))
            else:  # the copy failed or died: its half here
                newest = max(newest, _stat_names(where, full, theirs, codes, found))
    finally:
        if pid is not None:  # interrupted: the copy is not needed any more
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        if shared is not None:
            shared.close()
    names.extend(itertools.compress(todo, (c == _TRACKED for c in codes)))
    special.extend(itertools.compress(todo, (c == _SPECIAL for c in codes)))
    recs.extend(found)
    return newest


def _read_ignore(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise io_error("read", path, exc) from exc


class Scanner:
    """Lists directories of the working tree one at a time, parents before children.

    ``.dsvignore`` files are read as their directories are listed, so a
    directory must be listed after its parent (as a walk from the root does).
    """

    def __init__(
        self,
        root: Path,
        limit: Limit | None = None,
        *,
        keep_stat: bool = False,
        split: bool = True,
        keep_ignored: bool = False,
    ) -> None:
        self.root = str(root)
        self.limit = limit or Limit(None)
        self.rules = IgnoreRules()
        self.skipped: list[str] = []  # special files
        self.keep_stat = keep_stat
        self.split = split  # a directory of many files is stat'ed by two processes (scan_dir)
        # Directories their parent's listing found to be directories (not symlinks to
        # one): only those are listed, so that a tracked directory replaced by a symlink
        # is never walked through, to files outside the working tree.
        self._real: set[str] = {""}
        # keep_ignored: ignored files stay in the listings (a verify must find the files
        # of its version whatever .dsvignore says), named here; ignored directories are
        # still not entered unless a tree has them
        self.keep_ignored = keep_ignored
        self.ignored: set[str] = set()
        text = _read_ignore(os.path.join(self.root, IGNORE_FILE))
        if text is not None:
            self.rules.add_file("", text)

    def full_path(self, d: str) -> str:
        return os.path.join(self.root, d) if d else self.root

    def prefetchable(self, d: str) -> bool:
        """Whether ``listing(d)`` may take a ``scan_dir`` of ``d`` made elsewhere."""
        return not self.keep_stat and self.limit.scope(d) == FULL and d in self._real

    def listing(self, d: str) -> Listing | None:
        """The directory ``d`` ('' for the root), None if it is not a directory or out of scope.

        Parents first: ``d`` is listed only if its parent's listing found it to
        be a directory (a symlink to one is a symlink, whatever is behind it).
        """
        scope = self.limit.scope(d)
        if scope == OUT or d not in self._real:
            return None
        full = self.full_path(d)
        if scope == PARTIAL:
            return self._partial(d, full)
        raw: list[os.stat_result] | None = [] if self.keep_stat else None
        return self._listing(d, full, scan_dir(full, raw, split=self.split, root=not d), raw)

    def listing_scanned(self, d: str, scanned: Scanned | None) -> Listing | None:
        """``listing(d)`` from the ``scan_dir`` of it made elsewhere (where ``prefetchable``)."""
        assert self.prefetchable(d)
        return self._listing(d, self.full_path(d), scanned, None)

    def _listing(
        self, d: str, full: str, scanned: Scanned | None, raw: list[os.stat_result] | None
    ) -> Listing | None:
        if scanned is None or d not in self._real:
            return None
        names, dirs, special, recs, newest, has_ignore = scanned
        self._real.update(join(d, n) for n in dirs)
        if has_ignore and d:
            text = _read_ignore(os.path.join(full, IGNORE_FILE))
            if text is not None:
                self.rules.add_file(d, text)
        prefix = d + "/" if d else ""
        keep: list[int] | range = range(len(names))
        if self.rules:
            ignored = self.rules.is_ignored
            if self.keep_ignored:
                self.ignored.update(prefix + n for n in names if ignored(prefix + n, False))
            else:
                keep = [i for i, n in enumerate(names) if not ignored(prefix + n, False)]
            dirs = [n for n in dirs if not ignored(prefix + n, True)]
            special = [n for n in special if not ignored(prefix + n, False)]
        self.skipped.extend(prefix + n for n in special)
        order = sorted(keep, key=names.__getitem__)
        if has_surrogates(names):
            order.sort(key=lambda i: names[i].encode("utf-8", "surrogateescape"))
        out = Listing()
        out.dirs = tree_order(dirs)
        out.max_mtime = newest
        out.names = list(map(names.__getitem__, order))
        out.stats = b"".join(map(recs.__getitem__, order))
        out.raw = list(map(raw.__getitem__, order)) if raw is not None else None
        return out

    def _partial(self, d: str, full: str) -> Listing | None:
        """Only the children of ``d`` that lead to limit paths: one lstat each."""
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise io_error("stat", full, exc) from exc
        if not stat_mod.S_ISDIR(st.st_mode):
            return None
        if d:
            text = _read_ignore(os.path.join(full, IGNORE_FILE))
            if text is not None:
                self.rules.add_file(d, text)
        out = Listing()
        recs = []
        raw: list[os.stat_result] | None = [] if self.keep_stat else None
        for name in tree_order(list(self.limit.wanted(d))):
            if name == DSV_DIR:
                continue
            rel = join(d, name)
            path = os.path.join(full, name)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise io_error("stat", path, exc) from exc
            is_dir = stat_mod.S_ISDIR(st.st_mode)
            if is_dir:
                self._real.add(rel)
            if self.rules and self.rules.is_ignored(rel, is_dir):
                if is_dir or not self.keep_ignored:
                    continue
                self.ignored.add(rel)
            if is_dir:
                out.dirs.append(name)
            elif (st.st_mode & 0o170000) in _TRACKED_MODES:
                if not self.limit.covers(rel):
                    continue  # a file where a limit path needs a directory
                out.names.append(name)
                recs.append(pack_stat(st))
                out.max_mtime = max(out.max_mtime, st.st_mtime_ns)
                if raw is not None:
                    raw.append(st)
            else:
                self.skipped.append(rel)
        out.stats = b"".join(recs)
        out.raw = raw
        return out

    def walk(self) -> Iterator[tuple[str, Listing]]:
        """Every directory in scope with its listing, parents first, in tree order."""
        stack = [""]
        while stack:
            d = stack.pop()
            lst = self.listing(d)
            if lst is None:
                continue
            yield d, lst
            stack.extend(join(d, n) for n in reversed(lst.dirs))


def has_surrogates(names: list[str]) -> bool:
    """Whether some name holds bytes that are not UTF-8 (they sort differently as text)."""
    try:
        "".join(names).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class Scan:
    """Files (regular and symlinks) found, by '/'-separated path relative to the root."""

    __slots__ = ("files", "skipped")

    def __init__(self) -> None:
        self.files: dict[str, os.stat_result] = {}
        self.skipped: list[str] = []  # special files


def scan(root: Path, limit: Iterable[str] | None = None) -> Scan:
    """Scan the tree under ``root`` (or only below the given relative paths) into a dict.

    For commands that need every path at hand (diffs of the working tree);
    status and commit go directory by directory instead.
    """
    out = Scan()
    sc = Scanner(root, Limit(limit), keep_stat=True)
    files = out.files
    for d, lst in sc.walk():
        assert lst.raw is not None
        prefix = d + "/" if d else ""
        for name, st in zip(lst.names, lst.raw):
            files[prefix + name] = st
    out.skipped = sc.skipped
    return out
