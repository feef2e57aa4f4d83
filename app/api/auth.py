"""``/auth/login``, ``/auth/callback`` and ``/auth/logout``: Discord login for people.

Answers are for browsers (redirects, a short HTML page when something went wrong) and, when
the Accept header asks for JSON, for scripts.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.access.cookies import LOGIN_COOKIE, LOGIN_MAX_AGE, SESSION_COOKIE
from app.access.credentials import from_scope, trusted_origin
from app.access.login import LoginFailed, LoginFlow
from app.storage.database import DatabaseError

CALLBACK_PATH = "/auth/callback"


class AuthRoutes:
    def __init__(
        self,
        flow: LoginFlow | None,
        *,
        public_url: str | None,
        session_ttl: int,
        allowed_origins: frozenset[str],
    ) -> None:
        self._flow = flow
        self._public_url = public_url.rstrip("/") if public_url else None
        self._session_ttl = session_ttl
        self._allowed_origins = allowed_origins

    def _callback_url(self, request: Request) -> str:
        base = self._public_url or str(request.base_url).rstrip("/")
        return base + CALLBACK_PATH

    def _secure(self, request: Request) -> bool:
        return (self._public_url or str(request.base_url)).startswith("https:")

    async def login(self, request: Request) -> Response:
        if self._flow is None:
            return _problem(
                request,
                "Discord login is not configured here: set POLLY_DISCORD_CLIENT_SECRET (and "
                "POLLY_DISCORD_CLIENT_ID if it is not the bot's application).",
                503,
            )
        started = self._flow.begin(self._callback_url(request), request.query_params.get("next"))
        response = RedirectResponse(started.authorize_url, 302)
        response.set_cookie(
            LOGIN_COOKIE,
            started.login_cookie,
            max_age=LOGIN_MAX_AGE,
            path="/auth",
            httponly=True,
            samesite="lax",
            secure=self._secure(request),
        )
        return response

    async def callback(self, request: Request) -> Response:
        if self._flow is None:
            return _problem(request, "Discord login is not configured here.", 503)
        params = request.query_params
        if "error" in params:
            # The user said no on Discord's page (access_denied), or Discord refused the request.
            reason = params.get("error_description") or params["error"]
            response = _problem(request, f"Discord did not log you in: {reason}.", 403)
        else:
            try:
                done = await self._flow.complete(
                    code=params.get("code"),
                    state=params.get("state"),
                    login_cookie=request.cookies.get(LOGIN_COOKIE),
                    redirect_uri=self._callback_url(request),
                )
            except LoginFailed as error:
                response = _problem(request, error.message, error.status)
            else:
                response = RedirectResponse(done.next_path, 303)
                response.set_cookie(
                    SESSION_COOKIE,
                    done.session_cookie,
                    max_age=self._session_ttl,
                    path="/",
                    httponly=True,
                    samesite="lax",
                    secure=self._secure(request),
                )
        # One use: a replayed callback finds no login to complete.
        response.delete_cookie(LOGIN_COOKIE, path="/auth")
        return response

    async def logout(self, request: Request) -> Response:
        if request.method != "POST":
            return _problem(request, "Log out with POST /auth/logout.", 405, {"Allow": "POST"})
        credentials = from_scope(request.scope)
        if credentials.session_cookie is not None and not trusted_origin(credentials, self._allowed_origins):
            return _problem(request, "Logging out must come from this site's own pages.", 403)
        if self._flow is not None:
            try:
                await self._flow.end(credentials.session_cookie)
            except DatabaseError:
                return _problem(
                    request, "Logging out cannot be recorded right now; try again in a moment.", 503
                )
        wants_page = "text/html" in request.headers.get("accept", "")
        response: Response = RedirectResponse("/", 303) if wants_page else Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _problem(request: Request, message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        page = (
            "<!doctype html><meta charset=utf-8><title>Polly login</title>"
            f'<p>{html.escape(message)}</p><p><a href="/auth/login">Log in with Discord</a> · '
            '<a href="/">Back</a></p>'
        )
        return HTMLResponse(page, status, headers=headers)
    return JSONResponse({"error": message}, status, headers=headers)
