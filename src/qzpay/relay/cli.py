"""``python -m qzpay.relay``: the ``qzpay relay`` command on its own.

The command lives with the other commands, in ``qzpay.cli.relay``, where it shares their
options and error reporting; the main CLI registers it as ``app.command("relay")``.
"""

from __future__ import annotations

from qzpay.cli.handling import EXIT_ERROR, EXIT_USAGE
from qzpay.cli.options import DATABASE_URL_ENV
from qzpay.cli.relay import NATS_URL_ENV, main, relay_command

__all__ = [
    "DATABASE_URL_ENV",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "NATS_URL_ENV",
    "main",
    "relay_command",
]
