"""The route class every qzpay router uses: problem+json for every failure, a capped body.

Shared by the customers/events router and the webhook router, so both behave the same in any
host app, whatever exception handlers that app has.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message, Receive

from qzpay.api.problems import problem_for_exception, problem_responses
from qzpay.limits import DEFAULT_MAX_BODY_BYTES


class PayloadTooLarge(HTTPException):
    """The request body is over the route's limit (a 413 ``payload_too_large`` problem).

    An HTTPException, so that FastAPI passes it on unchanged when it is raised while the body
    is being read (any other error there becomes FastAPI's generic 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


def _declared_over(content_length: str, limit: int) -> bool:
    digits = content_length.strip()
    if not (digits.isascii() and digits.isdigit()):
        return False  # absent (chunked) or malformed: the server's parser deals with it
    digits = digits.lstrip("0") or "0"
    return len(digits) > len(str(limit)) or int(digits) > limit


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive``, raising PayloadTooLarge as soon as the body goes past ``limit`` bytes: a
    body without Content-Length (chunked) is read no further than that, never held whole."""
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(limit)
        return message

    return capped


def _check_max_body_bytes(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_body_bytes must be a positive number of bytes, not {value!r}")
    return value


class ProblemRoute(APIRoute):
    """An APIRoute whose every failure is answered with problem+json (see problems.py), and
    whose request body is capped at ``max_body_bytes`` (413 past it)."""

    max_body_bytes: ClassVar[int] = DEFAULT_MAX_BODY_BYTES

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        limit = self.max_body_bytes

        async def handle(request: Request) -> Response:
            try:
                if _declared_over(request.headers.get("content-length", ""), limit):
                    raise PayloadTooLarge(limit)  # refused before a byte of the body is read
                return await handler(Request(request.scope, _capped(request.receive, limit)))
            except Exception as exc:
                return problem_for_exception(exc, request)

        return handle


def route_class(max_body_bytes: int) -> type[ProblemRoute]:
    """ProblemRoute with this body limit (a class attribute: FastAPI makes the routes)."""
    limit = _check_max_body_bytes(max_body_bytes)

    class CappedProblemRoute(ProblemRoute):
        max_body_bytes = limit

    return CappedProblemRoute


def operation_id(route: APIRoute) -> str:
    """OpenAPI operationIds are the handlers' names: ``create_customer``, ``list_events``..."""
    return route.endpoint.__name__


def problem_router(route: type[ProblemRoute], **options: Any) -> APIRouter:
    """An APIRouter whose routes are ``route``s, named by their handlers (``options`` as for
    APIRouter: ``tags``, ``dependencies``...)."""
    return APIRouter(route_class=route, generate_unique_id_function=operation_id, **options)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return problem_responses(*statuses, 500, 503)
