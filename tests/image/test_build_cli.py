"""`pilothouse build` and `pilothouse smoke` as a user meets them when something is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilothouse.image.runspec import SmokeError, interpolate
from tests.helpers import SHOP_DIR, run_cli


def no_engines_path(tmp_path: Path) -> str:
    """A PATH with this Python's tools but no container engine."""
    return f"{Path(sys.executable).parent}:{tmp_path}"


def test_without_an_engine_build_names_the_three(tmp_path: Path) -> None:
    result = run_cli(
        "build", "--config", str(SHOP_DIR / "pilothouse.toml"), env={"PATH": no_engines_path(tmp_path)}
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "pilothouse: error: no container engine found: install docker, podman or buildah"
    ]
    assert result.stdout == ""


def test_an_engine_asked_for_but_missing_is_named(tmp_path: Path) -> None:
    result = run_cli(
        "build", "--config", str(SHOP_DIR / "pilothouse.toml"), "--engine", "docker",
        env={"PATH": no_engines_path(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "pilothouse: error: --engine docker: docker is not installed (looked on PATH)"
    )


def test_a_bad_build_arg_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("build", "--config", str(SHOP_DIR / "pilothouse.toml"), "--build-arg", "BASE_IMAGE")
    assert result.returncode == 2
    assert "--build-arg 'BASE_IMAGE': expected NAME=VALUE" in result.stderr


def test_the_cli_starts_without_the_deploy_extra() -> None:
    """An image has only the extras its config needs; `pilothouse serve` there imports every command
    module to build its parser, so none may import PyYAML at import time (it crashed the shop's
    first image)."""
    code = "import sys; sys.modules['yaml'] = None; from pilothouse.cli import main; main(['--version'])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("x${A:?need A}y", {"A": "v"}, "xvy"),
    ],
)
def test_compose_interpolation(text: str, variables: dict[str, str], expected: str) -> None:
    assert interpolate(text, variables, "compose service s") == expected


def test_a_compose_variable_nobody_sets_fails_naming_it() -> None:
    with pytest.raises(
        SmokeError, match=r"compose service s: environment variable TOKEN is not set \(set it\)"
    ):
        interpolate("${TOKEN:?set it}", {}, "compose service s")
