"""File diffs (moves by content) and label diffs of class folders."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dsv import api
from dsv.api import diff as dapi
from dsv.diff import TreeDiff
from dsv.diff.files import diff_files
from dsv.diff.labeldiff import changed_counts, folder_label_diff
from dsv.labels import DirCounts, FolderLayout
from dsv.objects import Kind, TreeEntry
from dsv.repo import Repository

from .conftest import write


def E(content: str, mode: int = 0o644, kind: Kind = Kind.FILE) -> TreeEntry:
    return TreeEntry("x", kind, mode, len(content), content.encode().ljust(16, b"\0"))


def test_files_added_removed_modified_moved() -> None:
    old = {"a": E("A"), "b": E("B"), "c": E("C"), "d": E("D"), "m": E("M")}
    new = {"a": E("A"), "b": E("B2"), "c2": E("C"), "e": E("E"), "m": E("M", 0o755)}
    f = diff_files(old, new)
    assert [p for p, _ in f.added] == ["e"]
    assert [p for p, _ in f.removed] == ["d"]
    assert [p for p, _, _ in f.modified] == ["b", "m"]  # content, then mode
    assert [(a, b) for a, b, _ in f.moved] == [("c", "c2")]
    assert f.unchanged == 1
    assert f.counts() == {"added": 1, "removed": 1, "modified": 2, "moved": 1, "unchanged": 1}


def test_moves_of_duplicate_content_pair_same_names_first() -> None:
    old = {"x/1.png": E("S"), "x/2.png": E("S"), "x/3.png": E("S")}
    new = {"y/2.png": E("S"), "z/9.png": E("S")}
    f = diff_files(old, new)
    assert sorted((a, b) for a, b, _ in f.moved) == [("x/1.png", "z/9.png"), ("x/2.png", "y/2.png")]
    assert [p for p, _ in f.removed] == ["x/3.png"]
    assert f.added == []
    # a symlink with a file's content is not a move of that file
    f = diff_files({"a": E("T")}, {"b": E("T", kind=Kind.SYMLINK)})
    assert f.moved == [] and len(f.added) == len(f.removed) == 1


_DIRS = ["", "train/cat", "train/dog", "val/cat", "val/dog", "val/dog/x", "docs"]
_NAMES = ["1.png", "2.PNG", "3.jpg", "4.txt", ".png", "png", "5.npy"]
_VERSION = st.dictionaries(
    st.tuples(st.sampled_from(_DIRS), st.sampled_from(_NAMES)).map(
        lambda t: f"{t[0]}/{t[1]}" if t[0] else t[1]
    ),
    st.sampled_from("abcdef"),  # few contents: many moves
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(_VERSION, _VERSION)
def test_new_side_counts_are_old_counts_changed_by_the_file_diff(
    old_spec: dict[str, str], new_spec: dict[str, str]
) -> None:
    """What a diff counts for labels without listing its new side equals counting that side."""
    old = {p: E(c) for p, c in old_spec.items()}
    new = {p: E(c) for p, c in new_spec.items()}
    f = diff_files(old, new)
    old_c = DirCounts.of(old)
    derived, added, removed = changed_counts(old_c, f)
    assert derived.dirs == DirCounts.of(new).dirs
    assert added.dirs == DirCounts.of(f.added_source()).dirs
    assert removed.dirs == DirCounts.of(p for p, _ in f.removed).dirs
    lay = FolderLayout("", frozenset({"train", "val"}))
    a = folder_label_diff(lay, f, old_c, DirCounts.of(new)).as_dict()
    b = folder_label_diff(lay, f, old_c, derived, added=added, removed=removed).as_dict()
    assert a == b


def test_folder_label_diff() -> None:
    lay = FolderLayout("", frozenset({"train", "val"}))
    old = {
        "train/cat/1.png": E("1"),
        "train/cat/2.png": E("2"),
        "train/dog/3.png": E("3"),
        "val/dog/4.png": E("4"),
        "train/dog/5.png": E("5"),
        "notes.txt": E("n"),
    }
    new = {
        "train/dog/1.png": E("1"),  # relabel cat -> dog
        "train/cat/2.png": E("2b"),  # modified in place: no label change
        "val/dog/3.png": E("3"),  # moved to another split, same class
        "val/cat/4.png": E("4b"),  # moved and changed: removed + added
        "train/bird/6.png": E("6"),  # added
        "notes.txt": E("n"),
    }
    f = diff_files(old, new)
    ld = folder_label_diff(lay, f, old, new)
    t = ld.total
    assert t.transitions == {("cat", "dog"): 1}
    assert ld.resplit == 1
    assert t.added == {"cat": 1, "bird": 1}
    assert t.removed == {"dog": 2}  # val/dog/4.png and train/dog/5.png
    assert t.before == {"cat": 2, "dog": 3} and t.after == {"dog": 2, "cat": 2, "bird": 1}
    assert ld.splits["train"].transitions == {("cat", "dog"): 1}
    assert ld.splits["val"].added == {"cat": 1}
    assert ld.examples == [
        {"from_path": "train/cat/1.png", "to_path": "train/dog/1.png", "from": "cat", "to": "dog"}
    ]
    d = ld.as_dict()
    assert d["relabeled"] == 1 and d["moved_between_splits"] == 1
    cls = {c["class"]: c for c in d["classes"]}
    assert cls["dog"]["relabeled_in"] == 1 and cls["cat"]["relabeled_out"] == 1
    # largest change first
    assert d["classes"][0]["class"] in ("bird", "dog")


def _png(seed: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + seed.to_bytes(4, "little") + os.urandom(200)


def diff(repo: Repository, *revs: str) -> TreeDiff:
    return dapi.diff(repo, revs).diff


def test_relabel_in_working_tree_and_changelog(repo: Repository, work: Path) -> None:
    for i in range(6):
        write(work / f"train/{('cat', 'dog')[i % 2]}/{i}.png", _png(i))
    write(work / "val/cat/9.png", _png(9))
    api.commit(repo, "v1")
    os.rename(work / "train/cat/0.png", work / "train/dog/0.png")
    os.rename(work / "train/cat/2.png", work / "train/dog/2.png")
    write(work / "train/bird/7.png", _png(7))
    d = diff(repo)
    assert [(a, b) for a, b, _ in d.files.moved] == [
        ("train/cat/0.png", "train/dog/0.png"),
        ("train/cat/2.png", "train/dog/2.png"),
    ]
    (ld,) = d.labels
    assert ld.kind == "folders" and ld.path == "" and ld.split_by == "folders"
    assert ld.total.transitions == {("cat", "dog"): 2}
    assert ld.total.added == {"bird": 1}
    res = api.commit(repo, "v2: relabel")
    s = res.commit.summary
    assert s["files"] == {"added": 3, "removed": 2, "modified": 0, "total": 8}
    assert s["moved"] == 2
    (lab,) = s["labels"]
    assert lab["relabeled"] == 2 and lab["added"] == 1 and lab["removed"] == 0
    assert lab["transitions"] == [["cat", "dog", 2]]
    assert lab["classes"]["dog"] == [3, 5] and lab["classes"]["cat"] == [4, 2]
    assert lab["splits"] == {
        "train": {"added": 1, "removed": 0, "relabeled": 2},
        "val": {"added": 0, "removed": 0, "relabeled": 0},
    }


def test_unchanged_class_folders_are_not_reported(repo: Repository, work: Path) -> None:
    for i in range(4):
        write(work / f"pets/{('cat', 'dog')[i % 2]}/{i}.jpg", _png(i))
    write(work / "readme.txt", "v1")
    api.commit(repo, "v1")
    write(work / "readme.txt", "v2")
    d = diff(repo)
    assert d.labels == [] and len(d.files.modified) == 1
    assert "labels" not in api.commit(repo, "v2").commit.summary


def test_paths_restrict_the_diff(repo: Repository, work: Path) -> None:
    write(work / "a/x.txt", "1")
    write(work / "b/y.txt", "1")
    api.commit(repo, "v1")
    write(work / "a/x.txt", "2")
    write(work / "b/y.txt", "2")
    d = dapi.diff(repo, paths=["a"]).diff
    assert [p for p, _, _ in d.files.modified] == ["a/x.txt"]


def test_diff_updates_the_stat_cache(repo: Repository, work: Path) -> None:
    write(work / "a.txt", "1")
    api.commit(repo, "v1")
    write(work / "a.txt", "22")
    write(work / "new.txt", "n")
    d = diff(repo)
    assert len(d.files.modified) == 1 and len(d.files.added) == 1
    # status stays right after diff touched the cache
    st = api.status(repo)
    assert st.modified == ["a.txt"] and st.added == ["new.txt"]
    api.commit(repo, "v2")
    assert api.status(repo).clean
    assert diff(repo).empty
