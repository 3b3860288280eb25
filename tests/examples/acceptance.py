"""The reference-system examples' acceptance lists: load an example's `acceptance.py` into a test
module of the normal suite, and read the criteria its `ACCEPTANCE.md` cites.

Every `examples/<name>/` with an `ACCEPTANCE.md` follows one shape (docs/examples/README.md):
its `acceptance.py` is a pytest module whose tests prove the criteria, run here by
`tests/examples/test_<name>.py` (`globals().update(load("<name>"))`) and by `make examples`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg

from tests.helpers import ROOT
from tests.telemetry.test_otlp_e2e import otlp_receiver as otlp_receiver  # for the examples

EXAMPLES = ROOT / "examples"
# A proof cell names a test of the example's acceptance.py (`test_x`) or of the suite
# (`tests/area/test_file.py::test_x`), or a command; anything else is a reason it is not met here.
CITED_TEST = re.compile(r"`(?:(tests/[\w/]+\.py)::)?(test_\w+)`")


def examples_with_lists() -> list[str]:
    return sorted(p.parent.name for p in EXAMPLES.glob("*/ACCEPTANCE.md"))


def load(name: str) -> dict[str, Any]:
    """The public names of `examples/<name>/acceptance.py` (its tests and fixtures)."""
    path = EXAMPLES / name / "acceptance.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name.replace('-', '_')}_acceptance", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return {k: v for k, v in vars(module).items() if not k.startswith("_")}


def cited_tests(name: str) -> list[tuple[str | None, str]]:
    """(suite file or None for the example's own acceptance.py, test name) per citation."""
    text = (EXAMPLES / name / "ACCEPTANCE.md").read_text()
    return [(m.group(1), m.group(2)) for m in CITED_TEST.finditer(text)]


@contextlib.contextmanager
def pg_schema(postgres_url: str, prefix: str) -> Iterator[str]:
    """A fresh schema on the shared database; the URL that makes it the search path."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
