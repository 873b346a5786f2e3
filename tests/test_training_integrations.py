"""Experiment-tracker integrations: MLflow against a real local file store, W&B's contract."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from dsv.errors import DsvError
from dsv.integrations import flat_lineage

from . import training_data


@pytest.fixture
def dataset(work: Path) -> dict[str, str]:
    return training_data.build(work)


def test_flat_lineage_is_strings_only() -> None:
    flat = flat_lineage(
        {
            "commit": "ab",
            "dirty": False,
            "tags": ["v1", "v2"],
            "remotes": {"origin": "s3://x"},
            "changes": {"added": ["a"], "modified": [], "deleted": ["b", "c"]},
            "branch": None,
            "paths": ["p" * 2000],
        },
        "dsv.train",
    )
    assert flat == {
        "dsv.train.commit": "ab",
        "dsv.train.dirty": "false",
        "dsv.train.tags": "v1,v2",
        "dsv.train.remotes": '{"origin": "s3://x"}',
        "dsv.train.changes": "added 1, modified 0, deleted 2",
        "dsv.train.paths": "p" * 997 + "...",
    }


def test_mlflow_log_dataset_on_a_local_file_store(
    tmp_path: Path, work: Path, dataset: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    from dsv.integrations import mlflow as dsv_mlflow

    # MLflow 3 keeps its file store only on request (the test needs no database server)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    mlflow.set_experiment("dsv-test")
    with pytest.raises(DsvError, match="no active MLflow run"):
        dsv_mlflow.log_dataset(work)
    with mlflow.start_run() as run:
        lin = dsv_mlflow.log_dataset(work, rev="v1")
        dsv_mlflow.log_dataset(work / "tables", prefix="dsv.eval", artifact=False)
    got = mlflow.get_run(run.info.run_id)
    tags, params = got.data.tags, got.data.params
    assert lin["commit"] == dataset["v1"]
    assert tags["dsv.commit"] == dataset["v1"] and params["dsv.commit"] == dataset["v1"]
    assert tags["dsv.tags"] == "v1" and tags["dsv.source"] == "repository"
    assert tags["dsv.repo"] == str(work) and tags["dsv.dirty"] == "false"
    assert tags["dsv.eval.commit"] == dataset["v2"] and tags["dsv.eval.path"] == "tables"
    art = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="dsv"))
    assert json.loads((art / "lineage.json").read_text()) == lin
    # and by run id, outside the run
    dsv_mlflow.log_dataset(work, rev="v2", prefix="dsv.later", run_id=run.info.run_id)
    assert mlflow.get_run(run.info.run_id).data.tags["dsv.later.commit"] == dataset["v2"]


def test_wandb_log_dataset_writes_the_run_config(
    work: Path, dataset: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a stand-in with wandb's interface (``run.config.update``): wandb itself is not installed here."""
    from dsv.integrations import wandb as dsv_wandb

    class Config:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

        def update(self, d: dict[str, Any], allow_val_change: bool = False) -> None:
            assert allow_val_change
            self.data.update(d)

    run = types.SimpleNamespace(config=Config())
    fake = types.ModuleType("wandb")
    fake.run = None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with pytest.raises(DsvError, match="no active W&B run"):
        dsv_wandb.log_dataset(work)
    fake.run = run  # type: ignore[attr-defined]
    lin = dsv_wandb.log_dataset(work, rev="v1", key="train_data")
    assert run.config.data == {"train_data": lin} and lin["commit"] == dataset["v1"]


def test_missing_tracker_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, work: Path) -> None:
    from dsv.integrations import mlflow as dsv_mlflow

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(DsvError, match="MLflow is not installed"):
        dsv_mlflow.log_dataset(work)
