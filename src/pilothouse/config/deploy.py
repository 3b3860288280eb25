"""`[deploy]`: how the service is packaged and run (image, replicas, resources, environments)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pilothouse.config.base import Section


class Resources(Section):
    memory: str = "256Mi"
    cpu: str = "250m"


class EnvironmentOverride(Section):
    replicas: Annotated[int, Field(ge=0)] | None = None
    resources: Resources | None = None


class DeployConfig(Section):
    image: str = ""
    replicas: Annotated[int, Field(ge=0)] = 2
    resources: Resources = Field(default_factory=Resources)
    environments: dict[str, EnvironmentOverride] = Field(default_factory=dict)
