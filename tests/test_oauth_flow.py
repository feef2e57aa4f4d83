"""Log in with Discord, end to end: a cookie-keeping HTTP client through /auth/login, the
sandbox's /oauth2/authorize and /auth/callback; then what the session cookie can and cannot do,
how it ends, and what forged, replayed or refused logins get."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from http.cookies import Morsel, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import httpx
import pytest
from sqlalchemy import update

from app.access.cookies import LOGIN_COOKIE, SESSION_COOKIE, CookieSigner, LoginState
from app.sandbox.builtin import CLIENT_SECRET
from app.sandbox.fixture import Fixture
from app.storage.login_sessions import LoginSessionRecord, LoginSessionStore
from app.storage.models import LoginSession
from tests.conftest import TEST_SECRET_KEY, RunningApi, SandboxHttp, guild_id, wait_until
from tests.test_access_matrix import (
    VIEWER,
    Answer,
    approve,
    browser,
    log_in,
    over_websocket,
    start_login,
    user_caller,
)

pytestmark = pytest.mark.timeout(60)

ApiFactory = Callable[..., Awaitable[RunningApi]]
GUILD_ROLES = "query($g: ID!) { guildRoles(guildId: $g) { id name } }"
SIGNER = CookieSigner(TEST_SECRET_KEY)


def set_cookies(response: httpx.Response) -> dict[str, Morsel[str]]:
    """The response's Set-Cookie headers, by cookie name."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return dict(jar)


def deletes(morsel: Morsel[str] | None) -> bool:
    return morsel is not None and morsel["max-age"] == "0" and not morsel.value.strip('"')


def user_id(fixture: Fixture, name: str) -> int:
    return next(user.id for user in fixture.users if user.username == name)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


async def viewer(client: httpx.AsyncClient) -> Answer:
    response = await client.post("/graphql", json={"query": VIEWER})
    return Answer(response.status_code, response.json(), response.text, dict(response.headers))


async def session_of(api: RunningApi, client: httpx.AsyncClient) -> LoginSessionRecord | None:
    """The database's session behind the client's cookie."""
    session_id = SIGNER.session_id(client.cookies[SESSION_COOKIE], max_age=api.settings.session_ttl)
    assert session_id is not None
    return await LoginSessionStore(api.services.database).get(session_id)


def token_calls(api: RunningApi) -> int:
    return api.calls_to("POST /oauth2/token")


async def discord_accepts(http: SandboxHttp, access_token: str) -> bool:
    response, _ = await http.call(
        "GET", "/users/@me", headers={"Authorization": f"Bearer {access_token}"}, auth=False
    )
    return response.status == 200


# -- a good login ----------------------------------------------------------------------------------


async def test_login_sets_a_session_cookie_and_the_viewer_shows_the_user_and_guilds(
    api: RunningApi, fixture: Fixture, http: SandboxHttp
) -> None:
    async with browser(api) as client:
        authorize = await start_login(client, api, "/polls")
        callback = await approve(client, authorize, "alice")
        response = await client.get(callback)
        assert response.status_code == 303 and response.headers["location"] == "/polls"

        cookies = set_cookies(response)
        session = cookies[SESSION_COOKIE]
        assert session["httponly"] is True
        assert session["samesite"].lower() == "lax"
        assert session["path"] == "/"
        assert int(session["max-age"]) == api.settings.session_ttl
        assert deletes(cookies.get(LOGIN_COOKIE)) and cookies[LOGIN_COOKIE]["path"] == "/auth"

        # The cookie is a signed random id: no Discord token, not even encoded.
        record = await session_of(api, client)
        assert record is not None and record.access_token and record.refresh_token
        payload = session.value.split(".")[0]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        for token in (record.access_token, record.refresh_token):
            assert token not in session.value and token not in decoded
        assert await discord_accepts(http, record.access_token)  # a real token, kept server-side

        answer = await viewer(client)
        assert answer.status == 200, answer.text
        me = answer.body["data"]["viewer"]
        alice = user_id(fixture, "alice")
        assert (me["kind"], me["id"], me["name"], me["scopes"]) == ("USER", str(alice), "Alice", [])
        playground, quiet = guild_id(fixture, "Polly Playground"), guild_id(fixture, "Quiet Corner")
        expected = [
            {
                "id": str(guild),
                "name": name,
                "owner": owner,
                "permissions": str(api.sandbox.state.guilds[guild].permissions_of(alice)),
                "canReadRoles": True,
                "canManage": manage,
            }
            for guild, name, owner, manage in (
                (playground, "Polly Playground", True, True),
                (quiet, "Quiet Corner", False, False),
            )
        ]
        assert me["guilds"] == expected
        assert record.access_token not in answer.text


