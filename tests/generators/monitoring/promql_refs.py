"""What a PromQL expression references, read with a real PromQL parser (promql-parser, the Rust
parser used by GreptimeDB) rather than regular expressions: selected series with their matchers,
and every label named in grouping or vector matching."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser
import yaml

GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$namespace": ".*", "$instance": ".*"}
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$")


@dataclass
class Refs:
    selectors: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """(series name, {label: value}) for every vector selector."""
    labels: set[str] = field(default_factory=set)
    """Labels named in `by`, `without`, `on`, `ignoring` or `group_left/right`."""


def substitute(expr: str) -> str:
    """A dashboard query as Prometheus would receive it from Grafana."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def prometheus_query(expr: str) -> str:
    """What Grafana sends to Prometheus for a panel or variable query."""
    text = substitute(expr)
    match = _LABEL_VALUES.match(text)
    return match.group(1) if match else text


def _walk(node: Any, refs: Refs) -> None:
    kind = type(node).__name__
    if kind == "VectorSelector":
        refs.selectors.append((node.name, {m.name: m.value for m in node.matchers.matchers}))
    elif kind == "MatrixSelector":
        _walk(node.vector_selector, refs)
    elif kind == "AggregateExpr":
        if node.modifier is not None:
            refs.labels.update(node.modifier.labels)
        _walk(node.expr, refs)
        if node.param is not None:
            _walk(node.param, refs)
    elif kind == "BinaryExpr":
        if node.modifier is not None:
            if node.modifier.matching is not None:
                refs.labels.update(node.modifier.matching.labels)
            refs.labels.update(node.modifier.group_labels or [])
        _walk(node.lhs, refs)
        _walk(node.rhs, refs)
    elif kind == "Call":
        for arg in node.args:
            _walk(arg, refs)
    elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        _walk(node.expr, refs)
    elif kind not in ("NumberLiteral", "StringLiteral"):
        raise AssertionError(f"unhandled PromQL node {kind}")


def references(expr: str) -> Refs:
    """Parse `expr` (Grafana variables substituted; `label_values(sel, label)` unwrapped)."""
    refs = Refs()
    text = substitute(expr)
    match = _LABEL_VALUES.match(text)
    if match:
        text = match.group(1)
        refs.labels.add(match.group(2))
    _walk(promql_parser.parse(text), refs)
    return refs


def bundle_expressions(root: Path) -> dict[str, str]:
    """Every PromQL expression of a generated bundle: {where: expression}."""
    found: dict[str, str] = {}
    for rules in sorted((root / "prometheus" / "rules").glob("*.yaml")):
        for group in yaml.safe_load(rules.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule["alert"]
                found[f"{rules.name}:{name}"] = rule["expr"]
    for board in sorted((root / "grafana" / "dashboards").glob("*.json")):
        data = json.loads(board.read_text())
        for variable in data.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                found[f"{board.name}:${variable['name']}"] = variable["query"]
        for panel in data["panels"]:
            for number, target in enumerate(panel.get("targets") or []):
                found[f"{board.name}:{panel['title']}#{number}"] = target["expr"]
    return found
