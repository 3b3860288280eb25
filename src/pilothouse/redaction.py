"""One place that knows which strings must never be shown: resolved secret values.

Logs, health bodies, errors and `config show` pass text through `redact()`.
"""

from __future__ import annotations

import re
import threading

MASK = "***"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)[^/@\s]*@")
# A key naming a secret-ish thing (password, db_password, PGPASSWORD, access_token, api_key,
# client_secret), then `=` or `:`, then the value. A quoted key (JSON) needs a quoted value, and
# unquoted keys have no dots: `'db.password': not found` and `{"secret": "db.url"}` name a
# secret, they do not hold one.
_SENSITIVE_NAME = r"(?:[\w-]*(?:password|passwd|pwd|token|api[_-]?key)|[\w-]+[_-]secret|secret[_-]key)"
_KEY_VALUE = re.compile(
    rf"""(?i)(?P<key>(?P<q>["']){_SENSITIVE_NAME}(?P=q)\s*:\s*)(?P<value>"[^"]*"|'[^']*')"""
    rf"""|(?P<bkey>(?<![\w.'"-]){_SENSITIVE_NAME}\s*[:=]\s*)(?P<bvalue>"[^"]*"|'[^']*'|[^\s,;&}}"']+)"""
)

_KEYS = ("password", "passwd", "pwd", "token", "secret", "api_key", "api-key", "apikey")


def _mask_value(match: re.Match[str]) -> str:
    key = match.group("key") or match.group("bkey")
    value = match.group("value") or match.group("bvalue")
    quote = value[0] if value[:1] in "\"'" else ""
    return f"{key}{quote}{MASK}{quote}"


_lock = threading.Lock()
_values: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None  # every registered value in one alternation, longest first


def _compile(values: frozenset[str]) -> re.Pattern[str] | None:
    """One regex for all values: a single pass per line instead of one search per value."""
    if not values:
        return None
    return re.compile("|".join(re.escape(v) for v in sorted(values, key=lambda v: (-len(v), v))))


def register_secret(value: str) -> None:
    """Remember a secret value so it is masked wherever text is redacted."""
    global _values, _pattern
    if len(value) >= 4 and value not in _values:  # shorter strings would mask ordinary words
        with _lock:
            _values = _values | {value}
            _pattern = _compile(_values)


def unregister_secret(value: str) -> None:
    """Forget a value (rotated-out values stay registered by default: they were secrets too)."""
    global _values, _pattern
    with _lock:
        _values = _values - {value}
        _pattern = _compile(_values)


def redact(text: str) -> str:
    """Mask registered secret values, URL credentials and `password=` style pairs.

    Called on every log line, so each step is skipped when the text cannot contain its match
    (measured in docs/performance.md: the cheap guards make a typical line ~1µs).
    """
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + MASK + "@", text)
    if "=" in text or ":" in text:
        lowered = text.lower()
        if any(key in lowered for key in _KEYS):
            text = _KEY_VALUE.sub(_mask_value, text)
    return text
