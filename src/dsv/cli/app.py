"""The ``dsv`` click application: every command, its options and its output.

Errors are printed as ``dsv: error: ...`` (plus a hint) with the exit code of
their type (docs/cli.md); no traceback reaches a user unless DSV_DEBUG is set.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from dsv import __version__
from dsv.cli.quick import (
    commit_lines,
    failure,
    print_error,
    print_warning,
    progress,
    quiet_stdout,
    show_status,
    write_json,
)
from dsv.cli.summary import changelog_lines, n_of, summary_line
from dsv.errors import ExitCode

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------- helpers


_progress = progress
_emit_json = write_json


def _repo(ctx: click.Context) -> Any:
    from dsv import api

    return api.open_repo(ctx.obj.get("cwd") or ".")


def _rel_paths(repo: Any, paths: tuple[str, ...], ctx: click.Context) -> list[str] | None:
    from dsv import api

    if not paths:
        return None
    return [api.repo_path(repo, p, ctx.obj.get("cwd")) for p in paths]


def _fmt_time(t: int, tz: int) -> str:
    sign = "+" if tz >= 0 else "-"
    off = abs(tz)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + tz * 60))
    return f"{stamp} {sign}{off // 60:02d}{off % 60:02d}"


def _commit_json(repo: Any, oid: bytes, c: Any, decor: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": oid.hex(),
        "tree": c.tree.hex(),
        "parents": [p.hex() for p in c.parents],
        "author": c.author,
        "time": c.time,
        "tz": c.tz,
        "message": c.message,
        "summary": c.summary,
        "meta": c.meta,
        "refs": decor or [],
    }


# ---------------------------------------------------------------------- the group


def _fail(message: str, code: int, hint: str | None = None) -> NoReturn:
    print_error(message, hint)
    raise click.exceptions.Exit(code)


class DsvGroup(click.Group):
    """Maps errors to a message and an exit code (works the same under CliRunner)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            quiet_stdout()
            raise click.exceptions.Exit(0) from None
        except BaseException as exc:
            f = failure(exc)
            if f is None:
                raise
            _fail(*f)


@click.group(cls=DsvGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dsv")
@click.option("-C", "cwd", metavar="DIR", help="Run as if dsv was started in DIR.")
@click.pass_context
def cli(ctx: click.Context, cwd: str | None) -> None:
    """dsv: version datasets like code.

    Commit a directory of data, see what changed, and check out any exact
    version, byte for byte.
    """
    ctx.ensure_object(dict)
    ctx.obj["cwd"] = cwd


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (schema in docs/cli.md)."
)


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option(
    "--hash",
    "hash_name",
    type=click.Choice(["xxh3-128", "blake3"]),
    default="xxh3-128",
    show_default=True,
    help="Object id algorithm. blake3 is cryptographic: choose it for stores shared with untrusted writers.",
)
@json_option
@click.pass_context
def init(ctx: click.Context, directory: str, hash_name: str, as_json: bool) -> None:
    """Create an empty repository in DIRECTORY (default: here)."""
    from dsv import api

    base = ctx.obj.get("cwd") or "."
    repo = api.init(os.path.join(base, directory), hash_name)
    if as_json:
        _emit_json({"root": str(repo.root), "hash": repo.algo.name})
    else:
        click.echo(f"Initialized empty dsv repository in {repo.dsv_dir} (hash {repo.algo.name})")


@cli.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show files added, modified and deleted since the last commit (HEAD)."""
    show_status(ctx.obj.get("cwd"), as_json)


def _parse_meta(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {v!r}", param_hint="--meta")
        out[key] = val
    return out


@cli.command()
@click.option("-m", "--message", required=True, help="Commit message.")
@click.option(
    "--meta",
    multiple=True,
    metavar="KEY=VALUE",
    help="Free metadata (e.g. a training run id); repeatable.",
)
@click.option("--allow-empty", is_flag=True, help="Commit even if nothing changed.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@json_option
@click.argument("paths", nargs=-1, type=click.Path())
@click.pass_context
def commit(
    ctx: click.Context,
    message: str,
    meta: tuple[str, ...],
    allow_empty: bool,
    quiet: bool,
    as_json: bool,
    paths: tuple[str, ...],
) -> None:
    """Record the working tree (or only PATHS) as a new version.

    There is no staging area: what is on disk is what gets committed.
    Files matching .dsvignore are left out.
    """
    from dsv import api

    repo = _repo(ctx)
    res = api.commit(
        repo,
        message,
        paths=_rel_paths(repo, paths, ctx),
        meta=_parse_meta(meta),
        allow_empty=allow_empty,
        progress=_progress(quiet or as_json),
        warn=print_warning,
    )
    branch = res.branch[len("refs/heads/") :] if res.branch else None
    if as_json:
        refs = [f"HEAD -> {branch}"] if branch else ["HEAD"]
        _emit_json({**_commit_json(repo, res.id, res.commit, refs), "branch": branch})
        return
    for line in commit_lines(res, message):
        click.echo(line)


@cli.command()
@click.argument("rev", required=False)
@click.option(
    "-n", "--max-count", "limit", type=click.IntRange(min=0), help="Show at most N commits."
)
@click.option("--oneline", is_flag=True, help="One line per commit.")
@click.option("--stat", is_flag=True, help="Show each commit's change summary.")
@json_option
@click.pass_context
def log(
    ctx: click.Context, rev: str | None, limit: int | None, oneline: bool, stat: bool, as_json: bool
) -> None:
    """Show the history of REV (default: HEAD), newest first."""
    from dsv import api
    from dsv.history import decorations

    repo = _repo(ctx)
    entries = api.log(repo, rev, limit)
    decor = decorations(repo)
    if as_json:
        _emit_json([_commit_json(repo, oid, c, decor.get(oid)) for oid, c in entries])
        return
    for i, (oid, c) in enumerate(entries):
        d = decor.get(oid)
        dtext = f" ({', '.join(d)})" if d else ""
        if oneline:
            first = c.message.splitlines()[0] if c.message else ""
            click.echo(f"{oid.hex()[:10]}{dtext} {first}")
            if stat:
                click.echo(f"    {summary_line(c.summary)}")
                _echo_changelog(c.summary, "    ")
            continue
        if i:
            click.echo("")
        click.echo(
            click.style(f"commit {oid.hex()}", fg="yellow" if sys.stdout.isatty() else None) + dtext
        )
        _print_commit_body(c, stat=stat)


def _print_commit_body(c: Any, stat: bool = True) -> None:
    click.echo(f"Author: {c.author}")
    click.echo(f"Date:   {_fmt_time(c.time, c.tz)}")
    for k, v in sorted(c.meta.items()):
        click.echo(f"Meta:   {k}={v}")
    click.echo("")
    for line in (c.message or "").splitlines() or [""]:
        click.echo(f"    {line}")
    if stat and c.summary:
        click.echo("")
        click.echo(f"    {summary_line(c.summary)}")
        _echo_changelog(c.summary, "    ")


def _echo_changelog(summary: dict[str, Any], indent: str) -> None:
    """The data changelog stored in a commit (tables, labels), below its summary line."""
    for line in changelog_lines(summary):
        click.echo(f"{indent}{line}")


@cli.command()
@click.argument("spec", default="HEAD")
@json_option
@click.pass_context
def show(ctx: click.Context, spec: str, as_json: bool) -> None:
    """Show a commit (REV) and its summary, or a file's bytes (REV:PATH)."""
    from dsv import api
    from dsv.history import decorations

    repo = _repo(ctx)
    if ":" in spec:
        out = sys.stdout.buffer
        for data in api.cat(repo, spec):
            out.write(data)
        out.flush()
        return
    obj_id = api.object_id(repo, spec)
    tag = api.tag_message(repo, obj_id)
    oid = api.resolve_commit(repo, spec)
    c = repo.read_commit(oid)
    decor = decorations(repo).get(oid)
    if as_json:
        info = _commit_json(repo, oid, c, decor)
        if tag is not None:
            info["tag"] = {
                "name": tag.name,
                "tagger": tag.tagger,
                "time": tag.time,
                "tz": tag.tz,
                "message": tag.message,
            }
        _emit_json(info)
        return
    if tag is not None:
        click.echo(
            f"tag {tag.name}\nTagger: {tag.tagger}\nDate:   {_fmt_time(tag.time, tag.tz)}\n\n{tag.message}\n"
        )
    dtext = f" ({', '.join(decor)})" if decor else ""
    click.echo(f"commit {oid.hex()}{dtext}")
    _print_commit_body(c)


