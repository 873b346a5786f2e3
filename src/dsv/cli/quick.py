"""What ``dsv status`` prints, and how any command's error becomes a message and an exit code.

Nothing here imports click: ``dsv status`` with its plain arguments runs
through :func:`dsv.cli.main` without it (click and what it pulls in take
about as long to import as a no-op status of 20,000 files takes to run),
and the click command prints through the same function, so that both say
the same thing.
"""

from __future__ import annotations

import contextlib
import os
import sys

from dsv.errors import DsvError, ExitCode

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_COLORS = {"green": 32, "yellow": 33, "red": 31}


def write_json(obj: object) -> None:
    """``obj`` as JSON on stdout, valid UTF-8 whatever the file names hold.

    A name that is not UTF-8 holds lone surrogates (``surrogateescape``): each is
    written as its JSON escape (``\\udcff``), which decodes back to the same string,
    instead of the raw byte that would make the output invalid UTF-8.
    """
    import json  # here: a plain status or commit never needs it

    text = json.dumps(obj, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        import re

        text = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def progress(quiet: bool = False) -> Any:
    from dsv.progress import Progress, TerminalProgress

    if quiet or not sys.stderr.isatty():
        return Progress()
    return TerminalProgress(sys.stderr)


def show_status(cwd: str | None, as_json: bool) -> None:
    """Run ``dsv status`` in ``cwd`` (default: here) and print the result."""
    from dsv import api

    repo = api.open_repo(cwd or ".")
    st = api.status(repo, progress(as_json))
    branch = st.head.branch[len("refs/heads/") :] if st.head.branch else None
    if as_json:
        write_json(
            {
                "branch": branch,
                "head": st.head.commit.hex() if st.head.commit else None,
                "clean": st.clean,
                "added": st.added,
                "modified": st.modified,
                "deleted": st.deleted,
                "skipped": st.skipped,
            }
        )
        return
    out = [
        f"On branch {branch}"
        if branch
        else f"HEAD detached at {st.head.commit.hex()[:10] if st.head.commit else '?'}"
    ]
    if st.head.commit is None:
        out.append("No commits yet")
    if st.clean:
        out.append("nothing to commit, working tree clean")
    color = sys.stdout.isatty()
    for label, paths, fg in (
        ("added", st.added, "green"),
        ("modified", st.modified, "yellow"),
        ("deleted", st.deleted, "red"),
    ):
        for p in paths:
            line = f"  {label + ':':<10} {p}"
            out.append(f"\x1b[{_COLORS[fg]}m{line}\x1b[0m" if color else line)
    sys.stdout.write("".join(x + "\n" for x in out))
    sys.stdout.flush()
    for p in st.skipped:
        sys.stderr.write(f"  skipped (not a regular file): {p}\n")


def failure(exc: BaseException) -> tuple[str, int, str | None] | None:
    """(message, exit code, hint) for an error that ended a command; None: re-raise it.

    ``DSV_DEBUG=1`` re-raises all but an interrupt, for a traceback.
    """
    debug = os.environ.get("DSV_DEBUG", "") not in ("", "0")
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", int(ExitCode.INTERRUPTED), None
    if debug:
        return None
    if isinstance(exc, DsvError):
        return exc.message, int(exc.exit_code), exc.hint
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", int(ExitCode.IO), None
    if isinstance(exc, Exception):  # a bug: say so plainly
        return (
            f"internal error: {exc.__class__.__name__}: {exc}",
            int(ExitCode.INTERNAL),
            "rerun with DSV_DEBUG=1 for a traceback and report it",
        )
    return None


def quiet_stdout() -> None:
    """After the reader of our output went away (``dsv show v1:x | head``): not an error."""
    with contextlib.suppress(OSError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def commit_lines(res: Any, message: str) -> list[str]:
    """What ``dsv commit`` prints: the new commit, its summary, its data changelog."""
    from dsv.cli.summary import changelog_lines, summary_line

    branch = res.branch[len("refs/heads/") :] if res.branch else None
    first = message.splitlines()[0] if message else ""
    summary = res.commit.summary
    return [
        f"[{branch or 'detached HEAD'} {res.id.hex()[:10]}] {first}",
        f" {summary_line(summary)}",
        *(f" {line}" for line in changelog_lines(summary)),
    ]


def show_commit(cwd: str | None, message: str, quiet: bool) -> None:
    """Run ``dsv commit -m MESSAGE [-q]`` in ``cwd`` (default: here) and print the result."""
    from dsv import api

    repo = api.open_repo(cwd or ".")
    res = api.commit(repo, message, progress=progress(quiet), warn=print_warning)
    sys.stdout.write("".join(line + "\n" for line in commit_lines(res, message)))
    sys.stdout.flush()


def run_status(cwd: str | None, as_json: bool) -> int:
    """``dsv status`` without click: the exit code (messages as the click app prints them)."""
    return run(show_status, cwd, as_json)


def run(command: Any, *args: Any) -> int:
    """A command without click: the exit code (messages as the click app prints them)."""
    try:
        command(*args)
    except BrokenPipeError:
        quiet_stdout()
        return 0
    except BaseException as exc:
        f = failure(exc)
        if f is None:
            raise
        message, code, hint = f
        print_error(message, hint)
        return code
    return 0


def print_warning(message: str) -> None:
    """``dsv: warning: MESSAGE`` on stderr."""
    sys.stderr.write(f"dsv: warning: {message}\n")
    sys.stderr.flush()


def print_error(message: str, hint: str | None = None) -> None:
    """``dsv: error: MESSAGE`` (and ``hint: HINT``) on stderr."""
    sys.stderr.write(f"dsv: error: {message}\n" + (f"hint: {hint}\n" if hint else ""))
