"""Pilothouse: health, readiness, lifecycle, metrics and deploy artifacts from one config file."""

from pilothouse.config import Config, load_config
from pilothouse.errors import ConfigError, OperationError, PilothouseError, SecretError
from pilothouse.runtime.attach import attach
from pilothouse.runtime.checks import CheckFailed, check
from pilothouse.runtime.freshness import touch
from pilothouse.runtime.runtime import current_runtime

__version__ = "0.1.0"

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
