"""Jobs Pilothouse itself declares, available to every config with a `[jobs]` section, so that
maintenance is scheduled like any other job (`[[jobs.schedules]] job = "pilothouse.prune-jobs"`).

They are bound to the config they were loaded with (they open its store), so `load_jobs`
registers them again for each config.
"""

from __future__ import annotations

import asyncio

from pilothouse.config.model import Config
from pilothouse.durations import parse_duration
from pilothouse.jobs.context import StepContext
from pilothouse.jobs.definition import Job, Param, ParamError

PRUNE_JOBS = "pilothouse.prune-jobs"


def prune_jobs(config: Config) -> Job:
    """Retention of finished job records, by age and by count."""
    job = Job(
        PRUNE_JOBS,
        {
            "max_age": Param(str, default="30d", help="delete finished jobs older than this"),
            "keep": Param(int, default=10_000, help="keep at most this many finished jobs"),
        },
        description="delete finished job records older than max_age or beyond the newest keep",
    )

    @job.step("prune", idempotent=True, retries=2)
    async def prune(ctx: StepContext) -> int:
        try:
            max_age = parse_duration(ctx.params["max_age"])
        except ValueError as exc:
            raise ParamError(f"parameter 'max_age': {exc}") from None
        if ctx.params["keep"] < 0:
            raise ParamError("parameter 'keep': must be 0 or more")
        deleted = await asyncio.to_thread(_prune, config, max_age, ctx.params["keep"])
        ctx.log.info("deleted %d finished job record(s)", deleted)
        return 0

    return job


def _prune(config: Config, max_age: float, keep: int) -> int:
    from pilothouse.jobs.store import open_store

    store = open_store(config)
    try:
        return store.prune_finished(max_age, keep)
    finally:
        store.close()


def builtin_jobs(config: Config) -> list[Job]:
    from pilothouse.maintenance.report import report_job

    found = [prune_jobs(config), report_job(config)]
    if config.maintenance.prometheus is not None:
        from pilothouse.maintenance.prometheus import prometheus_cleanup

        found.append(prometheus_cleanup(config))
    if config.maintenance.certificates:
        from pilothouse.maintenance.certificates import certificates_job

        found.append(certificates_job(config))
    if config.maintenance.updates is not None:
        from pilothouse.maintenance.updates import updates_job

        found.append(updates_job(config))
    if config.backup is not None:
        from pilothouse.backup.job import backup_job, restore_test_job

        found += [backup_job(config), restore_test_job(config)]
    return found
