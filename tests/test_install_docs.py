"""The README's table of extras and the `all` extra agree with pyproject.toml."""

from __future__ import annotations

import re
import tomllib

from tests.helpers import ROOT

REPOSITORY_ONLY = {"demo", "bench", "docs", "dev"}


def _extras() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras: dict[str, list[str]] = data["project"]["optional-dependencies"]
    return extras


def _readme_rows() -> set[str]:
    install = (ROOT / "README.md").read_text().split("## Install\n", 1)[1].split("\n## ", 1)[0]
    return {
        name
        for line in install.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([a-z-]+)`", line.split(" | ")[0])
    }


def test_every_extra_is_in_the_readme_table() -> None:
    assert _readme_rows() == set(_extras())


def test_all_is_every_feature_extra() -> None:
    extras = _extras()
    (spec,) = extras["all"]
    included = set(re.fullmatch(r"pilothouse\[([a-z,-]+)\]", spec).group(1).split(","))  # type: ignore[union-attr]
    assert included == set(extras) - REPOSITORY_ONLY - {"all"}
