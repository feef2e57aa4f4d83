"""GraphQL subscriptions over WebSocket (graphql-transport-ws and the legacy graphql-ws) and
Server-Sent Events, on ``/graphql``.

Strawberry speaks the protocols — handshakes, keep-alives, the connection-init timeout, the
close codes for protocol errors. Subscriptions that can be shared (see app/graphql/fanout.py)
are served from a shared group instead of one execution per subscriber. Every operation gets
its own context (and so its own DataLoader), however long the connection lives.

Every message a client sends is checked against its protocol's shape, field by field, before
Strawberry sees it, and answered as its protocol says (see ``transport_problem`` and
``legacy_problem``); a peer that went away is a normal end of a connection, never an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    MutableMapping,
    Sequence,
)
from datetime import timedelta
from typing import Any, cast

from graphql import GraphQLError, GraphQLSyntaxError, OperationDefinitionNode, OperationType
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.http.exceptions import NonTextMessageReceived, WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage, Message
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage as TransportErrorMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionErrorMessage,
    ErrorMessage,
    OperationMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.types.unset import UnsetType

from app.access.authenticator import Authenticator
from app.access.credentials import Credentials, from_scope, with_connection_params
from app.access.errors import AccessUnavailable, RateLimited
from app.access.principal import Principal, anonymous
from app.cache.connection import CacheUnavailable
from app.cache.gate import RequestGate
from app.errors import PollyError
from app.graphql.context import RequestContext
from app.graphql.errors import format_error
from app.graphql.fanout import Fanout, Member
from app.graphql.heartbeat import Beat, Heartbeat
from app.graphql.http import PRINCIPAL
from app.graphql.limits import parse_document
from app.graphql.outbox import Outbox
from app.graphql.schema import PollySchema
from app.graphql.ws_messages import (
    NOT_JSON,
    TOO_DEEP,
    close_reason,
    legacy_problem,
    normalised,
    shown,
    transport_problem,
)
from app.live.access_watch import AccessWatch
from app.roles.errors import DiscordUnavailable
from app.telemetry.metrics import SUBSCRIPTIONS

log = logging.getLogger(__name__)

# Who a connection is cannot be told now (the database or Discord unreachable).
UNCHECKABLE = (AccessUnavailable, DiscordUnavailable)

INIT_TIMEOUT_CODE = 4408
ACCESS_CHANGED_CODE = 4403
BAD_MESSAGE_CODE = 4400
TOO_MANY_INITS_CODE = 4429
# A message that does not fit its protocol: the code HTTP gives a malformed request.
BAD_REQUEST = "BAD_REQUEST"
ONLY_SUBSCRIPTIONS = (
    "Only subscriptions run over the graphql-ws protocol; send queries and mutations over HTTP"
    " (POST /graphql) or graphql-transport-ws."
)


# The keep-alive messages of graphql-transport-ws and of the legacy graphql-ws.
PING = '{"type":"ping"}'
KEEP_ALIVE = '{"type":"ka"}'


def outbox_of(handler: TransportWSHandler | GraphQLWSHandler) -> Outbox:
    """The socket's one outbox, for every shared subscription's messages and its keep-alives."""
    if handler.outbox is None:
        websocket = cast(SocketAdapter, handler.websocket).ws
        handler.outbox = Outbox(websocket, limit=handler.view.fanout.buffer_limit)
    return handler.outbox


# How often an operation that outlived its cancellation is cancelled again (see ``ended``).
RECANCEL_INTERVAL = 0.05


async def ended(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` until every one has ended. A cancellation can be lost inside a library
    (redis-py swallows one that lands while it talks to Redis, see app/cache/gate.py): the
    operation then runs on to its next wait (the next event, which may never come), and
    whatever waits for it, a connection's shutdown or a ``stop``, would wait for ever.
    Cancelled again, it ends at that wait."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_INTERVAL)


class SocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's ASGI WebSocket, made to hand every message on and to take a closed peer in
    its stride: a text message that is not JSON (or nests deeper than the decoder goes) comes
    out as an ``Unparseable``, for the protocol handler to answer; sending to a socket that closed
    raises WebSocketDisconnected whichever layer noticed; closing a closed socket does nothing;
    and a close reason is cut to what a close frame holds."""

    # A send found the connection gone (the server may have closed it itself, for instance
    # when the peer stopped answering its pings).
    peer_gone = False

    @property
    def closed(self) -> bool:
        ws = self.ws
        return (
            self.peer_gone
            or ws.application_state is WebSocketState.DISCONNECTED
            or ws.client_state is WebSocketState.DISCONNECTED
        )

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        while not self.closed:
            try:
                text = await self.ws.receive_text()
            except KeyError as error:  # a binary message: Starlette's has no "text"
                raise NonTextMessageReceived from error
            except WebSocketDisconnect:
                return
            try:
                message = self.view.decode_json(text)
            except ValueError:
                message = NOT_JSON
            except RecursionError:  # valid, perhaps, but deeper than the decoder goes
                message = TOO_DEEP
            yield message

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.closed:
            raise WebSocketDisconnected
        encoded = self.view.encode_json(message)
        try:
            if isinstance(encoded, bytes):
                await self.ws.send_bytes(encoded)
            else:
                await self.ws.send_text(encoded)
        except WebSocketDisconnect as error:  # the peer left (Starlette saw the server's OSError)
            raise WebSocketDisconnected from error
        except RuntimeError as error:  # the connection was closed (by us, or by the server itself)
            self.peer_gone = True
            raise WebSocketDisconnected from error

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return  # closed already, by either side: nobody to tell
        try:
            await self.ws.close(code=code, reason=close_reason(reason))
        except (WebSocketDisconnect, RuntimeError) as error:
            self.peer_gone = True
            log.debug("A WebSocket went away before its close (%s) could be sent: %r", code, error)


