"""Discord's OAuth2 authorization-code flow, for "Log in with Discord" against the sandbox.

``GET /oauth2/authorize`` stands in for Discord's consent screen: a ``user`` parameter (or the
approver set through the control API) approves at once, otherwise a small page lets a person
pick a fixture user. ``POST /api/v10/oauth2/token`` and ``.../token/revoke`` speak RFC 6749 and
RFC 7009 with Discord's error bodies. The codes and tokens live in ``SandboxState.oauth``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from html import escape
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from aiohttp import BasicAuth, web

from app.discord.snowflake import parse_snowflake
from app.sandbox.fixture import Application, User
from app.sandbox.oauth_store import (
    OAuthError,
    missing_parameter,
    parse_challenge,
    parse_scopes,
    redirect_uri_allowed,
)
from app.sandbox.rest import STATE, json_response
from app.sandbox.state import SandboxState

# GET /oauth2/authorize at the root, as discord.com serves it to browsers.
authorize_routes = web.RouteTableDef()
# The same page and the token endpoints under /api/v10 (added to the REST app by the server).
api_routes = web.RouteTableDef()

_AUTHORIZE_PARAMETERS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "user",
)
# RFC 6749 5.1: token answers must never be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(error: OAuthError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error.body(), error.status, {**_NO_STORE, **(headers or {})})


def _redirect(uri: str, parameters: Mapping[str, str | None]) -> web.Response:
    """302 to ``uri`` with ``parameters`` added to whatever query it already has."""
    parts = urlsplit(uri)
    extra = urlencode({name: value for name, value in parameters.items() if value is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    location = urlunsplit(parts._replace(query=query))
    return web.Response(status=302, headers={**_NO_STORE, "Location": location})


def _refuse(description: str) -> web.Response:
    """A request that cannot be sent back to the client: answered here, never redirected
    (RFC 6749 4.1.2.1), so that an unchecked redirect_uri cannot carry anything away."""
    return json_response({"error": "invalid_request", "error_description": description}, 400, _NO_STORE)


def _find_user(state: SandboxState, wanted: str) -> User | None:
    """A fixture user by id or (case-insensitive) username."""
    user_id = parse_snowflake(wanted)
    for user in state.users.values():
        if user.id == user_id or user.username.lower() == wanted.lower():
            return user
    return None


def _consent_page(request: web.Request, application: Application, users: list[User]) -> web.Response:
    base = f"{request.path}?{request.rel_url.raw_query_string}"
    items = "\n".join(
        f'<li><a href="{escape(f"{base}&user={user.id}")}">'
        f"{escape(user.global_name or user.username)} (@{escape(user.username)})</a></li>"
        for user in users
    )
    scopes = escape(", ".join(parse_scopes(request.query["scope"])))
    page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Log in to {escape(application.name)}</title></head>
<body>
<h1>Log in to {escape(application.name)} as:</h1>
<ul>
{items}
</ul>
<p>{escape(application.name)} asks for: {scopes}.</p>
<p><a href="{escape(base + "&deny=1")}">Cancel</a></p>
</body>
</html>
"""
    # The page approves with one click, so no other site may frame it (clickjacking).
    headers = {**_NO_STORE, "X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
    return web.Response(text=page, content_type="text/html", charset="utf-8", headers=headers)


async def authorize(request: web.Request) -> web.Response:
    state = request.app[STATE]
    application = state.application
    query = request.query
    repeated = [name for name in _AUTHORIZE_PARAMETERS if len(query.getall(name, [])) > 1]
    if {"client_id", "redirect_uri"} & set(repeated):
        return _refuse(f"Send {', '.join(repeated)} only once.")
    client_id = query.get("client_id")
    if client_id is None or parse_snowflake(client_id) != application.id:
        return _refuse(
            f"Unknown client_id {client_id!r}: the sandbox's application is {application.id} "
            f"({application.name})."
        )
    redirect_uri = query.get("redirect_uri")
    if not redirect_uri:
        return _refuse("Add the redirect_uri to send the user back to.")
    if not redirect_uri_allowed(application, redirect_uri):
        allowed = (
            f"one of {', '.join(application.redirect_uris)}"
            if application.redirect_uris
            else "an http(s) URI on a loopback host (127.0.0.1, localhost, ::1)"
        )
        return _refuse(
            f"redirect_uri {redirect_uri!r} is not registered for this application; use {allowed}."
        )

    client_state = query.get("state")
    try:
        if repeated:
            raise OAuthError("invalid_request", f"Send {', '.join(repeated)} only once.")
        response_type = query.get("response_type")
        if response_type is None:
            raise OAuthError("invalid_request", "Add response_type=code.")
        if response_type != "code":
            raise OAuthError(
                "unsupported_response_type", f"response_type {response_type!r} is not supported; use code."
            )
        scopes = parse_scopes(query.get("scope", ""))
        challenge = parse_challenge(query.get("code_challenge"), query.get("code_challenge_method"))
        if "1" in query.getall("deny", []):
            raise OAuthError("access_denied", "The resource owner or authorization server denied the request")
    except OAuthError as error:
        return _redirect(redirect_uri, {**error.body(), "state": client_state})

    user: User | None
    if "user" in query:
        user = _find_user(state, query["user"])
        if user is None:
            return _refuse(f"No fixture user has the id or username {query['user']!r}.")
    elif state.oauth.approver is not None:
        user = state.users[state.oauth.approver]
    else:
        users = [user for user in state.users.values() if not user.bot]
        return _consent_page(request, application, users)
    if user.bot:
        return _refuse(f"{user.username} is the bot user, which cannot log in; choose a person.")

    code = state.oauth.issue_code(
        client_id=application.id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        user_id=user.id,
        challenge=challenge,
    )
    return _redirect(redirect_uri, {"code": code, "state": client_state})


authorize_routes.get("/oauth2/authorize")(authorize)
api_routes.get("/oauth2/authorize")(authorize)


# -- the token endpoint ------------------------------------------------------------------------


def _invalid_client() -> OAuthError:
    # Answered as Discord answers it: {"error": "invalid_client"}, no description (see _client_error).
    return OAuthError("invalid_client", "Check client_id and client_secret.", 401)


def _authenticate_client(request: web.Request, form: Mapping[str, str], application: Application) -> int:
    """The client's id, checked against its secret sent by HTTP Basic or in the form (RFC 6749 2.3.1)."""
    header = request.headers.get("Authorization", "")
    if header.partition(" ")[0].lower() == "basic":
        if "client_secret" in form:
            raise OAuthError("invalid_request", "Authenticate with HTTP Basic or client_secret, not both.")
        try:
            basic = BasicAuth.decode(header, encoding="utf-8")
        except ValueError:
            raise _invalid_client() from None
        client_id, secret = basic.login, basic.password
        # RFC 6749 2.3.1 form-encodes both before Basic; many clients skip that, so try both.
        candidates = {secret, unquote_plus(secret)}
        client_id = unquote_plus(client_id)
        if form.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id in the form differs from the one in HTTP Basic.")
    else:
        client_id, candidates = form.get("client_id", ""), {form.get("client_secret", "")}
    expected = application.client_secret.encode()
    # Every candidate is compared, so the answer's timing does not tell which one came close.
    secret_ok = [hmac.compare_digest(candidate.encode(), expected) for candidate in candidates]
    if parse_snowflake(client_id) != application.id or not any(secret_ok):
        raise _invalid_client()
    return application.id


async def _read_form(request: web.Request) -> dict[str, str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError(
            "invalid_request",
            f"Send the request body as application/x-www-form-urlencoded, not {request.content_type!r}.",
        )
    form = await request.post()
    repeated = sorted({name for name in form if len(form.getall(name)) > 1})
    if repeated:
        raise OAuthError("invalid_request", f"Send {', '.join(repeated)} once.")
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _client_error(error: OAuthError, request: web.Request) -> web.Response:
    if error.error != "invalid_client":
        return oauth_error_response(error)
    # RFC 6749 5.2: a failed HTTP Basic authentication says how to authenticate.
    basic = request.headers.get("Authorization", "").lower().startswith("basic ")
    headers = {"WWW-Authenticate": 'Basic realm="discord"'} if basic else {}
    return json_response({"error": "invalid_client"}, 401, {**_NO_STORE, **headers})


@api_routes.post("/oauth2/token")
async def token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        form = await _read_form(request)
        client_id = _authenticate_client(request, form, state.application)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = form.get("code")
            if not code:
                raise missing_parameter("code")
            issued = state.oauth.exchange_code(
                code=code,
                client_id=client_id,
                redirect_uri=form.get("redirect_uri"),
                verifier=form.get("code_verifier"),
            )
        elif grant_type == "refresh_token":
            refresh_token = form.get("refresh_token")
            if not refresh_token:
                raise missing_parameter("refresh_token")
            issued = state.oauth.refresh(
                refresh_token=refresh_token, client_id=client_id, scope=form.get("scope")
            )
        elif grant_type is None:
            raise missing_parameter("grant_type")
        else:
            raise OAuthError(
                "unsupported_grant_type",
                f"Unsupported grant_type {grant_type!r}; use authorization_code or refresh_token.",
            )
    except OAuthError as error:
        return _client_error(error, request)
    return json_response(issued.body(), 200, _NO_STORE)


@api_routes.post("/oauth2/token/revoke")
async def revoke(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        form = await _read_form(request)
        client_id = _authenticate_client(request, form, state.application)
        token_value = form.get("token")
        if not token_value:
            raise missing_parameter("token")
    except OAuthError as error:
        return _client_error(error, request)
    state.oauth.revoke(token_value, client_id, form.get("token_type_hint"))
    return json_response({}, 200, _NO_STORE)
