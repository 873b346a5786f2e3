"""Injected faults (remote errors, throttling, timeouts, truncated and flipped responses, full disk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .fault_drills import DRILLS


@pytest.mark.parametrize("drill", DRILLS, ids=[d.__name__ for d in DRILLS])
def test_fault_drill(drill: object, tmp_path: Path) -> None:
    line, ok = drill(tmp_path, 42)  # type: ignore[operator]
    print(line)
    assert ok, line
