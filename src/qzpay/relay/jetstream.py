"""The JetStream side of the relay: connecting, the stream, and what it holds last."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import PubAck, RetentionPolicy, StorageType, StreamConfig
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError('the event relay needs nats-py: pip install "qzpay[nats]"') from exc

__all__ = ["PubAck"]

logger = logging.getLogger("qzpay.relay")

Retention = Literal["limits", "interest", "workqueue"]
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
WRONG_LAST_MSG_ID = 10070  # JetStream's error code for a failed Nats-Expected-Last-Msg-Id


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """The stream the relay creates when it is missing (an existing one is used as it is)."""

    name: str
    subject_prefix: str
    retention: Retention = "limits"
    max_age: float | None = None  # seconds; None keeps messages forever
    max_bytes: int | None = None
    duplicate_window: float = 120.0  # seconds JetStream remembers Nats-Msg-Id values

    @property
    def subjects(self) -> list[str]:
        return [f"{self.subject_prefix}.>"]

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=self.subjects,
            retention=RetentionPolicy(self.retention),
            storage=StorageType.FILE,
            max_age=self.max_age,
            max_bytes=self.max_bytes,
            duplicate_window=self.duplicate_window,
        )


@dataclass(frozen=True, slots=True)
class StreamReport:
    """What the relay found: a stream it created, or an existing one and how it differs."""

    name: str
    created: bool
    differences: list[str] = field(default_factory=list)
    messages: int = 0
    last_seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created": self.created,
            "differences": self.differences,
            "messages": self.messages,
            "last_seq": self.last_seq,
        }


class Broken(Exception):
    """The connection to the broker closed or failed while acks were outstanding."""


# Anything from these means the broker (or the way to it) failed: pause, reconnect, resume.
BROKER_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, OSError, TimeoutError, Broken)


class Connection:
    """One NATS connection without automatic reconnects: the relay notices a failure at once
    (``broken``), pauses, and connects afresh, resuming from its stored position."""

    def __init__(self, client: Client, js: JetStreamContext) -> None:
        self.client = client
        self.js = js
        self.broken = asyncio.Event()

    @classmethod
    async def open(cls, url: str, *, name: str, max_in_flight: int) -> Connection:
        holder: list[Connection] = []

        async def failed(*args: object) -> None:
            # nats-py reports a refused publish_async (its reply handler raises) only here: the
            # ack never comes, so the pipeline restarts from the last acknowledged event.
            logger.debug("NATS connection event: %r", args)
            if holder:
                holder[0].broken.set()

        client = await nats.connect(
            url,
            name=name,
            allow_reconnect=False,
            connect_timeout=2,
            error_cb=failed,
            disconnected_cb=failed,
            closed_cb=failed,
        )
        connection = cls(client, client.jetstream(publish_async_max_pending=max_in_flight))
        holder.append(connection)
        return connection

    async def close(self) -> None:
        if not self.client.is_closed:
            try:
                await asyncio.wait_for(self.client.close(), timeout=2)
            except BROKER_ERRORS:  # pragma: no cover - best effort
                return


def _plain(value: object) -> str | None:
    """A config enum as the server spells it (nats-py parses some into str, some into Enum)."""
    return None if value is None else str(getattr(value, "value", value))


def _differences(config: StreamConfig, wanted: StreamSettings) -> list[str]:
    found: list[str] = []
    subjects = list(config.subjects or [])
    if not any(s in (f"{wanted.subject_prefix}.>", ">") for s in subjects):
        found.append(f"subjects {subjects} (wanted {wanted.subjects})")
    storage = _plain(config.storage)
    if storage != "file":
        found.append(f"storage {storage} (wanted file)")
    retention = _plain(config.retention)
    if retention != wanted.retention:
        found.append(f"retention {retention} (wanted {wanted.retention})")
    if wanted.max_age is not None and (config.max_age or 0) != wanted.max_age:
        found.append(f"max_age {config.max_age}s (wanted {wanted.max_age}s)")
    if wanted.max_bytes is not None and config.max_bytes != wanted.max_bytes:
        found.append(f"max_bytes {config.max_bytes} (wanted {wanted.max_bytes})")
    if config.duplicate_window != wanted.duplicate_window:
        found.append(
            f"duplicate_window {config.duplicate_window}s (wanted {wanted.duplicate_window}s)"
        )
    return found


async def ensure_stream(js: JetStreamContext, settings: StreamSettings) -> StreamReport:
    """Create the stream if it is missing; an existing one is used as is, differences logged."""
    try:
        info = await js.stream_info(settings.name)
    except nats.js.errors.NotFoundError:
        info = await js.add_stream(settings.config())
        logger.info(
            "created JetStream stream %s (subjects %s, file storage, retention %s)",
            settings.name,
            settings.subjects,
            settings.retention,
        )
        return StreamReport(settings.name, created=True)
    differences = _differences(info.config, settings)
    if differences:
        logger.warning(
            "JetStream stream %s exists with other settings, used as it is: %s",
            settings.name,
            "; ".join(differences),
        )
    return StreamReport(
        settings.name,
        created=False,
        differences=differences,
        messages=info.state.messages,
        last_seq=info.state.last_seq,
    )


async def last_message_id(js: JetStreamContext, stream: str) -> str | None:
    """The Nats-Msg-Id of the stream's last message (None if empty or without one)."""
    info = await js.stream_info(stream)
    if not info.state.last_seq:
        return None
    try:
        message = await js.get_msg(stream, seq=info.state.last_seq)
    except nats.js.errors.NotFoundError:
        return None
    headers = message.headers or {}
    value = headers.get(MSG_ID)
    return value if isinstance(value, str) else None


async def describe(js: JetStreamContext, settings: StreamSettings) -> dict[str, Any]:
    """The stream's size and the settings that differ from the relay's defaults (for status)."""
    try:
        info = await js.stream_info(settings.name)
    except nats.js.errors.NotFoundError:
        return {"name": settings.name, "exists": False}
    return {
        "name": settings.name,
        "exists": True,
        "messages": info.state.messages,
        "last_seq": info.state.last_seq,
        "subjects": list(info.config.subjects or []),
        "differences": _differences(info.config, settings),
    }
