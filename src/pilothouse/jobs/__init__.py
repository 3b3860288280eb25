"""Batch and background jobs: steps with return codes, a durable queue, workers, draining.

    from pilothouse.jobs import Param, job

    nightly = job("restock-report", params={"threshold": Param(int, default=5)})

    @nightly.step(timeout="30s")
    def scan(ctx):
        ...
        return 4  # warning: some items are low

    @nightly.step(when_below=8)
    async def publish(ctx):
        ...

See docs/jobs.md.
"""

from pilothouse.jobs.context import Cancelled, StepContext
from pilothouse.jobs.definition import ABEND_RC, ERROR, OK, WARNING, Abend, Job, Param, Step
from pilothouse.jobs.registry import REGISTRY, Registry, job

__all__ = [
    "ABEND_RC",
    "ERROR",
    "OK",
    "REGISTRY",
    "WARNING",
    "Abend",
    "Cancelled",
    "Job",
    "Param",
    "Registry",
    "Step",
    "StepContext",
    "job",
]
