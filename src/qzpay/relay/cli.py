"""``qzpay relay``: run the event relay, or print its status with ``--status``.

Exit codes as in the rest of the CLI: 0 ok; 1 operational error (a message on stderr, a
traceback only with ``--debug``); 2 usage error. ``--json`` prints the status as JSON.
Registered in the main CLI as ``app.command("relay")(relay_command)``; ``python -m qzpay.relay``
runs it on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import traceback
from typing import Annotated, Any, Literal

import typer

from qzpay.billing import DEFAULT_STORAGE, Billing
from qzpay.errors import QZPayError

DATABASE_URL_ENV = "QZPAY_DATABASE_URL"
NATS_URL_ENV = "QZPAY_NATS_URL"
EXIT_ERROR, EXIT_USAGE = 1, 2


def relay_command(
    to: Annotated[
        str,
        typer.Option("--to", envvar=NATS_URL_ENV, show_envvar=True, help="NATS server URL."),
    ] = "nats://127.0.0.1:4222",
    stream: Annotated[str, typer.Option(help="JetStream stream (created if missing).")] = "QZPAY",
    subject_prefix: Annotated[
        str, typer.Option(help="Events go to <prefix>.<event type>.")
    ] = "qzpay",
    name: Annotated[
        str | None,
        typer.Option(help="Relay name keying the stored position and lease (default: stream)."),
    ] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Print position, lag and lease holder, then exit.")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Exit once the log is relayed to its end.")
    ] = False,
    retention: Annotated[
        Literal["limits", "interest", "workqueue"],
        typer.Option(help="Retention of a stream the relay creates."),
    ] = "limits",
    max_age: Annotated[
        float | None,
        typer.Option(min=0, help="Seconds a created stream keeps messages (default: forever)."),
    ] = None,
    lease_seconds: Annotated[
        float, typer.Option(min=0.5, help="Lease length; another relay takes over after it.")
    ] = 5.0,
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url",
            envvar=DATABASE_URL_ENV,
            show_envvar=True,
            help="Storage URL: sqlite:///path.db, postgresql://...",
        ),
    ] = DEFAULT_STORAGE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")] = False,
) -> None:
    """Deliver the durable event log to NATS JetStream, in order, at least once.

    Several relays may run: one publishes (it holds a lease in the database), the others wait
    and take over within the lease time when it stops. Stop with Ctrl-C or SIGTERM.
    """
    try:
        billing = Billing(database_url)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(str(exc), param_hint="'--database-url'") from None
    if not status:
        logging.basicConfig(
            level=logging.DEBUG if debug else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    try:
        if status:
            shown = asyncio.run(_status(billing, to, stream, subject_prefix, name))
            _show_status(shown, as_json=as_json)
        else:
            asyncio.run(
                _run(
                    billing,
                    to,
                    stream=stream,
                    subject_prefix=subject_prefix,
                    name=name,
                    once=once,
                    retention=retention,
                    max_age=max_age,
                    lease_seconds=lease_seconds,
                )
            )
    except (QZPayError, ImportError) as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        message = exc.message if isinstance(exc, QZPayError) else str(exc)
        if as_json:
            code = exc.code if isinstance(exc, QZPayError) else "missing_dependency"
            typer.echo(json.dumps({"error": {"message": message, "code": code}}), err=True)
        else:
            typer.echo(f"error: {message}", err=True)
        raise typer.Exit(EXIT_ERROR) from None


async def _status(
    billing: Billing, nats_url: str, stream: str, prefix: str, name: str | None
) -> dict[str, Any]:
    from qzpay.relay.status import relay_status

    try:
        status = await relay_status(
            billing, stream=stream, name=name, nats_url=nats_url, subject_prefix=prefix
        )
    finally:
        await billing.close()
    return status.as_dict()


def _show_status(status: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(status, ensure_ascii=False))
        return
    lag = f"{status['lag_events']}{'+' if status['lag_capped'] else ''} events"
    lines = [
        f"relay {status['name']}",
        f"  position:  {status['position'] or '(nothing relayed yet)'}",
        f"  published: {status['published']}",
        f"  lag:       {lag}, {status['lag_seconds']:.1f}s",
        f"  holder:    {status['holder'] or '(none: no relay is running)'}",
    ]
    stream = status.get("stream")
    if stream is not None:
        if "error" in stream:
            lines.append(f"  stream:    {stream['name']}: {stream['error']}")
        elif not stream["exists"]:
            lines.append(f"  stream:    {stream['name']} does not exist yet")
        else:
            lines.append(
                f"  stream:    {stream['name']}: {stream['messages']} messages, "
                f"last sequence {stream['last_seq']}"
            )
            for difference in stream["differences"]:
                lines.append(f"             differs: {difference}")
    typer.echo("\n".join(lines))


async def _run(billing: Billing, nats_url: str, **options: Any) -> None:
    from qzpay.relay.runner import run_relay

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await run_relay(billing, nats_url, stop=stop, **options)
    finally:
        await billing.close()


def main() -> None:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command()(relay_command)
    app()
