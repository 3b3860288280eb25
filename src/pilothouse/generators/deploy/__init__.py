"""The deploy bundle: Kubernetes/Kustomize, container, compose and systemd files from one config.

`generate(config, config_text)` returns `{relative path: text}`; nothing here does I/O. The config
file's text is passed in (the CLI reads it) because it is shipped as-is in the ConfigMap and image.
"""

from __future__ import annotations

from pilothouse.config import Config
from pilothouse.errors import ConfigError
from pilothouse.generators.deploy import compose, container, facts, kustomize, systemd


def generate(
    config: Config, config_text: str, environment: str | None = None, bundle_dir: str = "deploy"
) -> dict[str, str]:
    """Every deploy file for one service; `environment` keeps only that overlay. `bundle_dir` is
    where the bundle sits relative to the directory of pilothouse.toml (the image build context)."""
    if environment is not None and environment not in config.deploy.environments:
        known = ", ".join(sorted(config.deploy.environments)) or "none"
        raise ConfigError(f"--env {environment}: no [deploy.environments.{environment}] (defined: {known})")
    if facts.vault_address_missing(config):
        raise ConfigError(
            f"{config.source}: secrets.vault.address: not set, and [deploy].env sets neither VAULT_ADDR "
            "nor BAO_ADDR: the deployed service would not find Vault; set one of them"
        )
    files: dict[str, str] = {}
    files.update(kustomize.single_service(config, config_text, environment))
    files.update(container.files(config, bundle_dir))
    files.update(compose.files(config, bundle_dir))
    files.update(systemd.files(config))
    return dict(sorted(files.items()))
