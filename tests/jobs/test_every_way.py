"""Every way of running a job gets the same secrets and telemetry: `pilothouse jobs run`, `jobs
worker`, the worker inside `serve`, and the supervisor's under `serve --workers 2`.

The job (`secretive` in sample_jobs.py) reads the live secret `db.url` and ends with RC 12, the
mainframe-style reference's error case ("Given a step returns RC=12 (error) ... Then
job_return_code=12 and errors_total increments with label job_name", reference-systems/000.md,
Story 1105.1). Each way runs it in a real process: the secret is there, its spans reach an OTLP
receiver, and where a process serves metrics `pilothouse_job_errors_total` counted the step
(`jobs run` has no ops port: its record in the store and its exit code 1 say it failed).
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest

from pilothouse.config import load_config
from pilothouse.jobs.store import open_store
from tests.helpers import PILOTHOUSE, ServeProcess, run_cli
from tests.jobs.conftest import ledger, wait_until
from tests.jobs.test_serve import serve_config
from tests.telemetry.test_otlp_e2e import Receiver, http_receiver  # noqa: F401  (fixture)

SECRET = "postgresql://jobs:not-a-real-password@db.internal/shop"


def job_config(tmp_path: Path) -> Path:
    """The jobs test service (app, [jobs]) with the secret declared and traces exported."""
    path = serve_config(tmp_path)
    text = path.read_text().replace("[telemetry]\n", '[telemetry]\ntraces = "otlp"\n')
    path.write_text(text + '\n[secrets]\nsources = ["env"]\ndeclare = [{ secret = "db.url" }]\n')
    return path


def errors_counted(metrics: str) -> float:
    match = re.search(r'^pilothouse_job_errors_total\{job="secretive"\} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("way", ["run", "worker", "serve", "supervisor"])
def test_every_way_of_running_a_job_gets_secrets_and_telemetry(
    way: str,
    tmp_path: Path,
    http_receiver: Receiver,  # noqa: F811
) -> None:
    path = job_config(tmp_path)
    env = {
        "JOBTEST_DB_URL": SECRET,  # the env source's name for db.url of service "jobtest"
        "EXPECTED_DB_URL": SECRET,
        "JOBS_LEDGER": str(tmp_path / "ledger.txt"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http_receiver.port}",
    }
    if way == "run":
        result = run_cli("jobs", "run", "secretive", "-c", str(path), env=env)
        assert result.returncode == 1, result.stdout + result.stderr  # the job failed (RC 12)
        output = result.stderr
    else:
        args = ("--workers", "2") if way == "supervisor" else ()
        process = ServeProcess(path, env=env, args=args)
        if way == "worker":
            process.cmd = [*PILOTHOUSE, "jobs", "worker", "-c", str(path)]
        with process:
            submitted = run_cli("jobs", "submit", "secretive", "--wait", "-c", str(path), env=env)
            assert submitted.returncode == 1, submitted.stdout + submitted.stderr
            metrics = httpx.get(f"{process.ops_url}/metrics").text
            assert errors_counted(metrics) == 1, metrics
            process.signal(signal.SIGTERM)
            assert process.wait(30) == 0, process.output
        output = process.output
    assert "no live secrets" not in output, output
    assert SECRET not in output
    assert [event for *_, event in ledger(tmp_path)] == ["secret-ok"], output
    (record,) = open_store(load_config(path)).list_jobs(None, 10)
    assert (record.outcome, record.max_rc) == ("failed", 12)
    wait_until(
        lambda: {"job secretive", "step read-secret"} <= {s.name for s in http_receiver.spans},
        what="the job's spans at the OTLP receiver",
    )
