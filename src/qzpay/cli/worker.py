"""``qzpay worker``: the background work of a deployment, one pass every ``--interval``.

A pass finishes the provider work left pending (``sync_pending`` of customers, plans, prices,
in that order, then subscriptions) and then applies the due transitions of the free
subscriptions kept here (``subscriptions.run_due``). Each pass logs one line with its counts
(logger ``qzpay.worker``, on stderr); with ``--json`` each pass is also a JSON line on stdout.
A step that raises is logged and the pass goes on; the next pass retries it.

Several workers may run at once, on one host or many: the services apply each pending task
(held under a lease) and each due transition (re-read for change) once, and the worker keeps
no state of its own. SIGINT or SIGTERM lets the current pass finish, then exits 0; the wait
between passes ends at once (a second signal stops at once, mid-pass).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Annotated, Any

import typer

from qzpay.billing import SyncBilling
from qzpay.cli.handling import EXIT_ERROR
from qzpay.cli.options import Common, command
from qzpay.cli.rendering import print_json
from qzpay.engine.pending import SyncReport
from qzpay.errors import QZPayError
from qzpay.limits import MAX_WORKER_INTERVAL
from qzpay.subscriptions.due import DueReport

logger = logging.getLogger("qzpay.worker")

DEFAULT_INTERVAL = 60.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SYNCED = ("customers", "plans", "prices", "subscriptions")  # plans before prices
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class PassReport:
    """What one pass did: per step its report, or (in ``errors``) why it failed."""

    number: int
    synced: dict[str, SyncReport | None] = field(default_factory=dict)
    due: DueReport | None = None
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pass": self.number,
            "sync": {
                name: None if report is None else dataclasses.asdict(report)
                for name, report in self.synced.items()
            },
            "due": None if self.due is None else dataclasses.asdict(self.due),
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }

    def line(self) -> str:
        """The pass in one log line."""
        counts = {
            name: "error" if r is None else f"{r.completed}/{r.failed}/{r.remaining}"
            for name, r in self.synced.items()
        }
        synced = " ".join(f"{name}={value}" for name, value in counts.items())
        due = "error"
        if self.due is not None:
            due = f"renewed={self.due.renewed} canceled={self.due.canceled}"
        text = (
            f"pass {self.number} done in {self.seconds:.2f}s: sync {synced} "
            f"(completed/failed/remaining); due {due}"
        )
        if self.errors:
            text += f"; {len(self.errors)} step(s) failed: {', '.join(self.errors)}"
        return text


def _attempt(name: str, step: Callable[[], Any], report: PassReport, *, debug: bool) -> Any:
    """Run one step; a failure is logged and recorded, and None returned."""
    try:
        return step()
    except Exception as exc:
        message = exc.message if isinstance(exc, QZPayError) else f"{type(exc).__name__}: {exc}"
        report.errors[name] = message
        # The library's own errors are explained by their message; anything else is a bug or
        # an outage, worth its traceback.
        trace = debug or not isinstance(exc, QZPayError)
        logger.error("pass %d: %s failed: %s", report.number, name, message, exc_info=trace)
        return None


def run_pass(billing: SyncBilling, number: int, *, debug: bool = False) -> PassReport:
    """One pass: every step, in order, each whatever the others did."""
    report = PassReport(number)
    started = time.monotonic()
    sync: dict[str, Callable[[], SyncReport]] = {
        "customers": billing.customers.sync_pending,
        "plans": billing.plans.sync_pending,
        "prices": billing.prices.sync_pending,
        "subscriptions": billing.subscriptions.sync_pending,
    }
    for name in SYNCED:
        report.synced[name] = _attempt(name, sync[name], report, debug=debug)
    report.due = _attempt("due", billing.subscriptions.run_due, report, debug=debug)
    report.seconds = time.monotonic() - started
    return report


class Stopper:
    """SIGINT and SIGTERM, while entered: the first asks the worker to stop (``stopping``) and
    ends a ``wait`` at once; a second stops at once (KeyboardInterrupt).

    The wait selects on a socket that the signal's byte is written to (``set_wakeup_fd``), so
    a signal that comes just before the wait starts ends it too. Outside the main thread
    (no signal handlers there) it only sleeps."""

    def __init__(self) -> None:
        self.stopping: str | None = None
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1

    def __enter__(self) -> Stopper:
        if threading.current_thread() is not threading.main_thread():
            return self
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._sockets is None:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_fd)
        for end in self._sockets:
            end.close()
        self._sockets = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping is not None:
            raise KeyboardInterrupt
        self.stopping = signal.Signals(signum).name

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or until a stop is asked."""
        if self.stopping is not None:
            return
        if self._sockets is None:
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        while self.stopping is None and (left := deadline - time.monotonic()) > 0:
            select.select([self._sockets[0]], [], [], left)
            with contextlib.suppress(BlockingIOError):
                self._sockets[0].recv(64)  # drain: a byte of another signal wakes us once


@contextlib.contextmanager
def worker_logging(*, debug: bool) -> Iterator[None]:
    """Log lines on stderr for the command's life: the library's (``qzpay``) from INFO (DEBUG
    with ``--debug``). A handler is added to the root logger only if there is none (an
    application that set up logging keeps its own)."""
    library = logging.getLogger("qzpay")
    previous_level = library.level
    library.setLevel(logging.DEBUG if debug else logging.INFO)
    root = logging.getLogger()
    added: logging.Handler | None = None
    if not root.handlers:
        added = logging.StreamHandler(sys.stderr)
        added.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(added)
    try:
        yield
    finally:
        if added is not None:
            root.removeHandler(added)
        library.setLevel(previous_level)


@command
def worker_command(
    interval: Annotated[
        float,
        typer.Option(
            min=1,
            max=MAX_WORKER_INTERVAL,
            help="Seconds from the start of one pass to the start of the next.",
        ),
    ] = DEFAULT_INTERVAL,
    once: Annotated[
        bool, typer.Option("--once", help="Run one pass and exit (1 if a step failed).")
    ] = False,
    *,
    common: Common,
) -> None:
    """Run the background work: every --interval, finish pending provider work (customers,
    plans, prices, subscriptions) and renew or end the due free subscriptions.

    Logs one line per pass on stderr (--json: also a JSON line per pass on stdout). A failed
    step is logged and retried next pass. Stop with Ctrl-C or SIGTERM: the current pass
    finishes, then exit 0. Safe to run on several hosts at once.
    """
    with worker_logging(debug=common.debug), Stopper() as stopper:
        with common.billing(providers=True) as billing:
            failed = _run(billing, stopper, interval=interval, once=once, common=common)
        if stopper.stopping is not None:
            logger.info("stopped (%s)", stopper.stopping)
    if once and failed:
        raise typer.Exit(EXIT_ERROR)


def _run(
    billing: SyncBilling, stopper: Stopper, *, interval: float, once: bool, common: Common
) -> bool:
    """Passes until stopped (or one, with ``once``); whether the last pass had a failure."""
    mode = "one pass" if once else f"a pass every {interval:g}s"
    logger.info("worker started: %s", mode)
    number = 0
    failed = False
    while stopper.stopping is None:
        number += 1
        started = time.monotonic()
        report = run_pass(billing, number, debug=common.debug)
        failed = bool(report.errors)
        (logger.warning if failed else logger.info)("%s", report.line())
        if common.as_json:
            print_json(report.as_dict())
        if once:
            break
        stopper.wait(interval - (time.monotonic() - started))
    return failed
