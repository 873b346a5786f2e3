"""Commands for training on exact versions: verify, get, pin, materialize."""

from __future__ import annotations

import os
from typing import Any

import click

from dsv.cli.app import _emit_json, _progress, _rel_paths, _repo, cli, json_option
from dsv.cli.summary import n_of
from dsv.errors import ExitCode


class _RevPathsCommand(click.Command):
    """``CMD [REV] [-- PATH...]``: what follows ``--`` is always paths, even with no REV."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            i = args.index("--")
            ctx.meta["dsv.paths"] = args[i + 1 :]
            args = args[:i]
        return super().parse_args(ctx, args)


def _paths(ctx: click.Context, positional: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(positional) + tuple(ctx.meta.get("dsv.paths", ()))


def _verification_json(v: Any, commit: str) -> dict[str, Any]:
    return {
        "ok": v.ok,
        "commit": commit,
        "tree": v.tree.hex(),
        "checked": v.checked,
        "hashed": v.hashed,
        "bytes_hashed": v.bytes_hashed,
        "modified": v.modified,
        "missing": v.missing,
        "extra": v.extra,
    }


def _print_problems(v: Any) -> None:
    for label, items in (("modified", v.modified), ("missing", v.missing), ("extra", v.extra)):
        for p in items:
            click.echo(f"  {label + ':':<10}{p}")


def _problem_counts(v: Any) -> str:
    return ", ".join(
        f"{len(items):,} {label}"
        for label, items in (("modified", v.modified), ("missing", v.missing), ("extra", v.extra))
        if items
    )


remote_options = [
    click.option("--endpoint-url", help="S3-compatible endpoint (e.g. MinIO)."),
    click.option("--region", help="S3 region."),
    click.option("--profile", help="AWS profile for credentials."),
]


def _with_remote_options(f: Any) -> Any:
    for opt in reversed(remote_options):
        f = opt(f)
    return f


# ---------------------------------------------------------------------- verify


@cli.command(cls=_RevPathsCommand)
@click.argument("rev", required=False)
@click.argument("paths", nargs=-1)
@click.option("--full", is_flag=True, help="Re-hash every file; do not trust the stat cache.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@json_option
@click.pass_context
def verify(
    ctx: click.Context,
    rev: str | None,
    paths: tuple[str, ...],
    full: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Check that the working tree holds exactly version REV (default HEAD).

    `dsv verify [REV] [-- PATH...]` exits 0 only if no file is modified,
    missing or extra (ignored files do not count); otherwise it lists them
    and exits 1.  Unchanged files cost a stat thanks to the stat cache;
    --full reads and hashes every file.
    """
    from dsv.api import training

    repo = _repo(ctx)
    rev = rev or "HEAD"
    rel = _rel_paths(repo, _paths(ctx, paths), ctx)
    from dsv.history import resolve

    commit = resolve(repo, rev).hex()
    v = training.verify(repo, commit, paths=rel, full=full, progress=_progress(quiet or as_json))
    if as_json:
        _emit_json({**_verification_json(v, commit), "rev": rev, "paths": rel})
    else:
        where = f"{rev} ({commit[:10]})" if rev != commit else commit[:10]
        if v.ok:
            click.echo(f"verified {n_of(v.checked, 'file')} against {where}: ok")
        else:
            _print_problems(v)
            click.echo(f"the working tree does not match {where}: {_problem_counts(v)}")
    if not v.ok:
        raise SystemExit(int(ExitCode.FAILURE))


# ---------------------------------------------------------------------- get


