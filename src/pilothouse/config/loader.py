"""Loading `pilothouse.toml`: read it (config/toml_file.py), merge the environment overrides
(config/overrides.py), refuse literal credentials, validate strictly, and turn every problem
into one line naming file, key and value.

Environment overrides are applied before validation, so an override is validated exactly like
the file and an error names the variable it came from.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pilothouse.config.credentials import advice, literal_credentials
from pilothouse.config.model import Config
from pilothouse.config.overrides import Loc, apply_env_overrides
from pilothouse.config.schema import model_in
from pilothouse.config.toml_file import check_depth, read_toml
from pilothouse.errors import ConfigError
from pilothouse.redaction import MASK, redact

DEFAULT_FILE = "pilothouse.toml"


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
        model = model_in(field.annotation)
    if isinstance(model, list):
        return sorted({k for m in model for k in m.model_fields})
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []
