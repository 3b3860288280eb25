"""`pilothouse.backup`: a backup run is a Pilothouse job, so it has steps with return codes,
metrics, drain and cancel, and it can be scheduled like any job.

Steps: `prepare` (create the repository, clear stale locks), one `target-<name>` per target,
`manifest` (marks the run good; skipped when a target failed), `forget` (retention and prune).
"""

from __future__ import annotations

import asyncio
import time

from pilothouse.backup import plan
from pilothouse.config.model import Config
from pilothouse.jobs.context import StepContext
from pilothouse.jobs.definition import ERROR, Job, Param

BACKUP = "pilothouse.backup"
RESTORE_TEST = "pilothouse.backup-restore-test"


def backup_job(config: Config) -> Job:
    job = Job(
        BACKUP,
        {"only": Param(str, default="", help="comma-separated target names (default all)")},
        on_lost="fail",
        max_attempts=1,
        description="back up the [[backup.targets]] with restic",
    )

    def wanted(ctx: StepContext, name: str) -> bool:
        return name in {t.name for t in plan.selected(config, ctx.params["only"])}

    @job.step("prepare")
    def prepare(ctx: StepContext) -> int:
        restic = plan.restic_for(config)
        restic.ensure_repository()
        restic.run("unlock")  # only stale locks (a killed run's) are removed
        ctx.shared.update(restic=restic, entries=[], started=time.time(), run=f"{ctx.job_id}")
        return 0

    for target in config.backup.targets if config.backup else []:

        def step(ctx: StepContext, target_name: str = target.name) -> int:
            if not wanted(ctx, target_name):
                ctx.log.info("target %s not selected", target_name)
                return 0
            chosen = next(t for t in config.backup.targets if t.name == target_name)  # type: ignore[union-attr]
            entry = plan.back_up(
                config, ctx.shared["restic"], chosen, ctx.shared["run"], lambda: ctx.cancelled
            )
            ctx.log.info(
                "target %s: snapshot %s, %d bytes in %.3fs",
                target_name,
                entry["snapshot"][:8],
                entry["bytes"],
                entry["seconds"],
            )
            ctx.shared["entries"].append(entry)
            return 0

        job.step(f"target-{target.name}")(step)

    @job.step("manifest", when_below=ERROR)
    def manifest(ctx: StepContext) -> int:
        written = plan.write_manifest(
            ctx.shared["restic"], ctx.shared["run"], ctx.shared["started"], ctx.shared["entries"]
        )
        ctx.log.info("manifest snapshot %s: run %s is complete", written["snapshot"][:8], written["run"])
        return 0

    @job.step("forget", when_below=ERROR)
    async def forget(ctx: StepContext) -> int:
        assert config.backup is not None
        await asyncio.to_thread(plan.forget, ctx.shared["restic"], config.backup)
        return 0

    return job


def restore_test_job(config: Config) -> Job:
    """The restore drill as a job, so it can be scheduled and its outcome becomes a metric."""
    job = Job(
        RESTORE_TEST,
        {},
        on_lost="fail",
        max_attempts=1,
        description="restore the newest good backup into scratch and check it",
    )

    @job.step("restore-test")
    async def drill(ctx: StepContext) -> int:
        from pilothouse.backup.drills import restore_test

        found = await asyncio.to_thread(restore_test, config)
        ctx.log.info("restore test of run %s ok: RTO %.2fs", found["run"], found["rto_seconds"])
        return 0

    return job
