"""``create_admin_router``: the admin console as a FastAPI router (mount it at ``/admin``)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay.admin.catalog import add_catalog_routes
from qzpay.admin.context import Admin, Fields
from qzpay.admin.customers import add_customer_routes
from qzpay.admin.operations import add_operation_routes
from qzpay.admin.render import admin_path, page, security_headers
from qzpay.admin.session import (
    DEFAULT_SESSION_SECONDS,
    DEFAULT_SIGN_IN_ATTEMPTS,
    DEFAULT_SIGN_IN_WINDOW,
    Session,
    Sessions,
    SignInLimiter,
    secret_from,
)
from qzpay.admin.subscriptions import add_subscription_routes
from qzpay.api.auth import APIKeyAuth
from qzpay.billing import Billing

_CSS = files("qzpay.admin").joinpath("static/admin.css").read_bytes()


def _safe_next(request: Request, target: str | None) -> str:
    """Where to go after signing in: a path inside the console, never another site."""
    home = admin_path(request, "home")
    root = home.rstrip("/")
    if (
        target
        and target.startswith(root + "/")
        and not target.startswith("//")
        and "\\" not in target
        and all(c.isprintable() for c in target)
    ):
        return target
    return home


def create_admin_router(
    billing: Billing,
    *,
    auth: APIKeyAuth | None,
    session_secret: str | bytes | None = None,
    session_seconds: int = DEFAULT_SESSION_SECONDS,
    sign_in_attempts: int = DEFAULT_SIGN_IN_ATTEMPTS,
    sign_in_window: float = DEFAULT_SIGN_IN_WINDOW,
    event_window: int | None = None,
) -> APIRouter:
    """The admin console for ``billing``: ``app.include_router(router, prefix="/admin")``.

    Sign-in takes one of ``auth``'s API keys (``None``: no key, for a loopback-only server)
    and sets a signed, ``HttpOnly``, ``SameSite=Strict`` session cookie scoped to the mount
    path, valid ``session_seconds`` (8 hours). The cookie is signed with HMAC-SHA256 under
    ``session_secret``, or a secret derived from the API keys (changing the keys signs
    everyone out; several server processes with the same keys share sessions). At most
    ``sign_in_attempts`` wrong keys per client address per ``sign_in_window`` seconds, then 429.
    Every form that changes something carries the session's CSRF token. A customer's
    timeline is its newest events (one indexed read); the Events page pages back through the
    whole event log, newest first, by type if asked (``Storage.list_events_backward``: one
    indexed read a page).

    ``event_window`` is deprecated and ignored: the Events page no longer keeps the latest
    events in memory. It is still accepted so that existing calls keep working.
    """
    del event_window  # deprecated, ignored (see above)
    sessions = Sessions(secret_from(auth, session_secret), ttl=session_seconds)
    admin = Admin(
        billing=billing,
        auth=auth,
        sessions=sessions,
        limiter=SignInLimiter(sign_in_attempts, sign_in_window),
    )
    router = APIRouter(include_in_schema=False)

    @router.get("/", name="qzpay_admin_home")
    @admin.signed_in
    async def home(request: Request, _: Session, __: Fields) -> Response:
        return admin.redirect(request, "customers")

    @router.get("/static/admin.css", name="qzpay_admin_css")
    async def css(request: Request) -> Response:
        if admin.session(request) is None:
            return security_headers(Response("sign in first\n", 401, media_type="text/plain"))
        response = Response(_CSS, media_type="text/css")
        return security_headers(response)

    def sign_in_page(request: Request, status: int = 200, error: str | None = None) -> Response:
        return page(
            request,
            "sign_in.html",
            session=None,
            status=status,
            title="Sign in",
            error=error,
            next=_safe_next(request, request.query_params.get("next")),
            needs_key=auth is not None,
        )

    @router.get("/sign-in", name="qzpay_admin_sign_in")
    async def sign_in_form(request: Request) -> Response:
        if admin.session(request) is not None:
            return security_headers(
                Response(status_code=303, headers={"Location": _safe_next(request, None)})
            )
        return sign_in_page(request)

    @router.post("/sign-in", name="qzpay_admin_sign_in_post")
    async def sign_in(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = admin.limiter.retry_after(client)
        if wait is not None:
            response = sign_in_page(
                request, 429, f"Too many wrong keys. Try again in {wait} seconds."
            )
            response.headers["Retry-After"] = str(wait)
            return response
        got = await admin.form(request, signed_in=False)
        if isinstance(got, Response):
            return got
        _, fields = got
        if auth is not None and not auth.accepts(fields.get("api_key") or None):
            admin.limiter.failed(client)
            return sign_in_page(request, 401, "That API key is not valid.")
        cookie, _ = sessions.issue()
        target = _safe_next(request, fields.get("next"))
        response = security_headers(Response(status_code=303, headers={"Location": target}))
        admin.set_cookie(request, response, cookie)
        return response

    @router.post("/sign-out", name="qzpay_admin_sign_out")
    @admin.signed_in
    async def sign_out(request: Request, session: Session, _: Fields) -> Response:
        sessions.revoke(session)
        response = admin.redirect(request, "sign_in", {"signed_out": "1"})
        admin.clear_cookie(request, response)
        return response

    add_customer_routes(router, admin)
    add_catalog_routes(router, admin)
    add_subscription_routes(router, admin)
    add_operation_routes(router, admin)
    return router
