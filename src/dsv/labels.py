"""Where the labels of a dataset live: per-path settings, and detection of the obvious cases.

Two kinds of label sources are understood:

* **folders**: an ImageFolder-style tree, ``ROOT/[SPLIT/]CLASS/.../FILE``.  The
  class of a file is the directory below ``ROOT`` (or below ``ROOT/SPLIT``
  when the first level holds split directories such as ``train`` and ``val``).
* **column**: a label column of a table (``label``, ``class``, ...), optionally
  with a split column (``split``).

Settings come from ``[data "PATH"]`` sections of ``.dsv/config`` (written by
``dsv label``); the most specific path wins.  Without settings, detection is
deliberately strict: a tree counts as class folders only when it is obvious
(see :func:`detect_folder_layouts`).

This module sits in a low layer: it works on plain paths and column names and
knows nothing of repositories or tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from dsv.records import Record

__all__ = [
    "LABEL_COLUMNS",
    "SPLIT_COLUMNS",
    "SPLIT_NAMES",
    "FolderLayout",
    "PathSettings",
    "Settings",
    "detect_folder_layouts",
    "detect_label_column",
    "detect_split_column",
    "section_name",
]

# Directory names that mean "a split of the dataset", not a class.
SPLIT_NAMES = frozenset(
    {
        "train",
        "training",
        "val",
        "valid",
        "validation",
        "dev",
        "test",
        "testing",
        "eval",
        "evaluation",
        "holdout",
    }
)
# Column names that mean "the label", in order of preference (compared case-insensitively).
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "target")
SPLIT_COLUMNS = ("split", "subset", "partition")

# Extensions of files that are samples (images, audio, video, arrays, text snippets):
# a tree of class folders holding these is an obvious ImageFolder-style layout.
SAMPLE_EXTENSIONS = frozenset(
    {
        "png",
        "jpg",
        "jpeg",
        "gif",
        "bmp",
        "tif",
        "tiff",
        "webp",
        "ppm",
        "pgm",
        "pbm",
        "heic",
        "dcm",
        "nii",
        "wav",
        "flac",
        "mp3",
        "ogg",
        "m4a",
        "mp4",
        "avi",
        "mov",
        "mkv",
        "webm",
        "npy",
        "npz",
        "pt",
        "txt",
        "json",
        "xml",
    }
)
# Detection: share of files in class folders that must look like samples.
_SAMPLE_SHARE = 0.9

SECTION = "data"
NONE = "none"
FOLDERS = "folders"


def section_name(path: str) -> str:
    """The config section holding the settings of ``path`` (``data "PATH"``)."""
    return f'{SECTION} "{path}"'


def _section_path(name: str) -> str | None:
    prefix = f'{SECTION} "'
    if name.startswith(prefix) and name.endswith('"') and len(name) >= len(prefix) + 1:
        return name[len(prefix) : -1].strip("/")
    return None


class PathSettings(Record):
    """Settings of one path: ``key`` column, ``label`` (a column, ``folders`` or ``none``), ``split`` column.

    ``None`` means "not set here": detect.
    """

    __slots__ = ("key", "label", "path", "split")

    def __init__(
        self,
        path: str,
        key: str | None = None,
        label: str | None = None,
        split: str | None = None,
    ) -> None:
        self.path = path
        self.key = key
        self.label = label
        self.split = split

    def as_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "key": self.key, "label": self.label, "split": self.split}


class Settings:
    """All ``[data "PATH"]`` settings of a repository."""

    def __init__(self, entries: Iterable[PathSettings] = ()) -> None:
        self.entries: dict[str, PathSettings] = {e.path: e for e in entries}

    @classmethod
    def from_sections(cls, sections: Mapping[str, Mapping[str, str]]) -> Settings:
        """From config sections (name -> items); sections other than ``data "..."`` are ignored."""
        out = []
        for name, items in sections.items():
            path = _section_path(name)
            if path is None:
                continue
            out.append(
                PathSettings(
                    path,
                    key=items.get("key") or None,
                    label=items.get("label") or None,
                    split=items.get("split") or None,
                )
            )
        return cls(out)

    def _nearest(self, path: str, name: str) -> str | None:
        p = path
        while True:
            e = self.entries.get(p)
            if e is not None and getattr(e, name) is not None:
                return str(getattr(e, name))
            if not p:
                return None
            p = p.rpartition("/")[0]

    def for_path(self, path: str) -> PathSettings | None:
        """The settings that apply to ``path``: each one from the nearest path at or above it
        that sets it (None: nothing applies)."""
        key, label, split = (self._nearest(path, n) for n in ("key", "label", "split"))
        if key is None and label is None and split is None:
            return None
        return PathSettings(path, key, label, split)

    def label_for(self, path: str) -> str | None:
        """The nearest ``label`` setting at or above ``path`` (None: not configured)."""
        return self._nearest(path, "label")

    def folder_roots(self) -> list[str]:
        return sorted(p for p, e in self.entries.items() if e.label == FOLDERS)


# ---------------------------------------------------------------------- folders


class FolderLayout(Record):
    """Class folders under ``root`` ('' is the repository root).

    ``splits``: names of the split directories directly below ``root`` (empty
    when classes sit directly below it).  ``configured``: from the config
    rather than detected.
    """

    __slots__ = ("configured", "root", "splits")

    def __init__(self, root: str, splits: frozenset[str], configured: bool = False) -> None:
        self.root = root
        self.splits = splits
        self.configured = configured

    @property
    def prefix(self) -> str:
        return f"{self.root}/" if self.root else ""

    def classify(self, path: str) -> tuple[str | None, str] | None:
        """``(split, class)`` of a file below the root, or None if it is not a labelled item."""
        prefix = self.prefix
        if not path.startswith(prefix):
            return None
        parts = path[len(prefix) :].split("/")
        if self.splits:
            if len(parts) >= 3 and parts[0] in self.splits:
                return parts[0], parts[1]
            return None
        if len(parts) >= 2:
            return None, parts[0]
        return None

    def as_dict(self) -> dict[str, object]:
        return {
            "root": self.root,
            "splits": sorted(self.splits),
            "configured": self.configured,
        }


def _ext(name: str) -> str:
    dot = name.rfind(".")
    return name[dot + 1 :].lower() if dot > 0 else ""


# A name with a sample extension, in NUL-separated lowercased names: what
# ``_ext(name) in SAMPLE_EXTENSIONS`` says of each name, counted in one pass
# (the dot is the name's last, and not its first character).
_SAMPLE_NAME = re.compile(r"(?<=[^\0])\.(?:" + "|".join(sorted(SAMPLE_EXTENSIONS)) + r")(?=\0|\Z)")


def count_samples(names: list[str]) -> int:
    """How many of ``names`` have a sample extension."""
    return len(_SAMPLE_NAME.findall("\0".join(names).lower()))


class DirCounts:
    """Files and sample files (by extension) per directory of a set of paths.

    Label detection and class counts only need these per directory, so a
    source that can list its files directory by directory (``by_directory()``
    yielding ``(dir, names)``: a version's trees, a commit's added files)
    is counted without making a path per file.
    """

    __slots__ = ("dirs",)

    def __init__(self, dirs: dict[str, tuple[int, int]]) -> None:
        self.dirs = dirs  # directory ('' for the root) -> (files, sample files)

    @classmethod
    def of(cls, source: object) -> DirCounts:
        """Counts of ``source``: DirCounts, a ``by_directory()`` source, or paths."""
        if isinstance(source, DirCounts):
            return source
        dirs: dict[str, tuple[int, int]] = {}
        by_dir = getattr(source, "by_directory", None)
        if by_dir is not None:
            for d, names in by_dir():
                n, k = dirs.get(d, (0, 0))
                dirs[d] = (
                    n + len(names),
                    k + count_samples(names),
                )
            return cls(dirs)
        files: dict[str, int] = {}
        samples: dict[str, int] = {}
        for p in source:  # type: ignore[attr-defined]
            parent, _, name = p.rpartition("/")
            files[parent] = files.get(parent, 0) + 1
            if _ext(name) in SAMPLE_EXTENSIONS:
                samples[parent] = samples.get(parent, 0) + 1
        return cls({d: (n, samples.get(d, 0)) for d, n in files.items()})

    def changed(self, added: DirCounts, removed: DirCounts) -> DirCounts:
        """The counts after the ``added`` files came and the ``removed`` ones went.

        A diff's other side, without listing it: for two versions, the new one's
        counts are the old one's plus what the file diff added (and moved in)
        less what it removed (and moved out).
        """
        dirs = dict(self.dirs)
        for d, (n, k) in added.dirs.items():
            n0, k0 = dirs.get(d, (0, 0))
            dirs[d] = (n0 + n, k0 + k)
        for d, (n, k) in removed.dirs.items():
            n0, k0 = dirs.get(d, (0, 0))
            if n0 > n:
                dirs[d] = (n0 - n, k0 - k)
            else:
                dirs.pop(d, None)
        return DirCounts(dirs)


def detect_folder_layouts(paths: Iterable[str] | DirCounts) -> list[FolderLayout]:
    """ImageFolder-style layouts that are obvious in a list of file paths.

    A directory ``B`` holds class folders when files sit exactly one level
    below two or more of its subdirectories (``B/CLASS/FILE``), none of those
    class folders has subdirectories, at least 90 % of the files look like
    samples (images, audio, video, arrays, text), and either ``B`` is a split
    directory (``train``, ``val``, ``test``, ...) or the classes hold two files
    each on average (so that one directory per sample is not taken for
    classes).  When ``B`` is a split directory, the layout's root is its
    parent, with every such split below it.
    """
    classes: dict[str, dict[str, int]] = {}
    samples: dict[str, int] = {}
    nested: set[str] = set()  # directories that have subdirectories holding files
    for parent, (n, k) in DirCounts.of(paths).dirs.items():
        if not parent:
            continue
        base, _, cls = parent.rpartition("/")
        per = classes.get(base)
        if per is None:
            per = classes[base] = {}
        per[cls] = per.get(cls, 0) + n
        if k:
            samples[base] = samples.get(base, 0) + k
        # every ancestor of `parent` has a subdirectory with files
        a = base
        while a and a not in nested:
            nested.add(a)
            a = a.rpartition("/")[0]

    def leafy(base: str) -> bool:
        """Class folders that are leaves and hold mostly samples."""
        per = classes[base]
        if samples.get(base, 0) < _SAMPLE_SHARE * sum(per.values()):
            return False
        prefix = f"{base}/" if base else ""
        return not any(prefix + c in nested for c in per)

    roots: dict[str, set[str]] = {}
    plain: set[str] = set()
    for base, per in classes.items():
        if len(per) < 2 or not leafy(base):
            continue
        parent, _, last = base.rpartition("/")
        if base and last.lower() in SPLIT_NAMES:
            roots.setdefault(parent, set()).add(last)
        elif sum(per.values()) >= 2 * len(per):
            plain.add(base)
    # once a root has split folders, a split with a single class belongs to it too
    for base in classes:
        parent, _, last = base.rpartition("/")
        if base and parent in roots and last.lower() in SPLIT_NAMES and leafy(base):
            roots[parent].add(last)
    out = [FolderLayout(r, frozenset(s)) for r, s in roots.items()]
    out += [FolderLayout(b, frozenset()) for b in plain if b not in roots]
    return sorted(out, key=lambda x: x.root)


def configured_layout(root: str, *path_sets: Iterable[str] | DirCounts) -> FolderLayout:
    """The layout of a root configured as ``label = folders``: split level found by name."""
    prefix = f"{root}/" if root else ""
    splits = set()
    for paths in path_sets:
        for d in DirCounts.of(paths).dirs:
            # a file two or more levels below the root: its first level may be a split
            if d and (d + "/").startswith(prefix):
                first, sep, _ = d[len(prefix) :].partition("/")
                if sep and first.lower() in SPLIT_NAMES:
                    splits.add(first)
    return FolderLayout(root, frozenset(splits), configured=True)


def folder_layouts(settings: Settings, *path_sets: Iterable[str] | DirCounts) -> list[FolderLayout]:
    """Configured layouts plus the ones detected in any of the path sets.

    Detected layouts under a path configured ``label = none`` (or configured
    otherwise) are dropped; a detected layout inside a configured one is
    dropped too (the configured one decides).
    """
    sets = [DirCounts.of(s) for s in path_sets]
    layouts: dict[str, FolderLayout] = {}
    for root in settings.folder_roots():
        layouts[root] = configured_layout(root, *sets)
    for s in sets:
        for lay in detect_folder_layouts(s):
            if settings.label_for(lay.root) is not None and lay.root not in layouts:
                continue  # configured: as a column, as none, or as folders higher up
            have = layouts.get(lay.root)
            if have is None:
                layouts[lay.root] = lay
            elif not have.configured:
                layouts[lay.root] = FolderLayout(lay.root, have.splits | lay.splits)
    # a layout nested inside another one belongs to it
    roots = sorted(layouts)
    keep = []
    for r in roots:
        if any(o != r and (o == "" or r.startswith(o + "/")) for o in roots):
            continue
        keep.append(layouts[r])
    return keep


# ---------------------------------------------------------------------- columns


def _pick(names: Iterable[str], wanted: tuple[str, ...]) -> str | None:
    by_lower: dict[str, str] = {}
    for n in names:
        by_lower.setdefault(n.lower(), n)
    for w in wanted:
        if w in by_lower:
            return by_lower[w]
    return None


def detect_label_column(names: Iterable[str]) -> str | None:
    """The label column among ``names``: label, labels, class, class_name, category, target."""
    return _pick(names, LABEL_COLUMNS)


def detect_split_column(names: Iterable[str]) -> str | None:
    """The split column among ``names``: split, subset, partition."""
    return _pick(names, SPLIT_COLUMNS)