@cli.command("ls-tree")
@click.argument("rev", default="HEAD")
@click.argument("path", default="")
@click.option("-r", "recursive", is_flag=True, help="Recurse into directories.")
@json_option
@click.pass_context
def ls_tree(ctx: click.Context, rev: str, path: str, recursive: bool, as_json: bool) -> None:
    """List the entries of REV's tree (or of PATH in it)."""
    from dsv import api
    from dsv.objects import KIND_NAMES

    repo = _repo(ctx)
    rows = api.ls_tree(repo, rev, path.strip("/"), recursive)
    if as_json:
        _emit_json(
            [
                {
                    "path": p,
                    "type": KIND_NAMES[e.kind],
                    "mode": f"{e.mode:04o}",
                    "size": e.size,
                    "id": e.id.hex(),
                }
                for p, e in rows
            ]
        )
        return
    for p, e in rows:
        click.echo(f"{e.mode:04o} {KIND_NAMES[e.kind]:<7} {e.id.hex()} {e.size:>12}\t{p}")


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("rev")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "-f", "--force", is_flag=True, help="Discard local changes that would be overwritten."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@json_option
@click.pass_context
def checkout(
    ctx: click.Context, rev: str, paths: tuple[str, ...], force: bool, quiet: bool, as_json: bool
) -> None:
    """Make the working tree hold version REV (or only PATHS of it: `dsv checkout REV -- PATH...`).

    A branch name switches to that branch; a commit id or tag detaches HEAD.
    Files the version does not have are removed; untracked files are left alone.
    Refuses to overwrite uncommitted changes unless --force.
    """
    from dsv import api

    repo = _repo(ctx)
    out = api.checkout(
        repo,
        rev,
        paths=_rel_paths(repo, paths, ctx),
        force=force,
        progress=_progress(quiet or as_json),
    )
    r = out.result
    if as_json:
        _emit_json(
            {
                "commit": out.commit.hex(),
                "branch": out.branch[len("refs/heads/") :] if out.branch else None,
                "written": r.written,
                "removed": len(r.removed),
                "kept": r.kept,
                "bytes_written": r.bytes_written,
            }
        )
        return
    from dsv.progress import human_bytes

    if paths:
        click.echo(
            f"Restored {n_of(r.written, 'file')} from {rev} ({human_bytes(r.bytes_written)})"
        )
    elif out.branch:
        click.echo(
            f"Switched to branch '{out.branch[len('refs/heads/') :]}' ({out.commit.hex()[:10]})"
        )
    else:
        click.echo(f"HEAD is now at {out.commit.hex()[:10]} (detached)")
    if not paths:
        click.echo(
            f" wrote {n_of(r.written, 'file')} ({human_bytes(r.bytes_written)}),"
            f" removed {len(r.removed):,}"
        )
    for p in r.kept:
        click.echo(f"  kept local change: {p}")


@cli.command()
@click.argument("name", required=False)
@click.argument("rev", required=False, default="HEAD")
@click.option("-d", "--delete", "delete", metavar="NAME", help="Delete branch NAME.")
@click.option("-f", "--force", is_flag=True, help="Move an existing branch.")
@json_option
@click.pass_context
def branch(
    ctx: click.Context, name: str | None, rev: str, delete: str | None, force: bool, as_json: bool
) -> None:
    """List branches, create NAME at REV, or delete one (-d)."""
    from dsv import api

    repo = _repo(ctx)
    if delete:
        old = api.branch_delete(repo, delete)
        if as_json:
            _emit_json({"deleted": delete, "was": old.hex()})
        else:
            click.echo(f"Deleted branch {delete} (was {old.hex()[:10]})")
        return
    if name:
        existed = name in api.branches(repo)
        oid = api.branch_create(repo, name, rev, force)
        if as_json:
            _emit_json({"branch": name, "commit": oid.hex()})
        else:
            click.echo(f"{'Moved' if existed else 'Created'} branch {name} to {oid.hex()[:10]}")
        return
    head = repo.refs.head()
    current = head.branch[len("refs/heads/") :] if head.branch else None
    items = api.branches(repo)
    if as_json:
        rows: list[dict[str, Any]] = [
            {"name": n, "commit": o.hex(), "current": n == current} for n, o in items.items()
        ]
        if current and current not in items:
            rows.insert(0, {"name": current, "commit": None, "current": True})
        _emit_json(rows)
        return
    if current and current not in items:
        click.echo(f"* {current} (no commits yet)")
    for n, o in items.items():
        click.echo(f"{'*' if n == current else ' '} {n}  {o.hex()[:10]}")


