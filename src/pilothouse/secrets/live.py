"""Live secrets: values that can change while the process runs, with subscribers.

`SecretStore.load_all()` resolves every referenced secret once (a missing required secret stops
startup with one line). `refresh()` re-resolves them: a new value replaces the old one and its
subscribers are called (e.g. a pool reconnects); an unreadable, missing or empty value keeps the
old one, counts a reload failure and shows up in the `secrets` readiness check as a warning.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable

from pilothouse.config.secret_ref import SecretRef
from pilothouse.errors import SecretError
from pilothouse.secrets import audit
from pilothouse.secrets.resolver import Resolved, SecretResolver
from pilothouse.secrets.value import SecretValue

log = logging.getLogger("pilothouse.secrets")

Subscriber = Callable[[SecretValue], Awaitable[None] | None]
"""Called with the new value after a rotation (sync or async)."""
LoadListener = Callable[[str, float], None]
FailureListener = Callable[[str], None]


class LiveSecret:
    """One secret's current value and provenance; `value` always returns the latest good one."""

    def __init__(self, ref: SecretRef) -> None:
        self.ref = ref
        self.name = ref.secret
        self.resolved: Resolved | None = None
        self.loaded_at: float | None = None  # wall time of the last successful load
        self.error: str | None = None  # why the last reload failed, None when healthy
        self._subscribers: list[Subscriber] = []

    @property
    def value(self) -> SecretValue:
        if self.resolved is None:
            raise SecretError(f"secret '{self.name}' is optional and not set in any source")
        return self.resolved.value

    def reveal(self) -> str:
        """The current plain text (shorthand for `value.reveal()`)."""
        return self.value.reveal()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(new_value)` after each rotation; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        return tuple(self._subscribers)


class SecretStore:
    """Every secret the config references, loaded once and refreshed on demand."""

    def __init__(
        self,
        resolver: SecretResolver,
        refs: Iterable[SecretRef],
        *,
        on_loaded: LoadListener | None = None,
        on_failure: FailureListener | None = None,
    ) -> None:
        self.resolver = resolver
        self.secrets: dict[str, LiveSecret] = {}
        for ref in refs:  # one entry per name; a name required anywhere is required
            known = self.secrets.get(ref.secret)
            if known is None or (ref.required and not known.ref.required):
                self.secrets[ref.secret] = LiveSecret(ref)
        self._on_loaded = on_loaded
        self._on_failure = on_failure
        self._lock = threading.Lock()

    def get(self, name: str) -> LiveSecret:
        try:
            return self.secrets[name]
        except KeyError:
            raise SecretError(
                f"secret '{name}' is not referenced in the config; add it to [secrets].declare"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.secrets

    @property
    def failures(self) -> dict[str, str]:
        """Secrets whose last reload failed, with the reason (no values)."""
        return {name: s.error for name, s in self.secrets.items() if s.error}

    def load_all(self) -> None:
        """Resolve every secret; SecretError with one line naming each problem otherwise."""
        problems: list[str] = []
        with self._lock, self.resolver.one_pass():
            for secret in self.secrets.values():
                try:
                    resolved = self.resolver.resolve(secret.ref)
                except SecretError as exc:
                    problems.append(str(exc))
                    continue
                if resolved is None:
                    if secret.ref.required:
                        problems.append(
                            f"required secret '{secret.name}' not found; "
                            f"looked in: {', '.join(self.resolver.where(secret.ref))}"
                        )
                    continue
                self._accept(secret, resolved, "loaded")
        if problems:
            raise SecretError("; ".join(problems))

    def refresh(self) -> list[LiveSecret]:
        """Re-resolve every secret; the ones whose value changed (blocking: run it in a thread)."""
        changed: list[LiveSecret] = []
        with self._lock, self.resolver.one_pass():
            for secret in self.secrets.values():
                try:
                    resolved = self.resolver.resolve(secret.ref)
                except SecretError as exc:
                    self._fail(secret, str(exc))
                    continue
                if resolved is None:
                    if secret.resolved is not None or secret.ref.required:
                        self._fail(
                            secret,
                            f"secret '{secret.name}' is missing or empty in every source; "
                            "keeping the previous value",
                        )
                    continue
                if secret.resolved is not None and resolved.value == secret.value:
                    self._succeeded(secret, resolved)
                    continue
                self._accept(secret, resolved, "loaded" if secret.resolved is None else "rotated")
                changed.append(secret)
        return changed

    async def notify(self, changed: Iterable[LiveSecret]) -> None:
        """Call the subscribers of each changed secret; a failing subscriber is logged, not fatal."""
        for secret in changed:
            for callback in secret.subscribers:
                try:
                    result = callback(secret.value)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("subscriber of secret '%s' failed after a rotation", secret.name)

    def close(self) -> None:
        self.resolver.close()

    # -- bookkeeping ------------------------------------------------------------------------

    def _accept(self, secret: LiveSecret, resolved: Resolved, event: str) -> None:
        audit.record(event, secret.name, resolved.source, resolved.location, resolved.version)
        self._succeeded(secret, resolved)

    def _succeeded(self, secret: LiveSecret, resolved: Resolved) -> None:
        secret.resolved = resolved  # same value, but provenance (version, file) may be newer
        if secret.error:
            log.info("secret '%s' reloads again from %s", secret.name, resolved.source)
        secret.error = None
        secret.loaded_at = time.time()
        if self._on_loaded is not None:
            self._on_loaded(secret.name, secret.loaded_at)

    def _fail(self, secret: LiveSecret, reason: str) -> None:
        if secret.error != reason:
            log.warning("reload of secret '%s' failed: %s", secret.name, reason)
            audit.record("reload-failed", secret.name, "-", "-")
        secret.error = reason
        if self._on_failure is not None:
            self._on_failure(secret.name)
