"""Optional integrations with experiment trackers (MLflow, Weights & Biases).

Each module imports its tracker only when called: dsv depends on neither.
They record ``dsv.lineage()`` on the active run, so that the run says which
exact data it saw (docs/training.md).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["flat_lineage"]

# Tracker tags hold short strings: long path lists are cut (the full lineage
# goes in an artifact or the config, where the tracker allows it).
MAX_TAG_CHARS = 1000


def flat_lineage(lin: dict[str, Any], prefix: str = "dsv") -> dict[str, str]:
    """``dsv.lineage()`` as ``{prefix.key: string}``, the shape trackers' tags take."""
    out: dict[str, str] = {}
    for key, value in lin.items():
        if value is None:
            continue
        if key == "changes":
            counts = {k: len(v) for k, v in value.items()}
            text = ", ".join(f"{k} {n}" for k, n in counts.items())
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(str(x) for x in value)
        elif isinstance(value, dict):
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        else:
            text = str(value)
        if len(text) > MAX_TAG_CHARS:
            text = text[: MAX_TAG_CHARS - 3] + "..."
        out[f"{prefix}.{key}"] = text
    return out
