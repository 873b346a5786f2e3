"""dsv.labels: label settings, class-folder detection, label and split columns."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dsv.diff.formats import TABLE_NAMES, table_format
from dsv.labels import (
    SAMPLE_EXTENSIONS,
    FolderLayout,
    PathSettings,
    Settings,
    _ext,
    configured_layout,
    count_samples,
    detect_folder_layouts,
    detect_label_column,
    detect_split_column,
    folder_layouts,
    section_name,
)


def _tree(spec: dict[str, int], ext: str = "png") -> list[str]:
    """{"train/cat": 3} -> ["train/cat/0.png", "train/cat/1.png", "train/cat/2.png"]"""
    return [f"{d}/{i}.{ext}" for d, n in spec.items() for i in range(n)]


def test_split_folders_are_detected_with_their_root() -> None:
    paths = [*_tree({"train/cat": 3, "train/dog": 2, "val/cat": 1, "val/dog": 1}), "README.md"]
    assert detect_folder_layouts(paths) == [FolderLayout("", frozenset({"train", "val"}))]
    paths = _tree({"data/images/train/cat": 1, "data/images/train/dog": 1})
    assert detect_folder_layouts(paths) == [FolderLayout("data/images", frozenset({"train"}))]


def test_plain_class_folders_need_two_files_per_class() -> None:
    assert detect_folder_layouts(_tree({"pets/cat": 2, "pets/dog": 2})) == [
        FolderLayout("pets", frozenset())
    ]
    # one directory per sample is not a class layout
    assert detect_folder_layouts(_tree({f"frames/{i:04d}": 1 for i in range(50)})) == []
    # a single class directory is not a layout
    assert detect_folder_layouts(_tree({"pets/cat": 10})) == []


def test_not_class_folders_when_not_obvious() -> None:
    # source code is not a dataset of samples
    assert detect_folder_layouts(_tree({"src/a": 3, "src/b": 3}, ext="py")) == []
    # class folders must be leaves: nested directories are ambiguous
    nested = _tree({"train/cat/a": 2, "train/cat/b": 2, "train/dog": 2})
    assert all(lay.root != "" for lay in detect_folder_layouts(nested))


def test_classify() -> None:
    lay = FolderLayout("img", frozenset({"train", "val"}))
    assert lay.classify("img/train/cat/1.png") == ("train", "cat")
    assert lay.classify("img/train/cat/deep/1.png") == ("train", "cat")
    assert lay.classify("img/train/1.png") is None  # unlabelled
    assert lay.classify("img/other/cat/1.png") is None  # not a split
    assert lay.classify("other/train/cat/1.png") is None
    plain = FolderLayout("", frozenset())
    assert plain.classify("cat/1.png") == (None, "cat")
    assert plain.classify("1.png") is None


def test_settings_most_specific_path_wins() -> None:
    s = Settings.from_sections(
        {
            "core": {"format": "1"},
            section_name("data"): {"label": "none"},
            section_name("data/labels.csv"): {"key": "id", "label": "label", "split": "split"},
            section_name("images"): {"label": "folders"},
        }
    )
    assert s.for_path("data/labels.csv") == PathSettings("data/labels.csv", "id", "label", "split")
    assert s.for_path("data/other.csv") == PathSettings("data/other.csv", None, "none", None)
    assert s.for_path("elsewhere.csv") is None
    assert s.label_for("data/x/y") == "none"
    assert s.folder_roots() == ["images"]
    # each setting comes from the nearest path that sets it
    s = Settings([PathSettings("d", key="id", label="none"), PathSettings("d/t.csv", split="s")])
    assert s.for_path("d/t.csv") == PathSettings("d/t.csv", "id", "none", "s")


def test_configured_and_disabled_layouts() -> None:
    paths = _tree({"a/train/cat": 2, "a/train/dog": 2, "b/cat": 2, "b/dog": 2})
    s = Settings([PathSettings("b", label="none")])
    assert [lay.root for lay in folder_layouts(s, paths)] == ["a"]
    # configured folders: lenient (nested files count, split level found by name)
    s = Settings([PathSettings("b", label="folders")])
    lays = {lay.root: lay for lay in folder_layouts(s, paths)}
    assert lays["b"].configured and lays["b"].splits == frozenset()
    assert configured_layout("a", paths).splits == frozenset({"train"})
    # a detected layout inside a configured one belongs to it
    s = Settings([PathSettings("", label="folders")])
    assert [lay.root for lay in folder_layouts(s, paths)] == [""]


def test_label_and_split_columns() -> None:
    assert detect_label_column(["id", "path", "Label", "split"]) == "Label"
    assert detect_label_column(["id", "category", "class"]) == "class"
    assert detect_label_column(["id", "value"]) is None
    assert detect_split_column(["id", "subset"]) == "subset"
    assert detect_split_column(["id"]) is None


# Names of files built from pieces that matter to extension matching: dots,
# sample and table extensions in any case, non-ASCII letters whose lowercase is
# ASCII (the Kelvin sign), and undecodable bytes as surrogates.
_PIECES = ["a", ".", "png", "PnG", "jpeg", "csv", "CSV", "parquet", "x", "\u212a", "\udcff", "txt"]
_names = st.lists(
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6).map("".join), max_size=30
)


@given(_names)
@settings(max_examples=400, deadline=None)
def test_samples_counted_in_one_pass_as_name_by_name(names: list[str]) -> None:
    assert count_samples(names) == sum(1 for n in names if _ext(n) in SAMPLE_EXTENSIONS)


@given(_names)
@settings(max_examples=400, deadline=None)
def test_every_table_name_matches_the_prefilter(names: list[str]) -> None:
    blob = "\0".join(names)
    for n in names:
        if table_format(n) is not None:
            assert TABLE_NAMES.search(blob)
            assert TABLE_NAMES.search(n)
