"""Every decoder of untrusted bytes either decodes or raises dsv's own error type."""

from __future__ import annotations

import pytest

from .fuzz_decoders import NAMES, fuzz_one


@pytest.mark.parametrize("name", NAMES)
def test_decoder_raises_only_dsv_errors(name: str) -> None:
    cases, failures = fuzz_one(name, 150)
    assert cases >= 150
    assert failures == [], failures[:5]
