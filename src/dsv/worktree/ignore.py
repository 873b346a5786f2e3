"""``.dsvignore`` files: paths the working-tree scanner leaves out.

The syntax and semantics are exactly those of ``.gitignore`` (``man
gitignore``), so users can copy their git rules verbatim; the test suite checks
the matcher against ``git check-ignore``.  In brief:

* blank lines and lines starting with ``#`` are skipped; ``\\#`` and ``\\!`` at
  the start of a line stand for a literal ``#`` or ``!``;
* trailing spaces are dropped unless escaped with a backslash;
* ``!pattern`` re-includes what an earlier pattern excluded; the last matching
  pattern wins;
* a pattern with a ``/`` at its start or in its middle is anchored to the
  directory holding the ``.dsvignore``; otherwise it matches the last
  component of a path at any depth below that directory;
* a trailing ``/`` restricts the pattern to directories;
* ``*``, ``?`` and ``[...]`` (with ``[!...]``/``[^...]``, ranges and
  ``[:class:]`` names) never match ``/``; ``**`` matches across directories
  when it forms a whole component (``**/x``, ``x/**``, ``x/**/y``);
* a ``.dsvignore`` applies to the paths below its directory; where the files of
  several directories match a path, the deepest one decides.

One rule lives in the caller: as in git, a path inside an ignored directory is
ignored whatever the patterns say (``!`` cannot re-include it).
:meth:`IgnoreRules.is_ignored` does not look at parent directories; the
scanner walks top-down and simply never descends into an ignored directory.

Deliberately not supported (all rare and all different in git for reasons of
its byte-oriented C implementation): ``?`` and ``[...]`` match one Unicode
code point where git matches one byte of UTF-8, so non-ASCII characters in
wildcards and ranges can behave differently; git's ``core.ignoreCase``
(case-insensitive matching) has no counterpart; whether a path is a directory
(for patterns ending in ``/``) is whatever the caller passes as ``is_dir`` (git
treats a symbolic link to a directory as a file).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dsv.records import Record

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias


__all__ = ["IGNORE_FILE", "IgnoreRules"]

IGNORE_FILE = ".dsvignore"

# Pattern.fullmatch of one compiled regex, called as fullmatch(path, pos).
_FullMatch: TypeAlias = Callable[[str, int], re.Match[str] | None]


# Basename patterns that are a plain name or "*literal", matched without re
# once a file has many of them (as .gitignore templates do): re tries
# alternatives at ~20 ns each, about what the dict lookup and endswith() cost
# together.  (name -> rank, the suffixes for one endswith() that rules them all
# out, (suffix, rank) highest rank first).
_Shortcuts: TypeAlias = tuple[dict[str, int], tuple[str, ...], tuple[tuple[str, int], ...]]

# The compiled patterns of one .dsvignore that apply to one kind of path
# (files, or directories).  Plain tuples, not NamedTuples: unpacking a tuple
# subclass takes CPython's slow path, and is_ignored unpacks one per query.
#
# Every pattern has a rank, 2 * (its line order) + (1 if it ignores, 0 if it
# re-includes): the highest rank among the matching patterns is the one git
# picks, and its low bit is the verdict.
#
# Basename patterns are matched from the start of the last path component,
# anchored ones from the start of the part below the file's directory.  Each
# kind is one alternation, latest pattern first and each alternative its only
# capturing group, so that re's choice (the first alternative that matches) is
# the latest pattern, and Match.lastindex names it: ranks[lastindex] is its rank.
#
# Fields: (basename regex, its ranks, anchored heads, anchored regex, its
# ranks, shortcuts).  The heads are the literal starts of the anchored patterns
# when every one has one, else (): one startswith() then rules most paths out
# before the regex.
_Side: TypeAlias = tuple[
    _FullMatch | None,
    tuple[int, ...],
    tuple[str, ...],
    _FullMatch | None,
    tuple[int, ...],
    _Shortcuts | None,
]
# (offset in a path of the part below the file's directory, files, directories);
# a side is None when no pattern of the file can match that kind of path.
_FileRules: TypeAlias = tuple[int, _Side | None, _Side | None]
_Chain: TypeAlias = tuple[_FileRules, ...]

# git's [:class:] names.  They are ASCII-only in git (its own ctype table), so
# they are spelled out as code point ranges rather than left to Python's \w etc.
_CLASSES: dict[str, tuple[tuple[int, int], ...]] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": ((0x30, 0x39),),
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}

_GLOB_SPECIAL = "*?[\\"
# From how many name and "*literal" patterns on they bypass re (see _Shortcuts).
_SHORTCUTS_FROM = 8
_SLASH = 0x2F


class _NeverMatches(Exception):
    """The pattern is accepted by git but can match no path (an unclosed ``[``, say)."""


# How a pattern is matched: against the basename, as a literal name, as
# "*literal", or as a regex; or as a regex against the path below the
# .dsvignore's directory.
_NAME, _SUFFIX, _BASE, _ANCHORED = range(4)


class _Pattern(Record):
    __slots__ = ("dir_only", "kind", "literal", "negative", "regex")

    def __init__(self, negative: bool, dir_only: bool, kind: int, regex: str, literal: str) -> None:
        self.negative = negative
        self.dir_only = dir_only
        self.kind = kind
        self.regex = regex
        self.literal = literal  # the name, the suffix, or the literal head of an anchored pattern


class IgnoreRules:
    """Ignore rules for one working tree.

    Build it with :meth:`add_file` for each ``.dsvignore`` met while walking
    the tree top-down, then ask :meth:`is_ignored` about each entry.  Every
    file's patterns are compiled once; a query costs at most two regex
    matches (plus a dict lookup and an ``endswith`` for files with many plain
    names and ``*.ext`` patterns) per ``.dsvignore`` above the path, and a
    fraction of a microsecond for a typical root file.  With no rules at all
    it is a single attribute test, and ``bool(rules)`` lets the caller skip
    the call.  Concurrent queries are safe once all files are added.
    """

    __slots__ = ("_cache", "_compiled", "_patterns", "_root_chain", "_root_only")

    def __init__(self) -> None:
        """Start with no rules: nothing is ignored."""
        self._patterns: dict[str, list[_Pattern]] = {}
        self._compiled: dict[str, _FileRules] = {}
        # With only a root .dsvignore (the usual case) every path shares one
        # chain and the per-directory lookup is skipped.
        self._root_only = False
        self._root_chain: _Chain = ()
        # ("dir/" of the last path's parent, its length, the chain for it): the
        # scanner asks about all entries of one directory in a row.  One tuple so
        # that a concurrent reader never pairs a prefix with another's chain.
        self._cache: tuple[str, int, _Chain] = ("", 0, ())

    def add_file(self, dir_rel: str, text: str) -> None:
        """Add the rules of the .dsvignore found in directory dir_rel ('' for the root, else 'a/b', '/'-separated, no trailing slash).

        ``text`` is the file's content (a leading byte-order mark and CRLF line
        ends are accepted, as by git).  A second text for the same directory is
        appended to the first, as if the file went on.

        Raises:
            ValueError: ``dir_rel`` starts or ends with ``/``.
        """
        if dir_rel.startswith("/") or dir_rel.endswith("/"):
            raise ValueError(f"not a relative directory without trailing slash: {dir_rel!r}")
        patterns = _parse(text)
        if not patterns:
            return
        patterns = self._patterns.get(dir_rel, []) + patterns
        self._patterns[dir_rel] = patterns
        self._compiled[dir_rel] = _compile_file(dir_rel, patterns)
        self._root_only = len(self._compiled) == 1 and "" in self._compiled
        root = self._compiled.get("")
        self._root_chain = (root,) if root is not None else ()
        self._cache = ("", 0, self._root_chain)

    def is_ignored(self, rel_path: str, is_dir: bool) -> bool:
        """Whether the rules exclude the path ``rel_path``.

        ``rel_path`` is '/'-separated relative to the tree root, without a
        leading or trailing slash; ``is_dir`` says whether it names a
        directory (only directories match patterns ending in ``/``).

        Contract: only the path itself is matched, never its parents.  As in
        git, everything inside an ignored directory is ignored and no ``!``
        pattern can re-include it, so the caller must walk top-down and never
        descend into a directory for which ``is_ignored(dir, True)`` was True.
        Asked about a path inside such a directory anyway, this method answers
        as if the directory were not ignored.
        """
        if not self._compiled:
            return False
        if self._root_only:
            chain = self._root_chain
        else:
            prefix, plen, chain = self._cache
            if not rel_path.startswith(prefix) or rel_path.find("/", plen) >= 0:
                chain = self._chain_for(rel_path)
        base_pos = rel_path.rfind("/") + 1
        for below, files, dirs in chain:
            side = dirs if is_dir else files
            if side is None:
                continue
            base, base_ranks, heads, anchored, anchored_ranks, shortcuts = side
            rank = -1
            if shortcuts is not None:
                names, suffixes, ranked_suffixes = shortcuts
                rank = names.get(rel_path[base_pos:], -1)
                if suffixes and rel_path.endswith(suffixes, base_pos):
                    for suffix, r in ranked_suffixes:
                        if r < rank:
                            break
                        if rel_path.endswith(suffix, base_pos):
                            rank = r
                            break
            if base is not None:
                m = base(rel_path, base_pos)
                if m is not None:
                    rank = max(rank, base_ranks[m.lastindex or 0])
            if anchored is not None and (not heads or rel_path.startswith(heads, below)):
                m = anchored(rel_path, below)
                if m is not None:
                    rank = max(rank, anchored_ranks[m.lastindex or 0])
            if rank >= 0:
                # The deepest file with a matching pattern decides, negation or not.
                return bool(rank & 1)
        return False

    def __bool__(self) -> bool:
        """False when there are no rules at all, so that no path is ignored."""
        return bool(self._compiled)

    def _chain_for(self, rel_path: str) -> _Chain:
        """The compiled files above ``rel_path``, deepest first; cached by parent."""
        cut = rel_path.rfind("/")
        parent = rel_path[:cut] if cut >= 0 else ""
        chain: list[_FileRules] = []
        d = parent
        while True:
            rules = self._compiled.get(d)
            if rules is not None:
                chain.append(rules)
            if not d:
                break
            cut = d.rfind("/")
            d = d[:cut] if cut >= 0 else ""
        result = tuple(chain)
        prefix = parent + "/" if parent else ""
        self._cache = (prefix, len(prefix), result)
        return result


def _parse(text: str) -> list[_Pattern]:
    """The patterns of one file that can match something, in file order.

    Follows git's add_patterns_from_buffer: lines split on LF with one CR
    dropped, empty lines and ``#`` lines skipped before that (so a line of
    just CR or of spaces is a pattern that matches nothing).
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    patterns: list[_Pattern] = []
    for raw in text.split("\n"):
        if not raw or raw[0] == "#":
            continue
        line = _trim_trailing_spaces(raw[:-1] if raw.endswith("\r") else raw)
        try:
            pattern = _parse_pattern(line)
        except _NeverMatches:
            continue
        if pattern is not None:
            patterns.append(pattern)
    return patterns


