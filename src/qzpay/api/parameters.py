"""Query, path and header parameters the routes share, so that a bound or a description is
written once and every route documents it the same way in the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Path, Query

from qzpay.limits import MAX_ID_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH, MAX_LIST_LIMIT, MAX_OFFSET

Limit = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many matches.")]
Active = Annotated[
    bool | None,
    Query(description="`true`: only live records; `false`: only archived ones; absent: all."),
]


def id_path(description: str) -> Any:
    """An id in the path: the library checks it, the schema shows its bounds."""
    return Path(min_length=1, max_length=MAX_ID_LENGTH, description=description)


def id_query(description: str) -> Any:
    """An optional id in the query (a filter, a cursor)."""
    return Query(min_length=1, max_length=MAX_ID_LENGTH, description=description)


def idempotency_header(noun: str) -> Any:
    """The optional ``Idempotency-Key`` header of the create of a ``noun``."""
    return Header(
        alias="Idempotency-Key",
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description=(
            f"Makes the create safe to retry: a retry with the same key returns the first "
            f"call's {noun}; the same key with different fields is a 409."
        ),
    )
