"""What every admin view shares: billing, sessions, and the guards in front of each route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from qzpay.admin.forms import FormTooLarge, read_form
from qzpay.admin.render import admin_path, page, security_headers
from qzpay.admin.session import COOKIE_NAME, Session, Sessions, SignInLimiter
from qzpay.api.auth import APIKeyAuth
from qzpay.billing import Billing

Fields: TypeAlias = dict[str, str]
Handler: TypeAlias = Callable[[Request, Session, Fields], Awaitable[Response]]
"""A signed-in view: ``handler(request, session, fields)``."""
Route: TypeAlias = Callable[[Request], Awaitable[Response]]


@dataclass
class Admin:
    billing: Billing
    auth: APIKeyAuth | None
    sessions: Sessions
    limiter: SignInLimiter

    # -- sessions ----------------------------------------------------------------------
    def cookie_path(self, request: Request) -> str:
        return admin_path(request, "home").rstrip("/") or "/"

    def set_cookie(self, request: Request, response: Response, cookie: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            cookie,
            max_age=self.sessions.ttl,
            path=self.cookie_path(request),
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            COOKIE_NAME,
            path=self.cookie_path(request),
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def session(self, request: Request) -> Session | None:
        return self.sessions.read(request.cookies.get(COOKIE_NAME))

    def page_session(self, request: Request) -> Session | Response:
        """The session of a page request, or a redirect to the sign-in page."""
        found = self.session(request)
        if found is not None:
            return found
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = admin_path(request, "sign_in", {"next": target})
        response = RedirectResponse(location, status_code=303)
        if COOKIE_NAME in request.cookies:  # expired, forged or signed out: drop it
            self.clear_cookie(request, response)
        return security_headers(response)

    def refuse(
        self, request: Request, status: int, message: str, session: Session | None
    ) -> Response:
        return page(
            request,
            "refused.html",
            session=session,
            status=status,
            title="Not allowed" if status != 413 else "Too large",
            message=message,
        )

    def same_origin(self, request: Request) -> bool:
        """A form post must come from this site (the Origin header, when the browser sends
        one): this also covers the sign-in form, which no session protects yet."""
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        parts = urlsplit(origin)
        return parts.netloc == request.headers.get("host", "") and parts.scheme in ("http", "https")

    async def form(
        self, request: Request, *, signed_in: bool = True
    ) -> tuple[Session | None, dict[str, str]] | Response:
        """A form post's session (when ``signed_in``) and fields, or the refusal: 401 without a
        session, 403 on a foreign origin or a missing or wrong CSRF token, 413 when huge."""
        session = self.session(request)
        if signed_in and session is None:
            return self.refuse(request, 401, "Your session has ended. Sign in again.", None)
        if not self.same_origin(request):
            return self.refuse(request, 403, "This form was sent from another site.", session)
        try:
            fields = await read_form(request)
        except FormTooLarge:
            return self.refuse(request, 413, "This form is too large.", session)
        if (
            session is not None
            and signed_in
            and not self.sessions.csrf_ok(session, fields.get("csrf_token"))
        ):
            return self.refuse(
                request, 403, "This form has expired or was not sent by this console.", session
            )
        return session, fields

    async def visit(self, request: Request) -> tuple[Session, Fields] | Response:
        """A signed-in request's session and fields (a form post's fields, a page's query), or
        the way out: a page without a session goes to sign in, a refused form post gets 401,
        403 or 413 (see ``form``)."""
        if request.method != "POST":
            found = self.page_session(request)
            return found if isinstance(found, Response) else (found, dict(request.query_params))
        got = await self.form(request)
        if isinstance(got, Response):
            return got
        session, fields = got
        assert session is not None  # form() refuses a signed-in post without one
        return session, fields

    def signed_in(self, handler: Handler) -> Route:
        """The route of a console page or form: ``handler`` runs only for a signed-in visit
        (path parameters are in ``request.path_params``)."""

        async def route(request: Request) -> Response:
            got = await self.visit(request)
            if isinstance(got, Response):
                return got
            return await handler(request, *got)

        return route

    def redirect(
        self, request: Request, name: str, query: dict[str, Any] | None = None, **params: str
    ) -> Response:
        return security_headers(
            RedirectResponse(admin_path(request, name, query, **params), status_code=303)
        )

    def provider_names(self) -> list[str]:
        providers = self.billing._providers
        return [] if providers is None else providers.names
