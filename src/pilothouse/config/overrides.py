"""`PILOTHOUSE_<SECTION>__<FIELD>=value`: environment overrides merged into the parsed file.

An environment variable has no type, while the file's values are validated strictly; so an
override for a number or boolean field is converted first, the way pydantic's lax mode would,
and everything else stays a string for validation to judge.
"""

from __future__ import annotations

import contextlib
import copy
import json
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BeforeValidator, PlainValidator, TypeAdapter, ValidationError, WrapValidator

from pilothouse.config.model import Config
from pilothouse.config.schema import annotation_at, unwrap
from pilothouse.errors import ConfigError

ENV_PREFIX = "PILOTHOUSE_"
Loc = tuple[int | str, ...]
_CONVERTERS = (BeforeValidator, PlainValidator, WrapValidator)


def apply_env_overrides(
    raw: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[Loc, str]]:
    """Merge `PILOTHOUSE_A__B__C=value` into a copy of `raw`; return it and where values came from.

    Values that look like JSON arrays or objects are decoded; a value for a number or boolean
    field is converted the way pydantic's lax mode does ("8081" -> 8081, "true" -> True), since an
    environment variable cannot carry a type; everything else stays a string.
    """
    data: dict[str, Any] = copy.deepcopy(raw)  # TOML dates and times survive; pydantic judges them
    origins: dict[Loc, str] = {}
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            continue
        value: Any = environ[key]
        if value[:1] in "[{":
            with contextlib.suppress(ValueError, RecursionError):
                value = json.loads(value)
        else:
            value = _typed(value, parts)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, list) or part.isdigit():
                raise ConfigError(
                    f"{key}: environment overrides cannot change list items such as [[{part}]]; "
                    "edit the config file instead"
                )
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
        origins[tuple(parts)] = key
    return data, origins


def _typed(value: str, parts: list[str]) -> Any:
    """`value` as the int, float or bool the field at `parts` expects, when it converts."""
    scalar = _scalar_type(annotation_at(Config, parts))
    if scalar is None:
        return value
    try:
        return TypeAdapter(scalar).validate_python(value)
    except ValidationError:
        return value  # strict validation reports it, naming the variable


def _scalar_type(annotation: Any) -> type | None:
    """int, float or bool when that is all the field takes (Duration and str fields: None)."""
    annotation = unwrap(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        if any(isinstance(m, _CONVERTERS) for m in metadata):
            return None  # a custom validator (Duration) converts the string itself
        annotation = base
    return annotation if annotation in (int, float, bool) else None
