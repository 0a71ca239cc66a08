"""Rendering: the package's Jinja2 templates, security headers, provider dashboard links."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from qzpay.admin.session import Session

DASHBOARDS: Final = {"stripe": "https://dashboard.stripe.com/customers/{id}"}
"""Provider dashboard pages by provider name; MercadoPago has no customer page to link to, so
its ids (and those of any other provider) are shown as plain text."""
CATALOG_DASHBOARDS: Final = {
    "products": {"stripe": "https://dashboard.stripe.com/products/{id}"},
    "prices": {"stripe": "https://dashboard.stripe.com/prices/{id}"},
}
"""Dashboard pages of plans (a Stripe Product) and prices by kind, then provider name; ids at
other providers are shown as plain text."""

_ENV = Environment(
    loader=PackageLoader("qzpay.admin", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def dashboard_url(provider: str, provider_id: str, kind: str = "customers") -> str | None:
    """The provider's dashboard page of a customer (or of a ``"products"`` or ``"prices"``
    object), or None when the provider has no such page."""
    templates = DASHBOARDS if kind == "customers" else CATALOG_DASHBOARDS.get(kind, {})
    template = templates.get(provider)
    return None if template is None else template.format(id=quote(provider_id, safe=""))


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _as_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


_ENV.filters["when"] = _when
_ENV.filters["as_json"] = _as_json
_ENV.globals["dashboard_url"] = dashboard_url


def security_headers(response: Response, nonce: str | None = None) -> Response:
    style = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src {style}; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


_PATHS_ATTRIBUTE = "_qzpay_admin_paths"
"""Path templates of admin routes, kept on the app's router (so they live and die with it),
by mount, route name and parameter names.

``request.url_for`` walks every route of the app for each link (about 0.3 ms with the API's
routes: half of a customer page's time, measured by cProfile in-process); a page has a dozen
links. The path of a route with given parameter names is fixed for a router and mount, so it
is looked up once with placeholder values, which later calls replace."""


def _placeholder(name: str) -> str:
    return f"__qzpay_param_{name}__"


def admin_path(
    request: Request, name: str, query: dict[str, Any] | None = None, **params: str
) -> str:
    """The path of an admin route (wherever the router is mounted), with a query string."""
    if any(not value or "/" in value or "__qzpay_param_" in value for value in params.values()):
        path = request.url_for(f"qzpay_admin_{name}", **params).path  # its own refusals
    else:
        scope = request.scope
        router = scope["router"]
        known: dict[tuple[str, ...], str] | None = getattr(router, _PATHS_ATTRIBUTE, None)
        if known is None:
            known = {}
            setattr(router, _PATHS_ATTRIBUTE, known)
        key = (scope.get("root_path", ""), name, *sorted(params))
        template = known.get(key)
        if template is None:
            placeholders = {param: _placeholder(param) for param in params}
            template = request.url_for(f"qzpay_admin_{name}", **placeholders).path
            known[key] = template
        path = template
        for param, value in params.items():
            path = path.replace(_placeholder(param), value)
    kept = {k: v for k, v in (query or {}).items() if v not in (None, "", False)}
    return f"{path}?{urlencode(kept)}" if kept else path


def page(
    request: Request,
    template: str,
    *,
    session: Session | None,
    status: int = 200,
    title: str,
    **context: Any,
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(12) if session is None else None

    def url(name: str, query: dict[str, Any] | None = None, **params: str) -> str:
        return admin_path(request, name, query, **params)

    body = _ENV.get_template(template).render(
        url=url, session=session, title=title, nonce=nonce, request=request, **context
    )
    response = HTMLResponse(body, status_code=status)
    security_headers(response, nonce)
    return response
