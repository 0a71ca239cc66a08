"""``RecordRoutes``: the routes every record type (customer, plan, price, subscription) has,
built once from a noun, so that their paths, route names, status codes and problem lists
cannot drift apart between the routers.

A generated handler is named ``{verb}_{noun}`` (its OpenAPI operationId, as a hand-written
one would be) and takes the id under its own name (``plan_id``): FastAPI reads the signature
set on it, so the schema is the one the written-out routes had.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from inspect import Parameter, Signature
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Request, Response
from fastapi.types import DecoratedCallable
from pydantic import BaseModel

from qzpay.api.bodies import PageBody, PartialUpdate
from qzpay.api.parameters import Limit, Offset, id_path, idempotency_header
from qzpay.api.routing import ProblemRoute, problem_router, problems
from qzpay.errors import NotFoundError
from qzpay.limits import DEFAULT_LIST_LIMIT
from qzpay.page import Page


class Identified(Protocol):
    """A record: ``Location`` needs its id."""

    @property
    def id(self) -> str: ...


T = TypeVar("T")
R = TypeVar("R", bound=Identified)
B = TypeVar("B", bound=BaseModel)
Responses = dict[int | str, dict[str, Any]]
Endpoint = Callable[..., Awaitable[Any]]


def found(record: T | None, missing: str) -> T:
    """``record``, or a 404 problem saying ``missing`` when there is none."""
    if record is None:
        raise NotFoundError(missing)
    return record


def _keyword(name: str, annotation: object, default: object = Parameter.empty) -> Parameter:
    return Parameter(name, Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _as_endpoint(
    handler: Endpoint, name: str, parameters: Sequence[Parameter], returns: object
) -> Endpoint:
    """``handler`` (a fresh closure) named ``name`` and called with ``parameters``: FastAPI
    reads both, for the operationId and the request's fields."""
    handler.__name__ = handler.__qualname__ = name
    handler.__signature__ = Signature(list(parameters), return_annotation=returns)  # type: ignore[attr-defined]
    return handler


