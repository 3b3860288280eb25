"""Jobs inside `pilothouse serve`: `POST /admin/jobs`, 503 + Retry-After while draining,
readiness reporting the drain, metrics on the ops port, and SIGTERM as a local drain."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from pilothouse.config import load_config
from pilothouse.jobs.store import open_store
from tests.helpers import ServeProcess, run_cli
from tests.jobs.conftest import jobs_config, wait_until

TOKEN = "jobs-test-token-7c9e6679f7425"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SUBMITTER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def serve_config(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text("from starlette.applications import Starlette\n\napp = Starlette()\n")
    path = jobs_config(tmp_path)
    text = path.read_text().replace('name = "jobtest"', 'name = "jobtest"\napp = "app:app"')
    path.write_text(text + '\n[ops]\nadmin_token_env = "JOBS_TEST_TOKEN"\n')
    return path


def test_submit_over_the_ops_api_and_drain(tmp_path: Path) -> None:
    path = serve_config(tmp_path)
    store = open_store(load_config(path))
    env = {"JOBS_TEST_TOKEN": TOKEN, "JOBS_LEDGER": str(tmp_path / "ledger.txt")}
    with ServeProcess(path, env=env) as serve:
        ops = serve.ops_url
        assert httpx.post(f"{ops}/admin/jobs", json={"job": "tick"}).status_code == 401
        created = httpx.post(
            f"{ops}/admin/jobs", json={"job": "tick"}, headers={**AUTH, "traceparent": SUBMITTER}
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        wait_until(lambda: store.get(job_id).outcome == "ok", what="the job")  # type: ignore[union-attr]
        assert store.get(job_id).traceparent == SUBMITTER  # type: ignore[union-attr]
        bad = [
            ({"job": "nope"}, 404, "unknown job 'nope'"),
            ({"job": "slow", "params": {"seconds": "x"}}, 422, "not a valid float"),
            ({"params": {}}, 400, "expected JSON"),
        ]
        for body, status, message in bad:
            answer = httpx.post(f"{ops}/admin/jobs", json=body, headers=AUTH)
            assert (answer.status_code, message in answer.json()["error"]) == (status, True), answer.text
        assert run_cli("drain", "--timeout", "10s", "-c", str(path)).returncode == 0
        refused = httpx.post(f"{ops}/admin/jobs", json={"job": "tick"}, headers=AUTH)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "7"
        assert "draining" in refused.json()["error"]
        ready = httpx.get(f"{ops}/ready").json()
        assert ready["status"] == "warn" and "draining" in ready["checks"]["jobs"]["error"]
        metrics = httpx.get(f"{ops}/metrics").text
        assert 'pilothouse_job_runs_total{job="tick",outcome="ok"} 1.0' in metrics
        assert "pilothouse_job_draining 1.0" in metrics
        assert run_cli("undrain", "-c", str(path)).returncode == 0
        wait_until(lambda: httpx.get(f"{ops}/ready").json()["status"] == "pass", what="readiness back")


def test_sigterm_lets_the_running_job_finish(tmp_path: Path) -> None:
    path = serve_config(tmp_path)
    store = open_store(load_config(path))
    env = {"JOBS_TEST_TOKEN": TOKEN, "JOBS_LEDGER": str(tmp_path / "ledger.txt")}
    with ServeProcess(path, env=env) as serve:
        created = httpx.post(
            f"{serve.ops_url}/admin/jobs", json={"job": "slow", "params": {"seconds": 1.5}}, headers=AUTH
        )
        job_id = created.json()["id"]
        wait_until(lambda: store.get(job_id).state == "running", what="the job to start")  # type: ignore[union-attr]
        serve.signal(signal.SIGTERM)
        assert serve.wait(30) == 0, serve.output
    record = store.get(job_id)
    assert record is not None and record.outcome == "ok"
    assert store.workers() == []


def test_standalone_worker_serves_the_ops_port(tmp_path: Path) -> None:
    """`pilothouse jobs worker` without --no-ops: health, readiness and job metrics on the ops port."""
    path = jobs_config(tmp_path)
    # ServeProcess picks the ops port and picks again if another process took it meanwhile.
    env = {"JOBS_LEDGER": str(tmp_path / "ledger.txt")}
    with ServeProcess(path, env=env, command=("jobs", "worker")) as worker:
        wait_until(lambda: _get(f"{worker.ops_url}/ready") == 200, what="the worker's readiness")
        assert run_cli("jobs", "submit", "tick", "--wait", "-c", str(path)).returncode == 0
        metrics = httpx.get(f"{worker.ops_url}/metrics").text
        assert 'pilothouse_job_runs_total{job="tick",outcome="ok"} 1.0' in metrics
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return 0
