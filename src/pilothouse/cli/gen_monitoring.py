"""`pilothouse generate monitoring`: dashboards, alert and SLO rules (with promtool tests),
Alertmanager routing, runbooks and log shipping, from the config and the metric catalog."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_config_option, add_preview_options, command, load, preview

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands


def add_target(actions: Subcommands) -> None:
    parser = command(
        actions,
        "monitoring",
        "write Grafana dashboards, Prometheus rules, Alertmanager routes, runbooks and log shipping",
        "pilothouse generate monitoring --out monitoring/ && pilothouse validate monitoring/",
    )
    add_config_option(parser)
    parser.add_argument("--out", default="monitoring", help="output directory (default: monitoring/)")
    parser.add_argument("--force", action="store_true", help="overwrite files edited by hand")
    add_preview_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pilothouse.generators.bundle import bundle_changes, write_bundle
    from pilothouse.generators.monitoring import generate

    files = generate(load(args))
    if args.dry_run or args.diff:
        return preview(args, bundle_changes(files, Path(args.out)), args.out)
    written = write_bundle(files, Path(args.out), force=args.force)
    print(f"wrote {len(written)} files to {args.out} (check them with: pilothouse validate {args.out})")
    return 0
