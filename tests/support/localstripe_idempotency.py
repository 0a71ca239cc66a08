"""Stripe's ``Idempotency-Key`` for chosen localstripe endpoints, as an aiohttp middleware.

localstripe accepts the header and ignores it. :func:`middleware` makes the requests whose
path matches a pattern behave as Stripe documents (https://docs.stripe.com/api/idempotent_requests):

* a ``POST`` or ``DELETE`` carrying a key seen before, with the same method, path and
  parameters (query and body, in any order), gets the first answer again, status and body,
  with ``Idempotent-Replayed: true``, and is not applied again;
* the same key with other parameters is refused: 400 ``idempotency_error`` "Keys for
  idempotent requests can only be used with the same parameters they were first used with.";
  on another endpoint: "... can only be used for the same endpoint they were first used for";
* while the first request with a key is still running, the same key gets 409;
* answers kept: 2xx, and 402 (a payment refused after the endpoint started executing).
  Stripe keeps no result for a request refused by validation; this keeps none for any other
  4xx either.

Keys never expire (Stripe forgets them after 24 hours) and are scoped to the paths given.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from localstripe.errors import UserError  # type: ignore[import-untyped]


def middleware(path: re.Pattern[str]) -> Middleware:
    """Honour ``Idempotency-Key`` on ``POST``/``DELETE`` requests whose path fully matches
    ``path``; every other request passes through untouched."""
    replies: dict[str, tuple[str, str, int, bytes]] = {}
    running: set[str] = set()

    @web.middleware
    async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if key is None or request.method not in ("POST", "DELETE"):
            return await handler(request)
        if not path.fullmatch(request.path):
            return await handler(request)
        endpoint = f"{request.method} {request.path}"
        params = _params(request.query_string, await request.read())
        retry = f" Try using a key other than '{key}' if you meant to execute a different request."
        if key in replies:
            first_endpoint, first_params, status, body = replies[key]
            if first_endpoint != endpoint:
                first_path = first_endpoint.split(" ", 1)[1]
                return _error(
                    400,
                    "Keys for idempotent requests can only be used for the same endpoint they "
                    f"were first used for ('{request.path}' vs '{first_path}').{retry}",
                )
            if first_params != params:
                return _error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with.{retry}",
                )
            return web.Response(
                status=status,
                body=body,
                headers={"Idempotent-Replayed": "true"},
                content_type="application/json",
            )
        if key in running:
            return _error(
                409,
                "There is currently another in-progress request using this Idempotent Key "
                "(that probably means you submitted twice, and the other request is still "
                f"going through): {key}. Please try again later.",
            )
        running.add(key)
        try:
            try:
                response = await handler(request)
            except UserError as exc:
                response = exc.to_response()
        finally:
            running.discard(key)
        kept = 200 <= response.status < 300 or response.status == 402
        if kept and isinstance(response, web.Response) and isinstance(response.body, bytes):
            replies[key] = (endpoint, params, response.status, response.body)
        return response

    return idempotency


def _params(query: str, body: bytes) -> str:
    """The request's parameters, whatever the order of its fields (form or JSON body)."""
    fields = parse_qsl(query, keep_blank_values=True)
    try:
        decoded = json.loads(body) if body.lstrip().startswith(b"{") else None
    except ValueError:
        decoded = None
    if decoded is not None:
        fields.append(("", json.dumps(decoded, sort_keys=True)))
    else:
        fields += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return json.dumps(sorted(fields))


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"type": "idempotency_error", "message": message}}
    return web.json_response(body, status=status)
