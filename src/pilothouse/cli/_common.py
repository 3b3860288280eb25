"""Options and output shared by the commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    from pilothouse.config import Config

    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
    """What `register(sub)` and `add_target(actions)` receive: `add_subparsers()`'s result."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=None,
        help="config file (default: $PILOTHOUSE_CONFIG or ./pilothouse.toml)",
    )


def add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def load(args: argparse.Namespace) -> Config:
    from pilothouse.config import load_config  # here, not at the top: `--help` stays fast

    path = getattr(args, "config", None) or os.environ.get("PILOTHOUSE_CONFIG") or "pilothouse.toml"
    return load_config(path)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print `data` as JSON or `text`, as --format asks."""
    if getattr(args, "format", "text") == "json":
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(text)


def command(
    sub: Subcommands, name: str, help_text: str, example: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with an example."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )
    return parser
