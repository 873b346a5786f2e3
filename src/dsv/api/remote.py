"""Remotes in the Python API: configure, push, fetch, pull, clone, list remote refs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from dsv.errors import BadNameError, ConflictError, DsvError, NotFoundError, RejectedError
from dsv.progress import Progress
from dsv.records import Record
from dsv.refs import HEADS, REMOTES, TAGS, check_ref_name
from dsv.repo import Repository
from dsv.sync import (
    Remote,
    RemoteConfig,
    add_remote,
    list_remotes,
    open_remote,
    remove_remote,
    transfer,
)
from dsv.sync.check import RemoteCheck
from dsv.sync.transfer import TransferResult

__all__ = [
    "PullResult",
    "RemoteConfig",
    "TransferResult",
    "clone",
    "fetch",
    "fsck_remote",
    "list_remotes",
    "ls_remote",
    "pull",
    "push",
    "remote_add",
    "remote_remove",
    "sparse_paths",
]

DEFAULT_JOBS = 8


def remote_add(
    repo: Repository,
    name: str,
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> RemoteConfig:
    """Record a remote.  Local paths are stored absolute."""
    # the name becomes part of refs/remotes/NAME/...: ref name rules apply
    check_ref_name(name, "remote name")
    if not url.strip():
        raise BadNameError("empty remote URL (a directory, or s3://BUCKET/PREFIX)")
    opts = {"endpoint-url": endpoint_url or "", "region": region or "", "profile": profile or ""}
    if any(opts.values()) and not url.startswith("s3://"):
        given = ", ".join(f"--{k}" for k, v in opts.items() if v)
        raise BadNameError(f"{given}: only for s3:// remotes, not {url!r}")
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    with repo.lock("remote add"):
        return add_remote(repo, name, url, opts)


def remote_remove(repo: Repository, name: str) -> None:
    with repo.lock("remote remove"):
        remove_remote(repo, name)


def _full_refs(repo: Repository, names: list[str] | None) -> list[str]:
    if not names:
        head = repo.refs.head()
        if head.branch is None:
            raise NotFoundError("HEAD is detached: name what to push (e.g. dsv push origin main)")
        return [head.branch]
    out = []
    for n in names:
        if n.startswith("refs/"):
            full = n
        elif repo.refs.read(HEADS + n) is not None:
            full = HEADS + n
        elif repo.refs.read(TAGS + n) is not None:
            full = TAGS + n
        else:
            raise NotFoundError(f"no branch or tag named {n!r} to push")
        out.append(full)
    return out


def push(
    repo: Repository,
    remote: str | None = None,
    refs: list[str] | None = None,
    *,
    force: bool = False,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> TransferResult:
    """Upload what the remote lacks, then move its refs (compare-and-swap)."""
    r = open_remote(repo, remote, jobs)
    try:
        return transfer.push(repo, r, _full_refs(repo, refs), force=force, progress=progress)
    finally:
        r.close()


def sparse_paths(repo: Repository) -> list[str] | None:
    return repo.sparse_paths()


def fetch(
    repo: Repository,
    remote: str | None = None,
    *,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> TransferResult:
    """Download new commits and their data; update remote-tracking refs."""
    r = open_remote(repo, remote, jobs)
    try:
        return transfer.fetch(
            repo,
            r,
            paths=repo.sparse_paths(),
            history_data=not repo.partial,
            whole_packs=True,
            progress=progress,
        )
    finally:
        r.close()


class PullResult(Record):
    __slots__ = ("branch", "fast_forward", "fetch", "new", "old", "removed", "written")

    def __init__(
        self,
        fetch: TransferResult,
        branch: str,
        old: bytes | None,
        new: bytes | None,
        fast_forward: bool,
        written: int = 0,
        removed: int = 0,
    ) -> None:
        self.fetch = fetch
        self.branch = branch
        self.old = old
        self.new = new
        self.fast_forward = fast_forward
        self.written = written
        self.removed = removed


def _is_ancestor(repo: Repository, a: bytes, b: bytes) -> bool:
    return transfer._is_ancestor(repo, a, b)


def pull(
    repo: Repository,
    remote: str | None = None,
    branch: str | None = None,
    *,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> PullResult:
    """Fetch, then fast-forward the current branch and the working tree."""
    from dsv.worktree import checkout as _co
    from dsv.worktree import snapshot

    r_cfg_name = open_remote(repo, remote, jobs)
    name = r_cfg_name.name
    r_cfg_name.close()
    head = repo.refs.head()
    if head.branch is None:
        raise ConflictError("HEAD is detached: check out a branch to pull into")
    local_branch = head.branch[len(HEADS) :]
    fetched = fetch(repo, name, jobs=jobs, progress=progress)
    tracking = f"{REMOTES}{name}/{branch or local_branch}"
    theirs = repo.refs.read(tracking)
    if theirs is None:
        raise NotFoundError(f"the remote {name!r} has no branch {branch or local_branch!r}")
    with repo.lock("pull"):
        snapshot.clean_staging(repo)
        head = repo.refs.head()
        ours = head.commit
        if ours == theirs or (ours is not None and _is_ancestor(repo, theirs, ours)):
            return PullResult(fetched, local_branch, ours, ours, False)
        if ours is not None and not _is_ancestor(repo, ours, theirs):
            raise RejectedError(
                f"cannot fast-forward {local_branch}: it and {name}/{branch or local_branch} have"
                " diverged",
                hint="dsv does not merge. To take the remote's version and keep yours on a side"
                f" branch: dsv branch mine; dsv checkout {name}/{branch or local_branch};"
                f" dsv branch -f {local_branch} {name}/{branch or local_branch};"
                f" dsv checkout {local_branch}",
            )
        tree = repo.read_commit(theirs).tree
        res = _co.checkout(repo, tree, sparse=repo.sparse_paths(), progress=progress)
        assert head.branch is not None
        repo.refs.update(
            head.branch,
            theirs,
            expect=ours,
            message=f"pull: fast-forward from {name}",
            who=repo.identity(),
        )
        repo.refs.append_reflog(
            "HEAD", ours, theirs, f"pull: fast-forward from {name}", repo.identity()
        )
        return PullResult(fetched, local_branch, ours, theirs, True, res.written, len(res.removed))


def fsck_remote(
    repo: Repository, remote: str | None, *, full: bool = False, progress: Progress | None = None
) -> RemoteCheck:
    """Check a remote's refs, indexes, packs and reachable objects (see ``dsv fsck --remote``)."""
    from dsv.sync.check import check_remote

    r = open_remote(repo, remote)
    try:
        return check_remote(repo, r, full=full, progress=progress)
    finally:
        r.close()


