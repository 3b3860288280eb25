"""YAML output for every generated file: sorted keys, block style, literal blocks for multi-line text.

One dump function, so every generated YAML file is byte-stable and looks the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as `|` blocks and never emits aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump(document: Any) -> str:
    """One YAML document."""
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=4096, allow_unicode=True
    )


def dump_all(documents: Iterable[Any]) -> str:
    """Several YAML documents separated by `---`."""
    return "---\n".join(dump(d) for d in documents)
