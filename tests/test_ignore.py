"""Tests of dsv.worktree.ignore: gitignore semantics rule by rule, then against git itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsv.worktree.ignore import IGNORE_FILE, IgnoreRules


def make_rules(files: Mapping[str, str]) -> IgnoreRules:
    rules = IgnoreRules()
    for dir_rel, text in files.items():
        rules.add_file(dir_rel, text)
    return rules


def ignored(text: str, path: str, is_dir: bool = False) -> bool:
    """Whether a root .dsvignore holding ``text`` ignores ``path``."""
    return make_rules({"": text}).is_ignored(path, is_dir)


def kept(files: Mapping[str, str], paths: Iterable[str]) -> set[str]:
    """Walk a virtual tree the way the scanner does and return what survives.

    ``paths`` name files; ``name/`` names a directory.  Parent directories are
    implied.  The walk is top-down and does not enter ignored directories.
    """
    dirs: set[str] = set()
    entries: set[tuple[str, bool]] = set()
    for p in paths:
        is_dir = p.endswith("/")
        p = p.rstrip("/")
        entries.add((p, is_dir))
        parts = p.split("/")
        for k in range(1, len(parts)):
            dirs.add("/".join(parts[:k]))
    entries |= {(d, True) for d in dirs}
    rules = make_rules(files)
    out: set[str] = set()

    def visit(parent: str) -> None:
        children = sorted((p, d) for p, d in entries if p.rpartition("/")[0] == parent)
        for p, is_dir in children:
            if rules.is_ignored(p, is_dir):
                continue
            out.add(p + "/" if is_dir else p)
            if is_dir:
                visit(p)

    visit("")
    return out


# -- the rule set, one rule at a time ----------------------------------------


def test_no_rules_is_false_and_ignores_nothing() -> None:
    rules = IgnoreRules()
    assert not rules
    assert not rules.is_ignored("anything", False)
    rules.add_file("", "# only a comment\n\n   \n")
    assert not rules
    rules.add_file("sub", "*.tmp\n")
    assert rules
    assert rules.is_ignored("sub/x.tmp", False)


def test_blank_lines_and_comments() -> None:
    text = "\n# x.tmp\n\n*.log\n"
    assert not ignored(text, "# x.tmp")
    assert not ignored(text, "x.tmp")
    assert ignored(text, "a.log")


def test_escaped_hash_and_leading_space_are_patterns() -> None:
    assert ignored("\\#notes\n", "#notes")
    assert not ignored("#notes\n", "#notes")
    assert ignored(" #x\n", " #x")
    assert not ignored(" #x\n", "#x")


def test_trailing_spaces_are_trimmed_unless_escaped() -> None:
    assert ignored("foo   \n", "foo")
    assert not ignored("foo   \n", "foo ")
    assert ignored("foo\\ \n", "foo ")
    assert not ignored("foo\\ \n", "foo")
    assert ignored("foo\\  \n", "foo ")
    assert not ignored("foo\\  \n", "foo  ")
    # A final lone backslash escapes nothing and stops the trimming; the
    # pattern then ends in a dangling escape and matches nothing.
    assert not ignored("foo  \\\n", "foo")
    # Only spaces are trimmed, not tabs.
    assert ignored("foo\t\n", "foo\t")
    assert not ignored("foo\t\n", "foo")


def test_negation_last_match_wins() -> None:
    assert not ignored("*.log\n!keep.log\n", "keep.log")
    assert ignored("*.log\n!keep.log\n", "drop.log")
    assert ignored("!keep.log\n*.log\n", "keep.log")
    assert ignored("*.log\n!keep.log\nkeep.log\n", "keep.log")


def test_escaped_bang_is_literal() -> None:
    assert ignored("\\!important\n", "!important")
    assert not ignored("\\!important\n", "important")
    # "!" alone negates an empty pattern, which matches nothing.
    assert ignored("*\n!\n", "x")


def test_cannot_reinclude_below_an_excluded_directory() -> None:
    tree = ["build/keep.txt", "build/out.o", "src/a.c"]
    assert kept({"": "build/\n!build/keep.txt\n"}, tree) == {"src/", "src/a.c"}
    # Excluding the contents instead of the directory lets the negation work.
    assert kept({"": "build/*\n!build/keep.txt\n"}, tree) == {
        "build/",
        "build/keep.txt",
        "src/",
        "src/a.c",
    }


def test_is_ignored_does_not_look_at_parents() -> None:
    # The documented contract: the caller never asks about build/keep.txt.
    rules = make_rules({"": "build/\n!build/keep.txt\n"})
    assert rules.is_ignored("build", True)
    assert not rules.is_ignored("build/keep.txt", False)


def test_leading_slash_anchors_to_the_file_directory() -> None:
    assert ignored("/foo\n", "foo")
    assert not ignored("/foo\n", "a/foo")
    rules = make_rules({"sub": "/foo\n"})
    assert rules.is_ignored("sub/foo", False)
    assert not rules.is_ignored("sub/a/foo", False)
    assert not rules.is_ignored("foo", False)


def test_middle_slash_anchors_too() -> None:
    assert ignored("doc/x.md\n", "doc/x.md")
    assert not ignored("doc/x.md\n", "a/doc/x.md")
    rules = make_rules({"a": "b/c\n"})
    assert rules.is_ignored("a/b/c", False)
    assert not rules.is_ignored("a/x/b/c", False)


def test_pattern_without_slash_matches_at_any_depth() -> None:
    assert ignored("foo\n", "foo")
    assert ignored("foo\n", "a/b/foo")
    assert ignored("foo\n", "a/b/foo", is_dir=True)
    assert not ignored("foo\n", "a/foobar")
    rules = make_rules({"a": "*.o\n"})
    assert rules.is_ignored("a/b/c/x.o", False)
    assert not rules.is_ignored("b/x.o", False)


def test_trailing_slash_matches_only_directories() -> None:
    assert ignored("cache/\n", "cache", is_dir=True)
    assert ignored("cache/\n", "x/cache", is_dir=True)
    assert not ignored("cache/\n", "cache", is_dir=False)
    assert ignored("a/cache/\n", "a/cache", is_dir=True)
    assert not ignored("a/cache/\n", "a/cache", is_dir=False)


def test_star_and_question_mark_do_not_cross_slashes() -> None:
    assert ignored("a*z\n", "abcz")
    assert ignored("x/a*z\n", "x/abz")
    assert not ignored("x/a*z\n", "x/a/z")
    assert ignored("x/a?z\n", "x/abz")
    assert not ignored("x/a?z\n", "x/a/z")
    assert not ignored("x/a?z\n", "x/az")
    assert ignored("x/*/z\n", "x/y/z")
    assert not ignored("x/*/z\n", "x/y/w/z")


def test_character_classes() -> None:
    assert ignored("[ab].txt\n", "a.txt")
    assert not ignored("[ab].txt\n", "c.txt")
    assert ignored("[!ab].txt\n", "c.txt")
    assert not ignored("[!ab].txt\n", "a.txt")
    assert ignored("[^ab].txt\n", "c.txt")
    assert ignored("f[0-9]\n", "f7")
    assert not ignored("f[0-9]\n", "fa")
    assert ignored("f[]]\n", "f]")
    assert ignored("f[a-]\n", "f-")
    assert ignored("f[[:digit:]x]\n", "f5")
    assert ignored("f[[:digit:]x]\n", "fx")
    assert not ignored("f[[:digit:]x]\n", "fy")
    assert ignored("f[\\]]\n", "f]")
    # A bracket never matches a slash, even when it lists one.
    assert not ignored("x/a[/]b\n", "x/a/b")
    assert not ignored("x/a[!b]c\n", "x/a/c")


def test_broken_patterns_match_nothing() -> None:
    for text in ("f[ab\n", "f[z-a]\n", "f[[:nope:]]\n", "f\\\n", "!\n", "/\n"):
        rules = make_rules({"": text})
        assert not rules.is_ignored("f", False), text
        assert not rules.is_ignored("fa", False), text
        assert not rules.is_ignored("f[ab", False), text


def test_leading_double_star() -> None:
    for path in ("foo", "a/foo", "a/b/foo"):
        assert ignored("**/foo\n", path)
    assert not ignored("**/foo\n", "a/xfoo")
    assert ignored("**/a/b\n", "x/y/a/b")
    assert not ignored("**/a/b\n", "x/a/c/b")


def test_trailing_double_star() -> None:
    assert ignored("foo/**\n", "foo/x")
    assert ignored("foo/**\n", "foo/x/y")
    assert not ignored("foo/**\n", "foo", is_dir=True)
    assert not ignored("foo/**\n", "a/foo/x")


def test_middle_double_star() -> None:
    for path in ("a/b", "a/x/b", "a/x/y/b"):
        assert ignored("a/**/b\n", path)
    assert not ignored("a/**/b\n", "a/xb")
    assert not ignored("a/**/b\n", "x/a/b")
    # With an escaped slash git still crosses directories, but needs one.
    assert ignored("a/**\\/b\n", "a/x/y/b")
    assert not ignored("a/**\\/b\n", "a/b")


def test_other_double_stars_are_single_stars() -> None:
    assert ignored("x/a**z\n", "x/abz")
    assert not ignored("x/a**z\n", "x/a/z")
    assert ignored("a**z\n", "q/abz")
    assert ignored("x/?**/c\n", "x/ab/c")
    assert not ignored("x/?**/c\n", "x/a/b/c")
    assert not ignored("x/?**/c\n", "x/ac")


def test_git_splits_off_the_literal_head_before_wildmatch() -> None:
    # git compares the literal "a" itself and hands "**/b" to wildmatch, where
    # a leading "**/" crosses any number of directories, none included; so
    # "a**/b" matches more than "a*/b" would (git agrees: see TRICKY_CASES).
    assert ignored("a**/b\n", "ab")
    assert ignored("a**/b\n", "a/x/b")
    assert ignored("a**/b\n", "ax/y/b")
    assert not ignored("a**/b\n", "x/ab")


def test_many_literal_patterns() -> None:
    # Enough plain names and "*literal" patterns to take the shortcut past re,
    # with duplicates and negations to check that the last match still wins.
    text = "".join(f"n{k}\n*.e{k}\n" for k in range(6))
    text += "*.log\n!keep.log\n*.tmp\n!*.tmp\nkeep.log\n!x.tmp\nx.tmp\nn1\n!n1\ndir/\n"
    rules = make_rules({"": text})
    assert rules.is_ignored("a/n0", False)
    assert rules.is_ignored("a.e5", False)
    assert not rules.is_ignored("a.e6", False)
    assert rules.is_ignored("sub/keep.log", False)
    assert not rules.is_ignored("y.tmp", False)
    assert rules.is_ignored("x.tmp", False)
    assert not rules.is_ignored("n1", False)
    assert rules.is_ignored("dir", True)
    assert not rules.is_ignored("dir", False)
    assert not rules.is_ignored("n0x", False)


def test_deeper_file_takes_precedence() -> None:
    rules = make_rules({"": "*.txt\n", "keep": "!*.txt\n", "keep/deeper": "b.txt\n"})
    assert rules.is_ignored("a.txt", False)
    assert not rules.is_ignored("keep/a.txt", False)
    assert not rules.is_ignored("keep/x/a.txt", False)
    assert rules.is_ignored("keep/deeper/b.txt", False)
    # No match in the deepest file: the shallower ones decide.
    assert not rules.is_ignored("keep/deeper/a.txt", False)
    assert rules.is_ignored("other/a.txt", False)


def test_directory_cache_follows_the_path() -> None:
    rules = make_rules({"": "x\n", "a": "!x\n", "a/b": "x\n"})
    expected = {"x": True, "a/x": False, "a/b/x": True, "a/c/x": False, "c/x": True}
    for _ in range(2):
        for path, verdict in [*expected.items(), *reversed(expected.items())]:
            assert rules.is_ignored(path, False) is verdict, path


def test_rules_added_during_the_walk_take_effect() -> None:
    rules = make_rules({"": "*.o\n"})
    assert not rules.is_ignored("a/x.c", False)
    rules.add_file("a", "*.c\n")
    assert rules.is_ignored("a/x.c", False)
    assert not rules.is_ignored("x.c", False)


def test_second_text_for_a_directory_is_appended() -> None:
    rules = make_rules({"": "*.log\n"})
    rules.add_file("", "!keep.log\n")
    assert rules.is_ignored("a.log", False)
    assert not rules.is_ignored("keep.log", False)


def test_crlf_bom_and_missing_final_newline() -> None:
    text = "\ufeff*.log\r\n!keep.log\r\n/only"
    assert ignored(text, "a.log")
    assert not ignored(text, "keep.log")
    assert ignored(text, "only")
    assert not ignored(text, "a/only")


def test_bad_directory_is_rejected() -> None:
    rules = IgnoreRules()
    for bad in ("/a", "a/", "/"):
        with pytest.raises(ValueError):
            rules.add_file(bad, "x\n")
    assert not rules


def test_ignore_file_name() -> None:
    assert IGNORE_FILE == ".dsvignore"


# -- differential tests against git -------------------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        LC_ALL="C",
    )
    return env


class GitRepo:
    """A scratch work tree where git answers which paths are ignored."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.env = _git_env(home)
        root.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", str(root)], check=True, env=self.env)
        (root / ".git" / "info" / "exclude").write_text("")

    def build(self, paths: Iterable[str]) -> None:
        for p in paths:
            target = self.root / p
            if p.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("x")

    def write_ignores(self, files: Mapping[str, str], places: Iterable[str] = ()) -> None:
        """Write ``files`` as .gitignore files and delete those at other ``places``."""
        for d in places:
            (self.root / d / ".gitignore").unlink(missing_ok=True)
        for d, text in files.items():
            (self.root / d).mkdir(parents=True, exist_ok=True)
            (self.root / d / ".gitignore").write_bytes(text.encode())

    def ignored(self, paths: list[str]) -> set[str]:
        """The subset of ``paths`` that ``git check-ignore`` reports as ignored."""
        proc = subprocess.run(
            ["git", "-c", "core.ignoreCase=false", "check-ignore", "--no-index", "-z", "--stdin"],
            cwd=self.root,
            env=self.env,
            input="".join(p + "\0" for p in paths).encode(),
            capture_output=True,
            check=False,
        )
        # 0: some paths are ignored, 1: none are; anything else is an error.
        assert proc.returncode in (0, 1), proc.stderr.decode()
        return {p for p in proc.stdout.decode().split("\0") if p}

    def walk(self) -> dict[str, bool]:
        """Our verdict for every path the scanner would look at, walking top-down."""
        rules = IgnoreRules()
        verdicts: dict[str, bool] = {}

        def visit(rel: str) -> None:
            full = self.root / rel
            gitignore = full / ".gitignore"
            if gitignore.is_file():
                rules.add_file(rel, gitignore.read_bytes().decode())
            for entry in sorted(os.scandir(full), key=lambda e: e.name):
                if not rel and entry.name == ".git":
                    continue
                path = f"{rel}/{entry.name}" if rel else entry.name
                is_dir = entry.is_dir(follow_symlinks=False)
                verdicts[path] = rules.is_ignored(path, is_dir)
                if is_dir and not verdicts[path]:
                    visit(path)

        visit("")
        return verdicts

    def compare(self) -> tuple[dict[str, bool], set[str]]:
        """Our verdicts and git's ignored set; asserts that they agree."""
        ours = self.walk()
        theirs = self.ignored(list(ours))
        wrong = {p: v for p, v in ours.items() if v != (p in theirs)}
        assert not wrong, f"paths where we (True: ignored) differ from git: {wrong}"
        return ours, theirs


