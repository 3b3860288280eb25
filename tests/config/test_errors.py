"""Bad config files: each gives one clear line naming file, key and value, and exit code 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pilothouse.cli import main
from pilothouse.config import load_config
from tests.helpers import run_cli, write_config

GOOD_SERVICE = '[service]\nname = "shop"\napp = "shop.app:app"\n'

CASES = {
    "wrong type": (
        GOOD_SERVICE.replace("\napp", '\nport = "http"\napp'),
        "service.port: 'http' is invalid: Input should be a valid integer",
    ),
    "unknown key, close": ('[service]\nnmae = "shop"\n', "service.nmae: unknown key; did you mean 'name'?"),
    "unknown section": (GOOD_SERVICE + "[lifecylce]\n", "lifecylce: unknown key; did you mean 'lifecycle'?"),
    "bad duration": (
        GOOD_SERVICE + '[lifecycle]\ndrain_timeout = "20 seconds"\n',
        "lifecycle.drain_timeout: '20 seconds' is invalid: expected a duration",
    ),
    "duration without unit": (
        GOOD_SERVICE + "[probes]\ncache_ttl = 2\n",
        "probes.cache_ttl: 2 is invalid: expected a duration with a unit",
    ),
    "negative port": (
        GOOD_SERVICE + "[ops]\nport = -1\n",
        "ops.port: -1 is invalid: Input should be greater than or equal to 1",
    ),
    "port clash": (GOOD_SERVICE + "[ops]\nport = 8080\n", "the ops port must differ from the app port"),
    "missing name": ('[service]\napp = "shop.app:app"\n', "service.name: required key is missing"),
    "name not DNS-1123": (
        '[service]\nname = "Shop_1"\n',
        "service.name: 'Shop_1' is invalid: expected a DNS-1123",
    ),
    "invalid TOML": ("[service\nname = 'x'\n", "invalid TOML"),
    "password in URL": (
        GOOD_SERVICE + '[[checks]]\nname = "db"\nkind = "postgres"\nurl = "postgresql://u:hunter2@db/shop"\n',
        "checks[0].url: 'postgresql://***@db/shop' is invalid: a literal value must not contain a password",
    ),
    "unknown check kind": (
        GOOD_SERVICE + '[[checks]]\nname = "db"\nkind = "mysql"\n',
        "checks[0]: Input tag 'mysql' found using 'kind' does not match",
    ),
    "typo in a check": (
        GOOD_SERVICE + '[[checks]]\nname = "db"\nkind = "tcp"\nhost = "x"\nport = 5\ntimout = "1s"\n',
        "checks[0].timout: unknown key; did you mean 'timeout'?",
    ),
    "duplicate check names": (
        GOOD_SERVICE + '[[checks]]\nname = "d"\nkind = "disk"\n[[checks]]\nname = "d"\nkind = "disk"\n',
        "check names must be unique; repeated: d",
    ),
    "ratio out of range": (
        GOOD_SERVICE + "[telemetry]\nsample_ratio = 2.0\n",
        "telemetry.sample_ratio: 2.0 is invalid: Input should be less than or equal to 1",
    ),
    # Written into response heads as it is on h11 (`runtime.wire_headers`): `$` let a newline end it.
    "request id header with a newline": (
        GOOD_SERVICE + '[telemetry]\nrequest_id_header = "X-Id\\n"\n',
        "telemetry.request_id_header: 'X-Id\\n' is invalid: expected an HTTP header name",
    ),
    "probe paths clash": (
        GOOD_SERVICE + '[probes]\nreadiness_path = "/health"\n',
        "probes: probe paths must be distinct",
    ),
    "bad disk threshold": (
        GOOD_SERVICE + '[[checks]]\nname = "d"\nkind = "disk"\nmin_free = "lots"\n',
        "checks[0].min_free: 'lots' is invalid: expected a percentage",
    ),
    # Issue 14 item 7: values the model used to coerce or accept.
    "boolean port": (
        GOOD_SERVICE + "port = true\n",
        "service.port: True is invalid: Input should be a valid integer",
    ),
    "quoted port": (
        GOOD_SERVICE + 'port = "21100"\n',
        "service.port: '21100' is invalid: Input should be a valid integer",
    ),
    "quoted replicas": (
        GOOD_SERVICE + '[deploy]\nreplicas = "3"\n',
        "deploy.replicas: '3' is invalid: Input should be a valid integer",
    ),
    "zero check timeout": (
        GOOD_SERVICE + '[[checks]]\nname = "t"\nkind = "tcp"\nhost = "db"\nport = 5432\ntimeout = "0s"\n',
        "checks[0].timeout: '0s' is invalid: expected a timeout greater than 0s",
    ),
    "URL without a host": (
        GOOD_SERVICE + '[[checks]]\nname = "h"\nkind = "http"\nurl = "http://"\n',
        "checks[0].url: 'http://' is invalid: expected a URL with a host",
    ),
    "postgres check with a mysql URL": (
        GOOD_SERVICE + '[[checks]]\nname = "db"\nkind = "postgres"\nurl = "mysql://db/shop"\n',
        "checks[0].url: 'mysql://db/shop' is invalid: expected a postgresql:// or postgres:// URL",
    ),
    "redis check with an http URL": (
        GOOD_SERVICE + '[[checks]]\nname = "c"\nkind = "redis"\nurl = "http://cache:6379"\n',
        "checks[0].url: 'http://cache:6379' is invalid: expected a redis:// or rediss:// or unix:// URL",
    ),
    "secret name with a space": (
        GOOD_SERVICE + '[[checks]]\nname = "db"\nkind = "postgres"\nurl = { secret = "DB URL" }\n',
        "checks[0].url.secret: 'DB URL' is invalid: expected a dotted lowercase secret name",
    ),
    "zero header timeout": (
        GOOD_SERVICE + 'header_timeout = "0s"\n',
        "service.header_timeout: '0s' is invalid: expected a duration greater than 0s",
    ),
    "zero idle timeout on the ops port": (
        GOOD_SERVICE + '[ops]\nidle_timeout = "0s"\n',
        "ops.idle_timeout: '0s' is invalid: expected a duration greater than 0s",
    ),
    "no connections allowed": (
        GOOD_SERVICE + "max_connections = 0\n",
        "service.max_connections: 0 is invalid: Input should be greater than or equal to 1",
    ),
    "store timeout below a second": (
        GOOD_SERVICE + '[jobs]\nstore_timeout = "500ms"\n',
        "jobs: store_timeout must be at least 1s",
    ),
    # Issue 17: [protection].
    "malformed proxy network": (
        GOOD_SERVICE + '[protection]\ntrusted_proxies = ["10.0.0.300/8"]\n',
        "protection.trusted_proxies: '10.0.0.300/8' is not an IP network such as '10.0.0.0/8'",
    ),
    "negative body limit": (
        GOOD_SERVICE + '[protection.limits]\nmax_body_size = "-1MiB"\n',
        "protection.limits.max_body_size: '-1MiB' is invalid: expected a size greater than 0",
    ),
    "negative header count": (
        GOOD_SERVICE + "[protection.limits]\nmax_header_count = -5\n",
        "protection.limits.max_header_count: -5 is invalid: Input should be greater than or equal to 1",
    ),
    "zero time limit on a route": (
        GOOD_SERVICE + '[protection.limits]\nroutes = [{ path = "/slow", time_limit = "0s" }]\n',
        "protection.limits.routes[0].time_limit: '0s' is invalid: expected a time limit greater than 0s",
    ),
    "server header with a line break": (
        GOOD_SERVICE + '[protection.headers]\nserver = "shop\\r\\nX-Injected: 1"\n',
        "protection.headers.server: 'shop\\r\\nX-Injected: 1' is invalid: "
        "expected a printable ASCII header value",
    ),
    # Security header values go into response heads as they are on h11 (`runtime.wire_headers`).
    "security header ending in a newline": (
        GOOD_SERVICE + '[protection.headers]\nreferrer_policy = "no-referrer\\n"\n',
        "protection.headers.referrer_policy: 'no-referrer\\n' is invalid: "
        "expected a printable ASCII header value without surrounding spaces",
    ),
    "security header with a trailing space": (
        GOOD_SERVICE + "[protection.headers]\ncontent_security_policy = \"default-src 'self' \"\n",
        "protection.headers.content_security_policy: \"default-src 'self' \" is invalid: "
        "expected a printable ASCII header value without surrounding spaces",
    ),
    "size without a unit": (
        GOOD_SERVICE + "[protection.limits]\nmax_body_size = 1000\n",
        "protection.limits.max_body_size: 1000 is invalid: expected a size with a unit",
    ),
    "unknown JWT algorithm": (
        GOOD_SERVICE + '[protection.auth]\njwks_url = "https://idp.example/jwks"\nalgorithms = ["RS257"]\n',
        "protection.auth.algorithms: unknown algorithm 'RS257'; expected one of",
    ),
    "JWT alg none": (
        GOOD_SERVICE + '[protection.auth]\njwks_url = "https://idp.example/jwks"\nalgorithms = ["none"]\n',
        "protection.auth.algorithms: 'none' is never accepted",
    ),
    "HMAC mixed with RSA": (
        GOOD_SERVICE + '[protection.auth]\nkey_file = "/k.pem"\nalgorithms = ["RS256", "HS256"]\n',
        "protection.auth.algorithms: HMAC (HS*) and public-key algorithms must not be mixed",
    ),
    "negative rate limit": (
        GOOD_SERVICE + '[[protection.rate_limits]]\nname = "api"\nlimit = -1\nwindow = "1m"\n',
        "protection.rate_limits[0].limit: -1 is invalid: Input should be greater than or equal to 1",
    ),
    "redis rate limit without a URL": (
        GOOD_SERVICE + '[[protection.rate_limits]]\nname = "api"\nlimit = 5\nwindow = "1m"\n'
        'storage = "redis"\n',
        "protection.rate_limits[0]: storage = 'redis' needs redis_url",
    ),
    "relative Vault JWT file": (
        GOOD_SERVICE + '[secrets.vault]\nauth = { method = "kubernetes", role = "r", jwt_file = "sa/jwt" }\n',
        "secrets.vault.auth.kubernetes.jwt_file: 'sa/jwt' is invalid: expected the absolute path",
    ),
    "CORS wildcard with credentials": (
        GOOD_SERVICE + '[protection.cors]\nallow_origins = ["*"]\nallow_credentials = true\n',
        "protection.cors: allow_origins = ['*'] with allow_credentials = true would let every site",
    ),
}


@pytest.mark.parametrize("body,expected", list(CASES.values()), ids=list(CASES))
def test_bad_config_gives_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    path = write_config(tmp_path, body)
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert str(path) in err
    assert "Traceback" not in err
    assert "hunter2" not in err  # even the offending literal is shown with its password masked
    assert len(err.strip().splitlines()) == 1, err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: file not found" in capsys.readouterr().err


def test_env_override_errors_name_the_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD_SERVICE)
    result = run_cli("config", "check", str(path), env={"PILOTHOUSE_SERVICE__PORT": "eighty"})
    assert result.returncode == 2
    assert "service.port (from PILOTHOUSE_SERVICE__PORT): 'eighty' is invalid" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_without_app_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[service]\nname = "shop"\n')
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert "service.app: required key is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_unimportable_app(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[service]\nname = "shop"\napp = "nowhere.app:app"\n')
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert "app 'nowhere.app:app': module 'nowhere.app' not found" in result.stderr


def test_bad_workers_count(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD_SERVICE)
    result = run_cli("serve", "--config", str(path), "--workers", "0")
    assert result.returncode == 2
    assert "--workers: 0 is invalid" in result.stderr


def test_toml_dates_are_a_type_error_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, "[service]\nname = 1979-05-27T07:32:00Z\n")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "service.name:" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "variable,value,expected",
    [
        (
            "PILOTHOUSE_SERVCE__PORT",
            "5",
            "servce (from PILOTHOUSE_SERVCE__PORT): unknown key; did you mean 'service'?",
        ),
        (
            "PILOTHOUSE_SERVICE__PORT__X",
            "1",
            "service.port (from PILOTHOUSE_SERVICE__PORT__X): Input should be a valid integer",
        ),
        (
            "PILOTHOUSE_CHECKS__0__TIMEOUT",
            "5s",
            "PILOTHOUSE_CHECKS__0__TIMEOUT: environment overrides cannot change list items",
        ),
    ],
)
def test_override_mistakes_name_the_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    path = write_config(tmp_path, GOOD_SERVICE + '[[checks]]\nname = "d"\nkind = "disk"\n')
    result = run_cli("config", "check", str(path), env={variable: value})
    assert result.returncode == 2
    assert expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_wrong_type_in_a_union_field_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, GOOD_SERVICE + '[[checks]]\nname = "db"\nkind = "postgres"\nurl = 5\n')
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checks[0].url: 5 is invalid:" in err[0] and " or " in err[0], err


def test_absurd_durations_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, GOOD_SERVICE + '[lifecycle]\npre_stop_delay = "99999999999h"\n')
    assert main(["config", "check", str(path)]) == 2
    assert "expected a duration of at most 365d" in capsys.readouterr().err


# -- issue 14 item 7: files that are not a small, plain TOML document ----------------------------


def _assert_one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "value",
    ["[" * 5000 + "]" * 5000, "{ a = " * 5000 + "1" + " }" * 5000],
    ids=["arrays", "inline tables"],
)
def test_deep_nesting_is_one_line(tmp_path: Path, value: str) -> None:
    path = write_config(tmp_path, GOOD_SERVICE + f"x = {value}\n")
    _assert_one_line(run_cli("config", "check", str(path)), f"{path}: invalid TOML: nested deeper than")


def test_deep_json_override_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD_SERVICE)
    deep = "[" * 5000 + "]" * 5000
    result = run_cli("config", "check", str(path), env={"PILOTHOUSE_DEPLOY__ENV": deep})
    _assert_one_line(result, "deploy.env (from PILOTHOUSE_DEPLOY__ENV):")


def test_symlink_loop_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.toml").symlink_to(tmp_path / "b.toml")
    (tmp_path / "b.toml").symlink_to(tmp_path / "a.toml")
    result = run_cli("config", "check", str(tmp_path / "a.toml"))
    _assert_one_line(result, "a.toml: cannot open: Too many levels of symbolic links")


def test_too_long_a_name_is_one_line(tmp_path: Path) -> None:
    result = run_cli("config", "check", str(tmp_path / ("a" * 300 + ".toml")))
    _assert_one_line(result, "(3")  # the path is shortened, its length named
    assert "cannot open: File name too long" in result.stderr


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pilothouse.toml"
    os.mkfifo(fifo)
    # Before the fix this blocked in open() for ever: the timeout (generous, a loaded machine can
    # take seconds to start the CLI) is what would end it.
    result = run_cli("config", "check", str(fifo), timeout=60)
    _assert_one_line(result, f"{fifo}: not a regular file")
    stack = run_cli("generate", "deploy", "--stack", str(fifo), "--out", str(tmp_path / "out"), timeout=60)
    _assert_one_line(stack, f"{fifo}: not a regular file")  # the stack file is read the same way


def test_a_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD_SERVICE + 'version = "' + "x" * (50 * 1024 * 1024) + '"\n')
    _assert_one_line(run_cli("config", "check", str(path)), f"{path}: {path.stat().st_size} bytes;")


def test_secrets_file_that_is_a_directory(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        GOOD_SERVICE
        + f'[secrets]\nsources = ["file"]\nfile = "{tmp_path}"\ndeclare = [{{ secret = "api.key" }}]\n',
    )
    result = run_cli("secrets", "check", "--config", str(path))
    assert result.returncode != 0
    assert f"secrets file {tmp_path} is a directory" in result.stdout + result.stderr
    assert "chmod" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "variable,value,shown",
    [
        ("PILOTHOUSE_SERVICE__PORT", "8081", 8081),
        ("PILOTHOUSE_DEPLOY__PDB", "true", True),
        ("PILOTHOUSE_TELEMETRY__SAMPLE_RATIO", "0.5", 0.5),
        ("PILOTHOUSE_SERVICE__VERSION", "1.0", "1.0"),
        ("PILOTHOUSE_LIFECYCLE__DRAIN_TIMEOUT", "5s", 5.0),
        ("PILOTHOUSE_DEPLOY__ENVIRONMENTS__PROD__REPLICAS", "4", 4),
        ("PILOTHOUSE_DEPLOY__ENV__RETRIES", "3", "3"),
        ("PILOTHOUSE_DEPLOY__RESOURCES__MEMORY", "1Gi", "1Gi"),
        ("PILOTHOUSE_TELEMETRY__MULTIPROCESS_DIR", "/tmp/metrics", Path("/tmp/metrics")),
    ],
)
def test_overrides_are_still_converted(tmp_path: Path, variable: str, value: str, shown: object) -> None:
    """An environment variable has no type: strict types apply to the file, not to overrides."""
    path = write_config(tmp_path, GOOD_SERVICE + "[deploy]\nreplicas = 2\n[deploy.environments.prod]\n")
    node: object = load_config(path, environ={variable: value})
    for part in variable.removeprefix("PILOTHOUSE_").lower().split("__"):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    assert node == shown


# -- issue 14 item 9: command-line values ---------------------------------------------------------


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["list", "--limit", "1" + "0" * 19], "--limit: 10000000000000000000 is invalid: expected 1 to"),
        (["list", "--limit", "-5"], "--limit: -5 is invalid: expected 1 to"),
        (["show", "99999999999999999999"], "job id: 99999999999999999999 is invalid"),
        (["cancel", "-1"], "job id: -1 is invalid"),
    ],
)
def test_jobs_numbers_out_of_range(tmp_path: Path, argv: list[str], expected: str) -> None:
    path = write_config(tmp_path, GOOD_SERVICE + '[jobs]\npath = "jobs.sqlite3"\n')
    _assert_one_line(run_cli("jobs", *argv, "--config", str(path)), expected)


@pytest.mark.parametrize("out", ["/proc/nope", "a-file"])
def test_generate_out_that_cannot_be_a_directory(tmp_path: Path, out: str) -> None:
    path = write_config(tmp_path, GOOD_SERVICE)
    target = Path(out) if out.startswith("/") else tmp_path / out
    if not out.startswith("/"):
        target.write_text("mine\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    for what in ("deploy", "monitoring"):
        result = run_cli("generate", what, "--config", str(path), "--out", str(target), cwd=tmp_path)
        _assert_one_line(result, f"--out {target}:")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written beside it
    if not out.startswith("/"):
        assert target.read_text() == "mine\n"


def test_a_path_is_a_toml_string_under_strict_types(tmp_path: Path) -> None:
    """Strict validation must not refuse a well-typed file: a path is a TOML string."""
    path = write_config(tmp_path, GOOD_SERVICE + '[telemetry]\nmultiprocess_dir = "/tmp/metrics"\n')
    assert load_config(path, environ={}).telemetry.multiprocess_dir == Path("/tmp/metrics")
