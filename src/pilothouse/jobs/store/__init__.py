"""Job stores: SQLite (default, one host) and PostgreSQL (several workers), chosen in one place."""

from __future__ import annotations

from pilothouse.config.model import Config
from pilothouse.errors import ConfigError
from pilothouse.jobs.store.base import (
    FINISHED,
    QUEUED,
    RUNNING,
    Draining,
    JobRecord,
    JobStore,
    Recovered,
    StepRecord,
    WorkerRecord,
)


def open_store(config: Config, *, migrate: bool = True) -> JobStore:
    """The store `[jobs]` names, migrated to the current schema version."""
    section = config.jobs
    if section is None:
        raise ConfigError(f"{config.source}: [jobs] section is missing (add one to use jobs)")
    store: JobStore
    if section.url is not None:
        from pilothouse.jobs.store.postgres import PostgresStore

        if isinstance(section.url, str):
            url = section.url
        else:
            from pilothouse.secrets import SecretResolver

            url = SecretResolver(config).get(section.url)
        store = PostgresStore(url, section.pg_schema, section.store_timeout)
    else:
        from pilothouse.jobs.store.sqlite import SqliteStore

        store = SqliteStore(config.state_path(section.path))
    if migrate:
        store.migrate()
    return store


__all__ = [
    "FINISHED",
    "QUEUED",
    "RUNNING",
    "Draining",
    "JobRecord",
    "JobStore",
    "Recovered",
    "StepRecord",
    "WorkerRecord",
    "open_store",
]
