"""`pilothouse generate TARGET`: write artifacts generated from the config.

Targets are the modules `pilothouse.cli.gen_*`; each has `add_target(actions)` that adds one
subcommand (e.g. `deploy`, `monitoring`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pilothouse.cli as cli_package
from pilothouse.cli._common import command


def register(sub: Any) -> None:
    generate = command(
        sub,
        "generate",
        "write deploy or monitoring artifacts from the config",
        "pilothouse generate deploy --out deploy/",
    )
    actions = generate.add_subparsers(title="targets", metavar="TARGET", required=True)
    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if info.name.startswith("gen_"):
            importlib.import_module(f"pilothouse.cli.{info.name}").add_target(actions)
