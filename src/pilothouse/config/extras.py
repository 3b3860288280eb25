"""Which Pilothouse extras a config needs at run time, derived from what it declares.

The image build installs exactly these (never a hand-typed list), so a postgres check cannot ship
without its driver and an OTLP exporter cannot be missing from the image that exports traces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pilothouse.config.model import Config


def otlp_extra(protocol: Literal["http", "grpc"]) -> str:
    """The extra that brings the OTLP span exporter for `telemetry.otlp_protocol`."""
    return "otlp" if protocol == "http" else "otlp-grpc"


def required_extras(config: Config) -> list[str]:
    """Sorted extras: drivers for checks, the job store and Redis rate limits, tracing, secret
    sources, app-port authentication and CORS, the fast stack when `[service] http/loop` name it; plus the
    `[deploy.container] extras` on top."""
    kinds = {check.kind for check in config.checks}
    needed = set(config.deploy.container.extras)
    if "postgres" in kinds or (config.jobs is not None and config.jobs.url is not None):
        needed.add("postgres")
    protection = config.protection
    if config.jobs is not None and config.jobs.schedules:
        needed.add("schedules")  # croniter: the worker fires them in process
    if "redis" in kinds or any(limit.storage == "redis" for limit in protection.rate_limits):
        needed.add("redis")
    if protection.auth is not None:
        needed.add("auth")  # PyJWT: the auth middleware imports it, API keys alone included
    if protection.cors is not None:
        needed.add("cors")
    if config.telemetry.traces != "none":
        needed.add("traces")
    if config.telemetry.traces == "otlp":
        needed.add(otlp_extra(config.telemetry.otlp_protocol))
    backup = config.backup
    if backup is not None and any(t.kind == "postgres" for t in backup.targets):
        needed.add("postgres")  # psycopg: the dump's consistent snapshot and restore-test checks
    if config.maintenance.certificates:
        needed.add("certificates")  # cryptography reads the certificates' expiry
    if config.maintenance.updates is not None:
        needed.add("updates")  # packaging compares the installed versions with the index's
    if config.service.http == "httptools" or config.service.loop == "uvloop":
        needed.add("fast")  # httptools and uvloop ("auto" uses them when installed)
    if "vault" in config.secrets.sources:
        needed.add("vault")
    return sorted(needed)


def pilothouse_requirement_name(config: Config) -> str:
    """`pilothouse[extra,...]` (or `pilothouse` when none), as pip and the Dockerfile spell it."""
    extras = required_extras(config)
    return f"pilothouse[{','.join(extras)}]" if extras else "pilothouse"
