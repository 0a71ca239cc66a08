"""Versioned schema scripts, one folder per SQL dialect, applied in file-name order."""

from __future__ import annotations

import sqlite3
from importlib import resources

from qzpay.errors import StorageError


def load(dialect: str) -> list[tuple[int, list[str]]]:
    """``[(version, statements)]`` for the dialect, oldest first."""
    folder = resources.files(__package__).joinpath(dialect)
    scripts = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return [(int(name.split("_", 1)[0]), _split(text)) for name, text in scripts]


def pending(scripts: list[tuple[int, list[str]]], current: int) -> list[tuple[int, list[str]]]:
    """The scripts newer than version ``current``, oldest first."""
    return [(version, statements) for version, statements in scripts if version > current]


def outdated(current: int, latest: int) -> StorageError:
    return StorageError(
        f"database schema version {current} is older than this qzpay needs ({latest}); "
        "run `qzpay db upgrade` or open with migrate=True",
        code="schema_outdated",
    )


def too_new(current: int, latest: int) -> StorageError:
    return StorageError(
        f"database schema version {current} is newer than this qzpay knows ({latest}); "
        "upgrade qzpay",
        code="schema_too_new",
    )


def _split(script: str) -> list[str]:
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        text = "\n".join(current)
        if sqlite3.complete_statement(text):
            statements.append(text.strip())
            current = []
    if "\n".join(current).strip():
        raise ValueError("migration script ends inside a statement")
    return statements
