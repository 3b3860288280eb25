"""`pilothouse jobs run|worker|submit|list|show|cancel|schedules|drain|undrain|status`: batch jobs
from the command line."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pilothouse.cli import drain
from pilothouse.cli._common import add_config_option, add_format_option, command, emit, load
from pilothouse.errors import ConfigError, OperationError, UsageError

if TYPE_CHECKING:
    from pilothouse.cli._common import Subcommands
    from pilothouse.config.model import Config
    from pilothouse.jobs.attest import OutputAttester
    from pilothouse.jobs.registry import Registry
    from pilothouse.jobs.store import JobRecord, JobStore
    from pilothouse.runtime.runtime import Runtime

POLL = 0.2
MAX_LIMIT = 10_000  # SQLite integers stop at 2**63; a listing longer than this is not read anyway


def register(sub: Subcommands) -> None:
    jobs = command(sub, "jobs", "run, queue and inspect batch jobs", "pilothouse jobs list")
    actions = jobs.add_subparsers(title="actions", metavar="ACTION", required=True)

    run = command(
        actions,
        "run",
        "run one job now, here, and print its steps",
        "pilothouse jobs run restock-report --param threshold=3",
    )
    run.add_argument("name", help="job name (declared in [jobs].module)")
    _add_params(run)
    add_config_option(run)
    add_format_option(run)
    run.set_defaults(handler=run_now)

    worker = command(
        actions,
        "worker",
        "take queued jobs until SIGTERM (then drain)",
        "pilothouse jobs worker --concurrency 8",
    )
    worker.add_argument("--concurrency", type=int, default=None, help="jobs at once (default [jobs])")
    worker.add_argument("--no-ops", action="store_true", help="do not serve the ops port")
    add_config_option(worker)
    worker.set_defaults(handler=run_worker)

    submit = command(
        actions,
        "submit",
        "queue a job for the workers",
        "pilothouse jobs submit restock-report --param threshold=3 --wait",
    )
    submit.add_argument("name", help="job name")
    _add_params(submit)
    submit.add_argument("--wait", action="store_true", help="wait until it finished (exit 1 if it failed)")
    add_config_option(submit)
    add_format_option(submit)
    submit.set_defaults(handler=run_submit)

    listing = command(actions, "list", "recent jobs, newest first", "pilothouse jobs list --state running")
    listing.add_argument(
        "--state", choices=("queued", "running", "finished"), default=None, help="only jobs in this state"
    )
    listing.add_argument("--limit", type=int, default=50, help=f"at most this many (1-{MAX_LIMIT})")
    add_config_option(listing)
    add_format_option(listing)
    listing.set_defaults(handler=run_list)

    show = command(actions, "show", "one job and its steps", "pilothouse jobs show 42")
    show.add_argument("id", type=int, help="job number (as `jobs list` shows it)")
    add_config_option(show)
    add_format_option(show)
    show.set_defaults(handler=run_show)

    cancel = command(
        actions, "cancel", "cancel a queued job, or ask a running one to stop", "pilothouse jobs cancel 42"
    )
    cancel.add_argument("id", type=int, help="job number (as `jobs list` shows it)")
    add_config_option(cancel)
    add_format_option(cancel)
    cancel.set_defaults(handler=run_cancel)

    schedules = command(
        actions,
        "schedules",
        "the [[jobs.schedules]]: next fire times, last fire, last success, missed runs",
        "pilothouse jobs schedules --count 3",
    )
    schedules.add_argument("--count", type=int, default=1, help="next fire times per schedule (1-100)")
    add_config_option(schedules)
    add_format_option(schedules)
    schedules.set_defaults(handler=run_schedules)

    drain.add_actions(actions)


def _add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param", "-p", action="append", default=[], metavar="KEY=VALUE", help="job parameter (repeatable)"
    )


def _job_id(args: argparse.Namespace) -> int:
    """A job id the stores can hold (SQLite and PostgreSQL integers stop at 2**63 - 1)."""
    if not 1 <= args.id < 2**63:
        raise ConfigError(f"job id: {args.id} is invalid: expected a job number such as 42")
    return int(args.id)


def _config(args: argparse.Namespace) -> Config:
    config = load(args)
    if config.jobs is None:
        raise ConfigError(f"{config.source}: [jobs] section is missing (add one to use jobs)")
    return config


def _submit(args: argparse.Namespace, config: Config) -> tuple[JobStore, Registry, int]:
    from pilothouse.jobs.definition import ParamError
    from pilothouse.jobs.registry import load_jobs
    from pilothouse.jobs.store import open_store
    from pilothouse.jobs.submit import parse_params, submit
    from pilothouse.jobs.tracing import current_traceparent

    registry = load_jobs(config)
    job = registry.get(args.name)  # unknown names and bad parameters fail before the store is touched
    try:
        params = parse_params(args.param)
        job.bind(params)
    except ParamError as exc:
        raise ConfigError(str(exc)) from None
    store = open_store(config)
    return store, registry, submit(store, registry, args.name, params, current_traceparent())


# -- run ---------------------------------------------------------------------------------------


def run_now(args: argparse.Namespace) -> int:
    import asyncio

    from pilothouse.features import one_job_runtime
    from pilothouse.jobs.attest import attester_for
    from pilothouse.jobs.registry import load_jobs
    from pilothouse.runtime.app_import import load_app

    config = _config(args)
    # Secrets and telemetry as in a worker (logs to stderr); a missing secret stops here, before
    # anything is queued.
    runtime = one_job_runtime(config)
    load_app(config)  # what the app module registers exists here too, as in serve and worker
    # Outputs without [jobs.provenance], or a key that does not load: one line, nothing queued.
    attester = attester_for(config, load_jobs(config))
    store, job_id = asyncio.run(_run_here(runtime, lambda config: _submit(args, config), attester))
    return _report(args, store, job_id)


async def _run_here(
    runtime: Runtime,
    submit_job: Callable[[Config], tuple[JobStore, Registry, int]],
    attester: OutputAttester | None = None,
) -> tuple[JobStore, int]:
    """Submit the job (`submit_job`: the store, the registry and the new job's id), claim it and
    run it in this process (heartbeating like a worker), inside the runtime's lifecycle whatever
    happens: start hooks (secret rotation), then the drain and flush hooks (spans exported,
    secrets closed, leases revoked)."""
    import asyncio

    from pilothouse.jobs.worker import Worker, new_worker_id

    config = runtime.config
    assert config.jobs is not None
    try:
        store, registry, job_id = submit_job(config)
        await runtime.run_start_hooks()
        worker = Worker(
            store,
            registry,
            config.jobs,
            runtime.metrics,
            worker_id=new_worker_id("cli-"),
            attester=attester,
        )
        await worker.start(claim=False)
        try:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, worker.cancel, job_id, "interrupted")
            started = await worker.claim(1, job_id)
            if not started:  # a worker on the same store was faster: follow it instead
                await asyncio.to_thread(_wait_finished, store, job_id)
            else:
                await started[0]
        finally:
            await worker.stop()
        return store, job_id
    finally:
        await runtime.run_drain_hooks()
        await runtime.flush()


# -- worker ------------------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> int:
    import asyncio

    from pilothouse.config.jobs import MAX_CONCURRENCY
    from pilothouse.features import install_all
    from pilothouse.jobs.standalone import run_worker as serve_worker
    from pilothouse.runtime.admin_auth import admin_token
    from pilothouse.runtime.app_import import load_app
    from pilothouse.runtime.runtime import Runtime

    config = _config(args)
    assert config.jobs is not None
    if not args.no_ops:
        admin_token(config.ops.admin_token_env)  # a weak token: one line before anything starts
    if args.concurrency is not None and not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"--concurrency: {args.concurrency} is invalid: expected 1 to {MAX_CONCURRENCY}")
    update: dict[str, Any] = {"worker": True}
    if args.concurrency:
        update["concurrency"] = args.concurrency
    config = config.model_copy(update={"jobs": config.jobs.model_copy(update=update)})
    app = load_app(config)  # its @pilothouse.check functions register on import
    runtime = Runtime(config, role="jobs")
    install_all(runtime)
    return asyncio.run(serve_worker(runtime, app, serve_ops=not args.no_ops))


# -- submit, list, show, cancel ----------------------------------------------------------------


def run_submit(args: argparse.Namespace) -> int:
    config = _config(args)
    store, _, job_id = _submit(args, config)
    if not args.wait:
        emit(
            args,
            {"id": job_id, "job": args.name, "state": "queued"},
            f"submitted job #{job_id} ({args.name})",
        )
        return 0
    print(f"submitted job #{job_id} ({args.name}); waiting", file=sys.stderr)
    _wait_finished(store, job_id)
    return _report(args, store, job_id)


def _wait_finished(store: JobStore, job_id: int) -> None:
    """Poll until the job finished; show its state and current step on stderr when they change
    (and every few seconds, so a long step still shows signs of life)."""
    started = time.monotonic()
    last, shown_at = "", 0.0
    while True:
        record = store.get(job_id)
        if record is None or record.state == "finished":
            return
        steps = [s for s in store.steps(job_id) if s.attempt == record.attempts]
        current = next((s.name for s in steps if s.outcome == "running"), None)
        line = f"job #{job_id}: {record.state}" + (f", step {current}" if current else "")
        now = time.monotonic()
        if line != last or now - shown_at >= 5:
            print(f"{line} ({now - started:.0f}s)", file=sys.stderr)
            last, shown_at = line, now
        time.sleep(POLL)


def _report(args: argparse.Namespace, store: JobStore, job_id: int) -> int:
    record = store.get(job_id)
    if record is None:
        raise OperationError(f"job #{job_id} disappeared from the store")
    _show(args, store, record)
    return 0 if record.outcome in ("ok", "warning") else 1


def run_list(args: argparse.Namespace) -> int:
    from pilothouse.jobs.store import open_store

    if not 1 <= args.limit <= MAX_LIMIT:
        raise ConfigError(f"--limit: {args.limit} is invalid: expected 1 to {MAX_LIMIT}")
    store = open_store(_config(args))
    records = store.list_jobs(args.state, args.limit)
    rows = [
        (
            f"#{r.id}",
            r.name,
            r.state,
            r.outcome or "-",
            _rc(r.max_rc),
            str(r.attempts),
            r.worker_id or "-",
            _ago(store.now(), r.submitted_at),
        )
        for r in records
    ]
    header = ("ID", "JOB", "STATE", "OUTCOME", "RC", "ATTEMPTS", "WORKER", "SUBMITTED")
    emit(args, [r.as_dict() for r in records], _table(header, rows) if rows else "no jobs")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from pilothouse.jobs.store import open_store

    store = open_store(_config(args))
    record = store.get(_job_id(args))
    if record is None:
        raise UsageError(f"no job #{args.id} in the store")
    _show(args, store, record)
    return 0


def _show(args: argparse.Namespace, store: JobStore, record: JobRecord) -> None:
    steps = store.steps(record.id)
    data = {**record.as_dict(), "steps": [s.as_dict() for s in steps]}
    lines = [
        f"job #{record.id} {record.name}: {record.state}"
        + (f", {record.outcome}, RC {_rc(record.max_rc)}" if record.outcome else ""),
        f"  params: {record.params}   attempts: {record.attempts}/{record.max_attempts}"
        f"   worker: {record.worker_id or '-'}",
    ]
    if record.error:
        lines.append(f"  error: {record.error}")
    if steps:
        rows = [
            (
                str(s.attempt),
                str(s.seq),
                s.name,
                s.outcome,
                _rc(s.rc),
                str(s.tries),
                f"{s.finished_at - s.started_at:.3f}s" if s.started_at and s.finished_at else "-",
                s.error or "",
            )
            for s in steps
        ]
        lines.append(_table(("ATTEMPT", "#", "STEP", "OUTCOME", "RC", "TRIES", "TIME", "ERROR"), rows, "  "))
    emit(args, data, "\n".join(lines))


def run_cancel(args: argparse.Namespace) -> int:
    from pilothouse.jobs.store import open_store

    config = _config(args)
    assert config.jobs is not None
    store = open_store(config)
    before = store.get(_job_id(args))
    if before is None:
        raise UsageError(f"no job #{args.id} in the store")
    if before.state == "finished":
        raise OperationError(f"job #{args.id} already finished ({before.outcome}); nothing to cancel")
    record = store.request_cancel(args.id)
    if record is None:
        raise UsageError(f"no job #{args.id} in the store")
    text = (
        f"job #{args.id} cancelled before it started"
        if record.state == "finished"
        else f"job #{args.id}: cancel requested; worker {record.worker_id} stops it "
        f"(killed after {config.jobs.cancel_grace:g}s if it does not stop by itself)"
    )
    emit(args, record.as_dict(), text)
    return 0


def run_schedules(args: argparse.Namespace) -> int:
    from pilothouse.jobs import cron
    from pilothouse.jobs.registry import load_jobs
    from pilothouse.jobs.scheduler import check_schedules
    from pilothouse.jobs.store import open_store

    if not 1 <= args.count <= 100:
        raise ConfigError(f"--count: {args.count} is invalid: expected 1 to 100")
    config = _config(args)
    assert config.jobs is not None
    check_schedules(config.jobs, load_jobs(config), config.source)
    store = open_store(config)
    states = {state.name: state for state in store.schedule_states()}
    now = store.now()
    data, rows = [], []
    for schedule in config.jobs.schedules:
        state = states.get(schedule.key)
        upcoming = cron.next_fires(schedule.cron, schedule.timezone, now, args.count)
        data.append(
            {
                "name": schedule.key,
                "job": schedule.job,
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "scheduler": config.jobs.scheduler,
                "next": upcoming,
                "state": state.as_dict() if state is not None else None,
            }
        )
        rows.append(
            (
                schedule.key,
                schedule.job,
                schedule.cron,
                schedule.timezone,
                ", ".join(_when(t, schedule.timezone) for t in upcoming),
                _when(state.last_fire, schedule.timezone) if state else "-",
                _when(state.last_success, schedule.timezone) if state and state.last_success else "-",
                str(state.missed) if state else "-",
            )
        )
    header = ("SCHEDULE", "JOB", "CRON", "TIMEZONE", "NEXT", "LAST FIRE", "LAST SUCCESS", "MISSED")
    text = _table(header, rows) if rows else "no [[jobs.schedules]] in the config"
    if rows and config.jobs.scheduler != "worker":
        text += f"\nfired by {config.jobs.scheduler} (generated artifacts), not by the job worker"
    emit(args, data, text)
    return 0


# -- formatting ----------------------------------------------------------------------------------


def _rc(value: int | None) -> str:
    return "-" if value is None else str(value)


def _when(epoch: float, timezone: str) -> str:
    import datetime
    import zoneinfo

    moment = datetime.datetime.fromtimestamp(epoch, zoneinfo.ZoneInfo(timezone))
    return moment.isoformat(timespec="seconds")


def _ago(now: float, then: float) -> str:
    seconds = max(0.0, now - then)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], indent: str = "") -> str:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        indent + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )
