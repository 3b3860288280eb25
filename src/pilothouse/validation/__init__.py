"""Proving generated artifacts with real tools (kubectl kustomize, promtool, amtool, ...).

Each module listed in `PROVIDERS` has `validate(root: Path) -> list[Verdict]`, checking what it
finds under `root` (the directory `pilothouse generate` wrote). A tool that is not installed is
reported as `missing`, never as passing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

VerdictStatus = Literal["pass", "fail", "missing", "skipped"]

PROVIDERS: tuple[str, ...] = ("pilothouse.validation.deploy", "pilothouse.validation.monitoring")


@dataclass(frozen=True, slots=True)
class Verdict:
    tool: str
    target: str
    status: VerdictStatus
    detail: str = ""


def validate_all(root: Path) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for name in PROVIDERS:
        verdicts.extend(importlib.import_module(name).validate(root))
    return verdicts
