"""`SecretValue`: a resolved secret that will not print itself.

`repr`, `str` and f-strings show a mask, so a value that reaches a log line, an exception or a
debugger by accident does not leak; code that needs the text calls `reveal()` on purpose.
"""

from __future__ import annotations

import hmac

from pilothouse.redaction import MASK, register_secret


class SecretValue:
    """A secret string; masked when printed, compared in constant time."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The plain text, for the one place that needs it (a connection string, a header)."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretValue('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a SecretValue is not pickled; reveal() it on purpose if you must")