TRICKY_TREE = [
    "a.txt",
    "b.log",
    "keep.log",
    "foo",
    "#hash",
    "!bang",
    "sp ace",
    "trail ",
    "tab\t",
    "star*",
    "q?",
    "br[a]",
    "back\\slash",
    "x1",
    "xa",
    "x-",
    "x]",
    "X",
    ".hidden",
    "ab",
    "build/out.o",
    "build/keep.txt",
    "build/sub/deep.o",
    "src/foo/bar.py",
    "src/foo/baz.txt",
    "src/lib/foo",
    "src/a/b/c/d.txt",
    "src/.hidden",
    "a/b",
    "a/xb",
    "a/x/b",
    "a/x/y/b",
    "a/b2/b",
    "doc/x.md",
    "doc/foo/x.md",
    "logs/debug/x.log",
    "logs/y.log",
    "deep/a/b/c/d/e/f.txt",
    "node_modules/pkg/index.js",
    "sub/node_modules/x",
    "sub/foo/",
    "empty/",
]

# (case name, .gitignore files by directory, a path git ignores, a path it keeps).
TRICKY_CASES: list[tuple[str, dict[str, str], str | None, str | None]] = [
    ("basic", {"": "*.log\n!keep.log\nbuild/\n"}, "b.log", "keep.log"),
    ("reinclude-blocked", {"": "build/\n!build/keep.txt\n"}, "build", "src/foo/bar.py"),
    ("reinclude-contents", {"": "build/*\n!build/keep.txt\n"}, "build/out.o", "build/keep.txt"),
    ("anchored", {"": "/foo\nsrc/foo\ndoc/*.md\n"}, "foo", "src/lib/foo"),
    ("double-star", {"": "**/foo\nlogs/**\na/**/b\n**/node_modules/\n"}, "src/lib/foo", "a/xb"),
    ("double-star-quirks", {"": "a**/b\nsrc/**b*\nsrc/**\\/d.txt\n***/lib/\n"}, "ab", "a.txt"),
    (
        "escapes",
        {"": "\\#hash\n\\!bang\ntrail\\ \nsp ace   \nstar\\*\nq\\?\nbr\\[a]\nback\\\\slash\n"},
        "#hash",
        "foo",
    ),
    ("not-escaped", {"": "#hash\n!bang\ntrail  \ntab\t\nstar*\nq?\nbr[a]\n"}, "tab\t", "#hash"),
    (
        "brackets",
        {"": "[ab].txt\n[!k]*.log\nx[[:digit:]]\nx[]]\nx[a-]\n[[:upper:]]\nx[!a-z0-9]\n"},
        "x]",
        "keep.log",
    ),
    ("broken", {"": "!\n/\n//\n\\\nfoo\\\n[\nx[\nx[[:bogus:]]\nx[b-a]\n \n\r\n"}, None, "foo"),
    (
        "nested",
        {"": "*.txt\n", "src": "!*.txt\nfoo/\n", "src/a": "*.txt\n/b/\n"},
        "a.txt",
        "src/lib/foo",
    ),
    ("nested-anchors", {"src": "/foo\nlib/foo\n", "a": "b\n", "a/x": "!b\n"}, "a/b", "a/x/b"),
    ("whitelist", {"": "*\n!*/\n!*.txt\n"}, "b.log", "a.txt"),
    ("root-only-dirs", {"": "/*\n!/src\n", "src": "*.py\n"}, "a.txt", "src/lib/foo"),
    ("everything", {"": "**\n"}, "foo", None),
    ("everything-below", {"": "/**/\n"}, "src", "foo"),
    ("crlf-bom", {"": "\ufeff*.log\r\n!keep.log\r\n#c\r\n"}, "b.log", "keep.log"),
    ("dir-only-negation", {"": "foo\n!foo/\n", "sub": "!foo\n"}, "foo", "src/foo/bar.py"),
    ("hidden", {"": ".*\n!.gitignore\n", "src": "!.hidden\n"}, ".hidden", "src/.hidden"),
    ("question-dirs", {"": "?\n??/\nsrc/?/\n"}, "X", "src/lib/foo"),
    (
        "many-literals",
        {
            "": "*.log\n*.txt\nfoo\nX\n*.o\nab\n!keep.log\n!*.txt\nd.txt\n*.py\nx1\nb/\n",
            "src": "*.md\n*.js\n*.c\n*.h\nbar.py\nbaz.txt\n!*.py\n.hidden\n!foo\n",
        },
        "src/foo/baz.txt",
        "src/foo/bar.py",
    ),
]


