"""`pilothouse generate TARGET`: write artifacts generated from the config.

Each module in `TARGETS` (`pilothouse.cli.gen_*`) has `add_target(actions)` that adds one
subcommand (e.g. `deploy`, `monitoring`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pilothouse.cli import gen_context, gen_deploy, gen_monitoring
from pilothouse.cli._common import command

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands

TARGETS: tuple[Callable[[Subcommands], None], ...] = (
    gen_context.add_target,
    gen_deploy.add_target,
    gen_monitoring.add_target,
)


def register(sub: Subcommands) -> None:
    generate = command(
        sub,
        "generate",
        "write deploy or monitoring artifacts from the config",
        "pilothouse generate deploy --out deploy/",
    )
    actions = generate.add_subparsers(title="targets", metavar="TARGET", required=True)
    for add_target in TARGETS:
        add_target(actions)