async def test_login_sends_a_state_and_a_pkce_challenge_that_discord_checks(
    api: RunningApi, fixture: Fixture
) -> None:
    async with browser(api) as client, browser(api) as other:
        response = await client.get("/auth/login", params={"next": "/"})
        assert response.status_code == 302
        login = set_cookies(response)[LOGIN_COOKIE]
        assert login["httponly"] is True and login["samesite"].lower() == "lax"
        assert login["path"] == "/auth" and int(login["max-age"]) == 600

        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["response_type"] == ["code"]
        assert query["client_id"] == [str(fixture.application.id)]
        assert query["redirect_uri"] == [f"{api.url}/auth/callback"]
        assert query["code_challenge_method"] == ["S256"]
        [state], [challenge] = query["state"], query["code_challenge"]
        assert len(state) >= 22  # at least 128 random bits
        kept = SIGNER.login_state(login.value)
        assert kept is not None and kept.state == state
        digest = hashlib.sha256(kept.verifier.encode()).digest()
        assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

        # Each login has its own state and verifier.
        again = parse_qs(urlsplit(await start_login(other, api)).query)
        assert again["state"] != [state] and again["code_challenge"] != [challenge]

        # The verifier really goes to Discord: the right state with another verifier is refused.
        callback = await approve(client, response.headers["location"], "alice")
        forged = SIGNER.login_cookie(LoginState(state, kept.verifier[::-1], "/"))
        client.cookies.set(LOGIN_COOKIE, forged, domain="127.0.0.1", path="/auth")
        refused = await client.get(callback)
        assert refused.status_code == 400, refused.text
        assert "refused" in refused.json()["error"]
        assert SESSION_COOKIE not in set_cookies(refused) and SESSION_COOKIE not in client.cookies


# -- logins that must fail -------------------------------------------------------------------------


async def test_a_callback_with_a_forged_state_opens_no_session(api: RunningApi) -> None:
    async with browser(api) as client:
        callback = await approve(client, await start_login(client, api), "alice")
        forged = with_query(callback, state="attacker-chosen-state-0123456789")
        response = await client.get(forged)
        assert response.status_code == 400
        assert "state" in response.json()["error"]
        assert SESSION_COOKIE not in set_cookies(response) and SESSION_COOKIE not in client.cookies
        assert (await viewer(client)).body == {"data": {"viewer": None}}


async def test_a_callback_in_a_browser_that_did_not_start_the_login_opens_no_session(
    api: RunningApi,
) -> None:
    async with browser(api) as victim, browser(api) as attacker:
        # The attacker starts a login and hands its callback URL (with the code) to someone else.
        callback = await approve(attacker, await start_login(attacker, api), "erin")
        response = await victim.get(callback, headers={"Accept": "text/html"})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")
        assert "/auth/login" in response.text
        assert SESSION_COOKIE not in set_cookies(response) and SESSION_COOKIE not in victim.cookies
        assert (await viewer(victim)).body == {"data": {"viewer": None}}


