"""Turning secret references from the config into values.

Sources are tried in the order `[secrets].sources` gives; the first that has the secret wins:
Kubernetes-mounted Secret files, environment variables, a local TOML/.env file, Vault/OpenBao.
Values are `SecretValue`s (masked when printed) and registered with the log redactor; the
`secrets` feature keeps them live (rotation without restart) and `live(name)` hands them to
application code.
"""

from pilothouse.secrets.live import LiveSecret, SecretStore
from pilothouse.secrets.policy import vault_policy
from pilothouse.secrets.providers.env import env_name
from pilothouse.secrets.providers.kubernetes import mount_path
from pilothouse.secrets.registry import live
from pilothouse.secrets.resolver import Resolved, SecretResolver
from pilothouse.secrets.value import SecretValue

__all__ = [
    "LiveSecret",
    "Resolved",
    "SecretResolver",
    "SecretStore",
    "SecretValue",
    "env_name",
    "live",
    "mount_path",
    "vault_policy",
]
