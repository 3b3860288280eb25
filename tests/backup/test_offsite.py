"""Offsite: the same backup into an S3-compatible bucket, through a real S3 HTTP API (moto's
server, `moto[server]`, on loopback; the port is the kernel's pick), restored from it. The keys are
secret references resolved from the environment; restic gets them in its own environment."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from pilothouse.backup.targets import table_sums, tree_digest
from tests.backup.builders import s3_keys
from tests.backup.conftest import ENV, Service, config_text
from tests.helpers import run_cli
from tests.jobs.test_cli import one_error

KEYS = {
    "BACKUP_TEST_S3_KEY_ID": "AKIAPILOTHOUSETEST01",
    "BACKUP_TEST_S3_SECRET": "s3cr3t-not-in-any-file-0123",
}
S3 = s3_keys("BACKUP_TEST_S3_KEY_ID", "BACKUP_TEST_S3_SECRET")


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def objects(endpoint: str, bucket: str) -> list[str]:
    import boto3  # type: ignore[import-untyped]

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_backup_to_s3_and_restore_from_it(service: Service, s3_endpoint: str) -> None:
    repository = f"s3:{s3_endpoint}/offsite-bk/shop"
    service.config.write_text(config_text(repository, service.db_url, service.data, extra=S3))
    env = {**ENV, **KEYS}

    def backup(*args: str) -> subprocess.CompletedProcess[str]:
        config = str(service.config)
        return run_cli("backup", *args, "-c", config, env=env, cwd=service.config.parent, timeout=180)

    before_tables, before_files = table_sums(service.db_url), tree_digest(service.data)
    ran = backup("run", "--format", "json")
    assert ran.returncode == 0, ran.stderr
    assert not service.repo.exists()  # nothing went to the local path
    stored = objects(s3_endpoint, "offsite-bk")
    assert any(k.startswith("shop/data/") for k in stored) and "shop/config" in stored

    verified = backup("verify", "--format", "json")
    assert verified.returncode == 0, verified.stderr
    drill = backup("restore-test", "--format", "json")
    assert drill.returncode == 0, drill.stderr
    assert {t["name"] for t in json.loads(drill.stdout)["targets"]} == {"db", "files", "jobs", "conf"}

    with psycopg.connect(service.db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE orders")
    (service.data / "a.txt").write_text("garbage\n")
    done = backup("restore", "--only", "db,files", "--yes")
    assert done.returncode == 0, done.stderr
    assert table_sums(service.db_url) == before_tables
    assert tree_digest(service.data) == before_files

    # Without the keys the run stops at the secret, one line, before restic is asked anything.
    missing = run_cli("backup", "run", "-c", str(service.config), env=ENV, cwd=service.config.parent)
    one_error(missing, 2, "backup.s3_key_id")


@pytest.mark.parametrize(
    ("repository", "fragment"),
    [
        ("s3:https://s3.example.com/backups/shop", "needs [backup.s3]"),
        ("s3:s3.example.com/backups", "restic's S3 form"),
        ("s3:https://s3.example.com/B_", "restic's S3 form"),
    ],
)
def test_bad_s3_repository_is_one_line(service: Service, repository: str, fragment: str) -> None:
    text = service.config.read_text()
    service.config.write_text(text.replace(f'repository = "{service.repo}"', f'repository = "{repository}"'))
    one_error(run_cli("backup", "verify", "-c", str(service.config), env=ENV), 2, "backup", fragment)