async def test_a_replayed_code_opens_no_session_and_ends_the_first(
    api_factory: ApiFactory, http: SandboxHttp
) -> None:
    api = await api_factory(viewer_cache_ttl=1)
    async with browser(api) as client, browser(api) as thief:
        callback = await approve(client, await start_login(client, api), "alice")
        login_cookie = client.cookies[LOGIN_COOKIE]
        first = await client.get(callback)
        assert first.status_code == 303 and SESSION_COOKIE in set_cookies(first)
        record = await session_of(api, client)
        assert record is not None

        # The same URL again in the same browser: the login was used up.
        again = await client.get(callback)
        assert again.status_code == 400 and SESSION_COOKIE not in set_cookies(again)

        # A thief with both the URL and a copy of the login cookie: Discord refuses the code.
        thief.cookies.set(LOGIN_COOKIE, login_cookie, domain="127.0.0.1", path="/auth")
        stolen = await thief.get(callback)
        assert stolen.status_code == 400, stolen.text
        assert "refused" in stolen.json()["error"]
        assert SESSION_COOKIE not in set_cookies(stolen) and SESSION_COOKIE not in thief.cookies

        # Discord revokes what a replayed code issued (RFC 6749 4.1.2), so the first login
        # ends too, once its cached guilds are asked of Discord again.
        assert not await discord_accepts(http, record.access_token)
        ended: list[Answer] = []

        async def logged_out() -> bool:
            ended[:] = [await viewer(client)]
            return ended[0].status != 200

        await wait_until(logged_out, within=5)
        assert ended[0].status == 401 and ended[0].codes == ["UNAUTHENTICATED"], ended[0].text


async def test_denying_consent_on_discord_opens_no_session(api: RunningApi) -> None:
    async with browser(api) as client:
        authorize = await start_login(client, api)
        response = await client.get(f"{authorize}&deny=1")
        assert response.status_code == 302
        callback = response.headers["location"]
        assert parse_qs(urlsplit(callback).query)["error"] == ["access_denied"]
        page = await client.get(callback, headers={"Accept": "text/html"})
        assert page.status_code == 403
        assert page.headers["content-type"].startswith("text/html")
        assert "Discord did not log you in" in page.text
        assert SESSION_COOKIE not in set_cookies(page) and SESSION_COOKIE not in client.cookies
        assert (await viewer(client)).body == {"data": {"viewer": None}}


async def test_next_only_redirects_within_the_site(api: RunningApi) -> None:
    cases = {
        "//evil.example": "/",
        "https://evil.example": "/",
        "/\\evil.example": "/",
        "evil.example/path": "/",
        "/polls?guild=1#top": "/polls?guild=1#top",
    }
    for next_path, landing in cases.items():
        async with browser(api) as client:
            callback = await approve(client, await start_login(client, api, next_path), "bob")
            response = await client.get(callback)
            assert response.status_code == 303, response.text
            assert response.headers["location"] == landing, next_path


# -- how a session ends ----------------------------------------------------------------------------


async def test_expired_discord_tokens_are_refreshed_without_the_user_noticing(
    api_factory: ApiFactory, http: SandboxHttp, fixture: Fixture
) -> None:
    api = await api_factory(viewer_cache_ttl=1)
    async with contextlib.aclosing(await log_in(api, "alice")) as client:
        before = await session_of(api, client)
        assert before is not None
        calls = token_calls(api)
        expired = await http.control(
            "POST", "/_sandbox/oauth2/expire", {"user_id": str(user_id(fixture, "alice"))}
        )
        assert expired["expired"] >= 1
        assert not await discord_accepts(http, before.access_token)

        async def refreshed() -> bool:
            answer = await viewer(client)  # every answer meanwhile is the user's, never a 401
            assert answer.status == 200 and answer.body["data"]["viewer"]["name"] == "Alice", answer.text
            return token_calls(api) > calls

        await wait_until(refreshed, within=5)
        after = await session_of(api, client)
        assert after is not None
        # Only a refresh_token grant rotates the refresh token.
        assert after.refresh_token != before.refresh_token
        assert after.access_token != before.access_token
        assert await discord_accepts(http, after.access_token)
        answer = await viewer(client)
        assert answer.status == 200 and len(answer.body["data"]["viewer"]["guilds"]) == 2


async def test_a_login_revoked_on_discord_ends_the_session(
    api_factory: ApiFactory, http: SandboxHttp, fixture: Fixture
) -> None:
    api = await api_factory(viewer_cache_ttl=1)
    async with contextlib.aclosing(await log_in(api, "carol")) as client:
        record = await session_of(api, client)
        assert record is not None and record.refresh_token
        assert (await viewer(client)).status == 200
        # The user removes the app on Discord: the client (us, by our credentials) is told.
        async with http.session.post(
            f"{api.sandbox.api_url}/oauth2/token/revoke",
            data={"token": record.refresh_token, "token_type_hint": "refresh_token"},
            headers={"Authorization": aiohttp.encode_basic_auth(str(fixture.application.id), CLIENT_SECRET)},
        ) as revoked:
            assert revoked.status == 200
        assert not await discord_accepts(http, record.access_token)

        ended: list[httpx.Response] = []

        async def refused() -> bool:
            response = await client.post("/graphql", json={"query": VIEWER})
            ended[:] = [response]
            if response.status_code == 200:
                assert response.json()["data"]["viewer"]["name"] == "Carol"  # cached, until it is not
            return response.status_code != 200

        await wait_until(refused, within=5)
        response = ended[0]
        assert response.status_code == 401, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "log in again" in response.json()["errors"][0]["message"]
        assert "Bearer" in response.headers["www-authenticate"]
        assert deletes(set_cookies(response).get(SESSION_COOKIE))
        assert SESSION_COOKIE not in client.cookies  # the browser dropped it
        assert await session_of_id(api, record) is None
        assert (await viewer(client)).body == {"data": {"viewer": None}}


async def session_of_id(api: RunningApi, record: LoginSessionRecord) -> Any:
    async with api.services.database.session() as session:
        return await session.get(LoginSession, record.id_hash)


async def test_a_session_past_its_end_on_the_server_gets_401(api_factory: ApiFactory) -> None:
    api = await api_factory(viewer_cache_ttl=1)
    async with contextlib.aclosing(await log_in(api, "dave")) as client:
        record = await session_of(api, client)
        assert record is not None and (await viewer(client)).status == 200
        async with api.services.database.session() as session, session.begin():
            await session.execute(
                update(LoginSession)
                .where(LoginSession.id_hash == record.id_hash)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )

        async def refused() -> bool:
            return (await viewer(client)).status == 401

        await wait_until(refused, within=5)


async def test_a_cookie_signed_with_another_secret_gets_401(api: RunningApi) -> None:
    async with contextlib.aclosing(await log_in(api, "bob")) as client:
        genuine = client.cookies[SESSION_COOKIE]
        session_id = SIGNER.session_id(genuine, max_age=api.settings.session_ttl)
        assert session_id is not None
        forged = CookieSigner("another-secret-key-" + "y" * 32).session_cookie(session_id)
        # Another session id under the genuine signature. (Not the signature's last character:
        # base64 ignores its low bits, so some edits there decode to the same signature.)
        tampered = ("A" if genuine[0] != "A" else "B") + genuine[1:]
        for cookie in (forged, tampered):
            response = await client.post(
                "/graphql", json={"query": VIEWER}, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
            )
            assert response.status_code == 401, response.text
            assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert "Bob" not in response.text
            assert deletes(set_cookies(response).get(SESSION_COOKIE))
        # The genuine cookie still works.
        client.cookies.set(SESSION_COOKIE, genuine, domain="127.0.0.1", path="/")
        assert (await viewer(client)).body["data"]["viewer"]["name"] == "Bob"


async def test_logout_ends_the_session_for_every_copy_of_the_cookie(
    api: RunningApi, http: SandboxHttp
) -> None:
    async with contextlib.aclosing(await log_in(api, "alice")) as client:
        cookie = client.cookies[SESSION_COOKIE]
        record = await session_of(api, client)
        assert record is not None

        wrong_method = await client.get("/auth/logout")
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
        for origin in ("https://evil.example", None):
            headers = {} if origin is None else {"Origin": origin}
            foreign = await client.post("/auth/logout", headers=headers)
            assert foreign.status_code == 403, origin
            assert SESSION_COOKIE not in set_cookies(foreign)
        assert (await viewer(client)).body["data"]["viewer"]["name"] == "Alice"  # still logged in

        response = await client.post("/auth/logout", headers={"Origin": api.url})
        assert response.status_code == 204
        assert deletes(set_cookies(response).get(SESSION_COOKIE))
        assert SESSION_COOKIE not in client.cookies
        # Ended on the server (not only forgotten by this browser), and Discord forgot the token.
        assert await session_of_id(api, record) is None
        assert not await discord_accepts(http, record.access_token)
        assert (await viewer(client)).body == {"data": {"viewer": None}}

        # A copy of the old cookie is worth nothing now.
        async with browser(api) as replay:
            answer = await replay.post(
                "/graphql", json={"query": VIEWER}, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
            )
            assert answer.status_code == 401, answer.text
            assert answer.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert "Alice" not in answer.text


