"""The CLI reference page (docs/cli.md), generated from the parser.

    python -m pilothouse.cli.reference > docs/cli.md

tests/cli/test_reference.py fails when the committed page differs from what this prints, so the
page changes with every option added to the parser.
"""

from __future__ import annotations

import sys

from pilothouse.cli._tree import Command, Option, Positional, pilothouse

REGENERATE = "python -m pilothouse.cli.reference > docs/cli.md"

_INTRO = f"""# Command line reference

<!-- Generated from the parser by `{REGENERATE}`; tests/cli/test_reference.py
     checks that it is current. Do not edit by hand. -->

Every command, its arguments and options, as `pilothouse <command> --help` shows them. Commands
that report take `--format text|json`; every `--help` ends with an example.

**Exit codes, one rule for every command:** `0` done; `1` a check or an operation failed (a
validator found a problem, a job failed, a drain timed out, `generate --diff` found changes);
`2` a usage or config error: a bad option or value, an invalid config file, or an argument that
names something that does not exist (an unknown job or job id, a missing directory). Errors are
one line on stderr (`pilothouse: error: ...`), never a traceback.

**Shell completion:** `source <(pilothouse completion bash)` (or `zsh`), or
`pilothouse completion fish > ~/.config/fish/completions/pilothouse.fish`.

**Colour:** pilothouse prints no colour, and runs the validators of `pilothouse validate` with
`NO_COLOR=1` (and strips any escape sequence they print anyway), so text and JSON output are
plain whatever the terminal.
"""


def render(root: Command) -> str:
    parts = [_INTRO]
    for cmd in root.walk():
        if not cmd.path:
            continue
        parts.append(_command(cmd))
    return "\n".join(parts)


def _command(cmd: Command) -> str:
    lines = [f"## `{cmd.name}`", ""]
    if cmd.help:
        lines += [_escape(cmd.help), ""]
    if cmd.subcommands:
        lines += ["| command | what it does |", "| --- | --- |"]
        lines += [f"| `{sub.path[-1]}` | {_escape(sub.help)} |" for sub in cmd.subcommands]
        lines.append("")
        return "\n".join(lines)
    rows = [_positional(p) for p in cmd.positionals] + [
        _option(o) for o in cmd.options if "--help" not in o.flags
    ]
    if rows:
        lines += ["| argument / option | help |", "| --- | --- |", *rows, ""]
    example = (cmd.parser.epilog or "").removeprefix("example:").strip()
    if example:
        lines += ["```", *[line.strip() for line in example.splitlines()], "```", ""]
    return "\n".join(lines)


def _positional(positional: Positional) -> str:
    name = "{" + ",".join(positional.choices) + "}" if positional.choices else positional.name.upper()
    name = f"[{name}]" if positional.optional else name
    return f"| `{name}` | {_escape(positional.help or '')} |"


def _option(option: Option) -> str:
    flags = ", ".join(
        f"`{flag}{' ' + option.metavar if option.takes_value else ''}`" for flag in option.flags
    )
    return f"| {flags} | {_escape(option.help or '')} |"


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def main() -> None:
    sys.stdout.write(render(pilothouse()))


if __name__ == "__main__":
    main()
