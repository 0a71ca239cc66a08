"""RFC 9457 problem details: the one place where errors become HTTP responses.

Errors are mapped by their type (walking the class's MRO), never by message text. The body's
``code`` is the library's stable error code. Client errors (4xx) carry the error's message as
``detail``; server-side failures (5xx) carry a fixed, generic ``detail`` so that nothing about
the internals (SQL, file paths, provider responses, tracebacks) ever leaves the process.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from qzpay.errors import (
    MAX_FIELD_ERRORS,
    ConflictError,
    FieldError,
    NotFoundError,
    ProviderSyncError,
    QZPayError,
    StorageError,
    ValidationError,
    WebhookSignatureError,
    encodable,
)

logger = logging.getLogger("qzpay.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Problem type URIs are identifiers, not links (RFC 9457 §3.1.1 allows non-resolvable ones and
# suggests tag URIs for them). The part after the last colon is the error's stable ``code``.
PROBLEM_TYPE_PREFIX = "tag:qzpay,2025:problem:"


class Unauthorized(Exception):
    """No valid API key on a request that needs one (raised by qzpay.api.auth)."""

    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- the bodies, as models (they also give the OpenAPI document its error schemas) ----------


class ProblemFieldError(BaseModel):
    """One problem with one input field."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Dotted path of the field, e.g. `address.country`.")
    code: str = Field(description="Stable, machine-readable code, e.g. `invalid_email`.")
    message: str = Field(description="Human-readable explanation.")


class Problem(BaseModel):
    """An RFC 9457 problem details object, with qzpay's stable error ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description=f"Problem type URI: `{PROBLEM_TYPE_PREFIX}<code>`.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="Explanation specific to this occurrence.")
    instance: str = Field(description="The request path this problem occurred on.")
    code: str = Field(description="qzpay's stable error code (branch on this, not on text).")
    errors: list[ProblemFieldError] | None = Field(
        default=None,
        description=(
            f"The field errors found, at most {MAX_FIELD_ERRORS} of them (422 responses only)."
        ),
    )
    omitted: int | None = Field(
        default=None,
        ge=0,
        description="How many more field errors were found than `errors` lists (422 only).",
    )
    provider: str | None = Field(
        default=None, description="The payment provider that failed (502 responses only)."
    )
    operation: str | None = Field(
        default=None, description="The provider operation that failed (502 responses only)."
    )
    ambiguous: bool | None = Field(
        default=None,
        description="502 only: true when the provider may have applied the request anyway.",
    )


# -- mapping ---------------------------------------------------------------------------------

# By error type; the most specific class in the raised error's MRO wins.
_STATUS_BY_TYPE: dict[type[BaseException], int] = {
    ValidationError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    WebhookSignatureError: 400,
    ProviderSyncError: 502,
    StorageError: 503,
    QZPayError: 500,
    Unauthorized: 401,
}

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Invalid request",
    500: "Internal server error",
    502: "Payment provider error",
    503: "Service unavailable",
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# Pydantic error types folded into the library's field error codes where one fits.
_PYDANTIC_CODES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "json_invalid": "invalid_json",
    "model_attributes_type": "invalid_type",
    "dict_type": "invalid_type",
    "string_type": "invalid_type",
    "string_unicode": "invalid_unicode",  # a lone surrogate in a key pydantic had to read
    "int_type": "invalid_type",
    "int_parsing": "invalid_type",
    "int_from_float": "invalid_type",
    "bool_type": "invalid_type",
    "bool_parsing": "invalid_type",
    "list_type": "invalid_type",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "string_too_short": "too_short",
    "string_too_long": "too_long",
}

_INTERNAL_DETAIL = "An unexpected error occurred; it has been logged."
_STORAGE_DETAIL = "The database could not complete the request; try again later."


def _status_for(exc: BaseException) -> int | None:
    """The status for an error's type: the most specific class in its MRO that is mapped."""
    for cls in type(exc).__mro__:
        status = _STATUS_BY_TYPE.get(cls)
        if status is not None:
            return status
    return None


def problem_body(
    status: int,
    code: str,
    detail: str,
    instance: str,
    **extensions: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": _TITLES.get(status) or http.HTTPStatus(status).phrase,
        "status": status,
        "detail": encodable(detail),  # a message may quote input: keep it encodable
        "instance": encodable(instance),
        "code": code,
    }
    body.update({key: value for key, value in extensions.items() if value is not None})
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    instance: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, code, detail, instance, **extensions),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def field_errors_from_pydantic(errors: Sequence[Any]) -> Iterator[FieldError]:
    """FastAPI's request validation errors in the library's {field, code, message} shape.

    ``loc`` is (``body`` | ``query`` | ``path`` | ``header``, *path); the location is dropped
    so a body field reads ``address.country`` exactly as the library reports it. Lazily: a
    ValidationError converts only the ones it keeps.
    """
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]
        kind = str(error.get("type", "invalid"))
        if kind == "json_invalid":
            loc = []  # its loc is a character position, not a field
        yield {
            "field": ".".join(loc) or "body",
            "code": _PYDANTIC_CODES.get(kind, kind),
            "message": str(error.get("msg", "invalid value")),
        }


