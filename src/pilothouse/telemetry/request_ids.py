"""Request ids for requests that arrive without one: 128 random bits as 32 hex digits.

Drawn from the operating system's CSPRNG (`os.urandom`) a block of 256 at a time, split in C,
and handed out by `deque.popleft`: atomic, so threads never share an id. Made one at a time
(`getrandbits(128)`, then text, then bytes) an id cost ~2.9k instructions a request on Python
3.11, about a tenth of what default `[telemetry]` adds; from a block ~2.3k in a loop of its own,
0.4k less a request on serve's stack (docs/performance.md, "Eighth pass"). `random`'s Mersenne
Twister also gave away its next outputs to anyone who saw enough ids; the OS's generator does not.
A forked child drops the block it inherited, so no two processes hand out the same ids.
"""

from __future__ import annotations

import os
from collections import deque

_BLOCK = 256
"""Ids drawn at once: 4 KiB from the OS."""

_ids: deque[tuple[str, bytes]] = deque()

take = _ids.popleft
"""The next id as text and as bytes; IndexError when the block is used up: then `refill()`."""


def refill() -> tuple[str, bytes]:
    """Draw a new block and take its first id."""
    text = os.urandom(16 * _BLOCK).hex(" ", 16)  # 32 hex digits, a space, 32 more, ...
    _ids.extend(zip(text.split(), text.encode().split(), strict=True))
    return _ids.popleft()


os.register_at_fork(after_in_child=_ids.clear)
