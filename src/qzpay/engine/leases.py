"""Leases: who is working on a sync task, and whether their claim still counts.

A task is worked on only by the holder of its lease. An owner is named
``host:pid:random``, so a lease of a process that died on this host need not be waited out,
and one held by this process is stale as soon as this process is not working on the record.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from qzpay._time import utcnow

LEASE = timedelta(seconds=120)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Leases:
    """This process's owner name and the records it is working on right now."""

    def __init__(self) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._in_flight: set[str] = set()

    @staticmethod
    def until() -> datetime:
        """The end of a lease taken now."""
        return utcnow() + LEASE

    @contextmanager
    def working_on(self, record_id: str) -> Iterator[None]:
        """Mark ``record_id`` as being worked on by this process (its leases are live)."""
        self._in_flight.add(record_id)
        try:
            yield
        finally:
            self._in_flight.discard(record_id)

    def stale_owners(self, held: Iterable[tuple[str | None, str]]) -> frozenset[str]:
        """Of the ``(owner, record id)`` leases given, the owners that need not be waited for:
        this process when idle on the record, and processes on this host that no longer run."""
        host = socket.gethostname()
        stale: set[str] = set()
        for owner, record_id in held:
            if owner is None or owner in stale:
                continue
            if owner == self.owner:
                if record_id not in self._in_flight:
                    stale.add(owner)
                continue
            parts = owner.rsplit(":", 2)
            same_host = len(parts) == 3 and parts[0] == host and parts[1].isdigit()
            if same_host and not pid_alive(int(parts[1])):
                stale.add(owner)
        return frozenset(stale)

    def live(self, owner: str | None, until: datetime, record_id: str) -> bool:
        """Whether a lease is live: not expired, and its owner not stale."""
        return until > utcnow() and owner not in self.stale_owners([(owner, record_id)])
