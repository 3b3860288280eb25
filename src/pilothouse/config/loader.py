"""Reading `pilothouse.toml`: the only place that touches the file.

Environment overrides are applied before validation, so an override is validated exactly like
the file and an error names the variable it came from.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WrapValidator,
)

from pilothouse.config.credentials import advice, literal_credentials
from pilothouse.config.model import Config
from pilothouse.config.toml_file import check_depth, read_toml
from pilothouse.errors import ConfigError
from pilothouse.redaction import MASK, redact

ENV_PREFIX = "PILOTHOUSE_"
DEFAULT_FILE = "pilothouse.toml"

Loc = tuple[int | str, ...]
_CONVERTERS = (BeforeValidator, PlainValidator, WrapValidator)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Parse and validate a config file plus `PILOTHOUSE_<SECTION>__<FIELD>` overrides.

    Raises ConfigError with one line per problem: file, key path, bad value, expectation.
    """
    file = Path(path) if path is not None else Path(os.environ.get("PILOTHOUSE_CONFIG", DEFAULT_FILE))
    raw, _ = read_toml(file)
    return config_from_dict(raw, source=file, environ=os.environ if environ is None else environ)


def config_from_dict(
    raw: dict[str, Any], *, source: Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate an already-parsed document (tests, generators fed from memory)."""
    data, origins = apply_env_overrides(raw, environ or {})
    label = str(source) if source else "config"
    check_depth(data, label)
    _refuse_literal_credentials(data, label, origins)
    try:
        # Strict: TOML has types, so `port = "21100"` or `port = true` is a mistake, not a number.
        config = Config.model_validate(data, strict=True)
    except ValidationError as exc:
        errors = _fold_union_branches(_fold_typos(exc.errors(), data), data)
        raise ConfigError(
            "\n".join(_merge([_describe(err, label, data, origins) for err in errors]))
        ) from None
    config._source = source
    return config


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


def _refuse_literal_credentials(data: dict[str, Any], label: str, origins: dict[Loc, str]) -> None:
    """Every value of the file is published (ConfigMap, env, unit files): none may be a credential."""
    lines = []
    for loc, value, what in literal_credentials(data):
        origin = _origin(loc, origins)
        where = f"{label}: {_format_loc(loc)}" + (f" (from {origin})" if origin else "")
        shown = redact(value)  # the URL or pair with its password masked; a bare token not at all
        lines.append(f"{where}: {_short(shown if shown != value else MASK)} is invalid: {advice(what)}")
    if lines:
        raise ConfigError("\n".join(lines))


def _typed(value: str, parts: list[str]) -> Any:
    """`value` as the int, float or bool the field at `parts` expects, when it converts."""
    scalar = _scalar_type(_annotation_at(parts))
    if scalar is None:
        return value
    try:
        return TypeAdapter(scalar).validate_python(value)
    except ValidationError:
        return value  # strict validation reports it, naming the variable


def _annotation_at(parts: list[str]) -> Any:
    """The type annotation of the field at `parts` (None when there is no such field)."""
    annotation: Any = Config
    for part in parts:
        container = _unwrap(annotation)
        if typing.get_origin(container) is typing.Annotated:
            container = typing.get_args(container)[0]
        if typing.get_origin(container) is dict:  # [deploy.environments.NAME], [deploy.env]
            annotation = typing.get_args(container)[-1]
            continue
        model = _model_in(annotation)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if field.metadata:  # pydantic moves a top-level Annotated's metadata here
            annotation = typing.Annotated[(annotation, *field.metadata)]
    return annotation


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X (keeping Annotated metadata)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _scalar_type(annotation: Any) -> type | None:
    """int, float or bool when that is all the field takes (Duration and str fields: None)."""
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        if any(isinstance(m, _CONVERTERS) for m in metadata):
            return None  # a custom validator (Duration) converts the string itself
        annotation = base
    return annotation if annotation in (int, float, bool) else None


def _fold_union_branches(errors: list[Any], data: dict[str, Any]) -> list[Any]:
    """`url = { secret = "DB URL" }` is one mistake in the SecretRef: drop the "Input should be a
    valid string" of the `str` branch of the same union, which a table was never meant to be."""
    locs = [_strip_tags(tuple(err["loc"]), data) for err in errors]
    return [
        err
        for err, loc in zip(errors, locs, strict=True)
        if not (
            err["type"].endswith("_type")
            and isinstance(err.get("input"), dict)
            and any(other[: len(loc)] == loc and len(other) > len(loc) for other in locs)
        )
    ]


def _fold_typos(errors: list[Any], data: dict[str, Any]) -> list[Any]:
    """A misspelt required key is one mistake: keep "unknown key; did you mean" and drop the
    "required key is missing" it causes."""
    suggested: set[Loc] = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            loc = _strip_tags(tuple(err["loc"]), data)
            close = difflib.get_close_matches(str(loc[-1]), _allowed_keys(loc[:-1]), n=1, cutoff=0.6)
            if close:
                suggested.add((*loc[:-1], close[0]))
    return [
        err
        for err in errors
        if not (err["type"] == "missing" and _strip_tags(tuple(err["loc"]), data) in suggested)
    ]


def _origin(loc: Loc, origins: dict[Loc, str]) -> str | None:
    """The override variable behind `loc`: one that set this key, a key below it, or above it."""
    key = tuple(str(p) for p in loc)
    for path, variable in origins.items():
        n = min(len(path), len(key))
        if n and path[:n] == key[:n]:
            return variable
    return None


def _merge(lines: list[tuple[str, str]]) -> list[str]:
    """One line per key: the alternatives of a union field ("a secret reference or a string")
    become one message instead of one line per branch."""
    by_key: dict[str, list[str]] = {}
    for where, text in lines:
        by_key.setdefault(where, [])
        if text not in by_key[where]:
            by_key[where].append(text)
    merged = []
    for where, texts in by_key.items():
        value, sep, _ = texts[0].partition(" is invalid: ")
        if len(texts) > 1 and sep and all(t.startswith(value + sep) for t in texts):
            reasons = " or ".join(t.removeprefix(value + sep) for t in texts)
            merged.append(f"{where}: {value} is invalid: {reasons}")
        else:
            merged.extend(f"{where}: {text}" for text in texts)
    return merged


def _describe(err: Any, label: str, data: dict[str, Any], origins: dict[Loc, str]) -> tuple[str, str]:
    """(where, what): the file, key path and override variable; and what is wrong."""
    loc: Loc = _strip_tags(tuple(err["loc"]), data)
    path = _format_loc(loc) or "(top level)"
    origin = _origin(loc, origins)
    where = f"{label}: {path}" + (f" (from {origin})" if origin else "")
    kind = err["type"]
    if kind == "extra_forbidden":
        return where, f"unknown key{_did_you_mean(loc)}"
    if kind == "missing":
        return where, "required key is missing"
    message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if "input" in err and not isinstance(err["input"], dict | list) and loc:
        return where, f"{_short(err['input'])} is invalid: {message}"
    return where, message


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _strip_tags(loc: Loc, data: dict[str, Any]) -> Loc:
    """Drop pydantic's union tags ('postgres', 'str', 'SecretRef') that are not real keys."""
    out: list[int | str] = []
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            out.append(part)
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and part not in node and not _looks_like_tag(part, node):
            out.append(part)
            node = None
        elif node is None:
            out.append(part)
    return tuple(out)


def _looks_like_tag(part: str, node: dict[str, Any]) -> bool:
    return part == node.get("kind") or part[:1].isupper() or part in {"str", "int", "float"}


def _did_you_mean(loc: Loc) -> str:
    allowed = _allowed_keys(loc[:-1])
    if not allowed:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; expected one of: {', '.join(sorted(allowed))}"


def _allowed_keys(parent: Loc) -> list[str]:
    model: Any = Config
    for part in parent:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
    if isinstance(model, list):
        return sorted({k for m in model for k in m.model_fields})
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The BaseModel (or list of models, for unions) inside Optional/list/dict/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (list, dict, tuple):
        return _model_in(typing.get_args(annotation)[-1])
    if origin in (typing.Union, types.UnionType):
        models = [m for a in typing.get_args(annotation) if (m := _model_in(a)) is not None]
        flat = [x for m in models for x in (m if isinstance(m, list) else [m])]
        return flat[0] if len(flat) == 1 else (flat or None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
