"""Example values for the secrets a service reads, per target, pointing at what that target runs.

A generated example that leaves the database URL blank makes the unit exit with "required secret
'db.url' not found"; one that points at Kubernetes DNS names fails in compose. The dependency a
secret stands for is read from the model (a postgres or redis check using it, the database URL
handed to the app through `secret_env`), and the value names the host where the target reaches
it: the compose services `postgres` and `redis`, or the host's own for systemd. Passwords stay
placeholders; only the development database (trust authentication) needs none.
"""

from __future__ import annotations

from typing import Literal

from pilothouse.config import Config, SecretRef
from pilothouse.config.deploy import DatabaseConfig
from pilothouse.config.secret_ref import env_name

PLACEHOLDER = "CHANGE-ME"
Target = Literal["compose-dev", "systemd"]
REDIS_PORT = 6379


def database_url(db: DatabaseConfig, host: str, password: str | None) -> str:
    auth = f"{db.user}:{password}" if password is not None else db.user
    return f"postgresql://{auth}@{host}:{db.port}/{db.database}"


def _kind(config: Config, ref: SecretRef) -> str | None:
    """What `ref` is the URL of: 'postgres', 'redis' or None (unknown: a placeholder)."""
    for check in config.checks:
        if check.kind in ("postgres", "redis") and getattr(check, "url", None) == ref:
            return check.kind
    db = config.deploy.database
    if ref.secret == f"{(db or DatabaseConfig()).secret}.url" and ref in config.deploy.secret_env.values():
        return "postgres"
    return None


def example_value(config: Config, ref: SecretRef, target: Target) -> str:
    kind = _kind(config, ref)
    db = config.deploy.database or DatabaseConfig()
    if kind == "postgres":
        if target == "compose-dev":
            return database_url(db, "postgres", None)  # the compose dev database trusts its network
        return database_url(db, "127.0.0.1", PLACEHOLDER)
    if kind == "redis":
        host = "redis" if target == "compose-dev" else "127.0.0.1"
        return f"redis://{host}:{REDIS_PORT}/0"
    return PLACEHOLDER


def env_examples(config: Config, target: Target, runtime_refs: bool) -> dict[str, tuple[str, str]]:
    """{variable: (value, what it is)} for every secret the service reads from its environment:
    the admin token, `[deploy].secret_env`, and (`runtime_refs`, when the `env` source is the one
    that answers) every secret reference under its `env` source name."""
    out = {config.ops.admin_token_env: (PLACEHOLDER, "admin API token")}
    for var, ref in sorted(config.deploy.secret_env.items()):
        out[var] = (example_value(config, ref, target), f"secret '{ref.secret}', read by the app")
    if runtime_refs and "env" in config.secrets.sources:
        for ref in config.secret_refs():
            out.setdefault(
                env_name(config.service.name, ref),
                (example_value(config, ref, target), f"secret '{ref.secret}'"),
            )
    return out