def ls_remote(repo: Repository | None, remote: str) -> dict[str, bytes]:
    """Refs of a configured remote (by name) or of a URL."""
    r = _remote_for(repo, remote)
    try:
        r.check_format(create=False)
        return {k: v[0] for k, v in r.refs().items()}
    finally:
        r.close()


def _remote_for(repo: Repository | None, remote: str) -> Remote:
    if repo is not None and any(c.name == remote for c in list_remotes(repo)):
        return open_remote(repo, remote)
    from dsv.backends import KeyNotFoundError, open_backend
    from dsv.backends.retry import RetryingBackend
    from dsv.sync import FORMAT_KEY

    if "://" not in remote and not os.path.exists(remote):
        if repo is None:
            raise NotFoundError(
                f"{remote!r} is not a directory",
                hint="outside a repository, name the remote's URL (a directory or s3://...)",
            )
        names = sorted(c.name for c in list_remotes(repo))
        raise NotFoundError(
            f"no remote named {remote!r}, and no directory {remote!r}",
            hint=f"remotes: {', '.join(names)}" if names else "add one: dsv remote add NAME URL",
        )
    backend = RetryingBackend(open_backend(remote))
    try:
        algo = json.loads(backend.get(FORMAT_KEY))["hash"]
    except KeyNotFoundError:
        raise NotFoundError(f"{remote} is not a dsv remote (no {FORMAT_KEY})") from None
    except DsvError:
        raise
    except (ValueError, KeyError, TypeError):
        raise NotFoundError(f"{remote} is not a dsv remote ({FORMAT_KEY} is malformed)") from None
    probe = _ProbeRepo(algo)
    return Remote(probe, RemoteConfig("probe", remote), backend=backend)  # type: ignore[arg-type]


class _ProbeRepo:
    """Just enough of a repository to read a remote's refs without one."""

    def __init__(self, algo_name: str) -> None:
        from dsv.hashing import get_algo

        self.algo = get_algo(algo_name)
        # only refs are read through it: the index cache below is never created
        self.dsv_dir = Path("/nonexistent/dsv-probe")


def _split_suffix(rev: str) -> tuple[str, str]:
    """``main~2^`` -> (``main``, ``~2^``): a name and its ancestry suffix."""
    m = re.fullmatch(r"(.*?)((?:[~^][0-9]*)*)", rev)
    assert m is not None  # the pattern matches any string
    return m.group(1), m.group(2)


