"""Sizes written as strings with units ("64KiB", "10MiB", "1GB").

A bare number is refused, as for durations: "10" bytes or megabytes is a guess.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

SIZE_FACTORS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)$")


def parse_size(value: object) -> int:
    """Bytes for a size string; raise ValueError naming what is expected."""
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if match is None and isinstance(value, str) and value.strip().startswith("-"):
        raise ValueError(f"expected a size greater than 0, got {value!r}")
    if match is None:
        raise ValueError(f"expected a size with a unit such as '64KiB', '10MiB' or '1GB', got {value!r}")
    return int(float(match.group(1)) * SIZE_FACTORS[match.group(2)])


Size = Annotated[int, BeforeValidator(parse_size)]
"""Bytes as an int in Python, a unit string in the file."""
