"""Pilothouse: health, readiness, lifecycle, metrics and deploy artifacts from one config file.

The public names are imported on first use (module `__getattr__`, PEP 562): `import
pilothouse.config` or `pilothouse --version` must not load the server, the HTTP client or
prometheus_client. `tests/test_layers.py` checks it in a fresh interpreter.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from pilothouse.config import Config, load_config
    from pilothouse.errors import ConfigError, OperationError, PilothouseError, SecretError
    from pilothouse.runtime.attach import attach
    from pilothouse.runtime.checks import CheckFailed, check
    from pilothouse.runtime.freshness import touch
    from pilothouse.runtime.runtime import current_runtime

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "CheckFailed": "pilothouse.runtime.checks",
    "Config": "pilothouse.config",
    "ConfigError": "pilothouse.errors",
    "OperationError": "pilothouse.errors",
    "PilothouseError": "pilothouse.errors",
    "SecretError": "pilothouse.errors",
    "attach": "pilothouse.runtime.attach",
    "check": "pilothouse.runtime.checks",
    "current_runtime": "pilothouse.runtime.runtime",
    "load_config": "pilothouse.config",
    "touch": "pilothouse.runtime.freshness",
}

__all__ = [
    "CheckFailed",
    "Config",
    "ConfigError",
    "OperationError",
    "PilothouseError",
    "SecretError",
    "__version__",
    "attach",
    "check",
    "current_runtime",
    "load_config",
    "touch",
]


def __getattr__(name: str) -> _typing.Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'pilothouse' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
