"""`pilothouse validate [DIR]`: run the real validators over generated artifacts."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_format_option, command, emit
from pilothouse.errors import OperationError
from pilothouse.validation import validate_all

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands


def register(sub: Subcommands) -> None:
    validate = command(
        sub, "validate", "prove generated artifacts with real validators", "pilothouse validate deploy/"
    )
    validate.add_argument("dir", nargs="?", default=".", help="directory written by generate")
    validate.add_argument("--strict", action="store_true", help="a missing validator is a failure")
    add_format_option(validate)
    validate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.is_dir():
        raise OperationError(f"{root}: not a directory (run 'pilothouse generate' first)")
    verdicts = validate_all(root)
    if not verdicts:
        raise OperationError(f"{root}: nothing to validate (no generated artifacts found)")
    width = max(len(v.tool) for v in verdicts)
    lines = [
        f"{v.status.upper():8} {v.tool:{width}}  {v.target}" + (f"  — {v.detail}" if v.detail else "")
        for v in verdicts
    ]
    emit(args, [asdict(v) for v in verdicts], "\n".join(lines))
    failed = any(v.status == "fail" for v in verdicts) or (
        args.strict and any(v.status == "missing" for v in verdicts)
    )
    return 1 if failed else 0
