"""`pilothouse validate [DIR]`: run the real validators over generated artifacts.

Text output shows each tool's verdict as soon as it finished (a checkov run takes a while) and
ends with one summary line; `--format json` prints the list of verdicts at the end (stdout stays
one JSON document) and the summary line on stderr. Exit 0 when nothing failed, 1 when a tool
failed (or, with `--strict`, is missing), 2 when DIR is not a directory or holds nothing to
validate.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_format_option, command, emit
from pilothouse.errors import UsageError

TOOL_WIDTH = 26
"""Width of the tool column (the longest tool name, `amtool config routes test`, and a space):
fixed, because lines are printed before the other tools ran."""


_WORDS: tuple[tuple[VerdictStatus, str], ...] = (
    ("pass", "passed"),
    ("fail", "failed"),
    ("skipped", "skipped"),
    ("missing", "missing"),
)

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands
    from pilothouse.validation import Verdict, VerdictStatus


def register(sub: Subcommands) -> None:
    validate = command(
        sub, "validate", "prove generated artifacts with real validators", "pilothouse validate deploy/"
    )
    validate.add_argument("dir", nargs="?", default=".", help="directory written by generate (default: .)")
    validate.add_argument("--strict", action="store_true", help="a missing validator is a failure")
    add_format_option(validate)
    validate.set_defaults(handler=run)


def line(verdict: Verdict) -> str:
    detail = f"  — {verdict.detail}" if verdict.detail else ""
    return f"{verdict.status.upper():8} {verdict.tool:{TOOL_WIDTH}} {verdict.target}{detail}"


def summary(verdicts: list[Verdict]) -> str:
    """`N passed, N failed, N skipped, N missing`: every verdict counted once."""
    counts = Counter(v.status for v in verdicts)
    return ", ".join(f"{counts[status]} {word}" for status, word in _WORDS)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from pilothouse.validation import iter_verdicts

    root = Path(args.dir)
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory (run 'pilothouse generate' first)")
    text = args.format == "text"
    verdicts: list[Verdict] = []
    for verdict in iter_verdicts(root):
        verdicts.append(verdict)
        if text:
            print(line(verdict), flush=True)
    if not verdicts:
        raise UsageError(f"{root}: nothing to validate (no generated artifacts found)")
    if not text:
        emit(args, [asdict(v) for v in verdicts], "")
    print(summary(verdicts), file=sys.stdout if text else sys.stderr)
    failed = any(v.status == "fail" for v in verdicts) or (
        args.strict and any(v.status == "missing" for v in verdicts)
    )
    return 1 if failed else 0
