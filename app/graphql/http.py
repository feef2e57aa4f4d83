"""GraphQL over HTTP at ``/graphql``, as the GraphQL-over-HTTP specification describes it.

GET (queries only) and POST (``application/json``); answers in
``application/graphql-response+json`` or ``application/json`` as the Accept header asks
(``application/json`` when it names neither: no header, or ``*/*``), with the status codes the
specification gives each. GraphiQL for browsers. Repeatable
queries are answered from the response cache without running GraphQL at all.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
from graphql import DocumentNode, GraphQLError, OperationDefinitionNode
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html

from app.access.cookies import SESSION_COOKIE
from app.access.credentials import Credentials, from_scope, trusted_origin
from app.access.errors import AccessUnavailable, RateLimited, Unauthenticated
from app.access.gatekeeper import Admitted, DigestOf, Gatekeeper
from app.access.principal import Principal
from app.cache.response_cache import ResponseCache
from app.graphql.context import RequestContext
from app.graphql.errors import format_error, request_error
from app.graphql.limits import parse_document
from app.graphql.schema import PollySchema
from app.roles.errors import DiscordUnavailable
from app.storage.api_keys import parse_token
from app.telemetry import metrics, requests

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_SUPPORTED = (GRAPHQL_RESPONSE, JSON)


# Where a request's admitted caller is kept for the transport that serves it (SSE).
PRINCIPAL = "polly.principal"


class BadRequest(Exception):
    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, *, code: str = "BAD_REQUEST"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.code = code
        self.details: dict[str, Any] = {}


def _rate_limited(retry_after: float) -> BadRequest:
    error = RateLimited(retry_after)  # rounded up to whole seconds, as Retry-After wants
    refusal = BadRequest(429, error.message, {"Retry-After": str(error.retry_after)}, code=error.code)
    refusal.details = error.details  # retryAfter, as WebSocket clients get it
    return refusal


def negotiate(accept: str | None) -> str | None:
    """The media type to answer in, or None when the client accepts neither JSON type.

    No Accept header, or only wildcards (``*/*``, ``application/*``), is answered as
    ``application/json``: the GraphQL-over-HTTP specification asks so that clients written
    before ``application/graphql-response+json`` existed keep working (they get 200 for
    request errors, as they expect). Named types win over wildcards of the same quality.
    """
    if not accept or not accept.strip():
        return JSON
    named: dict[str, tuple[float, int]] = {}  # media type -> (quality, position in the header)
    wildcard: float | None = None
    for index, part in enumerate(accept.split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media in ("*/*", "application/*"):
            wildcard = max(wildcard or 0.0, quality)
        elif media in _SUPPORTED and media not in named:
            named[media] = (quality, index)
    # A type named in the header takes its own quality (q=0 refuses it even under */*); the
    # others take the wildcard's. Ties: a named type first, then the header's order, then JSON.
    candidates = []
    for media in (JSON, GRAPHQL_RESPONSE):
        if media in named:
            quality, index = named[media]
            candidates.append((quality, 1, -index, media == JSON, media))
        elif wildcard is not None:
            candidates.append((wildcard, 0, 0, media == JSON, media))
    acceptable = [c for c in candidates if c[0] > 0]
    return max(acceptable)[-1] if acceptable else None


def _wants_html(accept: str | None) -> bool:
    return bool(accept) and "text/html" in (accept or "")


class GraphQLParams:
    __slots__ = ("extensions", "operation_name", "query", "variables")

    def __init__(self, query: str, operation_name: str | None, variables: dict[str, Any] | None) -> None:
        self.query = query
        self.operation_name = operation_name or None
        self.variables = variables


def _params(source: Any) -> GraphQLParams:
    if not isinstance(source, dict):
        raise BadRequest(400, "The request body must be a JSON object with a query.")
    query = source.get("query")
    if not isinstance(query, str):
        raise BadRequest(400, "The request needs a query: a string holding a GraphQL document.")
    operation_name = source.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest(400, "operationName must be a string.")
    variables = source.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest(400, "variables must be a JSON object.")
    extensions = source.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise BadRequest(400, "extensions must be a JSON object.")
    return GraphQLParams(query, operation_name, variables)


