from __future__ import annotations

from pathlib import Path

import pytest

import migrate


def pytest_report_header() -> str:
    """Which copy of the tool is under test: the checkout (editable) or an installed wheel."""
    return f"migrate: {Path(migrate.__file__).parent}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path