def problem_for_exception(exc: Exception, request: Request) -> JSONResponse:
    """The problem+json response for any exception a route raised."""
    instance = request.url.path
    if isinstance(exc, RequestValidationError):
        return _validation(ValidationError(field_errors_from_pydantic(exc.errors())), instance)
    if isinstance(exc, StarletteHTTPException):
        return _http(exc, instance)
    status = _status_for(exc)
    if status is None:
        logger.error("unhandled error on %s %s", request.method, instance, exc_info=exc)
        return problem_response(500, "internal_error", _INTERNAL_DETAIL, instance)
    if isinstance(exc, ValidationError):
        return _validation(exc, instance)
    if isinstance(exc, Unauthorized):
        return problem_response(
            401,
            exc.code,
            exc.message,
            instance,
            headers={"WWW-Authenticate": 'Bearer realm="qzpay"'},
        )
    assert isinstance(exc, QZPayError)
    if isinstance(exc, ProviderSyncError):
        logger.warning(
            "provider %s failed during %s on %s %s (code %s)",
            exc.provider,
            exc.operation,
            request.method,
            instance,
            exc.code,
        )
        detail = f"The payment provider {exc.provider!r} failed during {exc.operation!r}."
        if exc.ambiguous:
            detail += " It may or may not have applied the change."
        return problem_response(
            status,
            exc.code,
            detail,
            instance,
            provider=exc.provider,
            operation=exc.operation,
            ambiguous=exc.ambiguous,
        )
    if status >= 500:
        if isinstance(exc, StorageError):
            logger.warning("storage error on %s %s: %s", request.method, instance, exc)
            detail = _STORAGE_DETAIL
        else:
            logger.error("error on %s %s", request.method, instance, exc_info=exc)
            detail = _INTERNAL_DETAIL
        headers = {"Retry-After": "1"} if status == 503 else None
        return problem_response(status, exc.code, detail, instance, headers=headers)
    return problem_response(status, exc.code, exc.message, instance)


def _validation(exc: ValidationError, instance: str) -> JSONResponse:
    """422 with the error's field errors (at most MAX_FIELD_ERRORS) and how many were left out;
    ValidationError has already made their text encodable."""
    count = len(exc.errors) + exc.omitted
    detail = f"The request has {count} invalid field{'s' if count != 1 else ''}."
    if exc.omitted:
        detail += f" The first {len(exc.errors)} are listed."
    return problem_response(
        422,
        exc.code,
        detail,
        instance,
        errors=[dict(e) for e in exc.errors],
        omitted=exc.omitted,
    )


def _http(exc: StarletteHTTPException, instance: str) -> JSONResponse:
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http_error" if status < 500 else "internal_error")
    if status >= 500:
        detail = _INTERNAL_DETAIL
    elif isinstance(exc.detail, str) and exc.detail:
        detail = exc.detail
    else:
        detail = http.HTTPStatus(status).phrase
    return problem_response(status, code, detail, instance, headers=exc.headers)


# -- OpenAPI ---------------------------------------------------------------------------------


def _inline_refs(schema: Any, defs: Mapping[str, Any]) -> Any:
    """A JSON schema with its local ``#/$defs/...`` references replaced by their targets."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline_refs(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(item, defs) for item in schema]
    return schema


def _problem_schema() -> dict[str, Any]:
    raw = Problem.model_json_schema(mode="serialization")
    inlined: dict[str, Any] = _inline_refs(raw, raw.get("$defs", {}))
    return inlined


# Inline (not a components reference), so the router documents its errors correctly in any
# FastAPI app it is mounted in: FastAPI can only put a ``model`` response under the route's
# own media type (application/json), and a router cannot add components of its own.
PROBLEM_SCHEMA = _problem_schema()

_DESCRIPTIONS = {
    400: "The request body could not be read (problem details).",
    401: "Missing or invalid API key (problem details).",
    404: "Not found (problem details).",
    409: "Conflicts with the stored state (problem details).",
    413: "The request body is too large (problem details).",
    422: "Invalid input; `errors` lists every field error (problem details).",
    500: "Unexpected server error (problem details, never internals).",
    502: "A payment provider call failed (problem details).",
    503: "The database is unavailable or busy; retry (problem details).",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries documenting these error statuses as problem+json."""
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
        }
        for status in statuses
    }
