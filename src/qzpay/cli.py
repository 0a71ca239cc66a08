"""The ``qzpay`` command line (an edge: it calls the public API only)."""

from __future__ import annotations

import typer

app = typer.Typer(name="qzpay", help="qzpay: provider-agnostic billing.", no_args_is_help=True)


@app.callback()
def _root() -> None:
    """qzpay: provider-agnostic billing."""


@app.command()
def demo() -> None:
    """Walk through the Customers API on a throwaway SQLite database."""
    from qzpay.demo import main as run

    run()


def main() -> None:
    app()
