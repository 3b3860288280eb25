"""A stack file: several services, each with its own `pilothouse.toml`, deployed as one.

```toml
[stack]
name = "market"
namespace = "market"
gateway = "gateway"                                    # the only service exposed
services = ["gateway", "users", "products", "orders"]  # directories beside this file
```
Which service may call which is declared by each service (`[deploy] calls = [...]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator

from pilothouse.config.base import Section
from pilothouse.config.deploy import dns_label
from pilothouse.config.loader import load_config
from pilothouse.config.model import Config
from pilothouse.config.toml_file import read_toml
from pilothouse.errors import ConfigError


class StackSection(Section):
    name: str
    namespace: str | None = None
    gateway: str
    services: Annotated[list[str], Field(min_length=1)]

    @field_validator("name", "namespace", "gateway")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return value if value is None else dns_label(value)

    @field_validator("services")
    @classmethod
    def _services(cls, value: list[str]) -> list[str]:
        return [dns_label(v) for v in value]

    @model_validator(mode="after")
    def _gateway_listed(self) -> StackSection:
        if self.gateway not in self.services:
            raise ValueError(f"stack.gateway {self.gateway!r} is not one of stack.services")
        return self


@dataclass(frozen=True)
class Stack:
    """The loaded stack: each service's config (namespace set to the stack's) and its file text."""

    name: str
    namespace: str
    gateway: str
    services: tuple[tuple[Config, str], ...]


def load_stack(path: Path) -> Stack:
    """Read a stack file and every service config it lists; one ConfigError naming the key on error."""
    raw, _ = read_toml(path)
    try:
        section = StackSection.model_validate(raw.get("stack", {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("stack", *err["loc"]))
        raise ConfigError(f"{path}: {where}: {str(err['msg']).removeprefix('Value error, ')}") from None
    namespace = section.namespace or section.name
    services: list[tuple[Config, str]] = []
    for name in section.services:
        file = path.parent / name / "pilothouse.toml"
        config = load_config(file, environ={})
        if config.service.name != name:
            raise ConfigError(
                f"{file}: service.name is {config.service.name!r}, the stack lists it as {name!r}"
            )
        unknown = sorted(set(config.deploy.calls) - set(section.services))
        if unknown:
            raise ConfigError(f"{file}: deploy.calls: {', '.join(unknown)} is not a service of the stack")
        deploy = config.deploy.model_copy(update={"namespace": namespace})
        services.append((config.model_copy(update={"deploy": deploy}), file.read_text(encoding="utf-8")))
    return Stack(section.name, namespace, section.gateway, tuple(services))
