"""`pilothouse install systemd`: install, --upgrade, --rollback or --uninstall on a Linux host."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_config_option, command, load

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands


def register(sub: Subcommands) -> None:
    install = command(
        sub,
        "install",
        "install the service on a plain Linux host (systemd), upgrade, roll back or uninstall it",
        "pilothouse install systemd --package dist/shop-1.0-py3-none-any.whl --package pilothouse",
    )
    targets = install.add_subparsers(title="targets", metavar="TARGET", required=True)
    systemd = command(
        targets,
        "systemd",
        "create the config and secrets files, a virtualenv per version, the unit (enabled and "
        "verified); idempotent",
        "pilothouse install systemd --dry-run --prefix /srv/root --package 'shop==1.2' --package pilothouse",
    )
    add_config_option(systemd)
    action = systemd.add_mutually_exclusive_group()
    action.add_argument(
        "--upgrade", action="store_true", help="install --version beside the current one, switch"
    )
    action.add_argument("--rollback", action="store_true", help="switch back to the previous version")
    action.add_argument("--uninstall", action="store_true", help="remove what install created, nothing else")
    systemd.add_argument(
        "--prefix", type=Path, default=Path("/"), help="root of the target filesystem (default /)"
    )
    systemd.add_argument("--version", dest="release", help="version to install (default [service].version)")
    systemd.add_argument(
        "--package", action="append", default=[], help="pip requirement for the venv (repeat)"
    )
    systemd.add_argument("--find-links", type=Path, help="install offline from this wheelhouse")
    systemd.add_argument(
        "--provenance-key", action="store_true", help="also generate a provenance signing key"
    )
    systemd.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    systemd.set_defaults(handler=run_systemd)


def run_systemd(args: argparse.Namespace) -> int:
    from pilothouse.hostinstall.installer import Installer, Options

    config = load(args)
    options = Options(
        version=args.release or config.service.version,
        packages=args.package,
        find_links=args.find_links,
        dry_run=args.dry_run,
        provenance_key=args.provenance_key,
    )
    installer = Installer(config, args.prefix, options, print)
    if args.upgrade:
        return installer.upgrade()
    if args.rollback:
        return installer.rollback()
    if args.uninstall:
        return installer.uninstall()
    return installer.install()
