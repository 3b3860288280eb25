"""Queueing a job, the one way the CLI and the ops API both use: the job must be declared and
its parameters valid *before* anything is stored, so a typo fails at once, not at 3 a.m."""

from __future__ import annotations

from collections.abc import Mapping

from pilothouse.jobs.definition import ParamError
from pilothouse.jobs.registry import Registry
from pilothouse.jobs.store import JobStore


def submit(
    store: JobStore,
    registry: Registry,
    name: str,
    params: Mapping[str, object],
    traceparent: str | None = None,
) -> int:
    """The new job's id. OperationError for an unknown job, ParamError for bad parameters,
    Draining while the store drains."""
    job = registry.get(name)
    bound = job.bind(params)
    return store.submit(
        name, bound, on_lost=job.on_lost, max_attempts=job.max_attempts, traceparent=traceparent
    )


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`["k=v", ...]` from the command line; ParamError names the malformed one."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"--param {pair!r}: expected KEY=VALUE")
        params[key.strip()] = value
    return params