class RecordRoutes(Generic[R]):
    """The routes of the ``noun`` records, each answering a ``model``: on ``router`` (tagged
    ``{noun}s``), under ``/{noun}s`` and ``/{noun}s/{{noun}_id}`` (the id described by
    ``id_description``)."""

    def __init__(
        self, route: type[ProblemRoute], noun: str, model: type[R], id_description: str
    ) -> None:
        self.router = problem_router(route, tags=[f"{noun}s"])
        self.noun = noun
        self.model = model
        self.id_description = id_description
        self.id_name = f"{noun}_id"
        self.path = f"/{noun}s"
        self.record_path = f"{self.path}/{{{self.id_name}}}"
        self.get_route = f"qzpay_get_{noun}"
        """The name of the ``GET`` route of one record, which ``Location`` points to."""

    def create(
        self,
        body_type: type[B],
        create: Callable[[B, str | None], Awaitable[R]],
        *,
        summary: str,
        responses: Responses,
    ) -> None:
        """``POST /{noun}s``: ``create(body, idempotency_key)``, answered 201 with the new
        record's ``Location``."""
        get_route, id_name = self.get_route, self.id_name

        async def handler(
            *, body: B, request: Request, response: Response, idempotency_key: str | None
        ) -> R:
            record = await create(body, idempotency_key)
            location = request.url_for(get_route, **{id_name: record.id})
            response.headers["Location"] = str(location)
            return record

        key = Annotated[str | None, idempotency_header(self.noun)]
        parameters = [
            _keyword("body", body_type),
            _keyword("request", Request),
            _keyword("response", Response),
            _keyword("idempotency_key", key, None),
        ]
        self.router.post(
            self.path,
            status_code=201,
            response_model=self.model,
            summary=summary,
            responses=responses,
        )(_as_endpoint(handler, f"create_{self.noun}", parameters, self.model))

    def listing(
        self,
        page: type[PageBody[R]],
        list_records: Callable[..., Awaitable[Page[R]]],
        *,
        summary: str,
        filters: Mapping[str, object],
    ) -> None:
        """``GET /{noun}s``: ``filters`` (name to annotated type, each optional), ``limit``
        and ``offset``, passed by name to ``list_records``; answered as one ``page``."""

        async def handler(**given: Any) -> PageBody[R]:
            return page.from_page(await list_records(**given))

        parameters = [
            *(_keyword(name, annotation, None) for name, annotation in filters.items()),
            _keyword("limit", Limit, DEFAULT_LIST_LIMIT),
            _keyword("offset", Offset, 0),
        ]
        self.router.get(self.path, response_model=page, summary=summary, responses=problems(422))(
            _as_endpoint(handler, f"list_{self.noun}s", parameters, page)
        )

    def lookup(
        self,
        segment: str,
        key: str,
        annotation: object,
        read: Callable[[str], Awaitable[R | None]],
        *,
        summary: str,
        missing: str,
    ) -> None:
        """``GET /{noun}s/{segment}/{{key}}``: the record another unique key names, or a 404
        saying ``missing`` (formatted with the key)."""

        async def handler(**given: str) -> R:
            return found(await read(given[key]), missing.format(given[key]))

        name = f"get_{self.noun}_{segment.replace('-', '_')}"
        self.router.get(
            f"{self.path}/{segment}/{{{key}}}",
            response_model=self.model,
            summary=summary,
            responses=problems(404, 422),
        )(_as_endpoint(handler, name, [_keyword(key, annotation)], self.model))

    def get(self, read: Callable[[str], Awaitable[R | None]], *, summary: str) -> None:
        """``GET /{noun}s/{{noun}_id}``, the route ``Location`` points to: 404 when unknown."""
        noun = self.noun

        async def get(record_id: str) -> R:
            return found(await read(record_id), f"no {noun} {record_id!r}")

        self.router.get(
            self.record_path,
            name=self.get_route,
            response_model=self.model,
            summary=summary,
            responses=problems(404, 422),
        )(self._by_id("get", get))

    def update(
        self,
        body_type: type[PartialUpdate],
        update: Callable[..., Awaitable[R]],
        *,
        summary: str,
        responses: Responses,
    ) -> None:
        """``PATCH /{noun}s/{{noun}_id}``: ``update(id, **changes)`` with the fields sent."""

        async def patch(record_id: str, *, body: PartialUpdate) -> R:
            return await update(record_id, **body.changes())

        self.router.patch(
            self.record_path, response_model=self.model, summary=summary, responses=responses
        )(self._by_id("update", patch, _keyword("body", body_type)))

    def action(
        self, verb: str, act: Callable[[str], Awaitable[R]], *, summary: str, responses: Responses
    ) -> None:
        """``POST /{noun}s/{{noun}_id}/{verb}``: ``act(id)``, a change that takes no body."""
        self.action_route(verb, summary=summary, responses=responses)(self._by_id(verb, act))

    def action_route(
        self, verb: str, *, summary: str, responses: Responses
    ) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """The decorator of a hand-written ``POST /{noun}s/{{noun}_id}/{verb}`` (one with a
        body)."""
        return self.router.post(
            f"{self.record_path}/{verb}",
            response_model=self.model,
            summary=summary,
            responses=responses,
        )

    def _by_id(self, verb: str, handle: Callable[..., Awaitable[R]], *more: Parameter) -> Endpoint:
        """``handle(id, **more)`` as the handler ``{verb}_{noun}``, taking ``{noun}_id``."""
        id_name = self.id_name

        async def handler(**given: Any) -> R:
            return await handle(given.pop(id_name), **given)

        record_id = _keyword(id_name, Annotated[str, id_path(self.id_description)])
        return _as_endpoint(handler, f"{verb}_{self.noun}", [record_id, *more], self.model)
