"""The built wheel ships `py.typed` (PEP 561): a user's mypy reads Pilothouse's annotations."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.wheels import build_wheel

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_py_typed(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT, tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "pilothouse/py.typed" in names
    assert "pilothouse/features.py" in names
