"""The sandbox's OAuth2 authorization-code flow and Bearer-token user routes, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import AsyncIterator
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
import pytest_asyncio

from app.discord import permissions as perms
from app.sandbox.builtin import CLIENT_SECRET, default_fixture
from app.sandbox.fixture import DEFAULT_CLIENT_SECRET, Application, Fixture, User
from app.sandbox.server import Sandbox
from tests.conftest import SandboxHttp, guild_id

REDIRECT = "http://127.0.0.1:5173/auth/callback"
UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}


def basic(client_id: str, secret: str) -> str:
    return aiohttp.encode_basic_auth(client_id, secret)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def user(fixture: Fixture, name: str) -> User:
    return next(u for u in fixture.users if u.username == name)


class Client:
    """A "Log in with Discord" client of the sandbox, the way an API would be one."""

    def __init__(self, session: aiohttp.ClientSession, sandbox: Sandbox) -> None:
        self.session = session
        self.sandbox = sandbox
        self.client_id = str(sandbox.fixture.application.id)
        self.basic = basic(self.client_id, CLIENT_SECRET)

    async def authorize(self, path: str = "/oauth2/authorize", **params: str) -> tuple[int, str, str]:
        """(status, Location, body) of an authorization request; redirects are not followed."""
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": REDIRECT, **params}
        query.setdefault("scope", "identify guilds")
        return await self.get(f"{path}?{urlencode(query)}")

    async def get(self, path_and_query: str) -> tuple[int, str, str]:
        url = self.sandbox.url + path_and_query
        async with self.session.get(url, allow_redirects=False) as response:
            return response.status, response.headers.get("Location", ""), await response.text()

    async def code(self, **params: str) -> str:
        status, location, body = await self.authorize(**params)
        assert status == 302, body
        return redirected(location)["code"]

    async def token(
        self, data: dict[str, str], *, auth: str | None = None, path: str = "/oauth2/token"
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": auth or self.basic}
        async with self.session.post(self.sandbox.api_url + path, data=data, headers=headers) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()

    async def exchange(self, code: str, **extra: str) -> tuple[int, dict[str, Any]]:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
        return await self.token(data)

    async def login(self, who: str = "alice", scope: str = "identify guilds") -> dict[str, Any]:
        """The whole flow with PKCE S256; the token response."""
        verifier = secrets.token_urlsafe(48)
        code = await self.code(
            user=who, scope=scope, code_challenge=s256(verifier), code_challenge_method="S256"
        )
        status, tokens = await self.exchange(code, code_verifier=verifier)
        assert status == 200, tokens
        return tokens

    async def refresh(self, refresh_token: str) -> tuple[int, dict[str, Any]]:
        return await self.token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def api(self, access_token: str, path: str) -> tuple[aiohttp.ClientResponse, Any]:
        headers = {"Authorization": f"Bearer {access_token}"}
        async with self.session.get(self.sandbox.api_url + path, headers=headers) as response:
            return response, await response.json()


def redirected(location: str) -> dict[str, str]:
    """The query parameters a redirect to REDIRECT carries."""
    assert location.startswith(REDIRECT + "?"), location
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


@pytest_asyncio.fixture
async def client(http: SandboxHttp) -> AsyncIterator[Client]:
    yield Client(http.session, http.sandbox)


# -- the flow ----------------------------------------------------------------------------------


async def test_alice_logs_in_with_pkce_and_reads_her_profile(client: Client, fixture: Fixture) -> None:
    alice = user(fixture, "alice")
    verifier = secrets.token_urlsafe(64)
    odd_state = "a b&c=d/é+%"
    status, location, _ = await client.authorize(
        user=str(alice.id),
        scope="identify email guilds",
        state=odd_state,
        code_challenge=s256(verifier),
        code_challenge_method="S256",
        prompt="consent",
    )
    assert status == 302
    answer = redirected(location)
    assert answer["state"] == odd_state and set(answer) == {"code", "state"}

    status, tokens = await client.exchange(answer["code"], code_verifier=verifier)
    assert status == 200
    assert set(tokens) == {"token_type", "access_token", "expires_in", "refresh_token", "scope"}
    assert (tokens["token_type"], tokens["expires_in"]) == ("Bearer", 604800)
    assert tokens["scope"] == "identify email guilds"

    response, me = await client.api(tokens["access_token"], "/users/@me")
    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    assert (me["id"], me["username"], me["global_name"]) == (str(alice.id), "alice", "Alice")
    assert me["email"] == "alice@sandbox.invalid" and me["verified"] is True
    assert "bot" not in me


async def test_the_api_prefixed_authorize_url_and_form_client_credentials_work(client: Client) -> None:
    status, location, _ = await client.authorize("/api/v10/oauth2/authorize", user="bob")
    assert status == 302
    data = {
        "grant_type": "authorization_code",
        "code": redirected(location)["code"],
        "redirect_uri": REDIRECT,
        "client_id": client.client_id,
        "client_secret": CLIENT_SECRET,
    }
    async with client.session.post(client.sandbox.api_url + "/oauth2/token", data=data) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        tokens = await response.json()
    _, me = await client.api(tokens["access_token"], "/users/@me")
    assert me["username"] == "bob" and "email" not in me and "verified" not in me


async def test_scopes_may_be_joined_by_plus_signs(client: Client) -> None:
    status, location, _ = await client.get(
        f"/oauth2/authorize?response_type=code&client_id={client.client_id}&user=alice"
        f"&redirect_uri={REDIRECT}&scope=identify+guilds+identify"
    )
    assert status == 302
    _, tokens = await client.exchange(redirected(location)["code"])
    assert tokens["scope"] == "identify guilds"


async def test_a_redirect_uri_keeps_its_own_query(client: Client) -> None:
    status, location, _ = await client.authorize(
        redirect_uri="http://localhost:8000/cb?next=%2Fhome", user="carol", state="s"
    )
    assert status == 302
    answer = parse_qs(urlsplit(location).query)
    assert location.startswith("http://localhost:8000/cb?next=%2Fhome&code=")
    assert answer["next"] == ["/home"] and answer["state"] == ["s"]


async def test_without_a_user_the_consent_page_lists_the_people(client: Client, fixture: Fixture) -> None:
    status, _, page = await client.authorize(state="xyz")
    assert status == 200
    assert "Log in to Polly Sandbox as:" in page
    links = [unescape(href) for href in re.findall(r'href="([^"]+)"', page)]
    people = [u for u in fixture.users if not u.bot]
    chosen = [link for link in links if "&user=" in link]
    assert sorted(link.rsplit("&user=", 1)[1] for link in chosen) == sorted(str(u.id) for u in people)
    assert f"user={fixture.bot.id}" not in page

    status, location, _ = await client.get(next(link for link in chosen if link.endswith(str(people[1].id))))
    assert status == 302
    answer = redirected(location)
    assert answer["state"] == "xyz"
    _, tokens = await client.exchange(answer["code"])
    _, me = await client.api(tokens["access_token"], "/users/@me")
    assert me["id"] == str(people[1].id)

    cancel = next(link for link in links if link.endswith("&deny=1"))
    status, location, _ = await client.get(cancel)
    assert status == 302
    assert redirected(location) == {
        "error": "access_denied",
        "error_description": "The resource owner or authorization server denied the request",
        "state": "xyz",
    }


async def test_the_approver_set_through_the_control_api_approves(
    client: Client, http: SandboxHttp, fixture: Fixture
) -> None:
    bob = user(fixture, "bob")
    settings = await http.control("PUT", "/_sandbox/oauth2/approver", {"user_id": str(bob.id)})
    assert settings == {"user_id": str(bob.id)}
    assert await http.control("GET", "/_sandbox/oauth2/approver") == settings
    _, tokens = await client.exchange(await client.code())
    _, me = await client.api(tokens["access_token"], "/users/@me")
    assert me["id"] == str(bob.id)
    # An explicit user still wins over the approver.
    _, tokens = await client.exchange(await client.code(user="dave"))
    assert (await client.api(tokens["access_token"], "/users/@me"))[1]["username"] == "dave"

    assert await http.control("PUT", "/_sandbox/oauth2/approver", {"user_id": None}) == {"user_id": None}
    status, _, page = await client.authorize()
    assert status == 200 and "Log in to" in page

    for bad in ({"user_id": "1"}, {"user_id": str(fixture.bot.id)}, {}):
        response, body = await http.call("PUT", "/_sandbox/oauth2/approver", json=bad)
        assert response.status == 400 and body["message"].endswith(".")


async def test_deny_redirects_with_access_denied(client: Client) -> None:
    status, location, _ = await client.authorize(user="alice", deny="1", state="st")
    assert status == 302
    answer = redirected(location)
    assert (answer["error"], answer["state"]) == ("access_denied", "st") and "code" not in answer


# -- authorization errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/cb",
        "http://127.0.0.1.evil.example/cb",
        "ftp://127.0.0.1/cb",
        "http://127.0.0.1/cb#fragment",
        "",
    ],
)
async def test_a_redirect_uri_that_is_not_allowed_is_refused_in_place(
    client: Client, redirect_uri: str
) -> None:
    status, location, body = await client.authorize(user="alice", redirect_uri=redirect_uri, state="s")
    assert (status, location) == (400, "")
    assert json.loads(body)["error"] == "invalid_request"


async def test_loopback_hosts_are_all_accepted_without_registered_uris(client: Client) -> None:
    for uri in ("http://[::1]:9/cb", "https://localhost/cb", "http://127.8.9.10:1/cb"):
        status, location, _ = await client.authorize(user="alice", redirect_uri=uri)
        assert status == 302 and location.startswith(uri + "?code=")


async def test_repeated_parameters_are_refused(client: Client) -> None:
    base = f"/oauth2/authorize?response_type=code&client_id={client.client_id}&user=alice&scope=identify"
    status, location, _ = await client.get(f"{base}&redirect_uri={REDIRECT}&redirect_uri=http://127.0.0.1/x")
    assert (status, location) == (400, "")
    status, location, _ = await client.get(f"{base}&redirect_uri={REDIRECT}&state=a&state=b")
    assert status == 302 and redirected(location)["error"] == "invalid_request"


async def test_an_unknown_client_or_user_is_refused_in_place(client: Client, fixture: Fixture) -> None:
    for params in ({"client_id": "1"}, {"user": "nobody"}, {"user": str(fixture.bot.id)}):
        status, location, body = await client.authorize(**{"user": "alice", **params})
        assert (status, location) == (400, "")
        assert json.loads(body)["error_description"].endswith(".")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "identify bot"}, "invalid_scope"),
        ({"scope": " "}, "invalid_scope"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "S512"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
    ],
)
async def test_bad_requests_go_back_to_the_client_with_an_error(
    client: Client, params: dict[str, str], error: str
) -> None:
    status, location, _ = await client.authorize(user="alice", state="keep me", **params)
    assert status == 302
    answer = redirected(location)
    assert (answer["error"], answer["state"]) == (error, "keep me")
    assert answer["error_description"] and "code" not in answer


async def test_registered_redirect_uris_must_match_exactly() -> None:
    fixture = default_fixture()
    registered = "https://polly.example/auth/callback"
    fixture.application = Application(
        id=fixture.application.id, name="Polly", client_secret="s3cret", redirect_uris=[registered]
    )
    sandbox = Sandbox(fixture)
    await sandbox.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, sandbox)
            for uri, expected in ((registered, 302), (registered + "/", 400), (REDIRECT, 400)):
                status, _, _ = await client.authorize(user="alice", redirect_uri=uri)
                assert status == expected, uri
            _, location, _ = await client.authorize(user="alice", redirect_uri=registered)
            code = parse_qs(urlsplit(location).query)["code"][0]
            data = {"grant_type": "authorization_code", "code": code, "redirect_uri": registered}
            status, body = await client.token(data)  # the default secret is not this application's
            assert (status, body) == (401, {"error": "invalid_client"})
            status, body = await client.token(data, auth=basic(client.client_id, "s3cret"))
            assert status == 200 and body["token_type"] == "Bearer"
    finally:
        await sandbox.stop()


# -- the token endpoint ---------------------------------------------------------------------


async def test_pkce_needs_the_matching_verifier(client: Client) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await client.code(user="alice", code_challenge=s256(verifier), code_challenge_method="S256")
    status, body = await client.exchange(code, code_verifier=secrets.token_urlsafe(48))
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": 'Invalid "code_verifier" in request.'},
    )
    status, body = await client.exchange(code)
    assert (status, body) == (
        400,
        {"error": "invalid_request", "error_description": 'Missing "code_verifier" in request.'},
    )
    # Failed attempts do not use the code up.
    status, _ = await client.exchange(code, code_verifier=verifier)
    assert status == 200


async def test_plain_pkce_and_no_downgrade(client: Client) -> None:
    verifier = "v" * 43
    code = await client.code(user="alice", code_challenge=verifier)  # method defaults to plain
    assert (await client.exchange(code, code_verifier=verifier))[0] == 200
    # A verifier for a code issued without a challenge is refused (PKCE downgrade).
    status, body = await client.exchange(await client.code(user="alice"), code_verifier=verifier)
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_a_replayed_code_fails_and_revokes_what_it_issued(client: Client) -> None:
    code = await client.code(user="alice")
    status, tokens = await client.exchange(code)
    assert status == 200
    assert (await client.api(tokens["access_token"], "/users/@me"))[0].status == 200
    status, body = await client.exchange(code)
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": 'Invalid "code" in request.'},
    )
    response, body = await client.api(tokens["access_token"], "/users/@me")
    assert (response.status, body) == (401, UNAUTHORIZED)
    assert (await client.refresh(tokens["refresh_token"]))[1]["error"] == "invalid_grant"


async def test_the_redirect_uri_must_be_the_authorize_one(client: Client) -> None:
    code = await client.code(user="alice")
    status, body = await client.exchange(code, redirect_uri="http://127.0.0.1:5173/other")
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": 'Invalid "redirect_uri" in request.'},
    )
    data = {"grant_type": "authorization_code", "code": code}
    assert (await client.token(data))[1]["error_description"] == 'Missing "redirect_uri" in request.'


async def test_codes_expire(client: Client, sandbox: Sandbox, http: SandboxHttp) -> None:
    settings = await http.control("PATCH", "/_sandbox/oauth2/config", {"code_ttl": 30})
    assert settings["code_ttl"] == 30
    code = await client.code(user="alice")
    store = sandbox.state.oauth
    real_clock = store.clock
    store.clock = lambda: real_clock() + 31
    assert (await client.exchange(code))[1]["error"] == "invalid_grant"


async def test_the_client_must_authenticate(client: Client) -> None:
    code = await client.code(user="alice")
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    url = client.sandbox.api_url + "/oauth2/token"
    for auth in (basic(client.client_id, "wrong"), basic("1", CLIENT_SECRET)):
        async with client.session.post(url, data=data, headers={"Authorization": auth}) as response:
            assert (response.status, await response.json()) == (401, {"error": "invalid_client"})
            assert response.headers["WWW-Authenticate"].startswith("Basic")
    for form in ({}, {"client_id": client.client_id}, {"client_id": client.client_id, "client_secret": "x"}):
        async with client.session.post(url, data={**data, **form}) as response:
            assert (response.status, await response.json()) == (401, {"error": "invalid_client"})
    # The code survived the refused attempts.
    assert (await client.exchange(code))[0] == 200


async def test_malformed_token_requests(client: Client) -> None:
    url = client.sandbox.api_url + "/oauth2/token"
    body = {"grant_type": "refresh_token"}
    async with client.session.post(url, json=body, headers={"Authorization": client.basic}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"
    status, body = await client.token({"grant_type": "client_credentials"})
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, body = await client.token({"grant_type": "authorization_code", "redirect_uri": REDIRECT})
    assert (status, body) == (
        400,
        {"error": "invalid_request", "error_description": 'Missing "code" in request.'},
    )
    status, body = await client.exchange("not-a-code")
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_refresh_rotates_the_refresh_token(client: Client) -> None:
    first = await client.login()
    status, second = await client.refresh(first["refresh_token"])
    assert status == 200
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "identify guilds"
    assert (await client.api(second["access_token"], "/users/@me"))[0].status == 200
    status, body = await client.refresh(first["refresh_token"])
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": 'Invalid "refresh_token" in request.'},
    )
    # A refresh may narrow the scopes, never widen them.
    data = {
        "grant_type": "refresh_token",
        "refresh_token": second["refresh_token"],
        "scope": "identify email",
    }
    assert (await client.token(data))[1]["error"] == "invalid_scope"
    data["scope"] = "identify"
    status, third = await client.token(data)
    assert (status, third["scope"]) == (200, "identify")
    response, body = await client.api(third["access_token"], "/users/@me/guilds")
    assert (response.status, body) == (403, {"message": "Missing Access", "code": 50001})


async def test_revoking_a_token_ends_the_authorization(client: Client) -> None:
    tokens = await client.login()
    other = await client.login("bob")
    data = {"token": tokens["access_token"], "token_type_hint": "access_token"}
    assert await client.token(data, path="/oauth2/token/revoke") == (200, {})
    assert (await client.api(tokens["access_token"], "/users/@me"))[1] == UNAUTHORIZED
    assert (await client.refresh(tokens["refresh_token"]))[1]["error"] == "invalid_grant"
    assert (await client.api(other["access_token"], "/users/@me"))[0].status == 200
    # Revoking by the refresh token works too; unknown tokens are no error.
    assert await client.token({"token": other["refresh_token"]}, path="/oauth2/token/revoke") == (200, {})
    assert (await client.api(other["access_token"], "/users/@me"))[1] == UNAUTHORIZED
    assert await client.token({"token": "never-issued"}, path="/oauth2/token/revoke") == (200, {})
    status, body = await client.token(
        {"token": "x"}, path="/oauth2/token/revoke", auth=basic(client.client_id, "wrong")
    )
    assert (status, body) == (401, {"error": "invalid_client"})


async def test_expired_access_tokens_fail_until_refreshed(
    client: Client, http: SandboxHttp, fixture: Fixture
) -> None:
    alice, bob = await client.login(), await client.login("bob")
    expired = await http.control(
        "POST", "/_sandbox/oauth2/expire", {"user_id": str(user(fixture, "alice").id)}
    )
    assert expired == {"expired": 1}
    response, body = await client.api(alice["access_token"], "/users/@me")
    assert (response.status, body) == (401, UNAUTHORIZED)
    assert (await client.api(bob["access_token"], "/users/@me"))[0].status == 200
    status, fresh = await client.refresh(alice["refresh_token"])
    assert status == 200
    assert (await client.api(fresh["access_token"], "/users/@me"))[0].status == 200
    assert await http.control("POST", "/_sandbox/oauth2/expire", {}) == {"expired": 2}
    assert (await client.api(bob["access_token"], "/users/@me"))[0].status == 401


async def test_token_lifetime_is_configurable(client: Client, http: SandboxHttp) -> None:
    settings = await http.control("PATCH", "/_sandbox/oauth2/config", {"access_token_ttl": 3600})
    assert settings == {"access_token_ttl": 3600, "code_ttl": 600}
    assert await http.control("GET", "/_sandbox/oauth2/config") == settings
    assert (await client.login())["expires_in"] == 3600
    bad_settings: list[Any] = [{"access_token_ttl": 0}, {"code_ttl": "600"}, {"refresh_ttl": 5}, []]
    for bad in bad_settings:
        response, body = await http.call("PATCH", "/_sandbox/oauth2/config", json=bad)
        assert response.status == 400 and body["message"].endswith(".")


# -- Bearer routes --------------------------------------------------------------------------


async def test_guilds_of_alice_with_her_permissions(client: Client, fixture: Fixture) -> None:
    tokens = await client.login()
    response, guilds = await client.api(tokens["access_token"], "/users/@me/guilds")
    assert response.status == 200
    by_name = {guild["name"]: guild for guild in guilds}
    assert set(by_name) == {"Polly Playground", "Quiet Corner"}
    assert [g["id"] for g in guilds] == sorted((g["id"] for g in guilds), key=int)
    for guild in guilds:
        assert set(guild) == {"id", "name", "icon", "banner", "owner", "permissions", "features"}
        assert guild["banner"] is None and guild["features"] == []

    playground = by_name["Polly Playground"]
    assert playground["id"] == str(guild_id(fixture, "Polly Playground"))
    assert (playground["owner"], playground["permissions"]) == (True, str(perms.ALL))

    quiet = next(g for g in fixture.guilds if g.name == "Quiet Corner")
    roles = {role.id: role.permissions for role in quiet.roles}
    alice_roles = next(m.roles for m in quiet.members if m.user_id == user(fixture, "alice").id)
    expected = roles[quiet.id]
    for role in alice_roles:
        expected |= roles[role]
    assert by_name["Quiet Corner"]["owner"] is False
    assert by_name["Quiet Corner"]["permissions"] == str(expected)
    assert not perms.has(expected, perms.MANAGE_ROLES)

    _, counted = await client.api(tokens["access_token"], "/users/@me/guilds?with_counts=true")
    quiet_counted = next(g for g in counted if g["name"] == "Quiet Corner")
    assert (quiet_counted["approximate_member_count"], quiet_counted["approximate_presence_count"]) == (4, 0)


async def test_erin_sees_a_guild_the_bot_is_not_in(client: Client, http: SandboxHttp) -> None:
    tokens = await client.login("erin")
    _, guilds = await client.api(tokens["access_token"], "/users/@me/guilds")
    assert {g["name"] for g in guilds} == {"Quiet Corner", "Big Guild", "Elsewhere"}
    assert next(g for g in guilds if g["name"] == "Elsewhere")["owner"] is True
    # The bot's token lists the bot's guilds on the same route.
    response, bots = await http.call("GET", "/users/@me/guilds")
    assert response.status == 200
    assert {g["name"] for g in bots} == {"Polly Playground", "Quiet Corner", "Polly HQ", "Big Guild"}
    assert next(g for g in bots if g["name"] == "Polly HQ")["permissions"] == str(perms.ALL)


async def test_guild_pages(client: Client) -> None:
    token = (await client.login("erin"))["access_token"]
    _, everything = await client.api(token, "/users/@me/guilds")
    ids = [g["id"] for g in everything]
    assert len(ids) == 3
    _, first = await client.api(token, "/users/@me/guilds?limit=2")
    assert [g["id"] for g in first] == ids[:2]
    _, from_zero = await client.api(token, "/users/@me/guilds?after=0&limit=2")
    assert from_zero == first
    _, rest = await client.api(token, f"/users/@me/guilds?after={ids[1]}&limit=2")
    assert [g["id"] for g in rest] == ids[2:]
    _, before = await client.api(token, f"/users/@me/guilds?before={ids[2]}&limit=1")
    assert [g["id"] for g in before] == [ids[1]]
    _, between = await client.api(token, f"/users/@me/guilds?after={ids[0]}&before={ids[2]}")
    assert [g["id"] for g in between] == [ids[1]]
    for query, code in (("limit=0", "NUMBER_TYPE_MIN"), ("limit=201", "NUMBER_TYPE_MAX"), ("after=x", None)):
        response, body = await client.api(token, f"/users/@me/guilds?{query}")
        assert (response.status, body["code"], body["message"]) == (400, 50035, "Invalid Form Body")
        if code is not None:
            assert body["errors"]["limit"]["_errors"][0]["code"] == code


async def test_scopes_gate_the_routes(client: Client) -> None:
    identify_only = (await client.login(scope="identify"))["access_token"]
    response, body = await client.api(identify_only, "/users/@me/guilds")
    assert (response.status, body) == (403, {"message": "Missing Access", "code": 50001})
    guilds_only = (await client.login(scope="guilds"))["access_token"]
    assert (await client.api(guilds_only, "/users/@me"))[1] == UNAUTHORIZED
    assert (await client.api(guilds_only, "/users/@me/guilds"))[0].status == 200


async def test_bearer_tokens_only_open_the_user_routes(client: Client, fixture: Fixture) -> None:
    token = (await client.login())["access_token"]
    playground = guild_id(fixture, "Polly Playground")
    for path in (f"/guilds/{playground}/roles", "/oauth2/applications/@me", f"/guilds/{playground}"):
        response, body = await client.api(token, path)
        assert (response.status, body) == (401, UNAUTHORIZED)
    assert (await client.api("not-a-token", "/users/@me"))[1] == UNAUTHORIZED


async def test_bearer_calls_are_counted_and_limited_per_user(
    client: Client, http: SandboxHttp, fixture: Fixture
) -> None:
    alice, bob = (await client.login())["access_token"], (await client.login("bob"))["access_token"]
    await http.control("POST", "/_sandbox/stats/reset")
    await http.control("POST", "/_sandbox/ratelimits", {"route_limit": 1, "route_window": 60})
    response, _ = await client.api(alice, "/users/@me")
    assert response.status == 200 and response.headers["X-RateLimit-Remaining"] == "0"
    response, body = await client.api(alice, "/users/@me")
    assert response.status == 429 and body["message"] == "You are being rate limited."
    # Another user, and the bot, have buckets of their own.
    assert (await client.api(bob, "/users/@me"))[0].status == 200
    assert (await http.call("GET", "/users/@me"))[0].status == 200
    await client.api("revoked-or-never-issued", "/users/@me")
    stats = await http.control("GET", "/_sandbox/stats")
    assert stats["by_route"] == {"GET /users/@me": 5}


async def test_members_added_and_removed_show_in_the_guild_list(
    client: Client, http: SandboxHttp, fixture: Fixture
) -> None:
    dave = user(fixture, "dave")
    quiet = guild_id(fixture, "Quiet Corner")
    helpers = next(r.id for g in fixture.guilds if g.id == quiet for r in g.roles if r.name == "Helpers")
    token = (await client.login("dave"))["access_token"]
    _, before = await client.api(token, "/users/@me/guilds")
    assert "Quiet Corner" not in {g["name"] for g in before}

    path = f"/_sandbox/guilds/{quiet}/members/{dave.id}"
    response, member = await http.call("PUT", path, json={"roles": [str(helpers)]})
    assert response.status == 201
    assert (member["user"]["id"], member["roles"], member["guild_id"]) == (
        str(dave.id),
        [str(helpers)],
        str(quiet),
    )
    response, _ = await http.call("PUT", path, json={})
    assert response.status == 200
    _, during = await client.api(token, "/users/@me/guilds")
    assert "Quiet Corner" in {g["name"] for g in during}

    response, _ = await http.call("DELETE", path)
    assert response.status == 204
    _, after = await client.api(token, "/users/@me/guilds")
    assert after == before
    response, body = await http.call("DELETE", path)
    assert (response.status, body) == (404, {"message": "Unknown Member", "code": 10007})


async def test_member_control_refuses_what_discord_would_not_do(http: SandboxHttp, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    alice, erin = user(fixture, "alice"), user(fixture, "erin")
    managed = next(r.id for g in fixture.guilds if g.id == playground for r in g.roles if r.name == "Polly")
    for method, path, body in (
        ("DELETE", f"/_sandbox/guilds/{playground}/members/{alice.id}", None),  # the owner
        ("DELETE", f"/_sandbox/guilds/{playground}/members/{fixture.bot.id}", None),
        ("PUT", f"/_sandbox/guilds/{playground}/members/{erin.id}", {"roles": [str(managed)]}),
        ("PUT", f"/_sandbox/guilds/{playground}/members/{erin.id}", {"roles": [str(playground)]}),
        ("PUT", f"/_sandbox/guilds/{playground}/members/{erin.id}", {"roles": "x"}),
        ("PUT", f"/_sandbox/guilds/{playground}/members/{erin.id}", {"roles": ["not-an-id"]}),
        ("PUT", f"/_sandbox/guilds/{playground}/members/{fixture.bot.id}", {}),
    ):
        response, answer = await http.call(method, path, json=body)
        assert response.status == 400, (method, path, body)
        assert answer["message"].endswith("."), answer
    response, answer = await http.call("PUT", f"/_sandbox/guilds/1/members/{erin.id}", json={})
    assert (response.status, answer["code"]) == (404, 10004)
    response, answer = await http.call("PUT", f"/_sandbox/guilds/{playground}/members/1", json={})
    assert (response.status, answer["code"]) == (404, 10013)


async def test_member_changes_are_dispatched_in_guilds_with_the_bot(
    sandbox: Sandbox, http: SandboxHttp, fixture: Fixture
) -> None:
    quiet, elsewhere = guild_id(fixture, "Quiet Corner"), guild_id(fixture, "Elsewhere")
    dave = user(fixture, "dave")
    async with aiohttp.ClientSession() as session, session.ws_connect(sandbox.gateway_url) as ws:
        await ws.receive_json(timeout=5)  # HELLO
        identify = {"token": fixture.bot.token, "intents": 1 | 2, "properties": {}}
        await ws.send_json({"op": 2, "d": identify})
        ready = await ws.receive_json(timeout=5)
        for _ in ready["d"]["guilds"]:
            assert (await ws.receive_json(timeout=5))["t"] == "GUILD_CREATE"

        # Elsewhere has no bot: nothing is sent for it, so the next event is Quiet Corner's.
        await http.control("PUT", f"/_sandbox/guilds/{elsewhere}/members/{dave.id}", {})
        await http.control("PUT", f"/_sandbox/guilds/{quiet}/members/{dave.id}", {})
        added = await ws.receive_json(timeout=5)
        assert added["t"] == "GUILD_MEMBER_ADD"
        assert (added["d"]["guild_id"], added["d"]["user"]["id"], added["d"]["roles"]) == (
            str(quiet),
            str(dave.id),
            [],
        )
        readers = next(r.id for g in fixture.guilds if g.id == quiet for r in g.roles if r.name == "Readers")
        await http.control("PUT", f"/_sandbox/guilds/{quiet}/members/{dave.id}", {"roles": [str(readers)]})
        updated = await ws.receive_json(timeout=5)
        assert updated["t"] == "GUILD_MEMBER_UPDATE" and updated["d"]["roles"] == [str(readers)]
        await http.control("DELETE", f"/_sandbox/guilds/{quiet}/members/{dave.id}")
        removed = await ws.receive_json(timeout=5)
        assert removed["t"] == "GUILD_MEMBER_REMOVE"
        assert removed["d"]["guild_id"] == str(quiet) and removed["d"]["user"]["id"] == str(dave.id)


# -- the fixture ------------------------------------------------------------------------------


def test_fixture_documents_without_oauth_fields_still_load() -> None:
    document = default_fixture().model_dump(mode="json")
    del document["application"]["client_secret"], document["application"]["redirect_uris"]
    application = Fixture.model_validate(document).application
    assert (application.client_secret, application.redirect_uris) == (CLIENT_SECRET, [])
    assert DEFAULT_CLIENT_SECRET == CLIENT_SECRET
    for bad in (["/relative"], ["http://127.0.0.1/cb#x"], ["https:///no-host"]):
        with pytest.raises(ValueError, match="redirect URI"):
            Application(id=1, name="x", redirect_uris=bad)
    with pytest.raises(ValueError, match="client_secret"):
        Application(id=1, name="x", client_secret="")


async def test_the_fixture_endpoint_round_trips_the_application(http: SandboxHttp) -> None:
    state = await http.control("GET", "/_sandbox/fixture")
    assert state["application"]["client_secret"] == CLIENT_SECRET
    assert state["application"]["redirect_uris"] == []
    assert Fixture.model_validate(state).application == http.sandbox.fixture.application
