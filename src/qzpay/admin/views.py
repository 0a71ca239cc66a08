"""What the console's pages share, so each domain's pages say only what is theirs: a route
per record that answers 404 when the record is missing, the statuses of a refused change, and
newest-first list pages read one row past their size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeAlias, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay.admin.context import Admin, Fields, Handler
from qzpay.admin.render import page
from qzpay.admin.session import Session
from qzpay.errors import ConflictError, ProviderSyncError, ValidationError

T = TypeVar("T")
RecordHandler: TypeAlias = Callable[[Request, Session, Fields, T], Awaitable[Response]]
"""A view of one record: ``handler(request, session, fields, record)``."""
RecordRoute: TypeAlias = Callable[[str, str, str], Callable[[RecordHandler[T]], RecordHandler[T]]]


class Keyed(Protocol):
    """A row a pager can page by: the next page starts before its id."""

    @property
    def id(self) -> str: ...


K = TypeVar("K", bound=Keyed)


def messages(exc: ValidationError) -> str:
    """A validation error's problems as one line for the page."""
    return "; ".join(e["message"] for e in exc.errors)


def not_found(request: Request, session: Session, what: str, ident: str) -> Response:
    return page(
        request,
        "refused.html",
        session=session,
        status=404,
        title="Not found",
        message=f"There is no {what} {ident!r}.",
    )


@dataclass(frozen=True)
class Refusal:
    """Why a change was not made, for its confirmation page: the page's status and message."""

    status: int
    error: str | None


ASKED: Final = Refusal(200, None)
"""A confirmation page as first shown: nothing refused yet."""


async def refusal(change: Awaitable[object]) -> Refusal | None:
    """Make ``change``: None once made, else why not. 409 on a conflict (before 502: a change
    a provider refuses is one), 502 when a provider fails, 422 on invalid input; NotFoundError
    passes through (the record is gone: a 404 page, not a confirmation page)."""
    try:
        await change
    except ConflictError as exc:
        return Refusal(409, exc.message)
    except ProviderSyncError as exc:
        return Refusal(502, exc.message)
    except ValidationError as exc:
        return Refusal(422, messages(exc))
    return None


def record_route(
    router: APIRouter, admin: Admin, what: str, get: Callable[[str], Awaitable[T | None]]
) -> RecordRoute[T]:
    """``route(method, path, name)``, a decorator serving a handler at ``/{what}s/{{what}_id}``
    + ``path``: signed in, with the record ``get`` finds, or 404 when there is none (or the id
    cannot be one)."""
    param = f"{what}_id"

    def route(method: str, path: str, name: str) -> Callable[[RecordHandler[T]], RecordHandler[T]]:
        def register(handler: RecordHandler[T]) -> RecordHandler[T]:
            async def view(request: Request, session: Session, fields: Fields) -> Response:
                ident = request.path_params[param]
                try:
                    found = await get(ident)
                except ValidationError:
                    found = None
                if found is None:
                    return not_found(request, session, what, ident)
                return await handler(request, session, fields, found)

            guarded: Handler = view
            router.add_api_route(
                f"/{what}s/{{{param}}}{path}", admin.signed_in(guarded), methods=[method], name=name
            )
            return handler

        return register

    return route


def choice(query: Fields, name: str, allowed: Container[object]) -> str:
    """The query's ``name`` when it is one of ``allowed``, else ``""`` (no filter)."""
    value = query.get(name, "")
    return value if value in allowed else ""


@dataclass(frozen=True)
class Pager(Generic[K]):
    """One page of a newest-first list: its ``rows``, the id they are older than, and the
    queries of the next older page and of the newest page (None: no link)."""

    rows: list[K]
    before: str = ""
    next_query: dict[str, Any] | None = None
    first_query: dict[str, Any] | None = None

    @classmethod
    def of(cls, batch: Sequence[K], size: int, kept: dict[str, Any], before: str) -> Pager[K]:
        """The page of ``batch``, read one row past ``size`` to tell whether older rows follow;
        ``kept`` is the rest of the query, which the links keep."""
        rows = list(batch[:size])
        older = {**kept, "before": rows[-1].id} if len(batch) > size and rows else None
        return cls(rows, before, older, kept if before else None)
