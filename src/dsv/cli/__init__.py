"""The ``dsv`` command: parse arguments, call :mod:`dsv.api`, print text or JSON.

The commands are a click application (:mod:`dsv.cli.app`).  ``dsv status``
with plain arguments (``[-C DIR] status [--json]``) skips click: importing it
costs about as much as the status itself (:mod:`dsv.cli.quick`).  So does
``dsv commit`` with only a message and ``-q`` (``[-C DIR] commit -m MSG [-q]``):
click is a twentieth of a commit of 10,000 small files.

Errors are printed as ``dsv: error: ...`` (plus a hint) with the exit code of
their type (docs/cli.md); no traceback reaches a user unless DSV_DEBUG is set.
"""

from __future__ import annotations

import sys

# typing is imported for the type checker only: `dsv status` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def _plain_status(args: list[str]) -> tuple[str | None, bool] | None:
    """(``-C`` dir, ``--json``) if ``args`` are ``[-C DIR] status [--json]``, else None."""
    cwd = None
    if len(args) >= 2 and args[0] == "-C":
        cwd, args = args[1], args[2:]
    if args == ["status"] or args == ["status", "--json"]:
        return cwd, len(args) == 2
    return None


def _plain_commit(args: list[str]) -> tuple[str | None, str, bool] | None:
    """(``-C`` dir, message, ``-q``) if ``args`` are ``[-C DIR] commit -m MSG [-q]`` (the
    options in any order, long or short), else None."""
    cwd = None
    if len(args) >= 2 and args[0] == "-C":
        cwd, args = args[1], args[2:]
    if not args or args[0] != "commit":
        return None
    message: str | None = None
    quiet = False
    rest = args[1:]
    while rest:
        opt = rest.pop(0)
        if opt in ("-q", "--quiet") and not quiet:
            quiet = True
        elif opt in ("-m", "--message") and message is None and rest and rest[0][:1] != "-":
            message = rest.pop(0)
        else:
            return None  # anything else: the click command parses it
    return None if message is None else (cwd, message, quiet)


class _NoPandas:
    """Refuses ``import pandas`` in the ``dsv`` process.

    No command needs pandas, but pyarrow imports it, when installed, on its
    first ``to_numpy``, ``pa.array`` or ``pa.scalar``, to check for pandas
    types: half a second of every table diff and of every commit that
    changes a table.  Without it pyarrow takes the plain paths.  Only the
    command line does this; ``dsv.api`` in a user's process leaves imports alone.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("the dsv command does not use pandas", name=name)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``argv``: the arguments, for a caller in its own process,
    which then gets ``SystemExit`` as from any click application)."""
    if argv is not None:
        _run(argv)
        return
    try:
        _run(sys.argv[1:])
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


def leave(code: str | int | None) -> NoReturn:
    """End the ``dsv`` process with exit code ``code`` (as ``SystemExit`` takes it),
    without the interpreter's teardown.

    Teardown frees every object and module one by one, for nothing the
    operating system does not do at once: measured, `dsv log` took 58 ms
    instead of 74, a no-op status of 10,000 files 81 ms instead of 87.  What
    it would do that matters is done first: the ``atexit`` handlers run
    (weakref finalizers among them), stdout and stderr are flushed.  A flush
    that fails is reported as an I/O error, where teardown would only have
    said "Exception ignored" (exit 120); a reader gone away (``dsv log |
    head``) is not an error, as everywhere in dsv.  With a thread still
    running that the interpreter would wait for, this exits the ordinary way.
    """
    threading = sys.modules.get("threading")
    if threading is not None and any(
        t.is_alive() and not t.daemon and t is not threading.main_thread()
        for t in threading.enumerate()
    ):
        sys.exit(code)
    import atexit
    import contextlib
    import os

    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    except OSError as exc:
        from dsv.errors import ExitCode

        sys.stderr.write(f"dsv: error: cannot write the output: {exc.strerror or exc}\n")
        code = code or ExitCode.IO
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)


def _run(args: list[str]) -> None:
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _NoPandas())
    plain = _plain_status(args)
    if plain is not None:
        from dsv.cli.quick import run_status

        sys.exit(run_status(*plain))
    commit = _plain_commit(args)
    if commit is not None:
        from dsv.cli.quick import run, show_commit

        sys.exit(run(show_commit, *commit))
    from dsv.cli.app import cli

    cli.main(args=args, prog_name="dsv")


def __getattr__(name: str) -> Any:
    """``dsv.cli.cli`` and the app's helpers, imported when first asked for."""
    import importlib

    if name.startswith("__") or name == "app":
        raise AttributeError(name)
    app = importlib.import_module("dsv.cli.app")
    try:
        return getattr(app, name)
    except AttributeError:
        raise AttributeError(f"module 'dsv.cli' has no attribute {name!r}") from None
