"""The real samples in ../shared/data: present beside CI and dev clones, absent from a bare checkout.

Tests that read them call :func:`require`: without the data they are skipped, with a message naming what is
missing, except under CI (``WM_HUB_REQUIRE_SHARED=1``, set by ``.ci/run``), where missing data fails the test, so a
CI run can never pass by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCH_MINI = SHARED_DATA / "aurora-bench-mini"


def require(*paths: Path) -> None:
    """Skip the calling test (fail it under CI) unless every path exists."""
    missing = [str(path) for path in paths if not path.exists()]
    if not missing:
        return
    message = f"real sample data not present: {', '.join(missing)} (../shared/data is only beside CI and dev clones)"
    if os.environ.get("WM_HUB_REQUIRE_SHARED"):
        pytest.fail(f"{message}; WM_HUB_REQUIRE_SHARED is set, so it must be there", pytrace=False)
    pytest.skip(message)
