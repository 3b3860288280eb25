"""Prometheus TSDB and log directories as backup targets, with the real Prometheus and restic.

Prometheus holds blocks backfilled by promtool (`tsdb create-blocks-from openmetrics`) and its own
scrapes in the head; the backup takes a snapshot through the admin API, restore-test opens the
restored snapshot with another real Prometheus and compares series and samples, and a real
restore gives the stopped Prometheus its data back, a query answering as before.

The log directory is rotated between runs the way logrotate does it; restic stores the renamed
file as chunks it already has.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pilothouse.backup import logs
from tests.backup.builders import target
from tests.backup.conftest import ENV, PASSWORD, Service
from tests.backup.test_backup import backup
from tests.generators.monitoring.engines import Engine
from tests.jobs.conftest import wait_until
from tests.jobs.test_cli import one_error

SERIES = 12
STEP = 10
SAMPLES_PER_SERIES = 720  # two hours at 10 s
QUERY = "sum(demo_requests_total)"


def openmetrics(end: int) -> str:
    lines = ["# TYPE demo_requests counter"]
    start = end - STEP * SAMPLES_PER_SERIES
    for i in range(SAMPLES_PER_SERIES):
        ts = start + i * STEP
        for n in range(SERIES):
            lines.append(f'demo_requests_total{{route="/r{n}",code="200"}} {i * (n + 1)} {ts}')
    return "\n".join(lines) + "\n# EOF\n"


def start_prometheus(tmp: Path, data: Path, port: int | None = None) -> Engine:
    """A Prometheus with the admin API on `data`, scraping itself; on `port` when given."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (make tools)"
    config = tmp / "prometheus.yml"

    def command(port: int) -> list[str]:
        config.write_text(
            "global: {scrape_interval: 1s}\n"
            f"scrape_configs: [{{job_name: self, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}]\n"
        )
        return [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--web.enable-admin-api",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]

    return Engine(command, "/-/ready", "prometheus", tmp / "prometheus.log", port=port)


def value(url: str, query: str, at: float) -> list[dict[str, object]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": query, "time": at}, timeout=30).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.fixture
def tsdb(tmp_path: Path) -> Iterator[tuple[Path, Engine, int]]:
    """A TSDB whose backfilled samples end at the third value (seconds), served."""
    data = tmp_path / "prom" / "data"
    data.mkdir(parents=True)
    source = tmp_path / "prom" / "backfill.om"
    end = int(time.time()) - 3 * 3600
    source.write_text(openmetrics(end))
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
    )
    engine = start_prometheus(tmp_path / "prom", data)
    wait_until(lambda: bool(value(engine.url, "up", time.time())), 30, "a scrape in the head")
    yield data, engine, end - STEP
    engine.stop()


def latest_manifest(service: Service) -> dict[str, Any]:
    out = subprocess.run(
        ["restic", "-r", str(service.repo), "dump", "latest", "/manifest.json", "--tag", "manifest"],
        capture_output=True,
        check=True,
        env={"RESTIC_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
    ).stdout
    found: dict[str, Any] = json.loads(out)
    return found


def with_targets(service: Service, text: str) -> None:
    service.config.write_text(service.config.read_text() + text)


def test_prometheus_snapshot_backed_up_opened_after_restore_and_restored(
    service: Service, tsdb: tuple[Path, Engine, int], tmp_path: Path
) -> None:
    data, engine, last = tsdb
    with_targets(
        service,
        target("metrics", "prometheus", url=engine.url, path=data, query=QUERY),
    )
    ran = backup(service, "run", "--only", "metrics", "--format", "json")
    assert ran.returncode == 0, ran.stderr
    assert not list((data / "snapshots").glob("*"))  # the snapshot's hard links are gone
    (entry,) = latest_manifest(service)["targets"]
    facts = entry["tsdb"]
    assert facts["series"] > SERIES  # the backfilled series and the scraped ones
    assert facts["samples"] >= SERIES * SAMPLES_PER_SERIES
    assert len(facts["blocks"]) >= 2  # a backfilled block and the head written as one

    drill = backup(service, "restore-test", "--format", "json")
    assert drill.returncode == 0, drill.stderr
    (report,) = json.loads(drill.stdout)["targets"]
    assert f"{facts['series']} series equal ({facts['samples']} samples in" in report["check"]
    assert "query answered" in report["check"]

    before = value(engine.url, QUERY, last)
    assert before
    refused = backup(service, "restore", "--only", "metrics", "--yes")
    one_error(refused, 1, "is running", "stop it")

    port = int(engine.url.rsplit(":", 1)[1])
    engine.stop()
    shutil.rmtree(data)  # the disaster
    data.mkdir()
    done = backup(service, "restore", "--only", "metrics", "--yes")
    assert done.returncode == 0, done.stderr
    again = start_prometheus(tmp_path / "prom", data, port)
    try:
        assert value(again.url, QUERY, last) == before
    finally:
        again.stop()
    assert list(data.parent.glob("data.before-restore-*"))  # the emptied directory kept, not deleted


def test_a_restore_test_that_sees_other_data_fails(
    service: Service, tsdb: tuple[Path, Engine, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """restore-test compares what the restored Prometheus answers with the manifest: the older
    restored blocks removed before it opens them, it fails naming the difference."""
    data, engine, _ = tsdb
    with_targets(
        service,
        target("metrics", "prometheus", url=engine.url, path=data),
    )
    assert backup(service, "run", "--only", "metrics").returncode == 0
    from pilothouse.backup import tsdb as module
    from pilothouse.backup.drills import restore_test
    from pilothouse.config import load_config
    from pilothouse.errors import OperationError

    opened = module.opened

    def without_blocks(binary: str, restored: Path, scratch: Path):  # type: ignore[no-untyped-def]
        metas = sorted(restored.glob("*/meta.json"), key=lambda m: json.loads(m.read_text())["maxTime"])
        for meta in metas[:-1]:  # only the newest block (the head's) is left: no backfilled series
            shutil.rmtree(meta.parent)
        return opened(binary, restored, scratch)

    monkeypatch.setattr(module, "opened", without_blocks)
    for key, val in ENV.items():
        monkeypatch.setenv(key, val)
    with pytest.raises(OperationError, match="after restore"):
        restore_test(load_config(service.config))


def test_prometheus_without_the_admin_api_is_one_line(service: Service, tmp_path: Path) -> None:
    data = tmp_path / "plain"
    engine = Engine(
        lambda port: [
            shutil.which("prometheus") or "prometheus",
            "--config.file=/dev/null",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        "/-/ready",
        "prometheus",
        tmp_path / "plain.log",
    )
    try:
        with_targets(
            service,
            target("metrics", "prometheus", url=engine.url, path=data),
        )
        failed = backup(service, "run", "--only", "metrics", "--format", "json")
        assert failed.returncode == 1
        step = next(s for s in json.loads(failed.stdout)["steps"] if s["name"] == "target-metrics")
        assert step["outcome"] != "ok"
        assert "--web.enable-admin-api" in failed.stderr + failed.stdout
    finally:
        engine.stop()


def rotate(directory: Path) -> None:
    """What logrotate does with `rotate 3`, `compress` and `delaycompress`."""
    import gzip

    oldest = directory / "app.log.2.gz"
    oldest.unlink(missing_ok=True)
    if (directory / "app.log.1").exists():
        oldest.write_bytes(gzip.compress((directory / "app.log.1").read_bytes(), mtime=0))
        (directory / "app.log.1").unlink()
    (directory / "app.log").rename(directory / "app.log.1")
    (directory / "app.log").write_text("")


def test_log_directory_with_rotation(service: Service, tmp_path: Path) -> None:
    import os

    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    (logs_dir / "app.log").write_bytes(os.urandom(3 << 20).hex().encode())  # 6 MiB of text
    (logs_dir / "notes.txt").write_text("not a log\n")
    with_targets(
        service,
        target("applogs", "logs", path=logs_dir, pattern="*.log*"),
    )
    first = backup(service, "run", "--only", "applogs", "--format", "json")
    assert first.returncode == 0, first.stderr
    rotate(logs_dir)
    (logs_dir / "app.log").write_text("after the rotation\n" * 100)
    second = backup(service, "run", "--only", "applogs", "--format", "json")
    assert second.returncode == 0, second.stderr
    (entry,) = latest_manifest(service)["targets"]
    assert sorted(entry["files"]) == ["app.log", "app.log.1"]  # the pattern; notes.txt left out
    assert entry["files"]["app.log.1"]["size"] == 6 << 20
    assert entry["added"] < 1 << 20  # the renamed 6 MiB file was not stored again
    drill = backup(service, "restore-test", "--format", "json")
    assert drill.returncode == 0, drill.stderr
    (report,) = json.loads(drill.stdout)["targets"]
    assert report["check"].startswith("2 closed log file(s) equal")

    (logs_dir / "app.log.1").write_text("lost\n")
    done = backup(service, "restore", "--only", "applogs", "--yes")
    assert done.returncode == 0, done.stderr
    (restored,) = logs_dir.parent.glob("logs.restored-*")
    copy = restored / str(logs_dir).lstrip("/") / "app.log.1"
    assert copy.stat().st_size == 6 << 20
    assert (logs_dir / "app.log").read_text().startswith("after the rotation")  # the live log untouched


def test_log_facts_follow_a_file_written_and_rotated_while_read(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("one\n")
    (tmp_path / "b.log").write_text("two\n")
    (tmp_path / "c.log").write_text("three\n")
    facts = logs.before(tmp_path, logs.files(tmp_path, "*.log"))
    with (tmp_path / "a.log").open("a") as handle:  # written during the backup
        handle.write("more\n")
    (tmp_path / "b.log").rename(tmp_path / "b.log.1")  # rotated during the backup
    (tmp_path / "b.log").write_text("")
    states = {rel: f["state"] for rel, f in logs.after(tmp_path, facts).items()}
    assert states == {"a.log": "appended", "b.log": "rotated", "c.log": "closed"}
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "a.log").write_text("one\nmore\n")  # what restic may have read: a longer file
    (restored / "c.log").write_text("three\n")
    after = logs.after(tmp_path, facts)
    assert logs.check(restored, after, "t").endswith("rotated during the backup")
    (restored / "c.log").write_text("thrEe\n")
    with pytest.raises(Exception, match=r"c\.log differs"):
        logs.check(restored, after, "t")
