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

if TYPE_CHECKING:
    from pilothouse.generators.bundle import Change


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


def add_preview_options(parser: argparse.ArgumentParser) -> None:
    """`--dry-run` and `--diff` for a command that writes generated files."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="list the files that would be created, updated or deleted; write nothing (exit 0)",
    )
    group.add_argument(
        "--diff",
        action="store_true",
        help="show a unified diff of what would change; write nothing; exit 1 if anything would "
        "change, 0 if not (as `git diff --exit-code`)",
    )


def preview(args: argparse.Namespace, changes: list[Change], out: object) -> int:
    """Print what `changes` would do, as `--dry-run` or `--diff` asked; the exit code."""
    import difflib

    if args.diff:
        for change in changes:
            before = (change.before or "").splitlines(keepends=True)
            after = (change.after or "").splitlines(keepends=True)
            old = "/dev/null" if change.before is None else f"a/{change.path}"
            new = "/dev/null" if change.after is None else f"b/{change.path}"
            for line in difflib.unified_diff(before, after, old, new):
                sys.stdout.write(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        return 1 if changes else 0
    for change in changes:
        print(f"{change.action:7} {change.path}")
    if changes:
        print(f"{len(changes)} file(s) would change in {out} (dry run: nothing written)")
    else:
        print(f"{out}: up to date (dry run: nothing written)")
    return 0
