"""`pilothouse backup run|verify|restore-test|restore`: restic backups of the [[backup.targets]]."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pilothouse.cli._common import add_config_option, add_format_option, command, emit, load
from pilothouse.errors import ConfigError, OperationError

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands
    from pilothouse.config.model import Config


def register(sub: Subcommands) -> None:
    backup = command(sub, "backup", "back up, verify and restore with restic", "pilothouse backup run")
    actions = backup.add_subparsers(title="actions", metavar="ACTION", required=True)

    run = command(
        actions,
        "run",
        "back up the targets now (a pilothouse.backup job run here)",
        "pilothouse backup run --only db,uploads",
    )
    run.add_argument("--only", default="", metavar="NAMES", help="comma-separated target names")
    add_config_option(run)
    add_format_option(run)
    run.set_defaults(handler=run_backup)

    verify = command(
        actions, "verify", "restic check (a data subset) and the latest manifest", "pilothouse backup verify"
    )
    add_config_option(verify)
    add_format_option(verify)
    verify.set_defaults(handler=run_verify)

    drill = command(
        actions,
        "restore-test",
        "restore the latest backup into scratch, check it, time it",
        "pilothouse backup restore-test",
    )
    add_config_option(drill)
    add_format_option(drill)
    drill.set_defaults(handler=run_restore_test)

    restore = command(
        actions,
        "restore",
        "restore the latest backup in place (asks first)",
        "pilothouse backup restore --only db --dry-run",
    )
    restore.add_argument("--only", default="", metavar="NAMES", help="comma-separated target names")
    restore.add_argument("--dry-run", action="store_true", help="show what would be restored, change nothing")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_config_option(restore)
    add_format_option(restore)
    restore.set_defaults(handler=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    import asyncio

    from pilothouse.backup import plan
    from pilothouse.backup.job import BACKUP
    from pilothouse.cli.jobs import _report, _run_here
    from pilothouse.features import one_job_runtime
    from pilothouse.jobs.registry import Registry, load_jobs
    from pilothouse.jobs.store import JobStore, open_store
    from pilothouse.jobs.submit import submit
    from pilothouse.runtime.app_import import load_app

    config = load(args)
    plan.selected(config, args.only)  # an unknown target: one line, before anything runs
    plan.restic_for(config).preflight()
    if config.jobs is None:
        raise ConfigError(f"{config.source}: [jobs] section is missing (a backup run is recorded as a job)")
    # Secrets and telemetry as in `jobs run` (logs to stderr).
    runtime = one_job_runtime(config)
    # What the app module registers on import (start and drain hooks, jobs, checks) exists here
    # too, as in `jobs run`, `serve` and the worker: a hook that flushes the app's state to disk
    # runs before the targets are read.
    load_app(config)

    def submit_backup(config: Config) -> tuple[JobStore, Registry, int]:
        registry = load_jobs(config)
        store = open_store(config)
        return store, registry, submit(store, registry, BACKUP, {"only": args.only}, None)

    store, job_id = asyncio.run(_run_here(runtime, submit_backup))
    return _report(args, store, job_id)


def run_verify(args: argparse.Namespace) -> int:
    from pilothouse.backup.drills import verify

    found = verify(load(args))
    emit(
        args,
        found,
        f"backup verified: run {found['run']} ({found['time']}), targets "
        f"{', '.join(found['targets'])}; restic check read {found['subset']} of the data",
    )
    return 0


def run_restore_test(args: argparse.Namespace) -> int:
    from pilothouse.backup.drills import restore_test

    found = restore_test(load(args))
    lines = [f"restore test of run {found['run']} ({found['time']}): ok, RTO {found['rto_seconds']:.2f}s"]
    lines += [
        f"  {t['name']} ({t['kind']}, {t['bytes']} bytes): {t['check']}, {t['rto_seconds']:.2f}s"
        for t in found["targets"]
    ]
    emit(args, found, "\n".join(lines))
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from pilothouse.backup.drills import restore, restore_plan

    config = load(args)
    manifest, steps = restore_plan(config, args.only)
    if not steps:
        raise OperationError(f"restore: run {manifest['run']} holds none of the selected targets")
    text = [f"restore run {manifest['run']} ({manifest['time']}):"]
    text += [f"  {s['name']}: snapshot {s['snapshot'][:8]} -> {s['into']}" for s in steps]
    if args.dry_run:
        emit(args, {"run": manifest["run"], "dry_run": True, "steps": steps}, "\n".join([*text, "(dry run)"]))
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError(
                "restore: refusing to overwrite without confirmation: pass --yes "
                "(or run it in a terminal); --dry-run shows what would change"
            )
        print("\n".join(text), file=sys.stderr)
        if input("type 'restore' to overwrite the current data: ").strip() != "restore":
            raise OperationError("restore: not confirmed; nothing changed")
    done = restore(config, args.only)
    emit(args, done, f"restored run {done['run']}: {', '.join(done['targets'])} in {done['seconds']:.2f}s")
    return 0
