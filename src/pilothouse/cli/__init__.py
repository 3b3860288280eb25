"""The `pilothouse` command: the only layer that prints, exits and writes files for the user.

Each command module listed in `COMMANDS` adds its commands with `register(sub)`; a module's top
level stays light (argparse definitions only) and its handlers import what they run, so
`pilothouse --help` does not load the server, pydantic or an HTTP client.
Exit codes, one rule for every command: 0 ok; 1 a check or operation failed; 2 a usage or config
error, which includes an argument naming something that does not exist (an unknown job or job id,
a missing directory): the same 2 argparse gives a bad option (`errors.UsageError`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pilothouse import __version__
from pilothouse.cli import (
    backup,
    build,
    completion,
    config_cmd,
    drain,
    generate,
    init,
    install,
    jobs,
    provenance,
    secrets,
    serve,
    smoke,
    validate,
)
from pilothouse.errors import PilothouseError
from pilothouse.redaction import redact

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands

COMMANDS: tuple[Callable[[Subcommands], None], ...] = (
    backup.register,
    build.register,
    completion.register,
    config_cmd.register,
    drain.register,
    generate.register,
    init.register,
    install.register,
    jobs.register,
    provenance.register,
    secrets.register,
    serve.register,
    smoke.register,
    validate.register,
)
"""Every command group, in `--help` order (a new module is added here, and nowhere else)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pilothouse",
        description="Probes, metrics, traces, lifecycle and deploy artifacts from one pilothouse.toml.",
        epilog="example: pilothouse serve --config examples/shop/pilothouse.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pilothouse {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except PilothouseError as exc:
        for line in redact(str(exc)).splitlines():
            print(f"pilothouse: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pilothouse config show | head`: the reader left, not an error
        _silence_stdout()
        return 0
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def entrypoint() -> None:
    sys.exit(main())
