"""The Python API: one function per command, taking and returning values.

The CLI is a thin layer over these; scripts and notebooks can call them too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from dsv.chunking import ChunkParams
from dsv.errors import ConflictError, DsvError, NotFoundError, NothingToCommitError
from dsv.history import resolve, resolve_object, short_id, walk

# checkout and maintenance are imported where used: `dsv status` and `dsv log`
# should not pay for modules they never run (start-up time is most of a no-op status).
from dsv.objects import Commit, Kind, Tag, TreeEntry
from dsv.progress import Progress
from dsv.records import Record
from dsv.refs import HEADS, TAGS, check_ref_name
from dsv.repo import Repository, local_tz_minutes
from dsv.worktree import snapshot

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dsv import maintenance
    from dsv.worktree import checkout as _co

__all__ = [
    "CheckoutOutcome",
    "Repository",
    "branch_create",
    "branch_delete",
    "branches",
    "cat",
    "checkout",
    "commit",
    "fsck",
    "gc",
    "init",
    "log",
    "ls_tree",
    "open_repo",
    "repo_path",
    "resolve_commit",
    "rev_parse",
    "status",
    "tag_create",
    "tag_delete",
    "tags",
]


def init(
    path: str | os.PathLike[str] = ".",
    hash_name: str = "xxh3-128",
    chunking: ChunkParams | None = None,
) -> Repository:
    return Repository.init(path, hash_name, chunking)


def open_repo(path: str | os.PathLike[str] = ".") -> Repository:
    return Repository.discover(path)


def repo_path(repo: Repository, path: str, cwd: str | None = None) -> str:
    """A command-line path as a '/'-separated path relative to the repository root."""
    full = Path(os.path.abspath(os.path.join(cwd or os.getcwd(), path)))
    try:
        rel = full.relative_to(repo.root)
    except ValueError:
        raise NotFoundError(f"{path} is outside the repository at {repo.root}") from None
    s = rel.as_posix()
    s = "" if s == "." else s
    if s.split("/")[0] == ".dsv":
        raise NotFoundError(f"{path} is inside .dsv")
    return s


def status(repo: Repository, progress: Progress | None = None) -> snapshot.Status:
    """The working tree against HEAD (only the paths a partial clone holds)."""
    return snapshot.status(repo, progress, repo.sparse_paths())


def commit(
    repo: Repository,
    message: str,
    *,
    paths: list[str] | None = None,
    meta: dict[str, str] | None = None,
    allow_empty: bool = False,
    progress: Progress | None = None,
    summarizer: snapshot.Summarizer | None = None,
    warn: Callable[[str], None] | None = None,
) -> snapshot.CommitResult:
    """Snapshot the working tree (or ``paths``) as a new commit; see ``dsv commit``.

    ``warn`` is told why a changed table got a file-level changelog entry only
    (unreadable, too large); with a ``summarizer`` of the caller's, it is unused.
    """
    if summarizer is None:

        def summarizer(repo: Repository, changes: snapshot.Changes) -> dict[str, Any]:
            return _changelog_summary(repo, changes, warn)

    with repo.lock("commit"):
        snapshot.clean_staging(repo)
        try:
            return snapshot.commit(
                repo,
                message,
                paths=paths if paths is not None else repo.sparse_paths(),
                meta=meta,
                allow_empty=allow_empty,
                progress=progress,
                summarizer=summarizer,
            )
        except NothingToCommitError:
            if not paths:
                raise
            raise NothingToCommitError(
                "nothing to commit in the given paths",
                hint="nothing under them differs from HEAD (files .dsvignore matches are"
                " left out; dsv status lists what changed)",
            ) from None


def _changelog_summary(
    repo: Repository, changes: snapshot.Changes, warn: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """What a commit stores by default: file counts plus the data changelog (tables, labels)."""
    from dsv.api.diff import commit_summarizer  # pyarrow and the diff code load only here

    return commit_summarizer(repo, changes, warn)


class CheckoutOutcome(Record):
    """What a checkout did; ``branch`` is the full ref name when HEAD now names a branch."""

    __slots__ = ("branch", "commit", "result")

    def __init__(self, commit: bytes, branch: str | None, result: _co.CheckoutResult) -> None:
        self.commit = commit
        self.branch = branch
        self.result = result


def checkout(
    repo: Repository,
    rev: str,
    *,
    paths: list[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> CheckoutOutcome:
    from dsv.worktree import checkout as _co

    # `checkout NAME` with only a remote's NAME: the branch is created once the
    # working tree holds its version, not before.  HEAD may already name NAME
    # (an unborn branch: `init`, `remote add`, `fetch`, `checkout main`); made
    # first, it would make the empty working tree look like a local deletion
    # of every file, each one then "kept".  A refused checkout creates nothing.
    track = _remote_branch(repo, rev) if paths is None else None
    if repo.partial:
        _ensure_data(repo, track[1].hex() if track else rev, paths, progress)
    with repo.lock("checkout"):
        snapshot.clean_staging(repo)
        branch = None
        create = None  # (remote-tracking ref, id): the new branch starts there
        if paths is None:
            if rev in ("HEAD", "@"):
                branch = repo.refs.head().branch  # stay on the current branch
            elif rev.startswith(HEADS) and repo.refs.read(rev) is not None:
                branch = rev
            elif repo.refs.read(HEADS + rev) is not None:
                branch = HEADS + rev  # a branch wins over a tag of the same name
            elif track is not None:
                branch, create = HEADS + rev, track
        target = create[1] if create is not None else resolve(repo, branch or rev)
        tree = repo.read_commit(target).tree
        res = _co.checkout(
            repo, tree, paths=paths, sparse=repo.sparse_paths(), force=force, progress=progress
        )
        if paths is None:
            who = repo.identity()
            head = repo.refs.head()
            frm = (
                head.branch[len(HEADS) :]
                if head.branch
                else (head.commit.hex()[:10] if head.commit else "nothing")
            )
            msg = f"checkout: moving from {frm} to {rev}"
            if create is not None and branch is not None:
                repo.refs.update(
                    branch, target, expect=None, message=f"branch: from {create[0]}", who=who
                )
            if create is not None and head.branch == branch:
                # HEAD named the unborn branch already: it moved from nothing
                repo.refs.append_reflog("HEAD", None, target, msg, who)
            elif branch is not None:
                repo.refs.set_head(branch=branch, message=msg, who=who)
            else:
                repo.refs.set_head(commit=target, message=msg, who=who)
        return CheckoutOutcome(target, branch, res)


def _remote_branch(repo: Repository, name: str) -> tuple[str, bytes] | None:
    """For ``checkout NAME`` with no branch or tag NAME: the one remote-tracking ref
    ``refs/remotes/REMOTE/NAME`` and its id, to create branch NAME from (None: none,
    or several remotes have one)."""
    from dsv.refs import REMOTES

    if repo.refs.read(HEADS + name) is not None or repo.refs.read(TAGS + name) is not None:
        return None
    try:
        check_ref_name(name)
    except DsvError:
        return None
    hits = [ref for ref in repo.refs.list_refs(REMOTES) if ref.split("/", 3)[-1] == name]
    if len(hits) != 1:
        return None
    oid = repo.refs.read(hits[0])
    return None if oid is None else (hits[0], oid)


def _ensure_data(
    repo: Repository, rev: str, paths: list[str] | None, progress: Progress | None
) -> None:
    """In a partial clone, download a version's data before checking it out."""
    from dsv.sync import list_remotes, open_remote
    from dsv.sync.transfer import fetch, missing_data

    target = resolve(repo, rev)
    want = paths if paths is not None else repo.sparse_paths()
    if not missing_data(repo, target, want) or not list_remotes(repo):
        return
    remote = open_remote(repo, None)
    try:
        fetch(
            repo,
            remote,
            data_for=[target],
            paths=want,
            history_data=False,
            tips_data=False,
            progress=progress,
        )
    finally:
        remote.close()


