"""The commands ``dsv diff``, ``dsv changelog`` and ``dsv label``: parse, call the API, print.

Their text output lives in :mod:`dsv.cli.diffview`, imported when a command
runs: registering these commands is all that ``dsv status`` pays for.
"""

from __future__ import annotations

import os
from typing import Any

import click

from dsv.cli.app import _emit_json, _progress, _repo, cli, json_option

# ---------------------------------------------------------------------- dsv diff


class _DiffCommand(click.Command):
    """Keeps what follows ``--`` as paths (click would otherwise mix them with revisions)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            i = args.index("--")
            ctx.meta["dsv.paths"] = list(args[i + 1 :])
            args = args[:i]
        else:
            ctx.meta["dsv.paths"] = None
        return super().parse_args(ctx, args)


def _split_args(
    repo: Any, args: tuple[str, ...], paths: list[str] | None, cwd: str | None
) -> tuple[list[str], list[str] | None]:
    """Revisions and paths; without ``--``, the first argument that is not a revision starts the paths."""
    from dsv.errors import DsvError, NotFoundError
    from dsv.history import resolve

    if paths is not None:
        return list(args), paths
    revs: list[str] = []
    for i, a in enumerate(args):
        try:
            for part in a.split("..") if ".." in a else [a]:
                resolve(repo, part or "HEAD")
            revs.append(a)
            continue
        except DsvError:
            pass
        if os.path.lexists(os.path.join(cwd or ".", a)):
            return revs, list(args[i:])
        raise NotFoundError(
            f"unknown revision or path not in the working tree: {a}",
            hint="use '--' to separate paths from revisions",
        )
    return revs, None


@cli.command(cls=_DiffCommand)
@click.argument("args", nargs=-1)
@click.option("--stat", is_flag=True, help="Only counts: files, rows per table, labels.")
@click.option(
    "--name-status", is_flag=True, help="One line per changed path (A/D/M/R), no table parsing."
)
@click.option("--labels", "labels_only", is_flag=True, help="Only the label changes.")
@click.option(
    "--rows",
    "rows",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Sample rows to show per table.",
)
@click.option("--key", metavar="COL", help="Match table rows by column COL.")
@click.option("--exit-code", is_flag=True, help="Exit 1 if there are differences.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@json_option
@click.pass_context
def diff(
    ctx: click.Context,
    args: tuple[str, ...],
    stat: bool,
    name_status: bool,
    labels_only: bool,
    rows: int,
    key: str | None,
    exit_code: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Show what changed: files, table rows and labels.

    \b
    dsv diff                   working tree against HEAD
    dsv diff REV               working tree against REV
    dsv diff A B   (or A..B)   version A against version B
    dsv diff [REV...] -- PATH  only below PATH
    """
    from dsv.api import diff as dapi
    from dsv.api import repo_path

    repo = _repo(ctx)
    revs, raw_paths = _split_args(repo, args, ctx.meta.get("dsv.paths"), ctx.obj.get("cwd"))
    paths = (
        [repo_path(repo, p, ctx.obj.get("cwd")) for p in raw_paths]
        if raw_paths is not None
        else None
    )
    res = dapi.diff(
        repo,
        revs,
        paths=paths,
        key=key,
        samples=rows,
        tables=not (name_status or labels_only),
        labels=not name_status,
        labels_only=labels_only,
        progress=_progress(quiet or as_json),
    )
    for w in res.diff.warnings:
        click.echo(f"dsv: warning: {w}", err=True)
    if as_json:
        _emit_json(res.as_dict())
    else:
        from dsv.cli import diffview

        if name_status:
            diffview.print_name_status(res.diff)
        elif stat:
            diffview.print_stat(res.diff)
        else:
            diffview.print_diff(res.diff, labels_only)
    if exit_code and not res.diff.empty:
        raise click.exceptions.Exit(1)


# ---------------------------------------------------------------------- dsv changelog


