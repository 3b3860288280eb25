"""The `pilothouse` parser as a tree of commands, options and arguments: what shell completion
(`completion.py`) and the CLI reference (`reference.py`) are generated from, so both follow the
parser and nothing is listed twice."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    takes_value: bool
    choices: tuple[str, ...]
    help: str | None
    metavar: str


@dataclass(frozen=True)
class Positional:
    name: str
    choices: tuple[str, ...]
    help: str | None
    optional: bool


@dataclass
class Command:
    path: tuple[str, ...]
    parser: argparse.ArgumentParser
    help: str
    deprecated: bool = False
    subcommands: list[Command] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    positionals: list[Positional] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(("pilothouse", *self.path))

    def walk(self) -> Iterator[Command]:
        """This command and every command under it, depth first, in parser order."""
        yield self
        for sub in self.subcommands:
            yield from sub.walk()


def tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Command:
    command = Command(
        path,
        parser,
        parser.description or "",
        deprecated=bool(parser.get_default("deprecated_alias")),
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                command.subcommands.append(tree(child, (*path, name)))
        elif action.option_strings:
            takes_value = action.nargs != 0
            command.options.append(
                Option(
                    tuple(action.option_strings),
                    takes_value,
                    tuple(str(c) for c in action.choices or ()),
                    action.help,
                    _metavar(action) if takes_value else "",
                )
            )
        else:
            command.positionals.append(
                Positional(
                    str(action.metavar or action.dest),
                    tuple(str(c) for c in action.choices or ()),
                    action.help,
                    action.nargs in ("?", "*"),
                )
            )
    return command


def _metavar(action: argparse.Action) -> str:
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper()


def pilothouse() -> Command:
    """The tree of the `pilothouse` command."""
    from pilothouse.cli import build_parser

    return tree(build_parser())
