"""Kubernetes quantities converted for formats that do not speak them (compose, systemd)."""

from __future__ import annotations

import re

_FACTORS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def memory_bytes(quantity: str) -> int:
    """'256Mi' -> 268435456 (the config model has already validated the form)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", quantity)
    if match is None:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return int(float(match.group(1)) * _FACTORS[match.group(2)])


def cpu_cores(quantity: str) -> float:
    """'250m' -> 0.25, '1.5' -> 1.5."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
