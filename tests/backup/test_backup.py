"""`pilothouse backup` with the real restic, PostgreSQL and files: backup, drop, restore, identical;
a damaged repository fails verify; bad input is one line and deletes nothing; an interrupted run
is never used and the next one succeeds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest

from pilothouse.backup.targets import table_sums, tree_digest
from tests.backup.conftest import ENV, PASSWORD, Service, config_text
from tests.helpers import PILOTHOUSE, run_cli, write_config
from tests.jobs.conftest import wait_until
from tests.jobs.test_cli import one_error


def backup(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "backup", *args, "-c", str(service.config), env=ENV, cwd=service.config.parent, timeout=120
    )


def snapshots(service: Service) -> list[dict[str, object]]:
    out = subprocess.run(
        ["restic", "-r", str(service.repo), "snapshots", "--json"],
        capture_output=True,
        env={**os.environ, "RESTIC_PASSWORD": PASSWORD},
        check=True,
    ).stdout
    return list(json.loads(out) or [])


def test_backup_drop_restore_is_identical(service: Service) -> None:
    before_tables, before_files = table_sums(service.db_url), tree_digest(service.data)
    ran = backup(service, "run", "--format", "json")
    assert ran.returncode == 0, ran.stderr
    steps = {s["name"]: s["outcome"] for s in json.loads(ran.stdout)["steps"]}
    assert steps == {
        "prepare": "ok",
        "target-db": "ok",
        "target-files": "ok",
        "target-jobs": "ok",
        "target-conf": "ok",
        "manifest": "ok",
        "forget": "ok",
    }
    drill = backup(service, "restore-test", "--format", "json")
    assert drill.returncode == 0, drill.stderr
    report = json.loads(drill.stdout)
    assert {t["name"] for t in report["targets"]} == {"db", "files", "jobs", "conf"}
    assert report["rto_seconds"] > 0

    with psycopg.connect(service.db_url, autocommit=True) as conn:  # the disaster
        conn.execute("DROP TABLE orders")
        conn.execute("DELETE FROM items WHERE id % 2 = 0")
    (service.data / "sub" / "b.bin").unlink()
    (service.data / "a.txt").write_text("garbage\n")
    dry = backup(service, "restore", "--only", "db,files", "--dry-run")
    assert dry.returncode == 0 and "(dry run)" in dry.stdout
    assert table_sums(service.db_url) != before_tables  # a dry run changes nothing
    refused = backup(service, "restore", "--only", "db,files")  # no terminal, no --yes
    one_error(refused, 2, "refusing to overwrite without confirmation")
    done = backup(service, "restore", "--only", "db,files", "--yes")
    assert done.returncode == 0, done.stderr
    assert table_sums(service.db_url) == before_tables  # row counts and content checksums
    assert tree_digest(service.data) == before_files


def test_a_corrupted_pack_fails_verify(service: Service) -> None:
    assert backup(service, "run").returncode == 0
    assert backup(service, "verify").returncode == 0
    pack = max((p for p in (service.repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(raw))
    one_error(backup(service, "verify"), 1, "restic check failed")


def test_bad_input_is_one_line_and_deletes_nothing(service: Service, tmp_path: Path) -> None:
    assert backup(service, "run").returncode == 0
    kept = len(snapshots(service))
    one_error(backup(service, "run", "--only", "db,nope"), 2, "unknown backup target 'nope'")
    wrong = run_cli(
        "backup",
        "run",
        "-c",
        str(service.config),
        env={"BACKUP_TEST_PASSWORD": "not-the-password-at-all"},
        cwd=service.config.parent,
    )
    one_error(wrong, 1, "wrong password")
    one_error(
        run_cli(
            "backup", "verify", "-c", str(service.config), env={"BACKUP_TEST_PASSWORD": "nope-nope-nope"}
        ),
        1,
        "wrong password",
    )
    other = tmp_path / "other"
    other.mkdir()
    missing = write_config(
        other, config_text(service.repo, service.db_url, service.data, "/nonexistent/restic")
    )
    one_error(
        run_cli("backup", "run", "-c", str(missing), env=ENV, cwd=other), 1, "restic binary", "not found"
    )
    assert len(snapshots(service)) == kept


def test_sigterm_leaves_no_good_run_and_the_next_run_succeeds(service: Service) -> None:
    big = service.data / "big"
    big.mkdir()
    for i in range(6):  # random data restic cannot deduplicate: a few seconds of work
        (big / f"{i}.bin").write_bytes(os.urandom(32 << 20))
    proc = subprocess.Popen(
        [*PILOTHOUSE, "backup", "run", "-c", str(service.config)],
        env={**os.environ, **ENV},
        cwd=service.config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = service.config.parent / "jobs.sqlite3"

    def in_files_step() -> bool:
        import sqlite3

        if not store.exists():
            return False
        with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(store) as conn:
            return bool(
                conn.execute(
                    "SELECT 1 FROM job_steps WHERE name = 'target-files' AND outcome = 'running'"
                ).fetchall()
            )
        return False

    wait_until(in_files_step, 60, "the files step to start")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    tags = [set(s["tags"]) for s in snapshots(service)]  # type: ignore[arg-type]
    assert not any("manifest" in t for t in tags)  # the interrupted run is not marked good
    assert not any("target:files" in t for t in tags)  # restic was stopped before its snapshot
    verify = backup(service, "verify")
    one_error(verify, 1, "no complete backup")
    again = backup(service, "run")
    assert again.returncode == 0, again.stderr
    assert backup(service, "verify").returncode == 0


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            (
                'password = { secret = "backup.password", env = "BACKUP_TEST_PASSWORD" }',
                'password = "hunter2hunter2"',
            ),
            "backup.password",
        ),
        (('repository = "', 'repository = "relative/'), "backup.repository"),
        (('name = "files"', 'name = "db"'), "backup target names must be unique; repeated: db"),
        (('kind = "directory"\npath = "', 'kind = "directory"\npath = "rel/'), "needs an absolute `path`"),
        (('verify_subset = "100%"', 'verify_subset = "100%"\nkeep_daily = -1'), "backup.keep_daily"),
    ],
)
def test_bad_backup_config_is_one_line(service: Service, change: tuple[str, str], fragment: str) -> None:
    text = service.config.read_text()
    assert change[0] in text
    service.config.write_text(text.replace(change[0], change[1], 1))
    one_error(backup(service, "verify"), 2, str(service.config), fragment)
