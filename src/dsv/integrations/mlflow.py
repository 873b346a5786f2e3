"""Record the data a run trained on in MLflow: ``log_dataset()`` inside ``mlflow.start_run()``.

Sets tags ``dsv.commit``, ``dsv.tree``, ``dsv.repo``/``dsv.remote``, ``dsv.path``,
``dsv.dirty``, ... (every lineage key, see docs/training.md), the param
``dsv.commit`` (so that run comparisons show it) and, unless ``artifact`` is
false, the whole lineage as the artifact ``dsv/lineage.json``.  MLflow is
imported only here; dsv does not depend on it.
"""

from __future__ import annotations

import os
from typing import Any

from dsv.errors import DsvError
from dsv.integrations import flat_lineage

__all__ = ["log_dataset"]


def _mlflow() -> Any:
    import importlib

    try:
        return importlib.import_module("mlflow")
    except ImportError:
        raise DsvError(
            "MLflow is not installed", hint="pip install mlflow (or mlflow-skinny)"
        ) from None


def log_dataset(
    path: str | os.PathLike[str] = ".",
    *,
    rev: str | None = None,
    remote: str | None = None,
    prefix: str = "dsv",
    run_id: str | None = None,
    artifact: bool = True,
    **remote_options: Any,
) -> dict[str, Any]:
    """Tag the active MLflow run (or ``run_id``) with ``dsv.lineage(path, rev=..., remote=...)``.

    Use a different ``prefix`` per dataset when a run reads several
    (``prefix="dsv.train"``, ``prefix="dsv.eval"``).  Returns the lineage.
    """
    from dsv.api.training import lineage

    mlflow = _mlflow()
    lin = lineage(path, rev=rev, remote=remote, **remote_options)
    tags = flat_lineage(lin, prefix)
    if run_id is None:
        run = mlflow.active_run()
        if run is None:
            raise DsvError(
                "no active MLflow run", hint="call log_dataset inside `with mlflow.start_run():`"
            )
        mlflow.set_tags(tags)
        mlflow.log_param(f"{prefix}.commit", lin["commit"])
        if artifact:
            mlflow.log_dict(lin, f"{prefix.replace('.', '/')}/lineage.json")
        return lin
    client = mlflow.tracking.MlflowClient()
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    client.log_param(run_id, f"{prefix}.commit", lin["commit"])
    if artifact:
        client.log_dict(run_id, lin, f"{prefix.replace('.', '/')}/lineage.json")
    return lin
