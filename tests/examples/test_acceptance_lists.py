"""Every example's ACCEPTANCE.md and its acceptance.py agree: each test the list cites exists,
and each acceptance test is cited by a criterion (a proof nobody reads, or a criterion proven by
a test that is gone, is a list that lies)."""

from __future__ import annotations

import ast

import pytest

from tests.examples.acceptance import EXAMPLES, cited_tests, examples_with_lists
from tests.helpers import ROOT


def _tests_in(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def test_every_reference_example_has_a_list_and_a_runner() -> None:
    names = examples_with_lists()
    assert names, "no example has an ACCEPTANCE.md"
    for name in names:
        assert (EXAMPLES / name / "acceptance.py").is_file(), name
        assert (EXAMPLES / name / "pilothouse.toml").is_file() or (
            EXAMPLES / name / "stack.toml"
        ).is_file(), name
        assert (ROOT / "tests" / "examples" / f"test_{name.replace('-', '_')}.py").is_file(), name
        assert (ROOT / "docs" / "examples" / f"{name}.md").is_file(), f"docs/examples/{name}.md"


@pytest.mark.parametrize("name", examples_with_lists())
def test_the_list_and_the_acceptance_tests_agree(name: str) -> None:
    own = _tests_in(f"examples/{name}/acceptance.py")
    cited = cited_tests(name)
    for path, test in cited:
        assert test in (_tests_in(path) if path else own), (
            f"examples/{name}/ACCEPTANCE.md cites {path or 'acceptance.py'}::{test}, which does not exist"
        )
    uncited = own - {test for path, test in cited if path is None}
    assert not uncited, f"examples/{name}/acceptance.py: tests no criterion cites: {sorted(uncited)}"
