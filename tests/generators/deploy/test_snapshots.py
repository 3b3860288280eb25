"""Snapshot tests: the generated files of both examples, byte for byte.

When output changes on purpose, refresh with `PILOTHOUSE_UPDATE_SNAPSHOTS=1 pytest tests/generators/deploy`
and review the diff of tests/generators/deploy/snapshots/ like any code change.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pilothouse.config import load_config
from pilothouse.generators.deploy import generate
from pilothouse.generators.deploy.stack import generate_stack, load_stack
from tests.generators.deploy.conftest import MARKET, SHOP
from tests.helpers import generate_with_hash_seeds

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _shop() -> dict[str, str]:
    return generate(load_config(SHOP, environ={}), SHOP.read_text())


def _market() -> dict[str, str]:
    return generate_stack(load_stack(MARKET))


@pytest.mark.parametrize(("name", "render"), [("shop", _shop), ("market", _market)])
def test_output_matches_snapshot(name: str, render: object) -> None:
    files = render()  # type: ignore[operator]
    folder = SNAPSHOTS / name
    if os.environ.get("PILOTHOUSE_UPDATE_SNAPSHOTS") == "1":
        shutil.rmtree(folder, ignore_errors=True)
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
    stored = {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}
    assert sorted(stored) == sorted(files), "file list changed (PILOTHOUSE_UPDATE_SNAPSHOTS=1 to accept)"
    changed = [rel for rel in files if files[rel] != stored[rel]]
    assert not changed, f"generated output changed: {changed} (PILOTHOUSE_UPDATE_SNAPSHOTS=1 to accept)"


@pytest.mark.parametrize("source", [("-c", str(SHOP)), ("--stack", str(MARKET))], ids=["shop", "market"])
def test_generation_is_deterministic(source: tuple[str, str], tmp_path: Path) -> None:
    first, second = generate_with_hash_seeds(tmp_path, "deploy", *source)
    assert first and first == second
