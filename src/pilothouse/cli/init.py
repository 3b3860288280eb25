"""`pilothouse init`: write a first pilothouse.toml for the project in a directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_format_option, command
from pilothouse.errors import ConfigError
from pilothouse.files import create

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands


def register(sub: Subcommands) -> None:
    init = command(
        sub,
        "init",
        "detect the ASGI app, framework and drivers of a project and write a commented pilothouse.toml "
        "(never over an existing one)",
        "pilothouse init && pilothouse config check && pilothouse serve",
    )
    init.add_argument("directory", nargs="?", type=Path, default=Path("."), help="project (default .)")
    init.add_argument("--output", type=Path, help="file to write (default DIRECTORY/pilothouse.toml)")
    add_format_option(init)
    init.set_defaults(handler=run_init)


def run_init(args: argparse.Namespace) -> int:
    import tomllib

    from pilothouse.config.loader import config_from_dict
    from pilothouse.scaffold.detect import detect
    from pilothouse.scaffold.render import render

    target: Path = args.output or args.directory / "pilothouse.toml"
    if target.exists():
        raise ConfigError(f"{target}: already exists; refusing to overwrite it (remove it or use --output)")
    found = detect(args.directory)
    text = render(found)
    config_from_dict(tomllib.loads(text), source=target)  # never write a file the loader refuses
    create(target, text.encode(), 0o644)
    if args.format == "json":
        json.dump({**found.as_dict(), "written": str(target)}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        app = found.app or "none found: set [service].app"
        drivers = ", ".join(d for names in found.drivers.values() for d in names) or "none"
        print(f"wrote {target}: service {found.name}, app {app} ({found.framework}), drivers {drivers}")
    return 0