def log(
    repo: Repository, rev: str | None = None, limit: int | None = None
) -> list[tuple[bytes, Commit]]:
    if rev is None:
        head = repo.refs.head()
        if head.commit is None:
            return []
        start = head.commit
    else:
        start = resolve(repo, rev)
    return list(walk(repo, [start], limit))


def rev_parse(repo: Repository, rev: str, short: bool = False) -> str:
    oid = resolve(repo, rev)
    return short_id(repo, oid) if short else oid.hex()


def _split_rev_path(spec: str) -> tuple[str, str]:
    rev, sep, path = spec.partition(":")
    if not sep:
        raise NotFoundError(f"expected REV:PATH, got {spec!r}")
    return rev or "HEAD", path.strip("/")


def lookup(repo: Repository, tree: bytes, path: str) -> TreeEntry | None:
    """The entry at ``path`` in a tree (None if absent); '' is the root itself."""
    if not path:
        return TreeEntry("", Kind.DIR, 0o755, 0, tree)
    cur = tree
    parts = path.split("/")
    for i, part in enumerate(parts):
        # a binary search in the encoded tree: no object per entry of a huge directory
        table = repo.tree_table(cur)
        j = table.find(part)
        if j < 0:
            return None
        entry = table.entry(j)
        if i == len(parts) - 1:
            return entry
        if entry.kind != Kind.DIR:
            return None
        cur = entry.id
    return None


