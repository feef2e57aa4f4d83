"""GraphQL over HTTP at ``/graphql``, as the GraphQL-over-HTTP specification describes it.

GET (queries only) and POST (``application/json``); answers in
``application/graphql-response+json`` or ``application/json`` as the Accept header asks,
with the status codes the specification gives each. GraphiQL for browsers. Repeatable
queries are answered from the response cache without running GraphQL at all.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, parse
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from app.cache.response_cache import ResponseCache
from app.graphql.context import RequestContext
from app.graphql.errors import format_error, request_error
from app.graphql.schema import PollySchema

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_SUPPORTED = (GRAPHQL_RESPONSE, JSON)


class BadRequest(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def negotiate(accept: str | None) -> str | None:
    """The media type to answer in, or None when the client accepts neither JSON type."""
    if not accept or not accept.strip():
        return GRAPHQL_RESPONSE  # the specification's default since 2025
    best: tuple[float, int, str] | None = None
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
            media = GRAPHQL_RESPONSE
        if media not in _SUPPORTED or quality <= 0:
            continue
        candidate = (quality, -index, media)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[2]


def _wants_html(accept: str | None) -> bool:
    return bool(accept) and "text/html" in (accept or "")


@functools.lru_cache(maxsize=1024)
def _parse(query: str) -> DocumentNode | GraphQLError:
    try:
        return parse(query)
    except GraphQLError as error:
        return error


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


async def _from_body(request: Request) -> GraphQLParams:
    body = await request.body()
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


class GraphQLEndpoint:
    def __init__(
        self,
        schema: PollySchema,
        context: Callable[[Request, str], RequestContext],
        responses: ResponseCache | None,
        scope: Callable[[Request], str] = lambda request: "public",
    ) -> None:
        self.schema = schema
        self.context = context
        self.responses = responses
        self.scope = scope
        self._ide = get_graphql_ide_html(graphql_ide="graphiql")

    async def handle(self, request: Request) -> Response:
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
            if request.method == "POST":
                _check_content_type(request)
            scope = self.scope(request)
            digest = None
            if self.responses is not None:
                # Keyed by the request's own bytes: a hit costs a hash and one GET, no parsing.
                # The same bytes can only mean the same document, operation and variables.
                raw = request.scope["query_string"] if request.method == "GET" else await request.body()
                digest = _digest(scope, request.method, raw)
                cached = await self.responses.get(digest)
                if cached is not None:
                    return Response(cached, 200, media_type=media)
            params = _from_query_string(request) if request.method == "GET" else await _from_body(request)
            return await self._execute(request, params, self.context(request, scope), media, digest)
        except BadRequest as error:
            return _json(request_error(error.message), error.status, media, error.headers)

    async def _execute(
        self, request: Request, params: GraphQLParams, context: RequestContext, media: str, digest: str | None
    ) -> Response:
        document = _parse(params.query)
        if isinstance(document, GraphQLError):
            return self._request_failed([document], context, media)
        operation = _operation(document, params.operation_name)
        if isinstance(operation, GraphQLError):
            return self._request_failed([operation], context, media)
        allowed = {OperationType.QUERY} if request.method == "GET" else set(OperationType)
        if request.method == "GET" and operation.operation.value != "query":
            raise BadRequest(405, "Mutations and subscriptions need POST.", {"Allow": "POST"})
        try:
            result = await self.schema.execute(
                params.query,
                variable_values=params.variables,
                context_value=context,
                operation_name=params.operation_name,
                allowed_operation_types=allowed,
            )
        except InvalidOperationTypeError as error:
            raise BadRequest(405, "Mutations and subscriptions need POST.", {"Allow": "POST"}) from error

        errors = result.errors or []
        if result.data is None and errors and all(error.path is None for error in errors):
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
            await self.responses.put(digest, encoded, context.versions)
        return Response(encoded, 200, media_type=media)

    def _request_failed(self, errors: list[GraphQLError], context: RequestContext, media: str) -> Response:
        body = {"errors": [format_error(error, context.request_id) for error in errors]}
        # application/json keeps 200 for well-formed requests; the newer media type says 400.
        return _json(body, 400 if media == GRAPHQL_RESPONSE else 200, media)


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
