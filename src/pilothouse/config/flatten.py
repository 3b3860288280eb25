"""The config as `dotted.key = value` pairs: what `config show` prints and the context file lists."""

from __future__ import annotations

from typing import Any


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Pairs in document order; a secret reference stays one value (`{"secret": name}`)."""
    if isinstance(data, dict):
        if set(data) >= {"secret"} and "required" in data:
            return [(prefix, {"secret": data["secret"]})]
        out: list[tuple[str, Any]] = []
        for key in data:
            out += flatten(data[key], f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return [pair for i, item in enumerate(data) for pair in flatten(item, f"{prefix}[{i}]")]
    return [(prefix, data)]