async def test_a_mutation_signed_in_by_cookie_must_come_from_the_sites_own_pages(api: RunningApi) -> None:
    """Cross-site request forgery: a foreign page can make the browser POST with the cookie."""
    async with contextlib.aclosing(await log_in(api, "alice")) as client:
        mutation = {"query": "mutation { apiVersion }"}
        for origin in ("https://evil.example", None):
            headers = {} if origin is None else {"Origin": origin}
            refused = await client.post("/graphql", json=mutation, headers=headers)
            assert refused.status_code == 403, origin
            assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        # From the site itself the mutation reaches GraphQL (which has none to run yet).
        own = await client.post("/graphql", json=mutation, headers={"Origin": api.url})
        assert own.status_code != 403
        assert own.json()["errors"][0]["extensions"]["code"] != "FORBIDDEN"
        # Queries are not state-changing: no Origin needed.
        assert (await viewer(client)).body["data"]["viewer"]["name"] == "Alice"


# -- the session cookie on WebSockets --------------------------------------------------------------

SUBSCRIBE_FROM_START = {"since": "0-0"}  # the first message is the current list, at once
# The tests on WebSockets run against one API worker and against two sharing the port (marked
# workers_1_and_2): a login is the database's, whichever worker made it or reads it.


def resynced(answer: Answer) -> bool:
    if answer.status != 200 or answer.codes or not answer.body.get("data"):
        return False
    change = answer.body["data"]["guildRolesChanged"]
    return bool(change["kind"] == "GUILD_RESYNCED" and change["pingableRoles"])


@pytest.mark.workers_1_and_2
async def test_a_websocket_uses_the_cookie_only_from_the_sites_own_pages(
    api: RunningApi, fixture: Fixture
) -> None:
    variables = {"g": str(guild_id(fixture, "Polly Playground")), **SUBSCRIBE_FROM_START}
    async with contextlib.aclosing(await log_in(api, "alice")) as client:
        caller = user_caller(api, "alice", client)
        assert caller.ws_headers["Origin"] == api.url
        answer = await over_websocket(api, caller, variables)
        assert resynced(answer), answer.text

        # Another site's page in alice's browser (its socket carries her cookie), a sandboxed
        # frame, and a client that names no origin: the cookie does not count. Turning the
        # handshake away (403) is as good as answering UNAUTHENTICATED.
        for origin in ("https://evil.example", "null", None):
            if origin is None:
                del caller.ws_headers["Origin"]
            else:
                caller.ws_headers["Origin"] = origin
            answer = await over_websocket(api, caller, variables)
            assert answer.status == 403 or answer.codes == ["UNAUTHENTICATED"], (origin, answer.text)
            assert '"Admins"' not in answer.text and "Alice" not in answer.text, answer.text


@pytest.mark.workers_1_and_2
async def test_a_websocket_from_an_allowed_origin_may_use_the_cookie(
    api_factory: ApiFactory, fixture: Fixture
) -> None:
    """POLLY_CORS_ORIGINS names the sites whose pages may act with the user's cookie; on a
    WebSocket as on HTTP."""
    allowed = "https://polls.example"
    api = await api_factory(cors_origins=[allowed])
    variables = {"g": str(guild_id(fixture, "Polly Playground")), **SUBSCRIBE_FROM_START}
    async with contextlib.aclosing(await log_in(api, "alice")) as client:
        caller = user_caller(api, "alice", client)
        caller.ws_headers["Origin"] = allowed
        answer = await over_websocket(api, caller, variables)
        assert resynced(answer), f"HTTP {answer.status} {answer.text!r}"
