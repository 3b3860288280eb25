"""Bad config files: each gives one clear line naming file, key and value, and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilothouse.cli import main
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
        "checks[0].url: 'postgresql://***@db/shop' is invalid: a literal URL must not",
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
    "probe paths clash": (
        GOOD_SERVICE + '[probes]\nreadiness_path = "/health"\n',
        "probes: probe paths must be distinct",
    ),
    "bad disk threshold": (
        GOOD_SERVICE + '[[checks]]\nname = "d"\nkind = "disk"\nmin_free = "lots"\n',
        "checks[0].min_free: 'lots' is invalid: expected a percentage",
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
