"""Where declared jobs are found: `job(...)` registers into a registry, `[jobs].module` is
imported so its declarations run, then workers and the CLI look jobs up by name."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from pilothouse.config.model import Config
from pilothouse.errors import ConfigError, UsageError
from pilothouse.jobs.definition import Job, JobDefinitionError, LostPolicy, Param


class UnknownJob(UsageError):
    """No job of that name is declared (in `[jobs].module`)."""


class Registry:
    """Jobs by name. The module-level `REGISTRY` is the one `pilothouse.jobs.job` fills."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def job(
        self,
        name: str,
        *,
        params: Mapping[str, Param] | None = None,
        on_lost: LostPolicy = "requeue",
        max_attempts: int = 3,
        description: str = "",
    ) -> Job:
        """Declare a job; add its steps with `@the_job.step()`."""
        if name in self._jobs:
            raise JobDefinitionError(f"job '{name}' is declared twice")
        declared = Job(name, dict(params or {}), on_lost, max_attempts, description)
        self._jobs[name] = declared
        return declared

    def add_builtin(self, declared: Job) -> None:
        """Register (or re-bind to a new config) one of Pilothouse's own jobs (jobs/builtin.py)."""
        self._jobs[declared.name] = declared

    def get(self, name: str) -> Job:
        """The job called `name`; UnknownJob (a usage error) lists the known ones otherwise."""
        found = self._jobs.get(name)
        if found is None:
            known = ", ".join(sorted(self._jobs)) or "none declared"
            raise UnknownJob(f"unknown job '{name}' (known: {known})")
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[Job]:
        return iter(sorted(self._jobs.values(), key=lambda j: j.name))


REGISTRY = Registry()
job = REGISTRY.job


def load_jobs(config: Config, registry: Registry = REGISTRY) -> Registry:
    """Import `[jobs].module` (next to the config file) so its jobs register themselves."""
    section = config.jobs
    if section is None:
        return registry
    from pilothouse.jobs.builtin import builtin_jobs

    for declared in builtin_jobs(config):
        registry.add_builtin(declared)
    if section.module is None:
        return registry
    for extra in (config.source.parent if config.source else None, Path.cwd()):
        if extra is not None and str(extra.resolve()) not in sys.path:
            sys.path.insert(0, str(extra.resolve()))
    try:
        importlib.import_module(section.module)
    except ModuleNotFoundError as exc:
        if exc.name and section.module.startswith(exc.name):
            raise ConfigError(f"{config.source}: jobs.module: module '{section.module}' not found") from None
        raise
    except JobDefinitionError as exc:
        raise ConfigError(f"{config.source}: jobs.module '{section.module}': {exc}") from None
    return registry
