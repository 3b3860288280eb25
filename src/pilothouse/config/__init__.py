"""The configuration: `pilothouse.toml` parsed once into typed models."""

from pilothouse.config.checks import CheckConfig
from pilothouse.config.loader import DEFAULT_FILE, config_from_dict, load_config
from pilothouse.config.model import Config
from pilothouse.config.secret_ref import SecretRef

__all__ = ["DEFAULT_FILE", "CheckConfig", "Config", "SecretRef", "config_from_dict", "load_config"]
