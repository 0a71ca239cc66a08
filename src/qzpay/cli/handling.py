"""Exit codes, and errors turned into a message on stderr and one of them.

0 ok; 1 operational error (not found, conflict, storage or provider failure); 2 usage error
(bad options, input the library rejects as invalid, provider environment variables set wrong
or missing); 3 only from ``customers reconcile --check``: differences remain.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from qzpay.errors import ProviderSyncError, QZPayError, ValidationError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DIFFERENCES = 0, 1, 2, 3


def fail(message: str, code: int, *, as_json: bool, details: Mapping[str, Any]) -> NoReturn:
    """Print ``message`` (with ``--json``, a JSON error object) on stderr and exit ``code``."""
    if as_json:
        typer.echo(json.dumps({"error": {"message": message, **details}}), err=True)
    else:
        typer.echo(f"error: {message}", err=True)
        for error in details.get("errors", ()):
            typer.echo(f"  {error['field']}: {error['message']} ({error['code']})", err=True)
    raise typer.Exit(code)


@contextmanager
def handled(*, debug: bool, as_json: bool) -> Iterator[None]:
    """Turn errors into a message on stderr and an exit code (and a traceback with --debug).

    With ``--json`` (and no ``--debug``) the library's own log lines are kept off stderr, so
    that stderr holds nothing but the JSON error object."""
    library_logs = logging.getLogger("qzpay")
    silence = logging.NullHandler() if as_json and not debug else None
    if silence is not None:
        library_logs.addHandler(silence)
    try:
        yield
    except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
        raise
    except QZPayError as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        details: dict[str, Any] = {"code": exc.code}
        if isinstance(exc, ValidationError):
            details["errors"] = list(exc.errors)
        if isinstance(exc, ProviderSyncError):
            details.update(provider=exc.provider, operation=exc.operation, ambiguous=exc.ambiguous)
        if isinstance(exc, ValidationError):
            message = exc.message if as_json else "invalid input"
            fail(message, EXIT_USAGE, as_json=as_json, details=details)
        fail(exc.message, EXIT_ERROR, as_json=as_json, details=details)
    except Exception as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        message = f"{type(exc).__name__}: {exc}"
        if not debug:
            message += " (run with --debug for the traceback)"
        fail(message, EXIT_ERROR, as_json=as_json, details={"code": "unexpected_error"})
    finally:
        if silence is not None:
            library_logs.removeHandler(silence)
