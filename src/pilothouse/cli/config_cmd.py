"""`pilothouse config check|show`."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_config_option, add_format_option, command, emit, load
from pilothouse.redaction import redact

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands


def register(sub: Subcommands) -> None:
    config = command(
        sub, "config", "check or show the configuration", "pilothouse config check pilothouse.toml"
    )
    actions = config.add_subparsers(title="actions", metavar="ACTION", required=True)

    check = command(
        actions,
        "check",
        "validate a config file (exit 2 with the problem if invalid)",
        "pilothouse config check examples/shop/pilothouse.toml",
    )
    check.add_argument("file", nargs="?", help="config file (default: ./pilothouse.toml)")
    add_config_option(check)
    add_format_option(check)
    check.set_defaults(handler=run_check)

    show = command(
        actions,
        "show",
        "print the effective config (file + environment overrides)",
        "pilothouse config show --format json",
    )
    show.add_argument("file", nargs="?", help="config file (default: ./pilothouse.toml)")
    add_config_option(show)
    add_format_option(show)
    show.set_defaults(handler=run_show)


def _args(args: argparse.Namespace) -> argparse.Namespace:
    if args.file:
        args.config = args.file
    return args


def run_check(args: argparse.Namespace) -> int:
    from pilothouse.durations import format_duration

    config = load(_args(args))
    life = config.lifecycle
    summary = {
        "file": str(config.source),
        "service": config.service.name,
        "checks": [c.name for c in config.checks],
        "shutdown_budget_seconds": life.shutdown_budget,
        "stop_timeout_seconds": life.stop_timeout_seconds,
        "pod_grace_period_seconds": life.pod_grace_period_seconds,
        "valid": True,
    }
    emit(
        args,
        summary,
        f"{config.source}: ok — service '{config.service.name}', {len(config.checks)} check(s), "
        f"shutdown budget {format_duration(life.shutdown_budget)}, "
        f"stop timeout {life.stop_timeout_seconds}s (compose, systemd), "
        f"pod grace period {life.pod_grace_period_seconds}s "
        f"(Kubernetes, with the {life.pre_stop_hook_seconds}s preStop sleep)",
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from pilothouse.config.flatten import flatten

    config = load(_args(args))
    data = json.loads(redact(config.model_dump_json()))
    if args.format == "json":
        emit(args, data, "")
    else:
        print("\n".join(f"{key} = {json.dumps(value)}" for key, value in flatten(data)))
    return 0
