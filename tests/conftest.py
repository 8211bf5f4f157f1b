"""Shared test fixtures: paths of the shared assets (skip with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
DEV_PHOTOS = SHARED / "dev-photos"


@pytest.fixture(scope="session")
def dev_photos() -> Path:
    if not DEV_PHOTOS.is_dir():
        pytest.skip(f"needs ../shared/assets/dev-photos (real photos); absent at {DEV_PHOTOS}")
    return DEV_PHOTOS
