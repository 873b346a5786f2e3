"""Remote commands: remote add/list/remove, push, fetch, pull, clone, ls-remote."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import click

from dsv.cli.app import _emit_json, _progress, _repo, cli, json_option
from dsv.cli.summary import n_of
from dsv.errors import ConflictError, DsvError

jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Parallel transfers.",
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress output.")


def _local_url(ctx: click.Context, url: str) -> str:
    """A relative directory URL is relative to -C DIR when given, like every other path."""
    if not url.strip() or "://" in url or os.path.isabs(url):
        return url  # an empty one is refused by remote_add
    return os.path.normpath(os.path.join(ctx.obj.get("cwd") or ".", url))


def _transfer_json(r: Any) -> dict[str, Any]:
    return {
        "objects": r.objects,
        "bytes": r.bytes,
        "packs": r.packs,
        "refs": r.refs,
        "pruned": r.pruned,
        "up_to_date": r.up_to_date,
        "requests": r.requests,
        "bytes_sent": r.bytes_sent,
        "bytes_received": r.bytes_received,
        "retries": r.retries,
        "packs_linked": r.linked,
        "packs_whole": r.whole,
        "seconds": round(r.seconds, 3),
    }


def _transfer_line(verb: str, r: Any) -> str:
    from dsv.progress import human_bytes

    moved = r.bytes_sent if verb == "sent" else r.bytes_received
    linked = f"; {n_of(r.linked, 'pack')} hard-linked from the remote" if r.linked else ""
    if r.whole:
        linked += f"; {n_of(r.whole, 'pack')} downloaded whole"
    return (
        f"{verb} {n_of(r.objects, 'object')} ({human_bytes(moved)}) in {n_of(r.requests, 'request')},"
        f" {r.seconds:.1f}s{linked}"
    )


@cli.group()
def remote() -> None:
    """Configure remotes (a directory, s3://bucket/prefix, or any fsspec URL)."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--endpoint-url", help="S3-compatible endpoint (e.g. MinIO).")
@click.option("--region", help="S3 region.")
@click.option("--profile", help="AWS profile for credentials.")
@click.pass_context
def remote_add(
    ctx: click.Context,
    name: str,
    url: str,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
) -> None:
    """Add remote NAME at URL."""
    from dsv.api import remote as api

    cfg = api.remote_add(
        _repo(ctx),
        name,
        _local_url(ctx, url),
        endpoint_url=endpoint_url,
        region=region,
        profile=profile,
    )
    click.echo(f"Added remote {cfg.name} -> {cfg.url}")


@remote.command("list")
@json_option
@click.pass_context
def remote_list(ctx: click.Context, as_json: bool) -> None:
    """List remotes."""
    from dsv.api import remote as api

    items = api.list_remotes(_repo(ctx))
    if as_json:
        _emit_json([{"name": r.name, "url": r.url, **r.options} for r in items])
        return
    for r in items:
        click.echo(f"{r.name}\t{r.url}")


@remote.command("remove")
@click.argument("name")
@click.pass_context
def remote_remove(ctx: click.Context, name: str) -> None:
    """Remove remote NAME (and its remote-tracking refs)."""
    from dsv.api import remote as api

    api.remote_remove(_repo(ctx), name)
    click.echo(f"Removed remote {name}")


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.argument("refs", nargs=-1)
@click.option("-f", "--force", is_flag=True, help="Move remote refs even if that drops commits.")
@jobs_option
@quiet_option
@json_option
@click.pass_context
def push(
    ctx: click.Context,
    remote_name: str | None,
    refs: tuple[str, ...],
    force: bool,
    jobs: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Upload the current branch (or REFS) and what they need to REMOTE (default origin).

    Only chunks the remote lacks are sent, in packs; the remote ref moves with a
    compare-and-swap, so a concurrent push never overwrites another silently.
    """
    from dsv.api import remote as api

    r = api.push(
        _repo(ctx),
        remote_name,
        list(refs) or None,
        force=force,
        jobs=jobs,
        progress=_progress(quiet or as_json),
    )
    if as_json:
        _emit_json(_transfer_json(r))
        return
    for ref in r.up_to_date:
        click.echo(f"{ref}: up to date")
    for ref, new in r.refs.items():
        click.echo(f"{ref} -> {new[:10]}")
    click.echo(_transfer_line("sent", r))


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@jobs_option
@quiet_option
@json_option
@click.pass_context
def fetch(
    ctx: click.Context, remote_name: str | None, jobs: int, quiet: bool, as_json: bool
) -> None:
    """Download new commits and their data from REMOTE; update remote-tracking branches."""
    from dsv.api import remote as api

    r = api.fetch(_repo(ctx), remote_name, jobs=jobs, progress=_progress(quiet or as_json))
    if as_json:
        _emit_json(_transfer_json(r))
        return
    for ref, old in r.pruned.items():
        click.echo(f"{ref}: pruned, the remote has no such branch now (was {old[:10]})")
    for ref, new in r.refs.items():
        click.echo(f"{ref} -> {new[:10]}")
    click.echo(_transfer_line("received", r))


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.argument("branch", required=False)
@jobs_option
@quiet_option
@json_option
@click.pass_context
def pull(
    ctx: click.Context,
    remote_name: str | None,
    branch: str | None,
    jobs: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Fetch, then fast-forward the current branch and working tree (no merges)."""
    from dsv.api import remote as api

    r = api.pull(_repo(ctx), remote_name, branch, jobs=jobs, progress=_progress(quiet or as_json))
    if as_json:
        _emit_json(
            {
                "branch": r.branch,
                "old": r.old.hex() if r.old else None,
                "new": r.new.hex() if r.new else None,
                "fast_forward": r.fast_forward,
                "written": r.written,
                "removed": r.removed,
                "fetch": _transfer_json(r.fetch),
            }
        )
        return
    click.echo(_transfer_line("received", r.fetch))
    if r.fast_forward:
        old = r.old.hex()[:10] if r.old else "(none)"
        click.echo(f"{r.branch}: {old} -> {r.new.hex()[:10] if r.new else ''} (fast-forward)")
        click.echo(f" wrote {n_of(r.written, 'file')}, removed {r.removed:,}")
    else:
        click.echo(f"{r.branch}: already up to date")


@cli.command()
@click.argument("url")
@click.argument("directory", required=False)
@click.argument("paths", nargs=-1)
@click.option("--rev", help="Version to check out (branch, tag or commit; default: main).")
@click.option("--endpoint-url", help="S3-compatible endpoint (e.g. MinIO).")
@click.option("--region", help="S3 region.")
@click.option("--profile", help="AWS profile for credentials.")
@click.option(
    "--no-link",
    is_flag=True,
    help="Copy the data of a remote in a local directory instead of hard-linking its packs.",
)
@jobs_option
@quiet_option
@json_option
@click.pass_context
def clone(
    ctx: click.Context,
    url: str,
    directory: str | None,
    paths: tuple[str, ...],
    rev: str | None,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    no_link: bool,
    jobs: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Copy a dataset from URL into DIRECTORY: `dsv clone URL [DIR] [--rev REV] [-- PATH...]`.

    Only the data of that version (and of PATHS, if given) is downloaded;
    other versions are fetched when you check them out.  From a directory on
    the same file system, the remote's packs are hard-linked instead (no
    copy; all versions' data at no cost in disk space) unless --no-link.
    """
    from dsv.api import remote as api

    source = _local_url(ctx, url)
    if "://" not in source:
        source = os.path.abspath(os.path.expanduser(source))
    # the default name, as the API makes it; below -C DIR like any other path
    target = directory or Path(source.rstrip("/")).name or "dataset"
    if ctx.obj.get("cwd"):
        target = os.path.join(ctx.obj["cwd"], target)
    finish = _finish_clone(target, source, rev)
    if finish is not None:
        raise ConflictError(
            f"{Path(target)} exists and is not empty",
            hint=f"it holds an interrupted clone of {url}; finish it with: {finish}",
        )
    clean_paths = [p.strip("/") for p in paths] or None
    repo, commit_id, branch, r = api.clone(
        source,
        target,
        rev=rev,
        paths=clean_paths,
        endpoint_url=endpoint_url,
        region=region,
        profile=profile,
        link=not no_link,
        jobs=jobs,
        progress=_progress(quiet or as_json),
    )
    if as_json:
        _emit_json(
            {
                "root": str(repo.root),
                "commit": commit_id.hex(),
                "branch": branch,
                "paths": clean_paths,
                **_transfer_json(r),
            }
        )
        return
    where = f"branch {branch}" if branch else f"{commit_id.hex()[:10]} (detached)"
    click.echo(f"Cloned {url} into {repo.root} at {where}")
    click.echo(_transfer_line("received", r))


def _finish_clone(target: str, url: str, rev: str | None) -> str | None:
    """The commands that finish a clone of ``url`` (as recorded: local paths
    absolute) into ``target`` that was killed,
    or None if ``target`` holds anything else (absent, empty, another repository,
    a clone that finished, or one running now).

    Killed before it checked out (HEAD has no commit yet): fetch, then check the
    version out, which creates its branch from the remote's.  Killed while
    checking out (HEAD set, ``.dsv/lock`` still naming the clone and not held):
    the missing files would look like local deletions, so the checkout is forced.
    """
    import fcntl

    from dsv.repo import DSV_DIR, Repository
    from dsv.sync import list_remotes

    root = Path(target)
    if not (root / DSV_DIR / "config").is_file():
        return None
    try:
        repo = Repository(root.absolute())
    except (DsvError, OSError, ValueError):
        return None
    try:
        origin = [r.url for r in list_remotes(repo) if r.name == "origin"]
        if [u.rstrip("/") for u in origin] != [url.rstrip("/")]:
            return None
        where = shlex.quote(target)
        if repo.refs.head().commit is None:
            if rev is None:  # as the clone chooses: main, or else the remote's first branch
                tracking = sorted(repo.refs.list_refs("refs/remotes/origin/"))
                names = [t[len("refs/remotes/origin/") :] for t in tracking]
                rev = "main" if "main" in names or not names else names[0]
            else:
                base = re.split(r"[~^]", rev, maxsplit=1)[0]
                if base != rev and repo.refs.read(f"refs/tags/{base}") is None:
                    rev = f"origin/{rev}"  # main~2: no local main yet, origin/main~2 is there
            return f"dsv -C {where} fetch && dsv -C {where} checkout {shlex.quote(rev)}"
        lock = repo.dsv_dir / "lock"
        if not lock.read_text(errors="replace").strip().endswith(": clone"):
            return None  # the last command that held the lock finished (it empties it)
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a clone is running there now
        finally:
            os.close(fd)  # and the lock taken just now with it
        return f"dsv -C {where} checkout -f HEAD"
    except (DsvError, OSError):
        return None
    finally:
        repo.close()


@cli.command("ls-remote")
@click.argument("remote_name", metavar="[REMOTE|URL]", required=False, default="origin")
@json_option
@click.pass_context
def ls_remote(ctx: click.Context, remote_name: str, as_json: bool) -> None:
    """List the branches and tags of a remote (by name or URL)."""
    from dsv.api import remote as api
    from dsv.errors import NotARepositoryError

    try:
        repo = _repo(ctx)
    except NotARepositoryError:
        repo = None
    refs = api.ls_remote(
        repo, _local_url(ctx, remote_name) if os.sep in remote_name else remote_name
    )
    if as_json:
        _emit_json([{"ref": k, "id": v.hex()} for k, v in refs.items()])
        return
    for k, v in refs.items():
        click.echo(f"{v.hex()}\t{k}")
