"""Turning secret references from the config into values.

Sources are tried in the order `[secrets].sources` gives; the first that has the secret wins.
"""

from pilothouse.secrets.resolver import SecretResolver, env_name

__all__ = ["SecretResolver", "env_name"]
