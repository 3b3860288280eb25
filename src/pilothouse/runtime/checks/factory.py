"""From `[[checks]]` entries to runnable `Check`s.

A check whose URL is a secret reference gets its value from the `resolve` callable it is handed
(the secrets feature's resolver, `Runtime.resolve_secret`): the runtime does not import the
secrets feature."""

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
from pilothouse.config.secret_ref import ResolveSecret, SecretRef
from pilothouse.errors import SecretError
from pilothouse.runtime.checks.local import disk_probe, freshness_probe
from pilothouse.runtime.checks.network import UrlSource, http_probe, postgres_probe, redis_probe, tcp_probe
from pilothouse.runtime.checks.python import python_probe
from pilothouse.runtime.checks.result import Check, Probe


def no_resolver(ref: SecretRef) -> str:
    """The resolver of a runtime without the secrets feature: every reference is an error."""
    raise SecretError(f"{ref}: no secret resolver (the secrets feature is not installed)")


def build_checks(config: Config, resolve: ResolveSecret = no_resolver) -> list[Check]:
    """One Check per config entry; resolves secret URLs now so a missing secret fails startup."""
    checks = []
    for cfg in config.checks:
        timeout = config.check_timeout(cfg)
        checks.append(Check(cfg.name, cfg.kind, cfg.critical, timeout, _probe(cfg, timeout, resolve)))
    return checks


def _probe(cfg: CheckConfig, timeout: float, resolve: ResolveSecret) -> Probe:
    match cfg:
        case PostgresCheck():
            return postgres_probe(cfg, url_source(cfg.url, resolve), timeout)
        case RedisCheck():
            return redis_probe(cfg, url_source(cfg.url, resolve), timeout)
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


def url_source(value: str | SecretRef, resolve: ResolveSecret) -> UrlSource:
    """A getter for the check's URL. A secret is resolved now (a missing one fails startup) and
    again on every run through `resolve`, which returns the live value after a rotation."""
    if isinstance(value, SecretRef):
        resolve(value)
        return lambda: resolve(value)
    return lambda: value
