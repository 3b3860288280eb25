"""`pilothouse generate context`: AGENTS.md and CLAUDE.md for the service; `--check` fails when
the committed files no longer match the config (a CI step)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_config_option, add_preview_options, command, load, preview
from pilothouse.errors import ConfigError, OperationError
from pilothouse.files import replace

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands
    from pilothouse.config.model import Config
    from pilothouse.generators.context import Facts


def add_target(actions: Subcommands) -> None:
    parser = command(
        actions,
        "context",
        "write AGENTS.md (and CLAUDE.md importing it): ports, endpoints, config, metrics, alerts, "
        "runbooks, jobs and commands of the service",
        "pilothouse generate context --check   # in CI: exit 1 when AGENTS.md is stale",
    )
    add_config_option(parser)
    parser.add_argument("--out", default=None, help="directory (default: the config file's directory)")
    parser.add_argument("--monitoring-dir", default="monitoring", help="where `generate monitoring` writes")
    parser.add_argument("--deploy-dir", default="deploy", help="where `generate deploy` writes")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    parser.add_argument("--force", action="store_true", help="overwrite files edited by hand")
    add_preview_options(parser)
    parser.set_defaults(handler=run)


def _commands() -> tuple[tuple[str, str], ...]:
    """Every `pilothouse` command and action with its one-line help, read from the parser itself."""
    from pilothouse.cli import build_parser

    found: list[tuple[str, str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    nested = any(isinstance(a, argparse._SubParsersAction) for a in child._actions)
                    if child.get_default("deprecated_alias"):
                        continue
                    if nested:
                        walk(child, f"{prefix}{name} ")
                    else:
                        found.append((f"{prefix}{name}", child.description or ""))

    walk(build_parser(), "")
    return tuple(sorted(found))


def _artifacts(config: Config, monitoring_dir: str, deploy_dir: str) -> dict[str, tuple[str, ...]]:
    from pilothouse.generators.deploy import generate as deploy
    from pilothouse.generators.monitoring import generate as monitoring

    assert config.source is not None
    bundles = {
        monitoring_dir: monitoring(config),
        deploy_dir: deploy(config, config.source.read_text(encoding="utf-8"), None, deploy_dir),
    }
    grouped: dict[str, list[str]] = {}
    for root, files in bundles.items():
        for rel in files:
            path = PurePosixPath(root) / rel
            grouped.setdefault(str(path.parent), []).append(path.name)
    return {directory: tuple(sorted(names)) for directory, names in grouped.items()}


def facts(config: Config, monitoring_dir: str, deploy_dir: str) -> Facts:
    from pilothouse.generators.context import Facts, JobFacts
    from pilothouse.jobs.registry import load_jobs

    declared = list(load_jobs(config))  # imports [jobs].module: its decorators declare the jobs
    return Facts(
        jobs=tuple(
            JobFacts(j.name, j.description, tuple(s.name for s in j.steps), tuple(sorted(j.params)))
            for j in declared
        ),
        commands=_commands(),
        artifacts=_artifacts(config, monitoring_dir, deploy_dir),
        monitoring_dir=monitoring_dir,
    )


def run(args: argparse.Namespace) -> int:
    from pilothouse.generators.bundle import stamp
    from pilothouse.generators.context import render

    config = load(args)
    if config.source is None:
        raise ConfigError("the context file needs a config file")
    out = Path(args.out) if args.out else config.source.parent
    files = {
        rel: stamp(rel, body)
        for rel, body in render(config, facts(config, args.monitoring_dir, args.deploy_dir)).items()
    }
    current = {rel: (out / rel).read_text() if (out / rel).is_file() else None for rel in files}
    stale = [rel for rel, text in files.items() if current[rel] != text]
    if args.dry_run or args.diff:
        from pilothouse.generators.bundle import Change

        return preview(args, [Change(rel, current[rel], files[rel]) for rel in stale], out)
    if args.check:
        if stale:
            raise OperationError(
                f"{out}: {', '.join(stale)} stale: the config, catalog or jobs changed; "
                f"run `pilothouse generate context --config {config.source}`"
            )
        print(f"{out}: {', '.join(files)} up to date")
        return 0
    edited = [rel for rel in stale if current[rel] is not None and not _generated(rel, current[rel] or "")]
    if edited and not args.force:
        raise OperationError(
            f"{out}: refusing to overwrite {', '.join(edited)}: edited by hand or not generated by "
            "pilothouse (use --force)"
        )
    for rel in stale:
        replace(out / rel, files[rel])
    print(f"wrote {', '.join(stale) or 'nothing (up to date)'} in {out}", file=sys.stdout)
    return 0


def _generated(rel: str, text: str) -> bool:
    """Whether `text` is a stamped file whose body still matches its checksum."""
    from pilothouse.generators.bundle import stamp

    _, _, body = text.partition("\n")
    return stamp(rel, body) == text
