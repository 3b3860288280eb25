"""The layers hold at run time: importing a low layer does not drag in the high ones.

Each case imports in a fresh interpreter (this process has loaded everything already) and lists
which heavy modules ended up in `sys.modules`. The static half of the rule (no module imports a
higher layer) is `lint-imports` in `make lint`, configured in pyproject.toml.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER_AND_CLIENTS = ("uvicorn", "httpx", "prometheus_client", "starlette", "pilothouse.runtime")


def loaded_after(statement: str) -> set[str]:
    """Top-level names (and `pilothouse.<layer>` packages) in sys.modules after `statement`."""
    code = (
        f"{statement}\n"
        "import json, sys\n"
        "names = {m.split('.')[0] for m in sys.modules}\n"
        "names |= {'.'.join(m.split('.')[:2]) for m in sys.modules if m.startswith('pilothouse.')}\n"
        "print(json.dumps(sorted(names)))\n"
    )
    command = [sys.executable, "-c", code]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(proc.stdout))


@pytest.mark.parametrize(
    "statement",
    [
        "import pilothouse",
        "import pilothouse.config",
        "from pilothouse.config import load_config, Config",
        "import pilothouse.catalog",
        "from pilothouse.cli import build_parser; build_parser()",
    ],
)
def test_low_layers_load_no_server_or_http_client(statement: str) -> None:
    heavy = loaded_after(statement) & set(SERVER_AND_CLIENTS)
    assert not heavy, f"{statement!r} loaded {sorted(heavy)}"


def test_the_cli_parser_loads_no_config_model() -> None:
    """`pilothouse --help` and `--version` build the whole parser: pydantic stays out of it (the
    handlers import what they run), which is what keeps them fast."""
    loaded = loaded_after("from pilothouse.cli import build_parser; build_parser()")
    assert "pydantic" not in loaded
    assert "pilothouse.config" not in loaded


def test_the_cli_parser_loads_no_event_loop_process_or_network_module() -> None:
    """What only a handler needs (an event loop, subprocesses, sockets, temporary files, hashing,
    dataclass machinery) is imported by that handler: `--help` and `--version` stay near the
    interpreter's own start-up (docs/cli.md, "Start-up time")."""
    loaded = loaded_after("from pilothouse.cli import build_parser; build_parser()")
    handler_only = {"asyncio", "subprocess", "socket", "ssl", "tempfile", "hashlib", "dataclasses"}
    assert not loaded & handler_only, sorted(loaded & handler_only)


def test_the_public_names_still_resolve() -> None:
    """The lazy root package hands out the same objects as their modules."""
    loaded = loaded_after(
        "import pilothouse\n"
        "from pilothouse.runtime.attach import attach\n"
        "assert pilothouse.attach is attach\n"
        "from pilothouse import check, Config, touch, current_runtime, CheckFailed"
    )
    assert "pilothouse.runtime" in loaded
