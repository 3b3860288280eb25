"""Resolve `SecretRef`s from the configured sources, first hit wins.

The resolver is the one model of "where does secret X live": the runtime resolves through it,
`pilothouse secrets check` reports through it, and the deploy bundle mounts `mount_path(ref)`
and names `env_name(service, ref)` so the generated manifests match what is read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pilothouse.config.model import Config
from pilothouse.config.secret_ref import SecretRef
from pilothouse.errors import SecretError
from pilothouse.secrets import registry
from pilothouse.secrets.providers.base import Provider
from pilothouse.secrets.providers.env import EnvProvider, env_name
from pilothouse.secrets.providers.file import open_file_provider
from pilothouse.secrets.providers.kubernetes import KubernetesProvider, mount_path
from pilothouse.secrets.value import SecretValue

__all__ = ["Resolved", "SecretResolver", "env_name"]


@dataclass(frozen=True, slots=True)
class Resolved:
    """A secret's value (masked) and its provenance, for the live store and `secrets check`."""

    ref: SecretRef
    value: SecretValue
    source: str
    location: str
    updated_at: float | None = None
    version: str | None = None


class SecretResolver:
    """Looks secrets up in the sources the config names; values are registered for redaction."""

    def __init__(self, config: Config, environ: Mapping[str, str] | None = None) -> None:
        self._config = config
        self._environ = os.environ if environ is None else environ
        self.providers: list[Provider] = [self._provider(name) for name in config.secrets.sources]

    def _provider(self, name: str) -> Provider:
        secrets, service = self._config.secrets, self._config.service.name
        config_dir = self._config.source.parent if self._config.source else None
        if name == "kubernetes":
            return KubernetesProvider(secrets.mount_dir)  # absolute: the config model refuses others
        if name == "env":
            return EnvProvider(service, self._environ)
        if name == "file":
            assert secrets.file is not None  # the config model requires it with this source
            return open_file_provider(secrets.file, config_dir, service)
        from pilothouse.secrets.providers.vault import VaultProvider

        assert secrets.vault is not None  # the config model requires it with this source
        return VaultProvider(secrets.vault, service, self._environ)

    def mount_path(self, ref: SecretRef) -> Path:
        """Where a Kubernetes-mounted secret lives: `<mount_dir>/<group>/<key>`."""
        return mount_path(self._config.secrets.mount_dir, ref)

    def where(self, ref: SecretRef) -> list[str]:
        """Every place `ref` is looked for, in order."""
        return [provider.where(ref) for provider in self.providers]

    @contextlib.contextmanager
    def one_pass(self) -> Iterator[None]:
        """A pass over several secrets (a load or a refresh): a source whose answer for one key
        depends on the others' (a Vault lease holding a username and its password) decides once
        for the whole pass. Only such sources have a `one_pass` of their own."""
        with contextlib.ExitStack() as stack:
            for provider in self.providers:
                begin = getattr(provider, "one_pass", None)
                if begin is not None:
                    stack.enter_context(begin())
            yield

    def resolve(self, ref: SecretRef) -> Resolved | None:
        """The first non-empty value, None if no source has one; SecretError (naming the secret)
        when a source that should answer cannot be read."""
        for provider in self.providers:
            try:
                found = provider.lookup(ref)
            except SecretError as exc:
                raise SecretError(f"secret '{ref.secret}': {exc}") from None
            if found is not None and found.value:
                return Resolved(
                    ref,
                    SecretValue(found.value),
                    provider.name,
                    found.location,
                    found.updated_at,
                    found.version,
                )
        return None

    def require(self, ref: SecretRef) -> Resolved:
        """Like `resolve`, but a missing secret is a SecretError listing every place looked."""
        resolved = self.resolve(ref)
        if resolved is None:
            raise SecretError(f"secret '{ref.secret}' not found; looked in: {', '.join(self.where(ref))}")
        return resolved

    @property
    def config(self) -> Config:
        return self._config

    def get(self, ref: SecretRef) -> str:
        """The plain value of `ref`; SecretError lists every place looked if none has it.

        When the secrets feature already loaded `ref` for this config, that (live) value is
        returned, so a leased secret is not read, and leased, a second time."""
        store = registry.current()
        if store is not None and store.resolver.config is self._config and ref.secret in store:
            live = store.get(ref.secret)
            if live.resolved is not None:
                return live.value.reveal()
        return self.require(ref).value.reveal()

    def close(self) -> None:
        """Release provider resources (Vault leases and login)."""
        for provider in self.providers:
            provider.close()
