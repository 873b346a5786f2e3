"""SIGKILL a real dsv process at random moments; the repository must stay valid.

CI runs DSV_CRASH_TRIALS trials per command (default 6); bench/reliability.py
runs 50 or more and prints the counts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .crash_harness import ALL

TRIALS = int(os.environ.get("DSV_CRASH_TRIALS", "6"))


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(ALL))
def test_killed_command_leaves_repository_valid(command: str, tmp_path: Path) -> None:
    outcome = ALL[command](tmp_path, TRIALS, 1234)
    print(outcome.line())
    assert outcome.failures == []
    assert outcome.valid == outcome.trials == TRIALS
