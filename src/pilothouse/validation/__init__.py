"""Proving generated artifacts with real tools (kubectl kustomize, promtool, amtool, ...).

Each module `providers()` lists has `verdicts(root: Path) -> Iterator[Verdict]`, checking what
it finds under `root` (the directory `pilothouse generate` wrote) and yielding each verdict as soon
as its tool finished (`validate(root)` is the list). A tool that is not installed is reported as
`missing`, never as passing. Tools run without colour (`NO_COLOR=1`, `TERM=dumb`, and any ANSI
escape left is removed), so a verdict's detail is plain text in text and JSON output alike.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

VerdictStatus = Literal["pass", "fail", "missing", "skipped"]


@dataclass(frozen=True, slots=True)
class Verdict:
    tool: str
    target: str
    status: VerdictStatus
    detail: str = ""


class Provider(Protocol):
    """A validation module: the verdicts of its tools on what it finds under `root`."""

    def verdicts(self, root: Path) -> Iterator[Verdict]: ...


def providers() -> tuple[Provider, ...]:
    """Every validation module, imported by name (here rather than at the top: each imports
    `Verdict` from this module)."""
    from pilothouse.validation import deploy, monitoring

    return (deploy, monitoring)


def validate_all(root: Path) -> list[Verdict]:
    return list(iter_verdicts(root))


def iter_verdicts(root: Path) -> Iterator[Verdict]:
    """Every provider's verdicts, each as soon as its tool finished."""
    for provider in providers():
        yield from provider.verdicts(root)


_ANSI = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: hyperlinks, titles
    r"|[ -/]+[0-~]"  # nF: character sets
    r"|[@-Z\\-_])"  # two-byte escapes
)

NO_COLOUR_ENV = {"NO_COLOR": "1", "TERM": "dumb", "CLICOLOR": "0", "ANSI_COLORS_DISABLED": "1"}
"""How a validator is asked for plain output: https://no-color.org (NO_COLOR), the CLICOLOR
convention, termcolor's switch, and a terminal without colour for tools that only look at TERM."""

_FORCING = ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS")
"""Variables that force colour whatever their value in some libraries (rich): removed."""


def plain(text: str) -> str:
    """`text` without ANSI escape sequences (colours, cursor moves, hyperlinks)."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def run_tool(cmd: Sequence[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a validator without colour and capture its output as plain text."""
    env = {k: v for k, v in os.environ.items() if k not in _FORCING} | NO_COLOUR_ENV
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    return subprocess.CompletedProcess(proc.args, proc.returncode, plain(proc.stdout), plain(proc.stderr))