def _trim_trailing_spaces(line: str) -> str:
    """Drop trailing spaces not escaped by a backslash (tabs are kept, as in git)."""
    last_space = -1
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c == " ":
            if last_space < 0:
                last_space = i
        else:
            if c == "\\":
                i += 1
                if i >= n:
                    # git stops without trimming; the pattern, ending in a
                    # lone backslash, then matches nothing anyway.
                    return line
            last_space = -1
        i += 1
    return line[:last_space] if last_space >= 0 else line


def _parse_pattern(line: str) -> _Pattern | None:
    """One line's pattern (git's parse_path_pattern + match_basename/match_pathname)."""
    negative = line.startswith("!")
    p = line[1:] if negative else line
    dir_only = p.endswith("/")
    if dir_only:
        p = p[:-1]
    if not p:
        return None
    if "/" not in p:
        # Matched against the last path component only, so '**' is just '*'.
        regex = _wildmatch(p, pathname=False)
        if not any(c in _GLOB_SPECIAL for c in p):
            return _Pattern(negative, dir_only, _NAME, regex, p)
        if p[0] == "*" and len(p) > 1 and not any(c in _GLOB_SPECIAL for c in p[1:]):
            return _Pattern(negative, dir_only, _SUFFIX, regex, p[1:])
        return _Pattern(negative, dir_only, _BASE, regex, "")
    if p.startswith("/"):
        p = p[1:]
    # git compares the literal head of the pattern itself and hands only the
    # rest to wildmatch, where a '**' at the start counts as a whole component
    # even if the head did not end in '/' ("x/a**/b" matches "x/ab" and
    # "x/ac/d/b").  Splitting the same way keeps that quirk.
    head = 0
    while head < len(p) and p[head] not in _GLOB_SPECIAL:
        head += 1
    regex = re.escape(p[:head]) + _wildmatch(p[head:], pathname=True)
    return _Pattern(negative, dir_only, _ANCHORED, regex, p[:head])


