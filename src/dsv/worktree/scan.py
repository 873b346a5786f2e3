"""Walking the working tree: which files and symlinks there are, with their stat.

Skips ``.dsv`` (at any depth: a nested repository is not part of this one),
files a killed dsv left behind (temp names) and what ``.dsvignore`` excludes.
Special files (sockets, FIFOs, devices) are reported and skipped.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Iterable
from pathlib import Path

from dsv.atomic import TEMP_MARK
from dsv.errors import io_error
from dsv.worktree.ignore import IGNORE_FILE, IgnoreRules

DSV_DIR = ".dsv"


class Scan:
    """Files (regular and symlinks) found, by '/'-separated path relative to the root."""

    __slots__ = ("files", "skipped")

    def __init__(self) -> None:
        self.files: dict[str, os.stat_result] = {}
        self.skipped: list[str] = []  # special files


def _read_ignore(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise io_error("read", path, exc) from exc


def scan(root: Path, limit: Iterable[str] | None = None) -> Scan:
    """Scan the tree under ``root`` (or only below the given relative paths)."""
    out = Scan()
    rules = IgnoreRules()
    root_s = str(root)
    text = _read_ignore(os.path.join(root_s, IGNORE_FILE))
    if text is not None:
        rules.add_file("", text)
    if limit is None:
        _walk(root_s, "", rules, out)
        return out
    for rel in sorted(set(limit)):
        _scan_path(root_s, rel, rules, out)
    return out


def _scan_path(root: str, rel: str, rules: IgnoreRules, out: Scan) -> None:
    """Scan one path given on the command line, with the ignore files above it."""
    parts = rel.split("/") if rel else []
    prefix = ""
    for part in parts[:-1]:
        prefix = f"{prefix}/{part}" if prefix else part
        if part == DSV_DIR or (rules and rules.is_ignored(prefix, True)):
            return
        text = _read_ignore(os.path.join(root, prefix, IGNORE_FILE))
        if text is not None:
            rules.add_file(prefix, text)
    if not rel:
        _walk(root, "", rules, out)
        return
    full = os.path.join(root, rel)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise io_error("stat", full, exc) from exc
    if parts[-1] == DSV_DIR:
        return
    if stat_mod.S_ISDIR(st.st_mode):
        if rules and rules.is_ignored(rel, True):
            return
        _walk(full, rel + "/", rules, out)  # reads the directory's own .dsvignore
    elif stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISLNK(st.st_mode):
        if not (rules and rules.is_ignored(rel, False)):
            out.files[rel] = st
    else:
        out.skipped.append(rel)


def _walk(dirpath: str, prefix: str, rules: IgnoreRules, out: Scan) -> None:
    # The hot loop of status and commit: one lstat per file, little else.
    try:
        with os.scandir(dirpath) as it:
            entries = list(it)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise io_error("read directory", dirpath, exc) from exc
    if prefix and any(e.name == IGNORE_FILE for e in entries):
        text = _read_ignore(os.path.join(dirpath, IGNORE_FILE))
        if text is not None:
            rules.add_file(prefix[:-1], text)
    has_rules = bool(rules)
    subdirs = []
    files = out.files
    is_tracked = _TRACKED_MODES.__contains__
    for entry in entries:
        name = entry.name
        if name[0] == "." and (name == DSV_DIR or name.startswith(TEMP_MARK)):
            continue
        rel = prefix + name
        try:
            if entry.is_dir(follow_symlinks=False):
                if not (has_rules and rules.is_ignored(rel, True)):
                    subdirs.append((entry.path, rel))
                continue
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # vanished while we looked: not there
        except OSError as exc:
            raise io_error("stat", entry.path, exc) from exc
        if is_tracked(st.st_mode & 0o170000):
            if not (has_rules and rules.is_ignored(rel, False)):
                files[rel] = st
        else:
            out.skipped.append(rel)
    for path, rel in subdirs:
        _walk(path, rel + "/", rules, out)


_TRACKED_MODES = frozenset((stat_mod.S_IFREG, stat_mod.S_IFLNK))
