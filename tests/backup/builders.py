"""What the backup tests and `bench/backup.py` both build, in one place: a scratch database, and
the configs (the service, job store and `[backup]` section, the `[backup.s3]` keys, each
`[[backup.targets]]` table; values written as TOML basic strings, whose escapes are JSON's)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg


def target(name: str, kind: str, **fields: str | Path) -> str:
    """One `[[backup.targets]]` table: `target("db", "postgres", url=...)`."""
    values = {"name": name, "kind": kind, **fields}
    lines = [f"{key} = {json.dumps(str(value))}" for key, value in values.items()]
    return "\n[[backup.targets]]\n" + "\n".join(lines) + "\n"


def s3_keys(key_env: str, secret_env: str) -> str:
    """`[backup.s3]`: both keys secret references, resolved from these environment variables."""
    return f"""
[backup.s3]
access_key_id = {{ secret = "backup.s3_key_id", env = "{key_env}" }}
secret_access_key = {{ secret = "backup.s3_secret", env = "{secret_env}" }}
region = "us-east-1"
"""


def backup_config(
    service: str,
    repository: str | Path,
    password_env: str,
    targets: Sequence[str],
    *,
    verify_subset: str,
    restic: str | None = None,
    extra: str = "",
) -> str:
    """A service with a SQLite job store beside its config, text logs, and `[backup]` into
    `repository` with the password from `password_env`; `extra` goes inside `[backup]` (e.g.
    `s3_keys(...)`, retention), then the `targets` (see `target`)."""
    restic_line = f"restic = {json.dumps(restic)}\n" if restic else ""
    return f"""
[service]
name = "{service}"

[telemetry]
log_format = "text"

[jobs]
path = "jobs.sqlite3"

[backup]
repository = {json.dumps(str(repository))}
password = {{ secret = "backup.password", env = "{password_env}" }}
{restic_line}verify_subset = "{verify_subset}"
{extra}
{"".join(targets)}"""


def create_database(admin_url: str, prefix: str) -> tuple[str, str]:
    """A new, uniquely named database beside the one `admin_url` names: (its name, its URL).
    The caller drops it (`DROP DATABASE ... WITH (FORCE)`)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"