def _wildmatch(pat: str, *, pathname: bool) -> str:
    """Translate git's wildmatch syntax into a Python regex for ``fullmatch``.

    ``pathname`` is wildmatch's WM_PATHNAME: with it a ``**`` that is a whole
    component crosses directories.  Without it, ``**`` is ``*``; the subject is
    then a single component, so '/' is excluded everywhere either way.

    Raises:
        _NeverMatches: git would never match this pattern.
    """
    out: list[str] = []
    i = 0
    n = len(pat)
    while i < n:
        c = pat[i]
        if c == "\\":
            if i + 1 >= n:
                raise _NeverMatches
            out.append(re.escape(pat[i + 1]))
            i += 2
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "*":
            j = i
            while j < n and pat[j] == "*":
                j += 1
            if pathname and j - i >= 2 and (i == 0 or pat[i - 1] == "/"):
                if j == n:
                    out.append(".*")
                    i = j
                    continue
                if pat[j] == "/":
                    # "**/" may also match no directory at all.
                    out.append("(?:.*/)?")
                    i = j + 1
                    continue
                if pat.startswith("\\/", j):
                    # git crosses directories here too, but without the
                    # zero-directory shortcut it applies to a plain "/".
                    out.append(".*")
                    i = j
                    continue
            out.append("[^/]*")
            i = j
        elif c == "[":
            cls, i = _bracket(pat, i + 1)
            out.append(cls)
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _bracket(pat: str, i: int) -> tuple[str, int]:
    """Translate the bracket expression whose body starts at ``pat[i]``.

    Mirrors wildmatch: ``!`` or ``^`` negates, a ``]`` first is literal, ``-``
    is literal first, last or right after a range, backslash escapes, and
    ``[:name:]`` is a class.  Returns the regex and the index after the ``]``.

    Raises:
        _NeverMatches: the expression is unclosed, has an unknown class name,
            or matches no character but '/' (which a bracket never matches).
    """
    n = len(pat)
    if i >= n:
        raise _NeverMatches
    negated = pat[i] in "!^"
    if negated:
        i += 1
    ranges: list[tuple[int, int]] = []
    prev = -1  # the previous single character, a possible range start
    while True:
        if i >= n:
            raise _NeverMatches
        c = pat[i]
        if c == "\\":
            i += 1
            if i >= n:
                raise _NeverMatches
            prev = ord(pat[i])
            ranges.append((prev, prev))
        elif c == "-" and prev >= 0 and i + 1 < n and pat[i + 1] != "]":
            i += 1
            if pat[i] == "\\":
                i += 1
                if i >= n:
                    raise _NeverMatches
            hi = ord(pat[i])
            if prev <= hi:
                ranges.append((prev, hi))
            prev = -1
        elif c == "[" and pat.startswith(":", i + 1):
            start = i + 2
            end = pat.find("]", start)
            if end < 0:
                raise _NeverMatches
            if end - start - 1 < 0 or pat[end - 1] != ":":
                # Not a class after all: a literal '['.
                prev = ord("[")
                ranges.append((prev, prev))
            else:
                try:
                    ranges.extend(_CLASSES[pat[start : end - 1]])
                except KeyError:
                    raise _NeverMatches from None
                i = end
                prev = -1
        else:
            prev = ord(c)
            ranges.append((prev, prev))
        i += 1
        if i >= n:
            raise _NeverMatches
        if pat[i] == "]":
            break
    body: list[str] = []
    for lo, hi in ranges:
        # With WM_PATHNAME a bracket never matches '/'; cut it out of the set.
        if lo <= _SLASH <= hi:
            if lo < _SLASH:
                body.append(_class_range(lo, _SLASH - 1))
            if hi > _SLASH:
                body.append(_class_range(_SLASH + 1, hi))
        else:
            body.append(_class_range(lo, hi))
    if negated:
        return "[^/" + "".join(body) + "]", i + 1
    if not body:
        raise _NeverMatches
    return "[" + "".join(body) + "]", i + 1


