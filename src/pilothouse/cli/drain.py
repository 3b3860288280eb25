"""`pilothouse jobs drain|undrain|status`: stop every job worker taking new jobs before a deploy.

The drain flag lives in the job store, so every worker of every replica sees it. `drain` waits
until every live worker has acknowledged it and no job is running, showing progress; on timeout
it fails, or with `--force` cancels what is left (cooperatively, then the workers kill).

The top-level `pilothouse drain|undrain|status` are the same commands under their old names,
kept for one release with a deprecation line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pilothouse.cli._common import add_config_option, add_format_option, command, emit, load
from pilothouse.errors import ConfigError, OperationError

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands
    from pilothouse.config.jobs import JobsConfig
    from pilothouse.jobs.store import JobStore

POLL = 0.1

Handler = Callable[[argparse.Namespace], int]


DEPRECATED = ("drain", "undrain", "status")
"""The old top-level names of `pilothouse jobs drain|undrain|status`, kept for one release."""


def register(sub: Subcommands) -> None:
    """The deprecated top-level aliases (`pilothouse drain` ...): the same commands, with one
    line on stderr naming the new one."""
    add_actions(sub, deprecated=True)


def add_actions(sub: Subcommands, *, deprecated: bool = False) -> None:
    """`drain`, `undrain` and `status` under `sub` (`pilothouse jobs` adds them)."""
    prefix = "pilothouse" if deprecated else "pilothouse jobs"
    parsers = {}
    for name, handler, help_text, example in (
        ("drain", run_drain, "stop all job workers taking jobs; wait for running jobs to finish",
         "drain --timeout 5m --force"),
        ("undrain", run_undrain, "let job workers take jobs again", "undrain"),
        ("status", run_status, "drain state, jobs running and queued, per worker", "status"),
    ):  # fmt: skip
        note = f" (deprecated: use `pilothouse jobs {name}`)" if deprecated else ""
        parser = command(sub, name, help_text + note, f"{prefix} {example}")
        add_config_option(parser)
        add_format_option(parser)
        parser.set_defaults(
            handler=_deprecated(name, handler) if deprecated else handler, deprecated_alias=deprecated
        )
        parsers[name] = parser
    parsers["drain"].add_argument("--timeout", default="5m", help="how long to wait (default 5m)")
    parsers["drain"].add_argument(
        "--force", action="store_true", help="on timeout, cancel the jobs still running"
    )


def _deprecated(name: str, handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        print(
            f"pilothouse: warning: `pilothouse {name}` is deprecated and goes in the next release; "
            f"use `pilothouse jobs {name}`",
            file=sys.stderr,
        )
        return handler(args)

    return run


def _open(args: argparse.Namespace) -> tuple[JobsConfig, JobStore]:
    from pilothouse.jobs.store import open_store

    config = load(args)
    if config.jobs is None:
        raise ConfigError(f"{config.source}: [jobs] section is missing (drain and status act on job workers)")
    return config.jobs, open_store(config)


def snapshot(settings: JobsConfig, store: JobStore) -> dict[str, Any]:
    """The drain state as `status` prints it: serving, draining or drained."""
    since = store.draining_since()
    counts = store.counts()
    workers = [w.as_dict() | {"live": w.age < settings.heartbeat_timeout} for w in store.workers()]
    taking = [w["id"] for w in workers if w["live"] and w["accepting"]]
    if since is None:
        state = "serving"
    elif counts["running"] or taking:
        state = "draining"
    else:
        state = "drained"
    return {
        "state": state,
        "draining_since": since,
        "running": counts["running"],
        "queued": counts["queued"],
        "workers": workers,
        "workers_taking_jobs": taking,
    }


def run_drain(args: argparse.Namespace) -> int:
    from pilothouse.durations import format_duration, parse_duration

    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from None
    settings, store = _open(args)
    store.set_draining(True)
    started = time.monotonic()
    print(f"drain flag set in {store.description}; waiting up to {format_duration(timeout)}", file=sys.stderr)
    state = _wait(settings, store, started, timeout)
    cancelled = 0
    if state["state"] != "drained":
        if not args.force:
            raise OperationError(
                f"drain timed out after {format_duration(timeout)}: {state['running']} job(s) still running "
                "(the drain flag stays set; use --force to cancel them, `pilothouse jobs undrain` to resume)"
            )
        cancelled = store.cancel_running()
        print(f"timeout: cancelling {cancelled} running job(s)", file=sys.stderr)
        limit = settings.cancel_grace + 2 * settings.heartbeat_interval + 5
        state = _wait(settings, store, time.monotonic(), limit)
        if state["state"] != "drained":
            raise OperationError(f"{state['running']} job(s) still running after cancellation")
    elapsed = time.monotonic() - started
    state |= {"elapsed_seconds": round(elapsed, 3), "cancelled": cancelled}
    forced = f", {cancelled} job(s) cancelled" if cancelled else ""
    emit(
        args, state, f"drained in {elapsed:.1f}s{forced}; {state['queued']} job(s) stay queued until undrain"
    )
    return 0


def _wait(settings: JobsConfig, store: JobStore, started: float, limit: float) -> dict[str, Any]:
    """Poll until drained or `limit` seconds passed, printing progress when it changes."""
    last = ""
    while True:
        store.recover_stale(settings.heartbeat_timeout)  # a dead worker's job must not block the drain
        state = snapshot(settings, store)
        elapsed = time.monotonic() - started
        if state["state"] == "drained" or elapsed >= limit:
            return state
        line = (
            f"draining: {state['running']} job(s) running, {state['queued']} queued, "
            f"{len(state['workers_taking_jobs'])} worker(s) still taking jobs"
        )
        if line != last:
            print(f"{line} ({elapsed:.1f}s elapsed)", file=sys.stderr)
            last = line
        time.sleep(POLL)


def run_undrain(args: argparse.Namespace) -> int:
    _, store = _open(args)
    store.set_draining(False)
    emit(args, {"state": "serving"}, "undrained: workers take jobs again")
    return 0


def run_status(args: argparse.Namespace) -> int:
    settings, store = _open(args)
    state = snapshot(settings, store)
    lines = [
        f"jobs: {state['state']}  (running {state['running']}, queued {state['queued']})",
    ]
    for worker in state["workers"]:
        health = "taking jobs" if worker["accepting"] else "not taking jobs"
        if not worker["live"]:
            health = f"lost (no heartbeat for {worker['age']:.0f}s)"
        lines.append(
            f"  worker {worker['id']} (pid {worker['pid']} on {worker['host']}): "
            f"{worker['running']} running, {health}"
        )
    if not state["workers"]:
        lines.append("  no workers registered")
    emit(args, state, "\n".join(lines))
    return 0