@cli.command()
@click.argument("url")
@click.argument("path")
@click.option("--rev", default="HEAD", show_default=True, help="Version to copy from.")
@click.option("-o", "--output", "out", help="Where to write it.")
@click.option("-f", "--force", is_flag=True, help="Write into an existing OUTPUT.")
@click.option("--no-cache", is_flag=True, help="Do not keep the downloaded data in ~/.cache/dsv.")
@_with_remote_options
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@json_option
@click.pass_context
def get(
    ctx: click.Context,
    url: str,
    path: str,
    rev: str,
    out: str | None,
    force: bool,
    no_cache: bool,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    jobs: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Copy PATH (a file or folder; `.` for all) of a version of the remote URL.

    No repository is created: only PATH's data is downloaded, verified and
    written to OUTPUT (default: PATH's last component, here).
    """
    from dsv.api import training
    from dsv.progress import human_bytes

    base = ctx.obj.get("cwd") or "."
    if out is not None:
        out = os.path.join(base, out)
    elif base != ".":
        name = path.strip("/").rpartition("/")[2]
        out = os.path.join(base, name) if name and name != "." else None
    r = training.get(
        url,
        path,
        out,
        rev=rev,
        endpoint_url=endpoint_url,
        region=region,
        profile=profile,
        use_cache=not no_cache,
        force=force,
        jobs=jobs,
        progress=_progress(quiet or as_json),
    )
    if as_json:
        _emit_json(
            {
                "commit": r.commit.hex(),
                "output": str(r.output),
                "files": r.files,
                "bytes": r.bytes,
                "requests": r.requests,
                "bytes_received": r.bytes_received,
            }
        )
        return
    click.echo(
        f"Copied {n_of(r.files, 'file')} ({human_bytes(r.bytes)}) of {rev} ({r.commit.hex()[:10]})"
        f" to {r.output}"
    )
    click.echo(f"received {human_bytes(r.bytes_received)} in {n_of(r.requests, 'request')}")


# ---------------------------------------------------------------------- pin / materialize


@cli.command(cls=_RevPathsCommand)
@click.argument("rev", required=False)
@click.argument("paths", nargs=-1)
@click.option("-o", "--output", "out", help="Write the pin file here.")
@click.option("--remote", "remote_name", help="Remote to pin (default: origin).")
@json_option
@click.pass_context
def pin(
    ctx: click.Context,
    rev: str | None,
    paths: tuple[str, ...],
    out: str | None,
    remote_name: str | None,
    as_json: bool,
) -> None:
    """Write a pin file naming the remote and commit of REV (default HEAD).

    `dsv pin [REV] [-- PATH...] [-o FILE]`: commit the file with your training
    code; `dsv materialize FILE` recreates exactly that data.  Refuses a commit
    the remote does not have (push it first).  Without -o, prints the file.
    """
    from dsv.api import training
    from dsv.atomic import write_atomic

    repo = _repo(ctx)
    rev = rev or "HEAD"
    rel = _rel_paths(repo, _paths(ctx, paths), ctx)
    p = training.pin(repo, rev, remote=remote_name, paths=rel)
    text = p.dumps()
    target = None
    if out is not None:
        from pathlib import Path

        target = Path(os.path.join(ctx.obj.get("cwd") or ".", out))
        write_atomic(target, text.encode())
    if as_json:
        _emit_json(
            {
                "remote": p.remote,
                "commit": p.commit,
                "rev": p.rev,
                "paths": p.paths,
                "file": str(target) if target is not None else None,
            }
        )
    elif target is None:
        click.echo(text, nl=False)
    else:
        what = f"{p.commit[:10]} ({p.rev})" if p.rev else p.commit[:10]
        click.echo(f"Pinned {what} of {p.remote} in {target}")


@cli.command()
@click.argument("pin_file", metavar="FILE")
@click.argument("directory", metavar="[DIR]", required=False)
@click.option("-f", "--force", is_flag=True, help="Discard local changes in DIR.")
@click.option("--full", is_flag=True, help="Verify by re-hashing every file.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@json_option
@click.pass_context
def materialize(
    ctx: click.Context,
    pin_file: str,
    directory: str | None,
    force: bool,
    full: bool,
    jobs: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Recreate the data a pin FILE names in DIR, then verify it.

    A new or empty DIR becomes a partial clone holding only the pinned commit
    (and paths); an existing clone is moved to it, downloading only what
    changed.  Exits 1 if the result does not match the pin exactly.
    """
    from dsv.api import training
    from dsv.progress import human_bytes

    base = ctx.obj.get("cwd") or "."
    pin_path = os.path.join(base, pin_file)
    target = os.path.join(base, directory) if directory else None
    if target is None and base != ".":
        p = training.read_pin(pin_path)
        target = os.path.join(base, os.path.basename(p.remote.rstrip("/")) or "dataset")
    r = training.materialize(
        pin_path, target, force=force, full=full, jobs=jobs, progress=_progress(quiet or as_json)
    )
    v = r.verification
    assert v is not None
    commit = r.commit.hex()
    if as_json:
        _emit_json(
            {
                "root": str(r.root),
                "commit": commit,
                "cloned": r.cloned,
                "written": r.written,
                "removed": r.removed,
                "bytes_received": r.bytes_received,
                "verify": _verification_json(v, commit),
            }
        )
    else:
        how = "cloned" if r.cloned else f"wrote {n_of(r.written, 'file')}, removed {r.removed:,}"
        click.echo(
            f"Materialized {commit[:10]} in {r.root} ({how}; received"
            f" {human_bytes(r.bytes_received)})"
        )
        if v.ok:
            click.echo(f"verified {n_of(v.checked, 'file')}: ok")
        else:
            _print_problems(v)
            click.echo(f"{r.root} does not match the pin: {_problem_counts(v)}")
            click.echo("hint: use --force to discard local changes", err=True)
    if not v.ok:
        raise SystemExit(int(ExitCode.FAILURE))
