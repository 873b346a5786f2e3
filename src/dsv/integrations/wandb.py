"""Record the data a run trained on in Weights & Biases: ``log_dataset()`` after ``wandb.init()``.

Writes ``dsv.lineage()`` into the run's config under ``key`` (default
``"dsv"``: ``config.dsv.commit``, ``config.dsv.tree``, ...), where W&B shows
it beside the hyper-parameters and can filter runs by it.  wandb is
imported only here; dsv does not depend on it.
"""

from __future__ import annotations

import os
from typing import Any

from dsv.errors import DsvError

__all__ = ["log_dataset"]


def _wandb() -> Any:
    import importlib

    try:
        return importlib.import_module("wandb")
    except ImportError:
        raise DsvError("wandb is not installed", hint="pip install wandb") from None


def log_dataset(
    path: str | os.PathLike[str] = ".",
    *,
    rev: str | None = None,
    remote: str | None = None,
    key: str = "dsv",
    run: Any = None,
    **remote_options: Any,
) -> dict[str, Any]:
    """Put ``dsv.lineage(path, rev=..., remote=...)`` in the config of ``run`` (default: ``wandb.run``).

    Use a different ``key`` per dataset when a run reads several.  Returns the lineage.
    """
    from dsv.api.training import lineage

    if run is None:
        run = _wandb().run
        if run is None:
            raise DsvError("no active W&B run", hint="call wandb.init() first")
    lin = lineage(path, rev=rev, remote=remote, **remote_options)
    run.config.update({key: lin}, allow_val_change=True)
    return lin
