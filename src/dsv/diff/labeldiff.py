"""Label diffs: per-class counts before and after, the transition matrix, per split.

A label diff is built from counts keyed by ``(split, class)`` (split is None
where there are no splits): the totals are sums over splits.  Folder layouts
(``ROOT/[SPLIT/]CLASS/FILE``) are diffed here from the file diff alone; label
columns of tables are counted by :mod:`dsv.diff.tables` and handed over as the
same counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from dsv.diff.files import FileDiff
from dsv.labels import DirCounts, FolderLayout
from dsv.records import Record

__all__ = ["ClassStats", "LabelDiff", "SplitCounts", "folder_label_diff"]

Label = Any  # a class value: str for folders, any scalar of a label column
SplitKey = Any  # a split name (None: no split)


class ClassStats(Record):
    """Counts of one group of items (all of them, or one split)."""

    __slots__ = ("added", "after", "before", "removed", "transitions")

    def __init__(
        self,
        before: Counter[Label] | None = None,
        after: Counter[Label] | None = None,
        added: Counter[Label] | None = None,
        removed: Counter[Label] | None = None,
        transitions: Counter[tuple[Label, Label]] | None = None,
    ) -> None:
        self.before: Counter[Label] = Counter() if before is None else before
        self.after: Counter[Label] = Counter() if after is None else after
        self.added: Counter[Label] = Counter() if added is None else added
        self.removed: Counter[Label] = Counter() if removed is None else removed
        self.transitions: Counter[tuple[Label, Label]] = (
            Counter() if transitions is None else transitions
        )

    @property
    def relabeled(self) -> int:
        return sum(self.transitions.values())

    def classes(self) -> list[Label]:
        """Every class seen, largest absolute change first, then by name."""
        names = set(self.before) | set(self.after)
        for a, b in self.transitions:
            names.update((a, b))
        return sorted(
            names, key=lambda c: (-abs(self.after[c] - self.before[c]), -self.after[c], _sk(c))
        )

    def top_transitions(self) -> list[tuple[Label, Label, int]]:
        """Transitions old -> new, largest first."""
        return sorted(
            ((a, b, n) for (a, b), n in self.transitions.items() if n),
            key=lambda t: (-t[2], _sk(t[0]), _sk(t[1])),
        )

    def as_dict(self, keyed: bool) -> dict[str, Any]:
        moved_out: Counter[Label] = Counter()
        moved_in: Counter[Label] = Counter()
        for (a, b), n in self.transitions.items():
            moved_out[a] += n
            moved_in[b] += n
        return {
            "relabeled": self.relabeled if keyed else None,
            "added": sum(self.added.values()),
            "removed": sum(self.removed.values()),
            "before": sum(self.before.values()),
            "after": sum(self.after.values()),
            "transitions": [{"from": a, "to": b, "count": n} for a, b, n in self.top_transitions()],
            "classes": [
                {
                    "class": c,
                    "before": self.before[c],
                    "after": self.after[c],
                    "added": self.added[c],
                    "removed": self.removed[c],
                    "relabeled_in": moved_in[c],
                    "relabeled_out": moved_out[c],
                }
                for c in self.classes()
            ],
        }


def _sk(v: Any) -> tuple[int, str]:
    """Sort key for class values of mixed types (None last)."""
    return (1, "") if v is None else (0, str(v))


class SplitCounts:
    """Counters keyed by (split, class), filled by whoever reads the items."""

    def __init__(self) -> None:
        self.before: Counter[tuple[SplitKey, Label]] = Counter()
        self.after: Counter[tuple[SplitKey, Label]] = Counter()
        self.added: Counter[tuple[SplitKey, Label]] = Counter()
        self.removed: Counter[tuple[SplitKey, Label]] = Counter()
        self.transitions: Counter[tuple[SplitKey, Label, Label]] = Counter()

    def split(self) -> tuple[ClassStats, dict[SplitKey, ClassStats]]:
        """Totals and per-split stats."""
        total = ClassStats()
        splits: dict[SplitKey, ClassStats] = {}

        def get(s: SplitKey) -> ClassStats:
            st = splits.get(s)
            if st is None:
                st = splits[s] = ClassStats()
            return st

        for name in ("before", "after", "added", "removed"):
            src: Counter[tuple[SplitKey, Label]] = getattr(self, name)
            for (s, c), n in src.items():
                getattr(total, name)[c] += n
                getattr(get(s), name)[c] += n
        for (s, a, b), n in self.transitions.items():
            total.transitions[(a, b)] += n
            get(s).transitions[(a, b)] += n
        if set(splits) <= {None}:
            splits = {}
        return total, splits


class LabelDiff(Record):
    """How the labels of one source changed.

    ``kind`` is ``folders`` (class directories under ``path``) or ``column``
    (column ``column`` of table ``path``).  ``keyed`` says whether items can be
    followed from one version to the next (files by content, rows by key):
    only then are relabels known; otherwise a relabel shows as a removed plus
    an added item.
    """

    __slots__ = (
        "column",
        "examples",
        "items",
        "key",
        "keyed",
        "kind",
        "path",
        "resplit",
        "split_by",
        "splits",
        "total",
    )

    def __init__(
        self,
        kind: str,
        path: str,
        column: str | None,
        split_by: str | None,
        items: str,
        keyed: bool,
        total: ClassStats,
        splits: dict[SplitKey, ClassStats] | None = None,
        resplit: int = 0,
        examples: list[dict[str, Any]] | None = None,
        key: str | None = None,
    ) -> None:
        self.kind = kind
        self.path = path
        self.column = column
        self.split_by = split_by
        self.items = items
        self.keyed = keyed
        self.total = total
        self.splits: dict[SplitKey, ClassStats] = {} if splits is None else splits
        self.resplit = resplit
        self.examples: list[dict[str, Any]] = [] if examples is None else examples
        self.key = key  # the key column rows were matched by (column sources)

    @property
    def changed(self) -> bool:
        t = self.total
        return bool(t.transitions or t.added or t.removed or self.resplit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": {
                "kind": self.kind,
                "path": self.path,
                "column": self.column,
                "split_by": self.split_by,
                **({"key": self.key} if self.kind == "column" else {}),
            },
            "items": self.items,
            "keyed": self.keyed,
            **self.total.as_dict(self.keyed),
            "moved_between_splits": self.resplit if self.keyed else None,
            "splits": [
                {"split": s, **st.as_dict(self.keyed)}
                for s, st in sorted(self.splits.items(), key=lambda kv: _sk(kv[0]))
            ],
            "examples": self.examples,
        }


def _by_class(layout: FolderLayout, paths: object) -> Counter[tuple[SplitKey, Label]]:
    """Files per (split, class) of a layout: counted per directory, each directory classified once."""
    prefix = layout.prefix
    out: Counter[tuple[SplitKey, Label]] = Counter()
    for d, (n, _) in DirCounts.of(paths).dirs.items():
        slash = f"{d}/" if d else ""
        if slash.startswith(prefix):
            sc = layout.classify(slash + "f")  # the class of any file in that directory
            if sc is not None:
                out[sc] += n
    return out


def changed_counts(old: DirCounts, files: FileDiff) -> tuple[DirCounts, DirCounts, DirCounts]:
    """``(new side, added, removed)`` counts, from the old side's and its file diff to the new.

    The file diff holds every difference between the sides, so the new side
    is the old one plus what it added (and moved in) less what it removed (and
    moved out): a diff lists one side, not both.
    """
    added = DirCounts.of(files.added_source())
    removed = DirCounts.of(p for p, _ in files.removed)
    new = old.changed(added, removed).changed(
        DirCounts.of(b for _, b, _ in files.moved), DirCounts.of(a for a, _, _ in files.moved)
    )
    return new, added, removed


def folder_label_diff(
    layout: FolderLayout,
    files: FileDiff,
    old_paths: Iterable[str] | DirCounts,
    new_paths: Iterable[str] | DirCounts,
    examples: int = 5,
    added: DirCounts | None = None,
    removed: DirCounts | None = None,
) -> LabelDiff:
    """Label diff of one class-folder layout, from the file diff of the whole tree.

    A file moved between class folders with the same content is a relabel; a
    move between split folders with the same class is counted in
    ``resplit``; other files count as added to or removed from their class.
    """
    counts = SplitCounts()
    classify = layout.classify
    counts.before = _by_class(layout, old_paths)
    counts.after = _by_class(layout, new_paths)
    # ``added``/``removed``: the counts of files.added and files.removed, when known
    counts.added = _by_class(layout, added if added is not None else files.added_source())
    counts.removed = _by_class(
        layout, removed if removed is not None else (p for p, _ in files.removed)
    )
    resplit = 0
    ex: list[dict[str, Any]] = []
    for a, b, _ in files.moved:
        old = classify(a)
        new = classify(b)
        if old is None and new is None:
            continue
        if old is None:
            counts.added[new] += 1  # type: ignore[index]
            continue
        if new is None:
            counts.removed[old] += 1
            continue
        if old[1] != new[1]:
            counts.transitions[(new[0], old[1], new[1])] += 1
            if len(ex) < examples:
                ex.append({"from_path": a, "to_path": b, "from": old[1], "to": new[1]})
        if old[0] != new[0]:
            resplit += 1
    total, splits = counts.split()
    return LabelDiff(
        kind="folders",
        path=layout.root,
        column=None,
        split_by="folders" if layout.splits else None,
        items="files",
        keyed=True,
        total=total,
        splits=splits,
        resplit=resplit,
        examples=ex,
    )
