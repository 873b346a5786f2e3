"""Remote commands: remote add/list/remove, push, fetch, pull, clone, ls-remote."""

from __future__ import annotations

import os
from typing import Any

import click

from dsv.cli.app import _emit_json, _progress, _repo, cli, json_option
from dsv.cli.summary import n_of

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

    base = ctx.obj.get("cwd") or "."
    target = os.path.join(base, directory) if directory else None
    clean_paths = [p.strip("/") for p in paths] or None
    repo, commit_id, branch, r = api.clone(
        _local_url(ctx, url),
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