def _class_range(lo: int, hi: int) -> str:
    if lo == hi:
        return re.escape(chr(lo))
    return re.escape(chr(lo)) + "-" + re.escape(chr(hi))


def _compile_file(dir_rel: str, patterns: list[_Pattern]) -> _FileRules:
    below = len(dir_rel) + 1 if dir_rel else 0
    files = _compile_side([(k, p) for k, p in enumerate(patterns) if not p.dir_only])
    dirs = _compile_side(list(enumerate(patterns)))
    return (below, files, dirs)


def _compile_side(patterns: list[tuple[int, _Pattern]]) -> _Side | None:
    """Compile the numbered patterns that apply to one kind of path (see _Side)."""
    if not patterns:
        return None
    literal = sum(p.kind in (_NAME, _SUFFIX) for _, p in patterns) >= _SHORTCUTS_FROM
    names: dict[str, int] = {}
    suffixes: list[tuple[str, int]] = []
    base: list[tuple[int, str]] = []
    anchored: list[tuple[int, str]] = []
    heads: list[str] = []
    for k, p in patterns:
        rank = 2 * k + (0 if p.negative else 1)
        if p.kind == _NAME and literal:
            names[p.literal] = rank  # a later duplicate outranks an earlier one
        elif p.kind == _SUFFIX and literal:
            suffixes.append((p.literal, rank))
        elif p.kind == _ANCHORED:
            anchored.append((rank, p.regex))
            heads.append(p.literal)
        else:
            base.append((rank, p.regex))
    suffixes.sort(key=lambda sr: sr[1], reverse=True)
    base_fn, base_ranks = _alternation(base)
    anchored_fn, anchored_ranks = _alternation(anchored)
    shortcuts: _Shortcuts | None = None
    if literal:
        shortcuts = (names, tuple(s for s, _ in suffixes), tuple(suffixes))
    heads_or_none = tuple(heads) if all(heads) else ()
    return (base_fn, base_ranks, heads_or_none, anchored_fn, anchored_ranks, shortcuts)


def _alternation(patterns: list[tuple[int, str]]) -> tuple[_FullMatch | None, tuple[int, ...]]:
    """One regex for the (rank, regex) patterns, latest first; see _Side."""
    if not patterns:
        return None, ()
    patterns = sorted(patterns, reverse=True)
    regex = "|".join(f"({r})" for _, r in patterns)
    return re.compile(regex, re.DOTALL).fullmatch, (-1, *(rank for rank, _ in patterns))