@needs_git
@pytest.mark.parametrize(
    ("files", "must_ignore", "must_keep"),
    [pytest.param(f, i, k, id=name) for name, f, i, k in TRICKY_CASES],
)
def test_tricky_patterns_agree_with_git(
    tmp_path: Path, files: dict[str, str], must_ignore: str | None, must_keep: str | None
) -> None:
    repo = GitRepo(tmp_path / "tree", tmp_path / "home")
    repo.build(TRICKY_TREE)
    repo.write_ignores(files)
    ours, theirs = repo.compare()
    # The expected verdicts show that the harness really exercises git.
    if must_ignore is not None:
        assert must_ignore in theirs
    if must_keep is not None:
        assert must_keep in ours
        assert must_keep not in theirs


def _small_tree() -> list[str]:
    """Directories a and b nested three deep, each holding the same few files."""
    dirs = [""]
    level = [""]
    for _ in range(3):
        level = [f"{d}{n}/" for d in level for n in ("a", "b")]
        dirs += level
    return [d + n for d in dirs for n in ("x", "ab", "x.t", ".a", "b.a")] + dirs[1:]


SMALL_TREE = _small_tree()
IGNORE_PLACES = ("", "a", "b", "a/b")

_segment = st.sampled_from(
    [
        "a",
        "b",
        "x",
        "ab",
        "*",
        "**",
        "?",
        "?**",
        "a*",
        "*b",
        "[ab]",
        "[!a]",
        "x.t",
        "*.t",
        "\\a",
        ".*",
    ]
)
_pattern = st.builds(
    lambda bang, lead, parts, trail: (
        ("!" if bang else "") + ("/" if lead else "") + "/".join(parts) + ("/" if trail else "")
    ),
    st.booleans(),
    st.booleans(),
    st.lists(_segment, min_size=1, max_size=3),
    st.booleans(),
)
# Names and "*literal" patterns take a shortcut past re once a file has many;
# the filler (names that match nothing here) puts half the files over the bar.
_FILLER = "".join(f"zz{k}\nzz{k}/\n*.zz{k}\n" for k in range(4))
_ignore_text = st.builds(
    lambda filler, lines: (_FILLER if filler else "") + "".join(x + "\n" for x in lines),
    st.booleans(),
    st.lists(_pattern, max_size=4),
)


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    base = tmp_path_factory.mktemp("ignore-hypothesis")
    repo = GitRepo(base / "tree", base / "home")
    repo.build(SMALL_TREE)
    return repo


@needs_git
@settings(max_examples=50, deadline=None)
@given(files=st.fixed_dictionaries({d: _ignore_text for d in IGNORE_PLACES}))
def test_generated_patterns_agree_with_git(small_repo: GitRepo, files: dict[str, str]) -> None:
    small_repo.write_ignores(files, places=IGNORE_PLACES)
    small_repo.compare()
