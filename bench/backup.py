"""Backups: `pilothouse backup run` and `pilothouse backup restore-test` per GB (PostgreSQL, a
directory) and per million Prometheus samples, with the real restic, PostgreSQL and Prometheus,
into a local repository and (with --s3) into an S3 bucket served by moto's S3 server.

The seconds per target are the ones the manifest (backup) and the restore-test report (restore
into scratch plus the checks: table checksums, file checksums, Prometheus opening the snapshot)
record; sizes are the bytes read. Run: `.venv/bin/python bench/backup.py [--s3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from tests.backup.builders import backup_config, create_database, s3_keys, target
from tests.backup.test_prometheus_logs import start_prometheus
from tests.helpers import PILOTHOUSE

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "bench-password-bench-password"
KEYS = {"BENCH_S3_KEY": "AKIABENCH", "BENCH_S3_SECRET": "bench-secret-bench"}


def versions() -> dict[str, str]:
    def first(argv: list[str]) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).splitlines()[0]

    with psycopg.connect(POSTGRES_URL) as conn:
        server = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    return {
        "restic": first(["restic", "version"]),
        "prometheus": first(["prometheus", "--version"]),
        "postgresql": server,
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def fill_database(rows: int) -> tuple[str, str]:
    name, url = create_database(POSTGRES_URL, "bench_backup")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, a text, b text)")
        conn.execute(
            "INSERT INTO t SELECT g, md5(g::text), md5((g*7)::text) FROM generate_series(1, %s) g", (rows,)
        )
    return name, url


def fill_tsdb(directory: Path, samples: int, series: int = 100) -> None:
    """`samples` samples over `series` series, 15 s apart, ending an hour ago (promtool backfill)."""
    per = samples // series
    end = int(time.time()) - 3600
    start = end - per * 15
    source = directory / "bench.om"
    with source.open("w") as out:
        out.write("# TYPE bench_value gauge\n")
        for i in range(per):
            ts = start + i * 15
            out.write("".join(f'bench_value{{s="{n}"}} {(i * n) % 1000} {ts}\n' for n in range(series)))
        out.write("# EOF\n")
    data = directory / "data"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
    )
    source.unlink()


def config_text(repo: str, db_url: str, files: Path, prom_url: str, prom_data: Path, s3: str | None) -> str:
    targets = [
        target("db", "postgres", url=db_url),
        target("files", "directory", path=files),
        target("metrics", "prometheus", url=prom_url, path=prom_data),
    ]
    extra = s3_keys("BENCH_S3_KEY", "BENCH_S3_SECRET") if s3 else ""
    return backup_config("bench", repo, "BENCH_BACKUP_PASSWORD", targets, verify_subset="1%", extra=extra)


def cli(config: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_BACKUP_PASSWORD": PASSWORD, **KEYS}
    proc = subprocess.run(
        [*PILOTHOUSE, "backup", *args, "-c", str(config), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"backup {args[0]} failed:\n{proc.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(proc.stdout)
    return found


def manifest(repo: str, s3: bool) -> dict[str, Any]:
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD}
    if s3:
        env |= {"AWS_ACCESS_KEY_ID": KEYS["BENCH_S3_KEY"], "AWS_SECRET_ACCESS_KEY": KEYS["BENCH_S3_SECRET"]}
    out = subprocess.run(
        ["restic", "-r", repo, "dump", "latest", "/manifest.json", "--tag", "manifest"],
        capture_output=True,
        env=env,
        check=True,
    ).stdout
    found: dict[str, Any] = json.loads(out)
    return found


def measure(
    args: argparse.Namespace,
    where: str,
    repo: str,
    work: Path,
    db_url: str,
    files: Path,
    prom_url: str,
    prom_data: Path,
) -> dict[str, Any]:
    config = work / where / "pilothouse.toml"
    config.parent.mkdir()
    config.write_text(config_text(repo, db_url, files, prom_url, prom_data, repo if where == "s3" else None))
    started = time.monotonic()
    cli(config, "run")
    run_seconds = time.monotonic() - started
    entries = {e["name"]: e for e in manifest(repo, where == "s3")["targets"]}
    drill = cli(config, "restore-test")
    checked = {t["name"]: t for t in drill["targets"]}
    rows = {}
    for name, entry in entries.items():
        size = entry["bytes"]
        row = {"bytes": size, "backup_s": entry["seconds"], "restore_test_s": checked[name]["rto_seconds"]}
        if name == "metrics":
            millions = entry["tsdb"]["samples"] / 1e6
            row |= {
                "samples": entry["tsdb"]["samples"],
                "backup_s_per_million_samples": round(entry["seconds"] / millions, 2),
                "restore_test_s_per_million_samples": round(checked[name]["rto_seconds"] / millions, 2),
            }
        else:
            gb = size / 1e9
            row |= {
                "backup_s_per_gb": round(entry["seconds"] / gb, 1),
                "restore_test_s_per_gb": round(checked[name]["rto_seconds"] / gb, 1),
            }
        rows[name] = row
    run_s = round(run_seconds, 1)
    return {"repository": where, "run_s": run_s, "rto_s": drill["rto_seconds"], "targets": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg-rows", type=int, default=1_000_000)
    parser.add_argument("--dir-mib", type=int, default=256)
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--s3", action="store_true", help="also into an S3 bucket (moto's server)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    db_name, db_url = fill_database(args.pg_rows)
    files = work / "files"
    files.mkdir()
    for i in range(max(1, args.dir_mib // 64)):
        (files / f"{i}.bin").write_bytes(os.urandom(min(64, args.dir_mib) << 20))
    (work / "prom").mkdir()
    fill_tsdb(work / "prom", args.samples)
    prom_data = work / "prom" / "data"
    engine = start_prometheus(work / "prom", prom_data)
    results = []
    try:
        results.append(measure(args, "local", str(work / "repo"), work, db_url, files, engine.url, prom_data))
        if args.s3:
            import logging

            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            try:
                repo = f"s3:http://{host}:{port}/bench-backups/repo"
                results.append(measure(args, "s3", repo, work, db_url, files, engine.url, prom_data))
            finally:
                server.stop()
    finally:
        engine.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"versions": versions(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
