"""Path patterns of `[protection]` ('/api/*': `*` matches any characters, '/' included),
compiled once into one regex per pattern list; matched against the request path before the
app's router runs (the route template is only known after it)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence


def path_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """A test for "the path matches one of `patterns`" (one regex match per request)."""
    regex = re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))
    return lambda path: regex.match(path) is not None
