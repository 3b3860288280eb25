"""What a backup run saves, target by target, and the manifest that marks a run good.

A run's snapshots carry the tags `pilothouse`, `run:<id>` and `target:<name>`. The manifest
(targets, snapshot ids, sizes, durations, checksums, table row counts) is stored last, as its own
snapshot tagged `manifest`: a run without one (interrupted, a target failed) is never used by
`verify`, `restore-test` or `restore`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilothouse.backup import targets
from pilothouse.backup.restic import TAG, Restic
from pilothouse.config.backup import BackupConfig, BackupTarget
from pilothouse.config.model import Config
from pilothouse.errors import ConfigError, OperationError

MANIFEST = "manifest.json"


def settings(config: Config) -> BackupConfig:
    if config.backup is None:
        raise ConfigError(f"{config.source}: [backup] section is missing (add one to use backups)")
    return config.backup


def restic_for(config: Config) -> Restic:
    from pilothouse.secrets import SecretResolver

    section = settings(config)
    resolver = SecretResolver(config)
    env = {}
    if section.s3 is not None:
        env = {
            "AWS_ACCESS_KEY_ID": resolver.get(section.s3.access_key_id),
            "AWS_SECRET_ACCESS_KEY": resolver.get(section.s3.secret_access_key),
        }
        if section.s3.region:
            env["AWS_DEFAULT_REGION"] = section.s3.region
    return Restic(section, resolver.get(section.password), env)


def selected(config: Config, only: str | list[str] | None) -> list[BackupTarget]:
    """The targets `only` names (all when empty); ConfigError naming an unknown one."""
    section = settings(config)
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only or []) if n.strip()]
    known = {t.name for t in section.targets}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"--only: unknown backup target '{unknown[0]}' (known: {', '.join(sorted(known)) or 'none'})"
        )
    if not section.targets:
        raise ConfigError(f"{config.source}: [backup] has no [[backup.targets]]")
    return [t for t in section.targets if not names or t.name in names]


def url_of(config: Config, target: BackupTarget) -> str:
    from pilothouse.secrets import SecretResolver

    assert target.url is not None
    return target.url if isinstance(target.url, str) else SecretResolver(config).get(target.url)


def config_paths(config: Config, target: BackupTarget) -> list[Path]:
    assert config.source is not None
    paths = [config.source.resolve()]
    if target.bundle:
        bundle = Path(target.bundle)
        paths.append((bundle if bundle.is_absolute() else config.source.parent / bundle).resolve())
    return paths


def back_up(
    config: Config, restic: Restic, target: BackupTarget, run: str, cancelled: Callable[[], bool]
) -> dict[str, Any]:
    """One target into the repository; its manifest entry."""
    tags = f"{TAG},run:{run},target:{target.name}"
    base = {"name": target.name, "kind": target.kind}
    if target.kind == "postgres":
        return base | targets.backup_postgres(restic, target.name, url_of(config, target), tags, cancelled)
    if target.kind == "directory":
        assert target.path is not None
        return base | targets.backup_paths(restic, [Path(target.path)], tags, cancelled)
    if target.kind == "logs":
        assert target.path is not None
        return base | targets.backup_logs(restic, Path(target.path), target.pattern, tags, cancelled)
    if target.kind == "prometheus":
        assert target.path is not None
        url, data = url_of(config, target), Path(target.path)
        return base | targets.backup_prometheus(restic, url, data, tags, cancelled)
    if target.kind == "config":
        return base | targets.backup_paths(restic, config_paths(config, target), tags, cancelled)
    return base | _job_store(config, restic, target, tags, cancelled)


def _job_store(
    config: Config, restic: Restic, target: BackupTarget, tags: str, cancelled: Callable[[], bool]
) -> dict[str, Any]:
    jobs = config.jobs
    if jobs is None:
        raise ConfigError(f"{config.source}: backup target '{target.name}': there is no [jobs] section")
    if jobs.url is not None:
        url = (
            jobs.url
            if isinstance(jobs.url, str)
            else url_of(config, target.model_copy(update={"url": jobs.url}))
        )
        return targets.backup_postgres(restic, target.name, url, tags, cancelled, schema=jobs.pg_schema)
    path = Path(jobs.path) if Path(jobs.path).is_absolute() else config.source.parent / jobs.path  # type: ignore[union-attr]
    import hashlib

    data = targets.sqlite_bytes(path)
    started = time.monotonic()
    proc = restic.run(
        "backup", "--stdin", "--stdin-filename", f"{target.name}.sqlite3", "--tag", tags, "--json", stdin=data
    )
    summary = json.loads([ln for ln in proc.stdout.decode().splitlines() if '"summary"' in ln][-1])
    return {
        "snapshot": summary["snapshot_id"],
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "seconds": round(time.monotonic() - started, 3),
    }


def write_manifest(restic: Restic, run: str, started: float, entries: list[dict[str, Any]]) -> dict[str, Any]:
    manifest = {
        "run": run,
        "host": socket.gethostname(),
        "started_at": started,
        "finished_at": time.time(),
        "targets": entries,
    }
    proc = restic.run(
        "backup",
        "--stdin",
        "--stdin-filename",
        MANIFEST,
        "--tag",
        f"{TAG},run:{run},manifest",
        "--json",
        stdin=json.dumps(manifest, indent=2, sort_keys=True).encode(),
    )
    summary = json.loads([ln for ln in proc.stdout.decode().splitlines() if '"summary"' in ln][-1])
    return {**manifest, "snapshot": summary["snapshot_id"]}


def latest_manifest(restic: Restic) -> dict[str, Any]:
    """The manifest of the newest good run; OperationError when there is none."""
    restic.ensure_repository_exists()
    found = restic.snapshots("manifest")
    if not found:
        raise OperationError(
            f"backup: no complete backup in {restic.settings.repository} (run `pilothouse backup run`)"
        )
    latest = found[-1]
    manifest: dict[str, Any] = json.loads(restic.dump(str(latest["id"]), f"/{MANIFEST}"))
    manifest["snapshot"] = latest["id"]
    manifest["time"] = latest["time"]
    return manifest


def forget(restic: Restic, section: BackupConfig) -> str:
    """Retention: keep_daily/weekly/monthly per target path, then prune unreferenced data."""
    proc = restic.run(
        "forget",
        "--tag",
        TAG,
        "--group-by",
        "paths",
        "--keep-daily",
        str(section.keep_daily),
        "--keep-weekly",
        str(section.keep_weekly),
        "--keep-monthly",
        str(section.keep_monthly),
        "--prune",
    )
    return proc.stdout.decode(errors="replace")
