"""docs/cli.md is generated from the parser and current; every option says what it does."""

from __future__ import annotations

import subprocess
import sys

from pilothouse.cli._tree import pilothouse
from pilothouse.cli.reference import REGENERATE, render
from tests.helpers import ROOT


def test_the_reference_page_is_current() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == render(pilothouse()), f"docs/cli.md is stale: run `{REGENERATE}`"


def test_the_regeneration_command_prints_the_page() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.reference"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == render(pilothouse())


def test_every_command_option_and_argument_has_help() -> None:
    missing = []
    for command in pilothouse().walk():
        if command.path and not command.help:
            missing.append(command.name)
        if command.path and not command.subcommands and "example:" not in (command.parser.epilog or ""):
            missing.append(f"{command.name}: example")
        missing += [f"{command.name} {'/'.join(o.flags)}" for o in command.options if not o.help]
        missing += [f"{command.name} {p.name}" for p in command.positionals if not p.help]
    assert missing == []


def test_every_command_is_in_the_reference() -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    for command in pilothouse().walk():
        if command.path:
            assert f"## `{command.name}`\n" in page
            for option in command.options:
                if "--help" not in option.flags:
                    assert f"`{option.flags[-1]}" in page, (command.name, option.flags)