class TransportWSHandler(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """graphql-transport-ws, with shared subscriptions and server pings to keep idle sockets alive."""

    view: StreamingView
    outbox: Outbox | None = None
    beat: Beat | None = None
    unwatch: Callable[[], None] | None = None

    async def handle_message(self, message: Message) -> None:
        """Every message is checked against the protocol's shapes first: one that does not fit
        closes the socket with 4400 and a reason saying what is wrong, as the protocol says."""
        problem = transport_problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(cast(Message, normalised(cast(dict[str, Any], message))))

    async def handle_invalid_message(self, error_message: str) -> None:
        await self.websocket.close(code=BAD_MESSAGE_CODE, reason=error_message)

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, WebSocketDisconnected):
            # The peer left while its operation ran: how connections end, not a fault.
            log.debug("An operation ended with its WebSocket.")
            return
        await super().handle_task_exception(error)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self.beat is None:
            # Pings keep idle sockets alive; between them, the caller's access is checked again
            # every so often, and a socket whose access changed is closed (the client
            # reconnects and each subscription is authorized anew).
            outbox = outbox_of(self)
            view, websocket, handler = self.view, self.websocket, self
            self.beat = view.heartbeat.join(
                lambda: outbox.write(PING),
                lambda: view.closed_if_access_changed(websocket, handler.context),
            )
            self.unwatch = view.watch(self.websocket, self.context)

    async def shutdown(self) -> None:
        if self.unwatch is not None:
            self.unwatch()
        if self.beat is not None:
            self.beat.end()
        # Strawberry cancels each operation once and then waits for it.
        await ended([operation.task for operation in self.operations.values() if operation.task is not None])
        await super().shutdown()

    async def run_operation(self, operation: Operation[RequestContext, None]) -> None:
        with SUBSCRIPTIONS.labels("graphql-transport-ws").track_inprogress():
            await self._run_operation(operation)

    async def _run_operation(self, operation: Operation[RequestContext, None]) -> None:
        if await self.view.closed_if_access_changed(self.websocket, self.context):
            return  # a key revoked or a login ended since the socket opened: nothing more runs
        await _identify_again(self)
        refusal = await self.view.refusal(self.context)
        if refusal is not None:
            message = {"id": operation.id, "type": "error", "payload": [refusal]}
            await operation.send_operation_message(cast(TransportErrorMessage, message))
            return
        selected = self.view.operation(operation.query, operation.operation_name)
        if isinstance(selected, GraphQLError):
            if isinstance(selected, GraphQLSyntaxError):
                # A document that does not parse: the protocol's 4400, as Strawberry closes.
                await self.websocket.close(code=BAD_MESSAGE_CODE, reason=selected.message)
                return
            message = {
                "id": operation.id,
                "type": "error",
                "payload": [format_error(selected, self.context.request_id)],
            }
            await operation.send_operation_message(cast(TransportErrorMessage, message))
            return
        fanout = self.view.fanout
        shared = fanout.shared(operation.query, operation.variables, operation.operation_name)
        if shared is None:
            # Read by Strawberry right away, before this task awaits anything: per operation.
            self.context = self.context.fresh()
            await super().run_operation(operation)
            return
        member = Member(outbox_of(self), operation.id, "next")
        errors = await fanout.serve(shared, member, operation.query, operation.operation_name, self.context)
        try:
            if errors:
                message = {"id": operation.id, "type": "error", "payload": errors}
                await operation.send_operation_message(cast(TransportErrorMessage, message))
            else:
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except WebSocketDisconnected:
            return  # the group ended as the client left: nobody to tell


