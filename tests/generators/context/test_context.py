"""`pilothouse generate context`: the shop's committed AGENTS.md is current, a stale one fails
`--check`, and the context names every series its alerts query and links every runbook."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pilothouse.cli import build_parser
from pilothouse.config import load_config
from pilothouse.generators.monitoring import alerts, generate
from tests.generators.monitoring.promql_refs import references
from tests.helpers import PILOTHOUSE, SHOP_DIR

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}


def context(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PILOTHOUSE, "generate", "context", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**CLEAN_ENV, **(env or {})},
    )


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    copy = tmp_path / "shop"
    shutil.copytree(SHOP_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    return copy


def test_the_shops_committed_context_is_current() -> None:
    done = context("--check", "--config", str(SHOP_DIR / "pilothouse.toml"))
    assert done.returncode == 0, (
        done.stderr + "\n(run: pilothouse generate context -c examples/shop/pilothouse.toml)"
    )


def test_a_config_change_makes_the_context_stale_until_regenerated(shop: Path) -> None:
    config = shop / "pilothouse.toml"
    config.write_text(config.read_text().replace("port = 9090", "port = 9191"))
    stale = context("--check", "--config", str(config))
    assert stale.returncode == 1
    assert stale.stderr.strip() == (
        f"pilothouse: error: {shop}: AGENTS.md stale: the config, catalog or jobs changed; "
        f"run `pilothouse generate context --config {config}`"
    )
    assert context("--config", str(config)).returncode == 0
    assert "| ops 0.0.0.0:9191 | `GET /health` |" in (shop / "AGENTS.md").read_text()
    assert context("--check", "--config", str(config)).returncode == 0


def test_effective_values_include_environment_overrides(shop: Path) -> None:
    done = context("--config", str(shop / "pilothouse.toml"), env={"PILOTHOUSE_SERVICE__PORT": "8181"})
    assert done.returncode == 0, done.stderr
    assert "| `service.port` | `8181` |" in (shop / "AGENTS.md").read_text()


def test_a_hand_edit_is_never_overwritten_without_force(shop: Path) -> None:
    agents = shop / "AGENTS.md"
    agents.write_text(agents.read_text() + "\nMy notes.\n")
    config = str(shop / "pilothouse.toml")
    shop_config = shop / "pilothouse.toml"
    shop_config.write_text(shop_config.read_text().replace('version = "1.0.0"', 'version = "1.0.1"'))
    refused = context("--config", config)
    assert refused.returncode == 1
    assert "refusing to overwrite AGENTS.md: edited by hand" in refused.stderr
    assert agents.read_text().endswith("My notes.\n")
    assert context("--config", config, "--force").returncode == 0
    assert "My notes." not in agents.read_text()


def _table_column(text: str, heading: str, column: int) -> set[str]:
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split(" | ")[column]))
    return names


def test_the_shops_context_names_every_series_its_alerts_query_and_every_runbook(tmp_path: Path) -> None:
    text = (SHOP_DIR / "AGENTS.md").read_text()
    listed = _table_column(text, "Metrics", 2) | _table_column(text, "Alerts and runbooks", 0)
    config = load_config(SHOP_DIR / "pilothouse.toml", environ={})
    plan = alerts.plan(config)
    queried = {
        name
        for expr in [a.expr for a in plan.alerts] + [r.expr for r in plan.recordings]
        for name, _ in references(expr).selectors
    }
    assert queried, "the alert plan queries nothing?"
    assert queried - listed == set()
    # every runbook the monitoring bundle has is linked, and each link resolves once it is generated
    bundle = generate(config)
    monitoring = tmp_path / "monitoring"
    for rel, body in bundle.items():
        (monitoring / rel).parent.mkdir(parents=True, exist_ok=True)
        (monitoring / rel).write_text(body)
    runbooks = {rel for rel in bundle if rel.startswith("runbooks/") and rel != "runbooks/index.md"}
    links = set(re.findall(r"\]\(monitoring/(runbooks/[^)]+)\)", text))
    assert links == runbooks
    assert all((monitoring / link).is_file() for link in links)


def test_every_command_is_listed() -> None:
    text = (SHOP_DIR / "AGENTS.md").read_text()
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert sub.choices is not None
    for name, parser in sub.choices.items():
        if parser.get_default("deprecated_alias"):  # kept for one release, not advertised
            assert not re.search(rf"^- `pilothouse {re.escape(name)}[ `]", text, re.M), name
            continue
        assert re.search(rf"^- `pilothouse {re.escape(name)}[ `]", text, re.M), name


def test_claude_md_imports_agents_md() -> None:
    lines = (SHOP_DIR / "CLAUDE.md").read_text().splitlines()
    assert "@AGENTS.md" in lines  # Claude Code's import syntax: the line on its own