def _from_query_string(request: Request) -> GraphQLParams:
    source: dict[str, Any] = dict(request.query_params)
    for name in ("variables", "extensions"):
        if source.get(name):
            try:
                source[name] = orjson.loads(source[name])
            except orjson.JSONDecodeError as error:
                raise BadRequest(400, f"The {name} parameter is not valid JSON.") from error
        else:
            source.pop(name, None)
    return _params(source)


def _check_content_type(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != JSON:
        raise BadRequest(415, "Send GraphQL requests as JSON, with Content-Type: application/json.")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be over ``limit`` bytes (before reading it,
    when Content-Length says so)."""
    declared = request.headers.get("content-length")
    too_big = f"The request body is over {limit} bytes, the most this API accepts."
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(400, "The Content-Length header is not a number.")
        if int(declared) > limit:
            raise BadRequest(413, too_big)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


def _from_body(body: bytes) -> GraphQLParams:
    try:
        source = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(400, f"The request body is not valid JSON: {error}.") from error
    return _params(source)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | GraphQLError:
    """GraphQL's GetOperation(): the operation to run, or the request error saying why not."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        if len(operations) == 1:
            return operations[0]
        if not operations:
            return GraphQLError("The document holds no operation to execute.")
        return GraphQLError("The document holds several operations; say which with operationName.")
    for operation in operations:
        if operation.name is not None and operation.name.value == name:
            return operation
    return GraphQLError(f"The document holds no operation named {name!r}.")


def _turned_away(error: BadRequest | DiscordUnavailable | AccessUnavailable, media: str) -> Response:
    if isinstance(error, BadRequest):
        return _json(
            request_error(error.message, error.code, **error.details), error.status, media, error.headers
        )
    # Who the caller is cannot be told now.
    return _json({"errors": [error.formatted]}, 503, media, {"Retry-After": "30"})


def _principal(admitted: Admitted) -> Principal:
    """Who was admitted, when no cached answer was asked for or found."""
    if admitted.principal is None:
        raise RuntimeError("the gatekeeper admitted nobody without a cached answer")
    return admitted.principal


class GraphQLEndpoint:
    def __init__(
        self,
        schema: PollySchema,
        context: Callable[[Principal, str], RequestContext],
        responses: ResponseCache | None,
        gatekeeper: Gatekeeper,
        *,
        max_body_bytes: int = 64 * 1024,
        rejected_document_ms: float = 2.0,
    ) -> None:
        self.schema = schema
        self.context = context
        self.responses = responses
        self.gatekeeper = gatekeeper
        self.max_body_bytes = max_body_bytes
        self.rejected_document_ms = rejected_document_ms
        self._ide = get_graphql_ide_html(graphql_ide="graphiql")

    async def handle(self, request: Request) -> Response:
        # Every answer carries the id, refusals before any work included (405, 406).
        record = requests.current()
        request_id = record.id if record is not None else secrets.token_hex(8)
        response = await self._respond(request, request_id)
        response.headers["X-Request-Id"] = request_id
        return response

    async def _respond(self, request: Request, request_id: str) -> Response:
        if request.method not in ("GET", "POST"):
            return _json(request_error("Use GET (queries) or POST.", "METHOD_NOT_ALLOWED"), 405, JSON,
                         {"Allow": "GET, POST"})  # fmt: skip
        accept = request.headers.get("accept")
        if _wants_html(accept) and request.method == "GET" and "query" not in request.query_params:
            return HTMLResponse(self._ide)
        media = negotiate(accept)
        if media is None:
            return _json(
                request_error(
                    "Accept application/graphql-response+json or application/json.", "NOT_ACCEPTABLE"
                ),
                406,
                JSON,
            )
        try:
            return await self._answer(request, media, request_id)
        except (BadRequest, DiscordUnavailable, AccessUnavailable) as error:
            return _turned_away(error, media)

    async def _answer(self, request: Request, media: str, request_id: str) -> Response:
        if request.method == "POST":
            _check_content_type(request)
            raw = await _read_body(request, self.max_body_bytes)
        else:
            raw = request.scope["query_string"]
            if len(raw) > self.max_body_bytes:
                raise BadRequest(414, f"The query string is over {self.max_body_bytes} bytes; use POST.")
        credentials = from_scope(request.scope)
        digest_of: DigestOf | None = None
        if self.responses is not None:
            # Keyed by the caller's access scope and the request's own bytes: a hit costs a
            # hash, no parsing, and never serves what was computed for another scope.
            digest_of = functools.partial(_digest, method=request.method, raw=raw)

        admitted = await self._admit(credentials, digest_of)
        record = requests.current()
        if admitted.cached is not None:
            metrics.RESPONSE_CACHE.labels("hit").inc()
            if record is not None:
                _note_cached(record, request, raw, credentials, admitted.principal)
            return Response(admitted.cached, 200, media_type=media)
        principal = _principal(admitted)
        if record is not None:
            record.principal_kind, record.principal_id = principal.kind.value, principal.id or None
        if admitted.digest is not None:
            metrics.RESPONSE_CACHE.labels("miss").inc()
            if record is not None:
                record.cache = "miss"
        if principal.refused is not None:
            return self._refuse(principal, credentials, media)
        params = _from_query_string(request) if request.method == "GET" else _from_body(raw)
        if record is not None:
            record.operation = metrics.operation_label(params.operation_name or _named(params.query))
        context = self.context(principal, request_id)
        return await self._execute(request, params, context, media, admitted.digest, credentials)

    async def _admit(self, credentials: Credentials, digest_of: DigestOf | None) -> Admitted:
        try:
            return await self.gatekeeper.admit(credentials, digest_of)
        except RateLimited as error:
            raise _rate_limited(error.retry_after) from error

    async def admit_stream(self, request: Request) -> Response | None:
        """An SSE subscription passes the same door as a query (body size, credentials, rate
        limit): the answer that turns it away, or None, with the caller kept for the stream."""
        refusal = await self._stream_refusal(request)
        if refusal is not None:
            refusal.headers["X-Request-Id"] = secrets.token_hex(8)  # as every answer of /graphql
        return refusal

    async def _stream_refusal(self, request: Request) -> Response | None:
        try:
            if request.method == "POST":
                declared = request.headers.get("content-length")
                if declared is None:
                    raise BadRequest(411, "Send subscriptions over SSE with a Content-Length.")
                if not declared.isdigit() or int(declared) > self.max_body_bytes:
                    raise BadRequest(413, f"The request body is over {self.max_body_bytes} bytes.")
            credentials = from_scope(request.scope)
            principal = _principal(await self._admit(credentials, None))
        except (BadRequest, DiscordUnavailable, AccessUnavailable) as error:
            return _turned_away(error, JSON)
        if principal.refused is not None:
            return self._refuse(principal, credentials, JSON)
        request.scope.setdefault("state", {})[PRINCIPAL] = principal
        return None

    def _refuse(self, principal: Principal, credentials: Credentials, media: str) -> Response:
        """Credentials were sent and are no good: 401 for the whole request, saying why."""
        error = Unauthenticated(principal.refused or "Unauthenticated.")
        body = {"errors": [error.formatted]}
        headers = {"WWW-Authenticate": 'Bearer realm="polly"'}
        if credentials.authorization is not None:
            headers["WWW-Authenticate"] += ', error="invalid_token"'
        response = _json(body, 401, media, headers)
        if credentials.authorization is None and credentials.session_cookie is not None:
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def _execute(
        self,
        request: Request,
        params: GraphQLParams,
        context: RequestContext,
        media: str,
        digest: str | None,
        credentials: Credentials,
    ) -> Response:
        started = time.perf_counter()
        document = parse_document(params.query, self.schema.limits.max_tokens)
        if isinstance(document, GraphQLError):
            await self._charge_rejection(context, started)
            return self._request_failed([document], context, media)
        operation = _operation(document, params.operation_name)
        if isinstance(operation, GraphQLError):
            await self._charge_rejection(context, started)
            return self._request_failed([operation], context, media)
        if request.method == "GET" and operation.operation.value != "query":
            raise BadRequest(405, "Mutations and subscriptions need POST.", {"Allow": "POST"})
        if operation.operation.value == "subscription":
            raise BadRequest(
                400,
                "A subscription streams its results: open a WebSocket (graphql-transport-ws) or ask for"
                " Server-Sent Events (Accept: text/event-stream).",
            )
        if (
            operation.operation.value == "mutation"
            and context.principal.via_cookie
            and not trusted_origin(credentials, self.gatekeeper.authenticator.allowed_origins)
        ):
            raise BadRequest(
                403, "Changes signed in by cookie must come from this site's own pages.", code="FORBIDDEN"
            )
        result = await self.schema.execute(
            params.query,
            variable_values=params.variables,
            context_value=context,
            operation_name=params.operation_name,
        )

        errors = result.errors or []
        _note_result(context, bool(errors))
        if result.data is None and errors and all(error.path is None for error in errors):
            await self._charge_rejection(context, started)
            return self._request_failed(errors, context, media)
        body: dict[str, Any] = {"data": result.data}
        if errors:
            body["errors"] = [format_error(error, context.request_id) for error in errors]
        extensions = _extensions(context)
        if extensions:
            body["extensions"] = extensions
        encoded = orjson.dumps(body)
        if (
            digest is not None
            and self.responses is not None
            and not errors
            and context.cacheable
            and operation.operation.value == "query"
        ):
            stored = await self.responses.put(digest, encoded, context.versions)
            metrics.RESPONSE_CACHE.labels("stored" if stored else "refused").inc()
            record = requests.current()
            if record is not None and record.cache == "miss":
                record.cache = "stored" if stored else "refused"
        return Response(encoded, 200, media_type=media)

    async def _charge_rejection(self, context: RequestContext, started: float) -> None:
        """A refused document's parse and validation cost its caller requests of its rate limit
        in proportion to the server time they took: a caller cannot buy more refusals a second
        than its rate allows, whatever each costs. (Refusals remembered with their document
        cost next to nothing, and nothing more.)"""
        extra = int((time.perf_counter() - started) * 1000 / self.rejected_document_ms)
        if extra > 0:
            await self.gatekeeper.gate.charge(context.principal.bucket, extra)

    def _request_failed(self, errors: list[GraphQLError], context: RequestContext, media: str) -> Response:
        body = {"errors": [format_error(error, context.request_id) for error in errors]}
        # application/json keeps 200 for well-formed requests; the newer media type says 400.
        return _json(body, 400 if media == GRAPHQL_RESPONSE else 200, media)


def _note_cached(
    record: requests.RequestRecord,
    request: Request,
    raw: bytes,
    credentials: Credentials,
    principal: Principal | None,
) -> None:
    """What the request log says of an answer served from the cache (no GraphQL ran)."""
    record.cache = "hit"
    if request.method == "GET":
        source: Any = dict(request.query_params)
    else:
        try:
            source = orjson.loads(raw)
        except orjson.JSONDecodeError:
            source = None
    name = source.get("operationName") if isinstance(source, dict) else None
    query = source.get("query") if isinstance(source, dict) else None
    if not isinstance(name, str) or not name:
        name = _named(query) if isinstance(query, str) else None
    record.operation = metrics.operation_label(name)
    if principal is not None:
        record.principal_kind, record.principal_id = principal.kind.value, principal.id or None
    else:  # an API key's cached answer: Redis checked the key without a principal being built
        key = parse_token(credentials.bearer[1]) if credentials.bearer is not None else None
        record.principal_kind, record.principal_id = "API_KEY", key[0] if key is not None else None


# The name a document gives its first operation ("query Roles { ... }"): what operationName
# defaults to for a one-operation document, found without parsing it.
_OPERATION_NAME = re.compile(
    r"^\s*(?:#[^\n]*\n\s*)*(?:query|mutation|subscription)\s+([A-Za-z_][A-Za-z0-9_]*)"
)


def _named(query: str) -> str | None:
    found = _OPERATION_NAME.match(query)
    return found[1] if found else None


def _note_result(context: RequestContext, errors: bool) -> None:
    if context.stale:
        metrics.STALE_ANSWERS.inc()
    degraded = not context.roles.cache_available
    if degraded:
        metrics.DEGRADED_ANSWERS.inc()
    record = requests.current()
    if record is None:
        return
    record.errors = errors
    if context.stale:
        record.cache = "stale"
    elif degraded:
        record.cache = "degraded"


def _digest(scope: str, method: str, raw: bytes) -> str:
    return hashlib.sha256(b"\x00".join((scope.encode(), method.encode(), raw))).hexdigest()


def _extensions(context: RequestContext) -> dict[str, Any]:
    extensions: dict[str, Any] = {}
    if context.stale:
        extensions["stale"] = [
            {"guildId": str(guild_id), "reason": stale.reason, "fetchedAt": stale.fetched_at}
            for guild_id, stale in sorted(context.stale.items())
        ]
    if not context.roles.cache_available:
        extensions["degraded"] = "The cache is unavailable; answers come from Discord directly."
    return extensions


def _json(body: Any, status: int, media: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=media)