def cat(repo: Repository, spec: str) -> Iterator[bytes]:
    """The bytes of ``REV:PATH`` (verified), chunk by chunk."""
    rev, path = _split_rev_path(spec)
    cid = resolve(repo, rev)
    e = lookup(repo, repo.read_commit(cid).tree, path)
    if e is None:
        raise NotFoundError(f"path {path!r} does not exist in {rev}")
    if e.kind == Kind.DIR:
        raise NotFoundError(f"{path!r} is a directory in {rev}; use 'dsv ls-tree {rev} {path}'")
    return repo.store.iter_content(e.id)


def ls_tree(
    repo: Repository, rev: str, path: str = "", recursive: bool = False
) -> list[tuple[str, TreeEntry]]:
    cid = resolve(repo, rev)
    root = repo.read_commit(cid).tree
    e = lookup(repo, root, path)
    if e is None:
        raise NotFoundError(f"path {path!r} does not exist in {rev}")
    if e.kind != Kind.DIR:
        return [(path, e)]
    prefix = f"{path}/" if path else ""
    if recursive:
        return sorted(repo.flatten(e.id, prefix).items())
    return [(prefix + x.name, x) for x in repo.read_tree(e.id)]


# ---------------------------------------------------------------------- branches and tags


def branches(repo: Repository) -> dict[str, bytes]:
    return {k[len(HEADS) :]: v for k, v in repo.refs.list_refs(HEADS).items()}


def branch_create(repo: Repository, name: str, rev: str = "HEAD", force: bool = False) -> bytes:
    check_ref_name(name, "branch name")
    with repo.lock("branch"):
        target = resolve(repo, rev)
        ref = HEADS + name
        old = repo.refs.read(ref)
        if old is not None and not force:
            raise ConflictError(f"branch {name!r} already exists")
        if old is not None and old != target and repo.refs.head().branch == ref:
            # the working tree holds this branch: moving it alone would make every
            # difference between the two versions look like a local change
            raise ConflictError(
                f"cannot move branch {name!r}: it is checked out here",
                hint=f"check out {rev} first (dsv checkout {rev}), then"
                f" dsv branch -f {name} {rev} and dsv checkout {name}",
            )
        repo.refs.update(
            ref, target, expect=old, message=f"branch: created from {rev}", who=repo.identity()
        )
        return target


def branch_delete(repo: Repository, name: str) -> bytes:
    with repo.lock("branch"):
        ref = HEADS + name
        old = repo.refs.read(ref)
        if old is None:
            raise NotFoundError(f"branch {name!r} not found")
        if repo.refs.head().branch == ref:
            raise ConflictError(f"cannot delete branch {name!r}: it is checked out")
        # the reflog is kept: its commits stay reachable (and recoverable) until removed
        repo.refs.update(ref, None, expect=old, message="branch: deleted", who=repo.identity())
        return old


def tags(repo: Repository) -> dict[str, bytes]:
    return {k[len(TAGS) :]: v for k, v in repo.refs.list_refs(TAGS).items()}


def tag_create(
    repo: Repository, name: str, rev: str = "HEAD", message: str | None = None, force: bool = False
) -> bytes:
    check_ref_name(name, "tag name")
    import time

    with repo.lock("tag"):
        target = resolve(repo, rev)
        ref = TAGS + name
        old = repo.refs.read(ref)
        if old is not None and not force:
            raise ConflictError(f"tag {name!r} already exists")
        oid = target
        if message is not None:
            now = time.time()
            oid = repo.write_object(
                Tag(target, name, repo.identity(), int(now), local_tz_minutes(now), message)
            )
            repo.store.flush()
        repo.refs.update(ref, oid, expect=old, message=f"tag: {rev}", who=repo.identity())
        return oid


def tag_delete(repo: Repository, name: str) -> bytes:
    with repo.lock("tag"):
        ref = TAGS + name
        old = repo.refs.read(ref)
        if old is None:
            raise NotFoundError(f"tag {name!r} not found")
        repo.refs.update(ref, None, expect=old, message="tag: deleted", who=repo.identity())
        return old


def tag_message(repo: Repository, oid: bytes) -> Tag | None:
    try:
        obj = repo.read_object(oid)
    except DsvError:
        return None
    return obj if isinstance(obj, Tag) else None


# ---------------------------------------------------------------------- maintenance


def gc(
    repo: Repository, progress: Progress | None = None, *, keep_reflogs: bool = True
) -> maintenance.GcResult:
    from dsv import maintenance

    with repo.lock("gc"):
        snapshot.clean_staging(repo)
        return maintenance.gc(repo, progress, keep_reflogs=keep_reflogs)


def fsck(repo: Repository, progress: Progress | None = None) -> maintenance.FsckResult:
    from dsv import maintenance

    return maintenance.fsck(repo, progress)


def object_id(repo: Repository, rev: str) -> bytes:
    """The id REV names before peeling (a tag object stays a tag)."""
    return resolve_object(repo, rev)


def resolve_commit(repo: Repository, rev: str) -> bytes:
    """The commit id REV names."""
    return resolve(repo, rev)