def clone(
    url: str,
    directory: str | os.PathLike[str] | None = None,
    *,
    rev: str | None = None,
    paths: list[str] | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    link: bool = True,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> tuple[Repository, bytes, str | None, TransferResult]:
    """A new repository from a remote, with one version checked out.

    Only the data of that version (``rev``, default the remote's main branch)
    is downloaded, limited to ``paths`` when given; every commit object comes
    along so that history and change summaries are readable.  With ``link``,
    the packs of a remote in a directory on the same file system are
    hard-linked instead (``transfer._link_packs``); from any other remote, a
    pack of which the version wants most is downloaded whole
    (``transfer.ObjectFetcher._whole_packs``).
    """
    from dsv.backends import open_backend
    from dsv.backends.retry import RetryingBackend
    from dsv.sync import FORMAT_KEY
    from dsv.worktree import checkout as _co

    opts = {"endpoint-url": endpoint_url or "", "region": region or "", "profile": profile or ""}
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    backend = RetryingBackend(open_backend(url, {k: v for k, v in opts.items() if v}))
    try:
        info = json.loads(backend.get(FORMAT_KEY))
        algo = str(info["hash"])
    except NotFoundError:
        raise NotFoundError(f"{url} is not a dsv remote (no {FORMAT_KEY})") from None
    except (ValueError, KeyError, TypeError):
        raise NotFoundError(f"{url}: malformed {FORMAT_KEY}") from None
    if directory is None:
        directory = Path(url.rstrip("/")).name or "dataset"
    target_dir = Path(directory)
    existed = target_dir.exists()
    if existed and not target_dir.is_dir():
        raise ConflictError(f"{target_dir} exists and is not a directory")
    if existed and any(target_dir.iterdir()):
        raise ConflictError(f"{target_dir} exists and is not empty")
    repo = Repository.init(target_dir, algo)
    try:
        cfg = add_remote(repo, "origin", url, opts)
        remote = Remote(repo, cfg, backend=backend, jobs=jobs)
        remote.check_format(create=False)
        refs = remote.refs()
        branch: str | None = None
        if rev is None:
            heads = [k for k in refs if k.startswith(HEADS)]
            if not heads:
                raise NotFoundError(f"{url} has no branches yet")
            full = HEADS + "main" if HEADS + "main" in refs else heads[0]
            branch = full[len(HEADS) :]
            target = refs[full][0]
        elif HEADS + rev in refs:
            branch, target = rev, refs[HEADS + rev][0]
        elif TAGS + rev in refs:
            target = refs[TAGS + rev][0]
        else:
            target = b""
            # the remote's branch or tag with ~N / ^N after it: resolved from its id
            # once the history is in (there is no local branch of that name yet)
            base, suffix = _split_suffix(rev)
            for full in (HEADS + base, TAGS + base):
                if suffix and full in refs:
                    rev = refs[full][0].hex() + suffix
                    break
        repo.config.set("core", "partial", "true")
        if paths:
            repo.config.set("core", "sparse", json.dumps(sorted(set(paths))))
        repo.config.save()
        from dsv.history import resolve

        def wanted() -> list[bytes]:
            # a commit id (full or short) resolves once the history is in
            return [target or resolve(repo, rev or "")]

        result = transfer.fetch(
            repo,
            remote,
            data_for=wanted,
            paths=paths,
            history_data=False,
            tips_data=False,
            link_packs=link,
            whole_packs=True,
            progress=progress,
        )
        # the whole clone's requests, including reading the format and refs first
        result.requests = backend.stats.requests
        result.bytes_received = backend.stats.bytes_received
        result.bytes_sent = backend.stats.bytes_sent
        commit_id = resolve(repo, target.hex() if target else rev or "")
        with repo.lock("clone"):
            if branch is not None:
                repo.refs.update(
                    HEADS + branch,
                    commit_id,
                    expect=None,
                    message=f"clone: from {url}",
                    who=repo.identity(),
                )
                repo.refs.set_head(
                    branch=HEADS + branch, message=f"clone: from {url}", who=repo.identity()
                )
            else:
                repo.refs.set_head(
                    commit=commit_id, message=f"clone: from {url}", who=repo.identity()
                )
            tree = repo.read_commit(commit_id).tree
            _co.checkout(repo, tree, sparse=paths, force=True, progress=progress)
        remote.close()
        return repo, commit_id, branch, result
    except BaseException:
        # a failed clone leaves nothing behind (the directory was empty or absent)
        repo.close()
        import shutil

        if existed:
            for child in target_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        else:
            shutil.rmtree(target_dir, ignore_errors=True)
        raise
