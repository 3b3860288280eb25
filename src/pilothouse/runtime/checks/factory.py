"""From `[[checks]]` entries to runnable `Check`s."""

from __future__ import annotations

from pilothouse.config.checks import (
    CheckConfig,
    DiskCheck,
    FreshnessCheck,
    HttpCheck,
    PostgresCheck,
    PythonCheck,
    RedisCheck,
    TcpCheck,
)
from pilothouse.config.model import Config
from pilothouse.config.secret_ref import SecretRef
from pilothouse.runtime.checks.local import disk_probe, freshness_probe
from pilothouse.runtime.checks.network import UrlSource, http_probe, postgres_probe, redis_probe, tcp_probe
from pilothouse.runtime.checks.python import python_probe
from pilothouse.runtime.checks.result import Check, Probe
from pilothouse.secrets import SecretResolver


def build_checks(config: Config, resolver: SecretResolver | None = None) -> list[Check]:
    """One Check per config entry; resolves secret URLs now so a missing secret fails startup."""
    resolver = resolver or SecretResolver(config)
    checks = []
    for cfg in config.checks:
        timeout = config.check_timeout(cfg)
        checks.append(Check(cfg.name, cfg.kind, cfg.critical, timeout, _probe(cfg, timeout, resolver)))
    return checks


def _probe(cfg: CheckConfig, timeout: float, resolver: SecretResolver) -> Probe:
    match cfg:
        case PostgresCheck():
            return postgres_probe(cfg, url_source(cfg.url, resolver), timeout)
        case RedisCheck():
            return redis_probe(cfg, url_source(cfg.url, resolver), timeout)
        case HttpCheck():
            return http_probe(cfg, timeout)
        case TcpCheck():
            return tcp_probe(cfg, timeout)
        case DiskCheck():
            return disk_probe(cfg)
        case FreshnessCheck():
            return freshness_probe(cfg)
        case PythonCheck():
            return python_probe(cfg)


def url_source(value: str | SecretRef, resolver: SecretResolver) -> UrlSource:
    """A getter for the check's URL. A secret is resolved now (a missing one fails startup) and
    again on every run through the resolver, which returns the live value after a rotation."""
    if isinstance(value, SecretRef):
        resolver.get(value)
        return lambda: resolver.get(value)
    return lambda: value
