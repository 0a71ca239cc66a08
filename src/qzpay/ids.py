"""Time-ordered identifiers.

An id is a prefix plus 26 Crockford base32 characters encoding 48 bits of milliseconds and 80
bits of randomness (the ULID layout). Within one process every new id is strictly greater than
the previous one, even inside one millisecond, so sorting by id is sorting by creation order.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_MAX = (1 << 128) - 1


class IdGenerator:
    """Strictly increasing ids for one prefix; thread-safe."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._last = 0
        self._lock = threading.Lock()

    def new(self) -> str:
        random = int.from_bytes(os.urandom(10), "big")  # one read per id
        candidate = (time.time_ns() // 1_000_000) << _RANDOM_BITS | random
        with self._lock:
            if candidate <= self._last:
                # Same millisecond (or a clock step back): stay above the last id, by a random
                # step of 24 bits (the draw's top bits, not used by ``candidate`` now).
                candidate = self._last + 1 + (random >> (_RANDOM_BITS - 24))
                if candidate > _MAX:  # pragma: no cover - needs a clock in the year 10889
                    raise OverflowError("id space exhausted")
            self._last = candidate
        return self.prefix + _encode(candidate)


_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)  # 10 bits -> 2 digits
_PAIR_SHIFTS = tuple(range(120, -1, -10))


def _encode(value: int) -> str:
    """``value`` (< 2**128) as 26 Crockford base32 digits, most significant first, two digits
    (10 bits) at a time."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


customer_ids = IdGenerator("cus_")
event_ids = IdGenerator("evt_")
