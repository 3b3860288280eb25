"""One place that knows which strings must never be shown: resolved secret values.

Logs, health bodies, errors and `config show` pass text through `redact()`.
"""

from __future__ import annotations

import re
import threading

MASK = "***"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)[^/@\s]*@")
_KEY_VALUE = re.compile(r"(?i)\b(password|passwd|pwd|token|secret)=\S+")

_lock = threading.Lock()
_values: frozenset[str] = frozenset()


def register_secret(value: str) -> None:
    """Remember a secret value so it is masked wherever text is redacted."""
    global _values
    if len(value) >= 4:  # shorter strings would mask ordinary words
        with _lock:
            _values = _values | {value}


def unregister_secret(value: str) -> None:
    """Forget a rotated-out value."""
    global _values
    with _lock:
        _values = _values - {value}


def redact(text: str) -> str:
    """Mask registered secret values, URL credentials and `password=` style pairs."""
    for value in sorted(_values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    text = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + MASK + "@", text)
    return _KEY_VALUE.sub(lambda m: m.group(1) + "=" + MASK, text)