@cli.command()
@click.argument("name", required=False)
@click.argument("rev", required=False, default="HEAD")
@click.option("-m", "--message", help="Make an annotated tag with this message.")
@click.option("-d", "--delete", "delete", metavar="NAME", help="Delete tag NAME.")
@click.option("-f", "--force", is_flag=True, help="Replace an existing tag.")
@json_option
@click.pass_context
def tag(
    ctx: click.Context,
    name: str | None,
    rev: str,
    message: str | None,
    delete: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """List tags, create tag NAME at REV, or delete one (-d)."""
    from dsv import api

    repo = _repo(ctx)
    if delete:
        old = api.tag_delete(repo, delete)
        if as_json:
            _emit_json({"deleted": delete, "was": old.hex()})
        else:
            click.echo(f"Deleted tag {delete} (was {old.hex()[:10]})")
        return
    if name:
        oid = api.tag_create(repo, name, rev, message, force)
        if as_json:
            _emit_json(
                {"tag": name, "object": oid.hex(), "commit": api.resolve_commit(repo, name).hex()}
            )
        else:
            click.echo(f"Tagged {api.resolve_commit(repo, name).hex()[:10]} as {name}")
        return
    items = api.tags(repo)
    if as_json:
        _emit_json(
            [
                {"name": n, "object": o.hex(), "commit": api.resolve_commit(repo, n).hex()}
                for n, o in items.items()
            ]
        )
        return
    for n in items:
        click.echo(n)


@cli.command("rev-parse")
@click.argument("rev")
@click.option(
    "--short",
    is_flag=True,
    help="A short unique prefix (10 hex digits, more if needed to be unique).",
)
@click.pass_context
def rev_parse(ctx: click.Context, rev: str, short: bool) -> None:
    """Print the commit id that REV names (HEAD~2, v1^, a branch, a short id...)."""
    from dsv import api

    click.echo(api.rev_parse(_repo(ctx), rev, short))


@cli.command()
@click.option(
    "--prune-reflogs",
    is_flag=True,
    help="Also drop what only the reflogs remember (deleted branches, old checkouts), and empty the reflogs.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@json_option
@click.pass_context
def gc(ctx: click.Context, prune_reflogs: bool, quiet: bool, as_json: bool) -> None:
    """Remove data no ref or reflog reaches, and repack the rest into few packs."""
    from dsv import api
    from dsv.progress import human_bytes

    r = api.gc(_repo(ctx), _progress(quiet or as_json), keep_reflogs=not prune_reflogs)
    if as_json:
        _emit_json(r.as_dict())
        return
    click.echo(
        f"packs {r.packs_before} -> {r.packs_after}, objects {r.objects_before:,} -> {r.objects_after:,}, "
        f"store {human_bytes(r.bytes_before)} -> {human_bytes(r.bytes_after)}"
    )


@cli.command()
@click.option("--remote", "remote_name", metavar="NAME", help="Check remote NAME instead.")
@click.option("--full", is_flag=True, help="With --remote: also read and verify every chunk.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@json_option
@click.pass_context
def fsck(
    ctx: click.Context, remote_name: str | None, full: bool, quiet: bool, as_json: bool
) -> None:
    """Verify every pack and every reachable object; exit 1 on any problem.

    Locally everything is read and verified.  With --remote, the remote's refs,
    indexes, pack sizes, commits, trees and chunk lists are verified and every
    chunk is checked to be present; --full reads and verifies the chunks too.
    """
    from dsv import api
    from dsv.progress import human_bytes

    if remote_name is not None:
        from dsv.api import remote as rapi

        rc = rapi.fsck_remote(
            _repo(ctx), remote_name, full=full, progress=_progress(quiet or as_json)
        )
        _fsck_report(
            as_json,
            rc.problems,
            {
                "ok": rc.ok,
                "remote": remote_name,
                "refs": rc.refs,
                "packs": rc.packs,
                "commits": rc.commits,
                "trees": rc.trees,
                "files": rc.files,
                "chunks": rc.chunks,
                "bytes_read": rc.bytes_read,
            },
            f"checked remote {remote_name}: {rc.refs} refs, {rc.packs} packs, {rc.commits}"
            f" commits, {rc.trees} trees, {rc.files:,} files, {rc.chunks:,} chunks"
            f" (read {human_bytes(rc.bytes_read)}): "
            + ("ok" if rc.ok else f"{len(rc.problems)} problems"),
        )
        return
    r = api.fsck(_repo(ctx), _progress(quiet or as_json))
    _fsck_report(
        as_json,
        r.problems,
        {
            "ok": r.ok,
            "packs": r.packs,
            "commits": r.commits,
            "trees": r.trees,
            "files": r.files,
            "chunks": r.chunks,
            "bytes_checked": r.bytes_checked,
            "not_fetched": r.not_fetched,
        },
        f"checked {r.packs} packs, {r.commits} commits, {r.trees} trees, {r.files:,} files, "
        f"{r.chunks:,} chunks ({human_bytes(r.bytes_checked)}): "
        + ("ok" if r.ok else f"{len(r.problems)} problems")
        + (f" ({r.not_fetched:,} trees and files not fetched)" if r.not_fetched else ""),
    )


def _fsck_report(as_json: bool, problems: Any, counts: dict[str, Any], line: str) -> None:
    """Print an fsck result (problems first, with the paths they affect); exit 1 if not ok."""
    if as_json:
        _emit_json({**counts, "problems": [p.as_dict() for p in problems]})
    else:
        for p in problems:
            click.echo(f"{p.kind}: {p.oid}: {p.message}", err=True)
            for w in p.where[:20]:
                click.echo(f"    affects {w}", err=True)
        click.echo(line)
    if not counts["ok"]:
        raise SystemExit(int(ExitCode.FAILURE))


# Commands defined in their own modules register themselves on `cli`.
from dsv.cli import diff as _diff  # noqa: E402,F401
from dsv.cli import remote as _remote  # noqa: E402,F401
from dsv.cli import training as _training  # noqa: E402,F401