class GraphQLWSHandler(BaseGraphQLWSHandler[RequestContext, None]):
    """The legacy graphql-ws protocol (subscriptions-transport-ws), with shared subscriptions and
    the same connection-init timeout as graphql-transport-ws.

    As subscriptions-transport-ws's server answers them: a message that does not fit the
    protocol gets ``error`` for the operation it names, or ``connection_error`` when it names
    none (not JSON, not an object, no usable id), and the connection stays open; a second
    ``connection_init`` closes it with 4429, as graphql-transport-ws does (it would change who
    the connection acts as). Only subscriptions run here (Strawberry's rule): a query or
    mutation gets ``error`` with BAD_REQUEST."""

    view: StreamingView
    outbox: Outbox | None = None
    beat: Beat | None = None
    acknowledged: asyncio.Event | None = None
    init_received = False
    unwatch: Callable[[], None] | None = None

    async def handle(self) -> None:
        self.acknowledged = asyncio.Event()
        timer = asyncio.create_task(self._close_unless_initialised(self.acknowledged))
        try:
            await super().handle()
        finally:
            timer.cancel()
            if self.unwatch is not None:
                self.unwatch()
            if self.beat is not None:
                self.beat.end()

    async def handle_message(self, message: OperationMessage) -> None:
        problem = legacy_problem(message)
        if problem is None:
            await super().handle_message(cast(OperationMessage, normalised(cast(dict[str, Any], message))))
            return
        operation_id, sentence = problem
        error: dict[str, object] = {"message": sentence, "extensions": {"code": BAD_REQUEST}}
        if operation_id is None:
            await self.send_message(ConnectionErrorMessage(type="connection_error", payload=error))
        else:
            await self.send_message(ErrorMessage(type="error", id=operation_id, payload=error))  # type: ignore[typeddict-item]

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        if self.init_received:
            await self.websocket.close(code=TOO_MANY_INITS_CODE, reason="Too many initialisation requests")
            return
        self.init_received = True
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self.acknowledged is not None:
            self.acknowledged.set()
            # A keep-alive at once, as subscriptions-transport-ws's server sends one, then one
            # per interval; and the caller's access checked again, as on graphql-transport-ws.
            outbox = outbox_of(self)
            outbox.write(KEEP_ALIVE)
            view, websocket, handler = self.view, self.websocket, self
            self.beat = view.heartbeat.join(
                lambda: outbox.write(KEEP_ALIVE),
                lambda: view.closed_if_access_changed(websocket, handler.context),
            )
            self.unwatch = view.watch(self.websocket, self.context)

    async def cleanup_operation(self, operation_id: str) -> None:
        # Strawberry cancels the operation once and then waits for it: on a ``stop``, the whole
        # connection would wait with it.
        task = self.tasks.get(operation_id)
        if task is not None:
            await ended([task])
        await super().cleanup_operation(operation_id)

    async def _close_unless_initialised(self, acknowledged: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(self.view.connection_init_timeout):
                await acknowledged.wait()
        except TimeoutError:
            await self.websocket.close(code=INIT_TIMEOUT_CODE, reason="Connection initialisation timeout")

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        # Nothing awaits this task (it removes itself from ``tasks`` when it ends), so nothing
        # may escape it; a peer that left ends it here, as it ends the connection.
        try:
            with SUBSCRIPTIONS.labels("graphql-ws").track_inprogress():
                await self._serve_operation(operation_id, query, operation_name, variables)
        except WebSocketDisconnected:
            log.debug("An operation ended with its WebSocket.")
        finally:
            self.tasks.pop(operation_id, None)

    async def _serve_operation(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        view = self.view
        if await view.closed_if_access_changed(self.websocket, self.context):
            return  # a key revoked or a login ended since the socket opened: nothing more runs
        await _identify_again(self)
        refusal = await view.refusal(self.context)
        if refusal is None:
            selected = view.operation(query, operation_name)
            if isinstance(selected, GraphQLError):
                refusal = format_error(selected, self.context.request_id)
            elif selected.operation is not OperationType.SUBSCRIPTION:
                refusal = {"message": ONLY_SUBSCRIPTIONS, "extensions": {"code": BAD_REQUEST}}
        if refusal is not None:
            await self.send_message(ErrorMessage(type="error", id=operation_id, payload=refusal))  # type: ignore[typeddict-item]
            return
        fanout = view.fanout
        shared = fanout.shared(query, variables, operation_name)
        if shared is None:
            self.context = self.context.fresh()  # read before this task awaits anything
            await super().handle_async_results(operation_id, query, operation_name, variables)
            return
        member = Member(outbox_of(self), operation_id, "data")
        try:
            errors = await fanout.serve(shared, member, query, operation_name, self.context)
            if errors:
                await self.send_message(ErrorMessage(type="error", id=operation_id, payload=errors[0]))  # type: ignore[typeddict-item]
            else:
                await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            await self.send_message({"type": "complete", "id": operation_id})


class StreamingView(GraphQL[RequestContext, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = GraphQLWSHandler
    websocket_adapter_class = SocketAdapter

    def __init__(
        self,
        schema: PollySchema,
        fanout: Fanout,
        context: Callable[[Principal], RequestContext],
        authenticator: Authenticator,
        gate: RequestGate,
        *,
        heartbeat: Heartbeat,
        connection_init_timeout: float = 10.0,
        max_subscriptions_per_connection: int = 100,
        allowed_origins: Sequence[str] = (),
        access_watch: AccessWatch,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            # One schedule for the whole process (``heartbeat``) instead of a task per socket.
            keep_alive=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=connection_init_timeout),
            max_subscriptions_per_connection=max_subscriptions_per_connection,
            # Strawberry refuses cross-origin handshakes unless the origin is allowed here.
            allowed_origins=allowed_origins,
        )
        self.fanout = fanout
        self.heartbeat = heartbeat
        self.connection_init_timeout = connection_init_timeout
        self._context = context
        self._authenticator = authenticator
        self._gate = gate
        self.access_watch = access_watch

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        credentials = from_scope(request.scope)
        unavailable = None
        admitted = request.scope.get("state", {}).get(PRINCIPAL)  # SSE: admitted by the endpoint
        if isinstance(admitted, Principal):
            principal = admitted
        else:
            # A WebSocket handshake is a cross-site read waiting to happen: a cookie only counts
            # when the page that opened the socket is ours (or an allowed origin).
            try:
                principal = await self._identify(credentials, cross_site_guard=isinstance(request, WebSocket))
            except UNCHECKABLE as error:
                principal, unavailable = anonymous(credentials.address_bucket), error
        context = self._context(principal)
        context.credentials = credentials
        context.unavailable = unavailable
        if isinstance(admitted, Principal):
            # No socket loop looks at an SSE stream again: its subscription asks before each
            # message it sends.
            context.recheck = self._rechecker(context)
        return context

    def _rechecker(self, context: RequestContext) -> Callable[[], Awaitable[str | None]]:
        """access_changed for an SSE stream, asked at most once per recheck interval."""
        loop = asyncio.get_running_loop()
        checked = loop.time()

        async def recheck() -> str | None:
            nonlocal checked
            if loop.time() - checked < self.heartbeat.recheck_interval:
                return None
            checked = loop.time()
            return await self.access_changed(context)

        return recheck

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | dict[str, object] | None:
        """Credentials in the connection-init payload replace the handshake's."""
        params = context.connection_params
        wants_key = isinstance(params, dict) and any(
            isinstance(name, str) and name.lower() == "authorization" for name in params
        )
        if wants_key and context.credentials is not None:
            context.credentials = with_connection_params(context.credentials, params)
            await self._act_as_credentials(context)
        return None

    async def _act_as_credentials(self, context: RequestContext) -> bool:
        """Make a socket's context act as whom its credentials name; whether they could be
        checked (if not, it acts as nobody and says why in ``unavailable``)."""
        if context.credentials is None:
            return False
        try:
            context.act_as(await self._identify(context.credentials, cross_site_guard=True))
        except UNCHECKABLE as error:
            context.act_as(anonymous(context.credentials.address_bucket))
            context.unavailable = error
            return False
        context.unavailable = None
        return True

    async def _identify(self, credentials: Credentials, *, cross_site_guard: bool) -> Principal:
        """Who a WebSocket presents itself as. A key may be looked up in the database, so each
        attempt costs the sender's address a token first, as on HTTP."""
        if credentials.authorization is not None:
            by_address = credentials.address_bucket
            admission = await self._gate.admit(by_address)
            if not admission.allowed:
                return anonymous(by_address, RateLimited(admission.retry_after).message)
        return await self._authenticator.principal(credentials, cross_site_guard=cross_site_guard)

    def watch(self, websocket: Any, context: RequestContext) -> Callable[[], None]:
        """Check this socket again as soon as any API process announces that its caller's access
        changed; returns the function that stops it (when the socket ends)."""
        if not context.principal.authenticated:
            return lambda: None
        return self.access_watch.watch(
            context.principal, lambda: self.closed_if_access_changed(websocket, context)
        )

    async def closed_if_access_changed(self, websocket: Any, context: RequestContext) -> bool:
        """Close a WebSocket whose caller's access changed (4403, saying why); whether it did."""
        reason = await self.access_changed(context, cross_site_guard=True)
        if reason is not None:
            await websocket.close(code=ACCESS_CHANGED_CODE, reason=reason[:120])
        return reason is not None

    async def access_changed(self, context: RequestContext, *, cross_site_guard: bool = False) -> str | None:
        """Why a long-lived connection may no longer act as it did (a key revoked, a login
        ended, guilds or permissions changed); None while nothing changed, or while it cannot
        be told (the database or Discord unreachable: asked again next time)."""
        if context.credentials is None or not context.principal.authenticated:
            return None
        try:
            principal = await self._authenticator.principal(
                context.credentials, cross_site_guard=cross_site_guard
            )
        except (PollyError, CacheUnavailable) as error:
            log.warning("A connection's access could not be checked again (%s); trying later.", error)
            return None
        if principal.refused is not None:
            return principal.refused
        if principal.access_scope != context.principal.access_scope:
            return "Your access changed; reconnect to subscribe again."
        return None

    def operation(self, query: str, operation_name: str | None) -> OperationDefinitionNode | GraphQLError:
        """The operation a WebSocket message asks to run, or the error saying why there is none
        (the document does not parse, or names no such operation): the client's mistake,
        answered before Strawberry would take it for a fault of ours."""
        schema = cast(PollySchema, self.schema)
        document = parse_document(query, schema.limits.max_tokens)
        if isinstance(document, GraphQLError):
            return document
        operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
        if operation_name is None:
            if len(operations) == 1:
                return operations[0]
            if not operations:
                return GraphQLError("The document holds no operation to execute.")
            return GraphQLError("The document holds several operations; say which with operationName.")
        for operation in operations:
            if operation.name is not None and operation.name.value == operation_name:
                return operation
        return GraphQLError(f"The document holds no operation named {shown(operation_name)}.")

    async def identified_again(self, context: RequestContext) -> bool:
        """Check again the credentials of a socket whose caller could not be told when it
        opened (the database unreachable); whether that worked now."""
        return context.unavailable is not None and await self._act_as_credentials(context)

    async def refusal(self, context: RequestContext) -> dict[str, Any] | None:
        """An operation's start takes a token from its caller's bucket; the error when empty,
        or when who the caller is could not be checked (each operation is told so)."""
        if context.unavailable is not None:
            return context.unavailable.formatted
        admission = await self._gate.admit(context.principal.bucket)
        if admission.allowed:
            return None
        error = RateLimited(admission.retry_after)
        return error.formatted


async def _identify_again(handler: TransportWSHandler | GraphQLWSHandler) -> None:
    # SERVICE_UNAVAILABLE tells the client to try again in a moment: on the same socket too,
    # so each operation of a socket that could not be identified checks again. Once it is,
    # announced access changes reach it as any other socket's.
    if await handler.view.identified_again(handler.context):
        if handler.unwatch is not None:
            handler.unwatch()
        handler.unwatch = handler.view.watch(handler.websocket, handler.context)


def wants_event_stream(scope: MutableMapping[str, Any]) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"accept" and b"text/event-stream" in value:
            return True
    return False
