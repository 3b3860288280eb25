"""The redaction proof: run the demo shop with secrets of known values (a Kubernetes mount, an
environment variable and a `.env` file), exercise every endpoint, every CLI command, error paths
and the logs, then scan everything captured: no value appears anywhere.

A deliberately careless check (tests/secrets/leaky.py) logs a secret, raises with it and puts it
in its failure reason, so the scan proves masking rather than mere absence.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from pilothouse.cli import build_parser
from tests.helpers import ROOT, SHOP_DIR, ServeProcess, free_port, run_cli
from tests.secrets.kube import SecretVolume

DB_PASSWORD = "Kn0wn-DB-Pa55word"
REDIS_PASSWORD = "Kn0wn-Redis-Pa55word"
PAYMENTS_TOKEN = "Kn0wn-Payments-T0ken"
VALUES = (DB_PASSWORD, REDIS_PASSWORD, PAYMENTS_TOKEN)

EXTRA = """

[[checks]]
name = "orders-db"
kind = "postgres"
url = { secret = "db.url" }
critical = false

[[checks]]
name = "cache"
kind = "redis"
url = { secret = "cache.url" }
critical = false

[[checks]]
name = "payments"
kind = "python"
target = "tests.secrets.leaky:payments_check"
critical = false

[secrets]
sources = ["kubernetes", "env", "file"]
mount_dir = "{mount}"
file = "dev.env"
watch_interval = "200ms"
declare = [{ secret = "payments.token" }]
"""

ADMIN_TOKEN = "admin-token-for-redaction-test"


def leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command path of the CLI, e.g. ("secrets", "check")."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [prefix]
    return [path for name, child in subs[0].choices.items() for path in leaves(child, (*prefix, name))]


def ops_routes(env: dict[str, str], config: Path) -> list[tuple[str, str, bool]]:
    """The ops routes features register, read from a Runtime built with the same config and env."""
    code = (
        "import json, sys\n"
        "from pilothouse.config import load_config\n"
        "from pilothouse.features import install_all\n"
        "from pilothouse.runtime.runtime import Runtime\n"
        "r = Runtime(load_config(sys.argv[1])); install_all(r)\n"
        "print(json.dumps([[m, p, a] for (m, p), (_, a) in r.extra_routes.items()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(config)],
        env=env,
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [tuple(r) for r in json.loads(out.stdout.strip().splitlines()[-1])]


def test_no_secret_value_anywhere(tmp_path: Path) -> None:
    SecretVolume(
        tmp_path / "secrets", "db", {"url": f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:5432/test"}
    )
    dev_env = tmp_path / "dev.env"
    dev_env.write_text(f"SHOP_PAYMENTS_TOKEN={PAYMENTS_TOKEN}\n")
    dev_env.chmod(0o600)
    config = tmp_path / "pilothouse.toml"
    extra = EXTRA.replace("{mount}", str(tmp_path / "secrets"))
    config.write_text((SHOP_DIR / "pilothouse.toml").read_text() + extra)
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{SHOP_DIR}",
        "SHOP_CACHE_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0",  # nothing listens: errors
        "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHOP_SQLITE_PATH": str(tmp_path / "shop.sqlite3"),
    }
    captured: list[str] = []

    # -- the running service: every endpoint ----------------------------------------------------
    serve = ServeProcess(config, env=env, cwd=tmp_path).start()
    try:
        with httpx.Client(timeout=10) as client:
            app, ops = serve.app_url, serve.ops_url
            admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            requests = [
                ("GET", f"{app}/", {}, None),
                ("GET", f"{app}/items", {}, None),
                ("GET", f"{app}/items/mug", {}, None),
                ("GET", f"{app}/items/no-such", {}, None),
                ("POST", f"{app}/orders", {}, '{"sku": "mug"}'),
                ("POST", f"{app}/orders", {}, "not json"),
                ("POST", f"{app}/orders", {}, '{"sku": "grinder", "quantity": 9999}'),
                ("GET", f"{app}/work?seconds=0.01", {}, None),
                ("GET", f"{app}/missing", {}, None),
                ("GET", f"{ops}/health", {}, None),
                ("HEAD", f"{ops}/health", {}, None),
                ("GET", f"{ops}/ready", {}, None),
                ("GET", f"{ops}/ready?verbose=0", {}, None),
                ("GET", f"{ops}/startup", {}, None),
                ("GET", f"{ops}/status", {}, None),
                ("GET", f"{ops}/metrics", {}, None),
                (
                    "GET",
                    f"{ops}/metrics",
                    {"accept": "application/openmetrics-text; version=1.0.0"},
                    None,
                ),
                ("POST", f"{ops}/admin/drain", {}, None),  # no token: refused
                ("POST", f"{ops}/admin/drain", admin, None),
                ("GET", f"{ops}/ready", {}, None),
                ("POST", f"{ops}/admin/undrain", admin, None),
                ("GET", f"{ops}/nope", {}, None),
            ]
            for method, path, _admin in ops_routes(env, config):
                requests.append((method, f"{ops}{path}", admin if _admin else {}, None))
                requests.append((method, f"{ops}{path}", {}, None))
            for method, url, headers, body in requests:
                response = client.request(method, url, headers=headers, content=body)
                captured.append(
                    f"{method} {url} -> {response.status_code} {response.headers} {response.text}"
                )
            ready = client.get(f"{ops}/ready").json()
    finally:
        serve.signal(signal.SIGTERM)
        serve.wait()
    captured.append(serve.output)

    # the careless check really tried to leak, and was masked
    assert ready["checks"]["payments"]["error"] == "gateway said: invalid token ***"
    assert ready["checks"]["orders-db"]["status"] == "pass"  # the secret URL really was used
    assert ready["checks"]["cache"]["status"] == "warn"  # the error path ran
    assert "payments gateway rejected token ***" in serve.output
    assert "gateway refused ***" in serve.output
    assert "secret loaded: name=payments.token source=file" in serve.output

    # -- every CLI command ----------------------------------------------------------------------
    out_dir = tmp_path / "generated"
    runs = {
        ("config", "check"): [["--config", str(config)], ["--config", str(config), "--format", "json"]],
        ("config", "show"): [["--config", str(config)], ["--config", str(config), "--format", "json"]],
        ("secrets", "check"): [["--config", str(config)], ["--config", str(config), "--format", "json"]],
        ("secrets", "policy"): [["--config", str(config)]],
        ("secrets", "rotate-test"): [["--config", str(config), "--timeout", "300ms", "--interval", "100ms"]],
        ("generate", "deploy"): [["--config", str(config), "--out", str(out_dir / "deploy")]],
        ("generate", "monitoring"): [["--config", str(config), "--out", str(out_dir / "monitoring")]],
    }
    cli_env = {k: v for k, v in env.items() if k in ("PYTHONPATH", "SHOP_CACHE_URL", "SHOP_ADMIN_TOKEN")}
    for path in leaves(build_parser()):
        result = run_cli(*path, "--help", env=cli_env, cwd=tmp_path)
        captured.append(result.stdout + result.stderr)
        for args in runs.get(path, []):
            result = run_cli(*path, *args, env=cli_env, cwd=tmp_path)
            captured.append(f"{path} {args} -> {result.returncode}\n{result.stdout}{result.stderr}")
            if path[0] in ("config", "secrets"):  # ours and the core's: they must really run
                assert result.returncode == (1 if path[1] == "rotate-test" else 0), result.stderr
    show = run_cli("config", "show", "--config", str(config), env=cli_env, cwd=tmp_path)
    assert 'checks[3].url = {"secret": "db.url"}' in show.stdout

    # -- error paths: a world-readable secrets file, a missing secret, at startup and in check ---
    dev_env.chmod(0o644)
    for args in (["secrets", "check"], ["serve"]):
        result = run_cli(*args, "--config", str(config), env=cli_env, cwd=tmp_path, timeout=30)
        assert result.returncode in (1, 2)
        assert "is readable by every user" in result.stdout + result.stderr
        captured.append(result.stdout + result.stderr)
    dev_env.chmod(0o600)
    missing = run_cli("serve", "--config", str(config), env={**cli_env, "SHOP_CACHE_URL": ""}, cwd=tmp_path)
    assert missing.returncode == 2 and "required secret 'cache.url' not found" in missing.stderr
    captured.append(missing.stdout + missing.stderr)

    # -- generated files ----------------------------------------------------------------------------
    for file in sorted(out_dir.rglob("*")):
        if file.is_file():
            captured.append(file.read_text(errors="replace"))

    everything = "\n".join(captured)
    assert len(everything) > 10_000  # the scan covers real output, not an empty capture
    for value in VALUES:
        assert value not in everything, f"a secret value leaked: {value[:6]}..."
