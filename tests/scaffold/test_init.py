"""`pilothouse init` on three sample projects: what it detects, that `config check` accepts the
file it writes, and that `serve` runs the app with it (checks against the real PostgreSQL and
Redis on 127.0.0.1, their URLs given as the secrets the file references)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.helpers import ServeProcess, run_cli

STARLETTE_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("hello from starlette")


application = Starlette(routes=[Route("/hello", hello)])
"""

FASTAPI_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> str:
    return "hello from fastapi"
"""

PLAIN_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello from plain asgi"})
"""

PROJECTS = {
    "starlette": {
        "requirements.txt": "starlette>=0.37  # web\nuvicorn\n",
        "web.py": STARLETTE_APP,
        "tests/test_web.py": "from fastapi import FastAPI\napp = FastAPI()\n",  # tests are not the app
    },
    "fastapi": {
        "pyproject.toml": """
            [project]
            name = "Orders_API"
            dependencies = ["fastapi>=0.110", "asyncpg>=0.29", "redis[hiredis]>=5"]
            [project.optional-dependencies]
            clients = ["httpx"]
        """,
        "orders/__init__.py": "",
        "orders/main.py": FASTAPI_APP,
    },
    "plain": {"server.py": PLAIN_APP},
}

DETECTED = {
    "starlette": {
        "app": "web:application",
        "framework": "starlette",
        "drivers": {},
        "dependencies": ["starlette", "uvicorn"],
        "sources": ["requirements.txt"],
    },
    "fastapi": {
        "name": "orders-api",
        "app": "orders.main:app",
        "framework": "fastapi",
        "drivers": {"http": ["httpx"], "postgres": ["asyncpg"], "redis": ["redis"]},
        "dependencies": ["asyncpg", "fastapi", "httpx", "redis"],
        "sources": ["pyproject.toml"],
    },
    "plain": {"app": "server:app", "framework": "asgi", "drivers": {}, "dependencies": [], "sources": []},
}


def make_project(root: Path, kind: str) -> Path:
    project = root / f"{kind}-svc"
    for name, body in PROJECTS[kind].items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body))
    return project


@pytest.mark.parametrize("kind", sorted(PROJECTS))
def test_init_detects_writes_a_config_that_checks_and_serves(
    kind: str, tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    project = make_project(tmp_path, kind)
    done = run_cli("init", "--format", "json", cwd=project)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    expected = {"name": f"{kind}-svc", **DETECTED[kind], "written": "pilothouse.toml"}
    assert found == expected
    config = project / "pilothouse.toml"
    text = config.read_text()
    settings = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert not any("://" in line for line in settings), "a literal URL in the written config"
    check = run_cli("config", "check", cwd=project)
    assert check.returncode == 0, check.stderr
    prefix = found["name"].upper().replace("-", "_")
    secrets = {f"{prefix}_DB_URL": postgres_url, f"{prefix}_REDIS_URL": redis_url}
    with ServeProcess(config, env=secrets, cwd=project) as server:
        ready = httpx.get(f"{server.ops_url}/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        wanted = {"disk"} | ({"database", "cache", "secrets"} if kind == "fastapi" else set())
        assert set(checks) == wanted
        assert all(c["status"] == "pass" for c in checks.values()), checks
        hello = httpx.get(f"{server.app_url}/hello" if kind != "plain" else server.app_url, timeout=5)
        assert hello.status_code == 200
        assert f"hello from {'plain asgi' if kind == 'plain' else kind}" in hello.text


def test_the_written_postgres_check_fails_readiness_when_the_secret_points_nowhere(tmp_path: Path) -> None:
    project = make_project(tmp_path, "fastapi")
    assert run_cli("init", cwd=project).returncode == 0
    secrets = {
        "ORDERS_API_DB_URL": "postgresql://postgres@127.0.0.1:1/test",
        "ORDERS_API_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    with ServeProcess(project / "pilothouse.toml", env=secrets, cwd=project).start(
        wait_ready=False
    ) as server:
        ready = httpx.get(f"{server.ops_url}/ready", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["status"] == "fail"


def test_init_never_overwrites(tmp_path: Path) -> None:
    project = make_project(tmp_path, "plain")
    config = project / "pilothouse.toml"
    config.write_text("# mine\n")
    done = run_cli("init", str(project))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"pilothouse: error: {config}: already exists; refusing to overwrite it (remove it or use --output)"
    ]
    assert config.read_text() == "# mine\n"


def test_a_project_without_an_app_still_gets_a_valid_config(tmp_path: Path) -> None:
    project = tmp_path / "scripts-only"
    project.mkdir()
    (project / "tool.py").write_text("def main() -> None:\n    print('hi')\n")
    done = run_cli("init", str(project))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"wrote {project}/pilothouse.toml: service scripts-only, app none found: set [service].app (asgi), "
        "drivers none"
    )
    assert '# app = "package.module:app"' in (project / "pilothouse.toml").read_text()
    assert run_cli("config", "check", str(project / "pilothouse.toml")).returncode == 0
