"""Proving generated artifacts with real tools (kubectl kustomize, promtool, amtool, ...).

Each module `providers()` returns has `validate(root: Path) -> list[Verdict]`, checking what it
finds under `root` (the directory `pilothouse generate` wrote). A tool that is not installed is
reported as `missing`, never as passing.
"""

from __future__ import annotations

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
    """A module that proves one kind of artifact with real tools."""

    def validate(self, root: Path) -> list[Verdict]: ...


def providers() -> tuple[Provider, ...]:
    """The providers, in report order (imported here: they import `Verdict` from this module)."""
    from pilothouse.validation import deploy, monitoring

    return (deploy, monitoring)


def validate_all(root: Path) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for provider in providers():
        verdicts.extend(provider.validate(root))
    return verdicts