@cli.command()
@click.argument("range_", metavar="[A..B]", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="Markdown release notes, or JSON.",
)
@json_option
@click.pass_context
def changelog(ctx: click.Context, range_: str | None, fmt: str, as_json: bool) -> None:
    """Write the dataset changelog of a range of commits (default: all of HEAD's history).

    A..B is every commit reachable from B but not from A (B defaults to HEAD).
    Each entry comes from the summary stored at commit time: nothing is recomputed.
    """
    from dsv.api import diff as dapi

    repo = _repo(ctx)
    cl = dapi.changelog(repo, range_)
    if as_json or fmt == "json":
        _emit_json(
            {
                "range": range_,
                "from": cl.since.hex() if cl.since else None,
                "to": cl.until.hex() if cl.until else None,
                "totals": cl.totals,
                "commits": [
                    {
                        "id": oid.hex(),
                        "parents": [p.hex() for p in c.parents],
                        "author": c.author,
                        "time": c.time,
                        "tz": c.tz,
                        "message": c.message,
                        "summary": c.summary,
                        "meta": c.meta,
                    }
                    for oid, c in cl.commits
                ],
            }
        )
        return
    from dsv.cli.diffview import changelog_markdown

    for line in changelog_markdown(range_, cl.commits, cl.totals):
        click.echo(line)


# ---------------------------------------------------------------------- dsv label


@cli.command()
@click.argument("path", required=False)
@click.option("--column", "column", metavar="COL", help="PATH is a table whose labels are in COL.")
@click.option("--folders", is_flag=True, help="PATH holds class folders: PATH/[SPLIT/]CLASS/FILE.")
@click.option("--none", "none_", is_flag=True, help="No labels at or below PATH.")
@click.option("--split", metavar="COL", help="Split column of the table at PATH.")
@click.option("--key", metavar="COL", help="Key column of the table at PATH (rows match by it).")
@click.option("--unset", is_flag=True, help="Forget the settings of PATH.")
@click.option(
    "--rev", metavar="REV", help="With no PATH: report on REV instead of the working tree."
)
@json_option
@click.pass_context
def label(
    ctx: click.Context,
    path: str | None,
    column: str | None,
    folders: bool,
    none_: bool,
    split: str | None,
    key: str | None,
    unset: bool,
    rev: str | None,
    as_json: bool,
) -> None:
    """Configure where labels and keys are, or show what dsv finds.

    \b
    dsv label                               configured and detected label sources
    dsv label labels.parquet --column label --split split --key id
    dsv label images --folders              images/[train|val/]CLASS/FILE
    dsv label raw --none                    no label detection below raw/
    dsv label labels.parquet --unset
    """
    from dsv.api import diff as dapi
    from dsv.api import repo_path
    from dsv.cli.diffview import label_report, setting_text
    from dsv.labels import FOLDERS, NONE

    repo = _repo(ctx)
    if sum(bool(x) for x in (column, folders, none_)) > 1:
        raise click.UsageError("give only one of --column, --folders, --none")
    setting = any((column, folders, none_, split, key))
    if path is None:
        if setting or unset:
            raise click.UsageError("PATH is required to change a setting")
        label_report(dapi.label_report(repo, rev), as_json)
        return
    rel = repo_path(repo, path, ctx.obj.get("cwd"))
    if unset:
        if setting:
            raise click.UsageError("--unset takes no other option")
        gone = dapi.label_unset(repo, rel)
        if as_json:
            _emit_json({"path": rel, "unset": gone})
        else:
            click.echo(
                f"Forgot the settings of {rel or '.'}" if gone else f"{rel or '.'} had no settings"
            )
        return
    if not setting:
        st = dapi.label_settings(repo).entries.get(rel)
        if as_json:
            _emit_json(
                st.as_dict() if st else {"path": rel, "key": None, "label": None, "split": None}
            )
        elif st is None:
            click.echo(f"{rel or '.'}: nothing configured (detected when obvious)")
        else:
            click.echo(setting_text(st))
        return
    value = column if column else (FOLDERS if folders else (NONE if none_ else None))
    st = dapi.label_set(repo, rel, key=key, label=value, split=split)
    if as_json:
        _emit_json(st.as_dict())
    else:
        click.echo(setting_text(st))
