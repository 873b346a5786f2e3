"""Status, commit, checkout and verify against a model of the working tree.

Hypothesis drives random sequences of edits (writes, same-size rewrites that
keep the mtime, touches, deletions, mode changes, a path that turns from a file
into a directory and back, whole directories removed) interleaved with
``status``, ``commit``, ``checkout --force`` of any earlier commit (untracked
files stay, as in git) and ``verify``.  After every command the answer must equal what the model says:
the stat cache and the trees it mirrors may only ever save work, never change
an answer.  Each command opens the repository afresh, as the CLI does.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dsv import api
from dsv.api.training import verify
from dsv.errors import NothingToCommitError
from dsv.repo import Repository

# No path is a directory of another, except through TYPE_PATH ("t" or "t/x").
PATHS = ["a", "b.bin", "d1/a", "d1/b", "d1/d2/a", "d1/d2/c.csv", "d3/a", "d3/d4/d5/z"]
TYPE_PATH, TYPE_CHILD = "t", "t/x"
MODES = [0o644, 0o755, 0o600]
SOME_PATHS = ["a", "d1", "d1/d2", "d3", TYPE_PATH]  # for commits and checkouts of paths


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


Tree = dict[str, tuple[bytes, int]]  # path -> (content, permission bits)

content_st = st.one_of(st.binary(max_size=64), st.binary(min_size=1, max_size=3000))


class WorktreeModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="dsv-model-"))
        self.root = self.tmp / "data"
        Repository.init(self.root)
        self.wt: Tree = {}
        self.head: Tree = {}
        self.commits: list[tuple[bytes, Tree]] = []

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ helpers

    def _repo(self) -> Repository:
        return Repository(self.root)

    def _write(self, path: str, data: bytes, mode: int) -> None:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if full.exists():
            full.chmod(0o644)
        full.write_bytes(data)
        full.chmod(mode)
        self.wt[path] = (data, mode)

    def _disk(self) -> Tree:
        out: Tree = {}
        for dirpath, dirs, files in os.walk(self.root):
            if dirpath == str(self.root):
                dirs.remove(".dsv")
            for f in files:
                full = os.path.join(dirpath, f)
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                with open(full, "rb") as fh:
                    out[rel] = (fh.read(), stat.S_IMODE(os.lstat(full).st_mode))
        return out

    # ------------------------------------------------------------ edits

    @initialize(files=st.dictionaries(st.sampled_from(PATHS), content_st, min_size=1))
    def start(self, files: dict[str, bytes]) -> None:
        for p, data in files.items():
            self._write(p, data, 0o644)

    @rule(path=st.sampled_from(PATHS), data=content_st, mode=st.sampled_from(MODES))
    def write(self, path: str, data: bytes, mode: int) -> None:
        self._write(path, data, mode)

    @precondition(lambda self: any(p in self.wt and self.wt[p][0] for p in PATHS))
    @rule(pick=st.integers(0, 100), flip=st.integers(1, 255))
    def rewrite_same_size_same_mtime(self, pick: int, flip: int) -> None:
        """Other bytes, same size, mtime put back: only ctime tells (the racy case)."""
        cands = [p for p in PATHS if p in self.wt and self.wt[p][0]]
        path = cands[pick % len(cands)]
        data, mode = self.wt[path]
        full = self.root / path
        before = os.lstat(full)
        new = bytes([data[0] ^ flip]) + data[1:]
        full.chmod(0o644)
        with open(full, "r+b") as f:
            f.write(new)
        full.chmod(mode)
        os.utime(full, ns=(before.st_atime_ns, before.st_mtime_ns))
        self.wt[path] = (new, mode)

    @precondition(lambda self: bool(self.wt))
    @rule(pick=st.integers(0, 100))
    def touch(self, pick: int) -> None:
        """A new mtime, the same bytes: never a change."""
        path = sorted(self.wt)[pick % len(self.wt)]
        full = self.root / path
        st_ = os.lstat(full)
        os.utime(full, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))

    @precondition(lambda self: bool(self.wt))
    @rule(pick=st.integers(0, 100))
    def delete(self, pick: int) -> None:
        path = sorted(self.wt)[pick % len(self.wt)]
        (self.root / path).unlink()
        del self.wt[path]

    @precondition(lambda self: bool(self.wt))
    @rule(pick=st.integers(0, 100), mode=st.sampled_from(MODES))
    def chmod(self, pick: int, mode: int) -> None:
        path = sorted(self.wt)[pick % len(self.wt)]
        (self.root / path).chmod(mode)
        self.wt[path] = (self.wt[path][0], mode)

    @rule(top=st.sampled_from(["d1", "d3", "d1/d2"]))
    def remove_directory(self, top: str) -> None:
        shutil.rmtree(self.root / top, ignore_errors=True)
        for p in [p for p in self.wt if p.startswith(top + "/")]:
            del self.wt[p]

    @rule(data=content_st, as_dir=st.booleans())
    def type_change(self, data: bytes, as_dir: bool) -> None:
        """``t`` becomes a file, or a directory holding ``t/x``."""
        full = self.root / TYPE_PATH
        if full.is_dir():
            shutil.rmtree(full)
        elif full.exists():
            full.unlink()
        self.wt.pop(TYPE_PATH, None)
        self.wt.pop(TYPE_CHILD, None)
        self._write(TYPE_CHILD if as_dir else TYPE_PATH, data, 0o644)

    # ------------------------------------------------------------ commands

    @rule()
    def status(self) -> None:
        repo = self._repo()
        try:
            s = api.status(repo)
        finally:
            repo.close()
        added = sorted(p for p in self.wt if p not in self.head)
        deleted = sorted(p for p in self.head if p not in self.wt)
        modified = sorted(p for p in self.wt if p in self.head and self.wt[p] != self.head[p])
        assert (sorted(s.added), sorted(s.deleted), sorted(s.modified)) == (
            added,
            deleted,
            modified,
        )

    @rule()
    def commit(self) -> None:
        repo = self._repo()
        try:
            if self.wt == self.head and self.commits:
                try:
                    api.commit(repo, "same")
                except NothingToCommitError:
                    return
                raise AssertionError("a commit of an unchanged tree was not refused")
            if not self.wt and not self.commits:
                return  # nothing to commit yet
            res = api.commit(repo, f"c{len(self.commits)}")
        finally:
            repo.close()
        self.head = dict(self.wt)
        self.commits.append((res.id, dict(self.wt)))

    @precondition(lambda self: bool(self.commits))
    @rule(pick=st.integers(0, 100))
    def checkout(self, pick: int) -> None:
        oid, tree = self.commits[pick % len(self.commits)]
        # Untracked files stay (git's rule), but none where the target has a
        # file at one of its parent directories, or a directory at its path.
        untracked = {p: v for p, v in self.wt.items() if p not in self.head}
        for p in list(untracked):
            if (p == TYPE_CHILD and TYPE_PATH in tree) or (p == TYPE_PATH and TYPE_CHILD in tree):
                (self.root / p).unlink()
                del untracked[p], self.wt[p]
        repo = self._repo()
        try:
            api.checkout(repo, oid.hex(), force=True)
        finally:
            repo.close()
        self.wt = {**untracked, **tree}
        self.head = dict(tree)
        assert self._disk() == self.wt

    @precondition(lambda self: bool(self.commits))
    @rule(top=st.sampled_from(SOME_PATHS))
    def commit_paths(self, top: str) -> None:
        """``dsv commit PATH``: only what is at or below ``top`` changes in the new commit."""
        if not any(_under(p, top) for p in [*self.wt, *self.head]):
            return
        new = {p: v for p, v in self.head.items() if not _under(p, top)}
        new.update({p: v for p, v in self.wt.items() if _under(p, top)})
        repo = self._repo()
        try:
            if new == self.head:
                try:
                    api.commit(repo, "same", paths=[top])
                except NothingToCommitError:
                    return
                raise AssertionError("a commit of unchanged paths was not refused")
            res = api.commit(repo, f"c{len(self.commits)}", paths=[top])
        finally:
            repo.close()
        self.head = new
        self.commits.append((res.id, dict(new)))

    @precondition(lambda self: bool(self.commits))
    @rule(pick=st.integers(0, 100), top=st.sampled_from(SOME_PATHS[:-1]))
    def checkout_paths(self, pick: int, top: str) -> None:
        """``dsv checkout -f REV -- PATH``: files of REV there, HEAD's others removed, HEAD stays."""
        oid, tree = self.commits[pick % len(self.commits)]
        if not any(_under(p, top) for p in [*tree, *self.head]):
            return
        repo = self._repo()
        try:
            api.checkout(repo, oid.hex(), paths=[top], force=True)
        finally:
            repo.close()
        for p in [p for p in self.wt if _under(p, top) and (p in self.head or p in tree)]:
            del self.wt[p]
        self.wt.update({p: v for p, v in tree.items() if _under(p, top)})

    @precondition(lambda self: bool(self.commits))
    @rule(full=st.booleans())
    def verify(self, full: bool) -> None:
        repo = self._repo()
        try:
            v = verify(repo, "HEAD", full=full)
        finally:
            repo.close()
        assert v.ok == (self.wt == self.head)

    @invariant()
    def disk_is_the_model(self) -> None:
        assert self._disk() == self.wt


WorktreeModel.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
test_worktree_model = WorktreeModel.TestCase
