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
    from typing import Any


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
    """Console entry point."""
    args = sys.argv[1:] if argv is None else argv
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
