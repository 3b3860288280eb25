"""Shared fixtures: the two examples' generated bundles, written by the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ROOT, run_cli

SHOP = ROOT / "examples" / "shop" / "pilothouse.toml"
MARKET = ROOT / "examples" / "market" / "stack.toml"


def generate(out: Path, *args: str) -> Path:
    result = run_cli("generate", "deploy", "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def shop_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("shop") / "deploy", "--config", str(SHOP))


@pytest.fixture(scope="session")
def market_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("market") / "deploy", "--stack", str(MARKET))
