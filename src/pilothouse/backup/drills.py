"""Using a backup: verify the repository, restore the latest good run into scratch places and check
it (restore-test, with the measured recovery time), or restore it for real.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from pilothouse.backup import plan, targets
from pilothouse.backup.restic import Restic
from pilothouse.config.backup import BackupTarget
from pilothouse.config.model import Config
from pilothouse.errors import OperationError


def verify(config: Config) -> dict[str, Any]:
    """`restic check --read-data-subset` and the latest manifest's snapshots all present."""
    restic = plan.restic_for(config)
    restic.ensure_repository_exists()
    restic.run("unlock")
    subset = plan.settings(config).verify_subset
    restic.run("check", f"--read-data-subset={subset}")
    manifest = plan.latest_manifest(restic)
    present = {s["id"] for s in restic.snapshots()} | {s.get("short_id", "") for s in restic.snapshots()}
    missing = [e["name"] for e in manifest["targets"] if e["snapshot"] not in present]
    if missing:
        raise OperationError(
            f"backup verify: run {manifest['run']}: snapshot of target '{missing[0]}' is missing"
        )
    return {
        "run": manifest["run"],
        "time": manifest["time"],
        "subset": subset,
        "targets": [e["name"] for e in manifest["targets"]],
    }


@contextlib.contextmanager
def _scratch_database(url: str) -> Any:
    """A new, uniquely named database on the target's server, dropped afterwards."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"pilothouse_restore_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = {k: v for k, v in conninfo_to_dict(url).items() if v is not None}
    try:
        yield make_conninfo("", **{**info, "dbname": name})
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_tables(name: str, expected: dict[str, Any], found: dict[str, Any]) -> None:
    for table, facts in expected.items():
        if found.get(table) != facts:
            raise OperationError(
                f"restore-test: target '{name}': table {table} differs after restore "
                f"(expected {facts}, found {found.get(table)})"
            )


def restore_test(config: Config) -> dict[str, Any]:
    """Restore the latest good run into scratch (a temporary database, a temporary directory),
    check it against the manifest; the measured recovery time per target and in total."""
    restic = plan.restic_for(config)
    manifest = plan.latest_manifest(restic)
    by_name = {t.name: t for t in plan.settings(config).targets}
    results = []
    started = time.monotonic()
    for entry in manifest["targets"]:
        t0 = time.monotonic()
        name, kind = entry["name"], entry["kind"]
        target = by_name.get(name)
        if kind == "postgres" or (kind == "job_store" and "tables" in entry):
            url = plan.url_of(config, target) if kind == "postgres" and target else _store_url(config)
            with _scratch_database(url) as scratch:
                targets.restore_postgres(restic, entry, name, scratch)
                _check_tables(name, entry["tables"], targets.table_sums(scratch))
            check = f"{len(entry['tables'])} table(s): row counts and content checksums equal"
        elif kind == "job_store":
            data = restic.dump(entry["snapshot"], f"/{name}.sqlite3")
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise OperationError(f"restore-test: target '{name}': checksum differs after restore")
            conn = sqlite3.connect(":memory:")
            conn.deserialize(data)
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            conn.close()
            if verdict != "ok":
                raise OperationError(f"restore-test: target '{name}': integrity_check: {verdict}")
            check = "sha256 equal, integrity_check ok"
        elif kind == "logs":
            from pilothouse.backup import logs

            with tempfile.TemporaryDirectory(prefix="pilothouse-restore-") as scratch:
                restored = targets.restore_paths(restic, entry, Path(scratch))
                check = logs.check(restored[0], entry["files"], name)
        elif kind == "prometheus":
            from pilothouse.backup import tsdb

            with tempfile.TemporaryDirectory(prefix="pilothouse-restore-") as scratch:
                restored = targets.restore_paths(restic, entry, Path(scratch) / "data")
                if targets.tree_digest(*restored) != entry["sha256"]:
                    raise OperationError(
                        f"restore-test: target '{name}': file checksums differ after restore"
                    )
                query = target.query if target else None
                binary = plan.settings(config).prometheus
                check = "file checksums equal, " + tsdb.check(
                    binary, restored[0], Path(scratch), entry["tsdb"], query
                )
        else:
            with tempfile.TemporaryDirectory(prefix="pilothouse-restore-") as scratch:
                restored = targets.restore_paths(restic, entry, Path(scratch))
                if targets.tree_digest(*restored) != entry["sha256"]:
                    raise OperationError(
                        f"restore-test: target '{name}': file checksums differ after restore"
                    )
                if kind == "config":
                    from pilothouse.config import load_config

                    load_config(restored[0])
            check = "file checksums equal" + (", config parses" if kind == "config" else "")
        results.append(
            {
                "name": name,
                "kind": kind,
                "bytes": entry["bytes"],
                "check": check,
                "rto_seconds": round(time.monotonic() - t0, 3),
            }
        )
    return {
        "run": manifest["run"],
        "time": manifest["time"],
        "targets": results,
        "rto_seconds": round(time.monotonic() - started, 3),
    }


def _beside(path: Path, what: str, run: str) -> Path:
    return path.with_name(f"{path.name}.{what}-{run}")


def _restore_prometheus(
    config: Config, restic: Restic, entry: dict[str, Any], target: BackupTarget, run: str
) -> None:
    """The snapshot becomes the data directory (Prometheus opens a snapshot as its TSDB); the
    current one is renamed aside, not deleted. Refused while Prometheus answers."""
    from pilothouse.backup import tsdb

    url = plan.url_of(config, target)
    if tsdb.answering(url):
        raise OperationError(f"restore: Prometheus at {url} is running: stop it before restoring its TSDB")
    assert target.path is not None
    data = Path(target.path)
    staging = _beside(data, "restoring", run)
    restored = targets.restore_paths(restic, entry, staging)[0]
    if data.exists():
        data.rename(_beside(data, "before-restore", run))
    restored.rename(data)
    import shutil

    shutil.rmtree(staging, ignore_errors=True)


def _store_url(config: Config) -> str:
    jobs = config.jobs
    assert jobs is not None and jobs.url is not None
    if isinstance(jobs.url, str):
        return jobs.url
    from pilothouse.secrets import SecretResolver

    return SecretResolver(config).get(jobs.url)


def restore_plan(config: Config, only: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What `restore` would do: the latest good run and, per selected target, where it goes."""
    restic = plan.restic_for(config)
    manifest = plan.latest_manifest(restic)
    chosen = {t.name: t for t in plan.selected(config, only)}
    steps = []
    for entry in manifest["targets"]:
        target = chosen.get(entry["name"])
        if target is None:
            continue
        if target.kind == "postgres":
            from pilothouse.jobs.store.postgres import describe_url

            where = f"database {describe_url(plan.url_of(config, target))} (pg_restore --clean)"
        elif target.kind in ("directory", "config"):
            where = ", ".join(entry["paths"]) + " (files overwritten in place)"
        elif target.kind == "logs":
            into = _beside(Path(entry["paths"][0]), "restored", manifest["run"])
            where = f"{into} (the live logs untouched)"
        elif target.kind == "prometheus":
            assert target.path is not None
            kept = _beside(Path(target.path), "before-restore", manifest["run"])
            where = f"{target.path} (Prometheus stopped first; the current data kept as {kept})"
        else:
            where = "the job store (stop the workers first)"
        steps.append({"name": entry["name"], "snapshot": entry["snapshot"], "into": where})
    return manifest, steps


