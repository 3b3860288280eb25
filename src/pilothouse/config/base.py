"""The base every config section inherits: strict about unknown keys, frozen once loaded."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A config table. Unknown keys are errors (typos must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Annotated[int, Field(ge=1, le=65535, description="a TCP port, 1-65535")]


def positive_duration(value: float) -> float:
    """A field validator: a timeout of 0s or less means nothing."""
    if value <= 0:
        raise ValueError("expected a duration greater than 0s")
    return value