def restore(config: Config, only: str | None) -> dict[str, Any]:
    """Restore the latest good run of the selected targets in place; timed."""
    restic = plan.restic_for(config)
    manifest, steps = restore_plan(config, only)
    by_name = {t.name: t for t in plan.settings(config).targets}
    started = time.monotonic()
    for step in steps:
        entry = next(e for e in manifest["targets"] if e["name"] == step["name"])
        target = by_name[step["name"]]
        if target.kind == "postgres":
            targets.restore_postgres(restic, entry, target.name, plan.url_of(config, target))
        elif target.kind in ("directory", "config"):
            targets.restore_paths(restic, entry, Path("/"))
        elif target.kind == "logs":
            into = _beside(Path(entry["paths"][0]), "restored", manifest["run"])
            targets.restore_paths(restic, entry, into)
        elif target.kind == "prometheus":
            _restore_prometheus(config, restic, entry, target, manifest["run"])
        elif "tables" in entry:
            targets.restore_postgres(restic, entry, target.name, _store_url(config))
        else:
            assert config.jobs is not None and config.source is not None
            path = Path(config.jobs.path)
            path = path if path.is_absolute() else config.source.parent / path
            data = restic.dump(entry["snapshot"], f"/{target.name}.sqlite3")
            part = path.with_suffix(".restoring")
            part.write_bytes(data)
            part.replace(path)
    return {
        "run": manifest["run"],
        "targets": [s["name"] for s in steps],
        "seconds": round(time.monotonic() - started, 3),
    }
