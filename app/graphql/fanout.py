"""Subscriptions shared by every subscriber asking the same thing.

Subscribers whose subscription is the same — document, operation, and variables other than
``since`` — join one *group*, whoever they are: what a group sends depends only on the guild,
and each subscriber is authorized for that guild before joining. A group runs the subscription once through
Strawberry (one resolver, one Redis subscription of the event hub), serializes each result
once, and sent to every member's socket: at once to a socket that takes writes, queued in its
outbox otherwise (app/graphql/outbox.py): nothing in a broadcast waits for a socket.

A member that asks for ``since`` joins the group at once, holding what the group sends, while a
private replay of what it missed runs for it alone; then it receives what the group sent after
the last replayed event, and is live. A member whose socket falls behind is skipped (it never
slows the others) and, once drained, gets the group's latest state once as GUILD_RESYNCED.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    ASTValidationRule,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    IntValueNode,
    NullValueNode,
    OperationType,
    StringValueNode,
    VariableNode,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from app import collector
from app.access.policy import READ_ROLES, authorize
from app.cache.event_log import parse_event_id
from app.discord.snowflake import parse_snowflake
from app.errors import PollyError
from app.graphql.context import RequestContext
from app.graphql.outbox import Outbox
from app.graphql.schema import PollySchema
from app.telemetry.metrics import DELIVERY_SECONDS, FANOUT_MESSAGES

log = logging.getLogger(__name__)

SHARED_FIELD = "guildRolesChanged"
RESYNC_CHECK_INTERVAL = 0.1
HELD_LIMIT = 1000  # messages a member holds while its replay runs

Errors = list[dict[str, Any]]
GroupKey = tuple[str, str, bytes]


def _order(event_id: str | None) -> tuple[int, int]:
    return parse_event_id(event_id or "") or (0, 0)


class Member:
    """One subscriber of a group: its socket, and the envelope its protocol wraps payloads in."""

    # A broadcast reads every member of a group: slots keep each one small and in one piece.
    __slots__ = ("_held", "behind", "done", "head", "outbox")

    def __init__(self, outbox: Outbox, operation_id: str, message_type: str) -> None:
        self.outbox = outbox
        envelope = {"id": operation_id, "type": message_type, "payload": None}
        # The envelope up to its payload, which each message completes (and closes with "}").
        self.head = orjson.dumps(envelope).decode().removesuffix("null}")

        self.behind = False
        self._held: list[tuple[str | None, str]] | None = None
        self.done: asyncio.Future[Errors | None] = asyncio.get_running_loop().create_future()

    @property
    def live(self) -> bool:
        """Neither holding (a replay runs) nor behind: the group's next message goes out as is."""
        return self._held is None and not self.behind

    def hold(self) -> None:
        """Keep what the group sends until ``release`` (while a replay runs)."""
        self._held = []

    def release(self, after: str | None) -> None:
        """Send what was held that came after event ``after``, and go live."""
        held, self._held = self._held or [], None
        for event_id, payload in held:
            if after is None or event_id is None or _order(event_id) > _order(after):
                self.deliver(payload, event_id)

    def send_now(self, payload: str) -> None:
        """Send past what is held (the replay's own messages)."""
        if not self.behind and not self.outbox.write(self.head + payload + "}"):
            self.behind = True

    def deliver(self, payload: str, event_id: str | None = None) -> None:
        if self._held is not None:
            if len(self._held) < HELD_LIMIT:
                self._held.append((event_id, payload))
            else:
                self.behind = True  # too much while replaying: the latest state will follow
            return
        if self.behind:
            return
        if not self.outbox.write(self.head + payload + "}"):
            self.behind = True

    def finish(self, errors: Errors | None) -> None:
        if not self.done.done():
            self.done.set_result(errors)


@dataclass(frozen=True)
class Shape:
    """What sharing a subscription needs to know of its document."""

    field: str  # the response key of guildRolesChanged
    kind: str  # the response keys of its kind and roleId ("" when not selected)
    role_id: str
    since_variable: str | None  # the variable that gives `since`, if one does
    guild_variable: str | None  # the variable that gives `guildId`, or None when it is literal
    guild_literal: str | None


@dataclass(frozen=True)
class Shared:
    key: GroupKey
    shape: Shape
    guild_id: int  # whose data the group sends: what each member must be allowed to read
    variables: dict[str, Any]  # the group's: without `since`
    replay_variables: dict[str, Any] | None  # this subscriber's own, for its replay


@functools.lru_cache(maxsize=512)
def _shape(
    query: str,
    operation_name: str | None,
    schema: GraphQLSchema,
    max_tokens: int,
    rules: tuple[type[ASTValidationRule], ...],
) -> Shape | None:
    """The shape of a valid subscription to ``guildRolesChanged`` alone; None for anything else
    (which Strawberry then runs, and reports errors for, the usual way). The API's own limits
    come first, so an oversized document costs no more here than there."""
    try:
        document = parse(query, max_tokens=max_tokens)
    except GraphQLError:
        return None
    if validate(schema, document, (*rules, *specified_rules)):
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operation.selection_set.selections
    if (
        len(selections) != 1
        or not isinstance(selections[0], FieldNode)
        or selections[0].name.value != SHARED_FIELD
    ):
        return None
    field = selections[0]
    since_variable = guild_variable = guild_literal = None
    for argument in field.arguments or ():
        if argument.name.value == "guildId":
            if isinstance(argument.value, VariableNode):
                guild_variable = argument.value.name.value
            elif isinstance(argument.value, StringValueNode | IntValueNode):
                guild_literal = argument.value.value
        if argument.name.value == "since":
            if isinstance(argument.value, VariableNode):
                since_variable = argument.value.name.value
            elif not isinstance(argument.value, NullValueNode):
                return None  # a literal `since` replays for one subscriber: not shared
    keys = {"kind": "", "roleId": ""}
    for selection in field.selection_set.selections if field.selection_set else ():
        if isinstance(selection, FieldNode) and selection.name.value in keys:
            keys[selection.name.value] = (selection.alias or selection.name).value
    return Shape(
        (field.alias or field.name).value,
        keys["kind"],
        keys["roleId"],
        since_variable,
        guild_variable,
        guild_literal,
    )


class Group:
    def __init__(
        self, fanout: Fanout, shared: Shared, query: str, operation_name: str | None, context: RequestContext
    ) -> None:
        self._fanout = fanout
        self.key = shared.key
        self._shape = shared.shape
        self._query = query
        self._variables = shared.variables
        self._operation_name = operation_name
        self._event_ids: deque[str | None] = deque()
        self._context = context.fresh(announce=self._event_ids.append)
        self.members: set[Member] = set()
        self._latest: dict[str, Any] | None = None
        self._task = asyncio.create_task(self._run(), name="subscription-group")
        self._resyncs: asyncio.Task[None] | None = None

    def add(self, member: Member) -> None:
        self.members.add(member)

    def remove(self, member: Member) -> None:
        self.members.discard(member)
        if not self.members:
            self.stop()

    def stop(self) -> None:
        self._unregister()
        self._task.cancel()
        if self._resyncs is not None:
            self._resyncs.cancel()

    def _unregister(self) -> None:
        if self._fanout.groups.get(self.key) is self:  # not a newer group with the same key
            del self._fanout.groups[self.key]

    async def _run(self) -> None:
        errors: Errors | None = None
        try:
            source = await self._fanout.schema.subscribe(
                self._query,
                variable_values=self._variables,
                context_value=self._context,
                operation_name=self._operation_name,
            )
            first = True
            async with contextlib.aclosing(source):
                async for result in source:
                    if first and _failed(result):
                        errors = [dict(error.formatted) for error in result.errors or []]
                        return
                    first = False
                    await self._broadcast(result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("A shared subscription failed; its subscribers are told so.")
            errors = [
                {"message": "Internal error; it is logged.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
            ]
        finally:
            self._unregister()
            for member in list(self.members):
                member.finish(errors)

    async def _broadcast(self, result: ExecutionResult) -> None:
        event_id = self._event_ids.popleft() if self._event_ids else None
        if result.data is not None:
            self._latest = result.data
        payload = _payload(result)
        fell_behind = False
        ready: list[Member] = []
        queued = sent = 0
        with collector.paused():
            for member in tuple(self.members):
                if member.live and member.outbox.ready():
                    ready.append(member)
                    continue
                member.deliver(payload, event_id)
                fell_behind = fell_behind or member.behind
                queued += 1
        # Each of these sends completes without waiting (its socket takes writes), one after
        # the other: no task per socket. One that stopped taking writes meanwhile (a socket
        # with several subscriptions here, filled by the ones before) is queued instead.
        for member in ready:
            if member.outbox.ready():
                await member.outbox.send_now(member.head + payload + "}")
                sent += 1
            else:
                member.deliver(payload, event_id)
                fell_behind = fell_behind or member.behind
                queued += 1
        FANOUT_MESSAGES.labels("direct").inc(sent)
        FANOUT_MESSAGES.labels("queued").inc(queued)
        if fell_behind and self._resyncs is None:
            self._resyncs = asyncio.create_task(self._resync_when_drained())
        published = parse_event_id(event_id or "")
        if published is not None:
            # Once per broadcast, not per member: the time until the last direct send (the
            # queued ones follow as their sockets take them).
            DELIVERY_SECONDS.observe(max(0.0, time.time() - published[0] / 1000))

    async def _resync_when_drained(self) -> None:
        """Members that fell behind get the latest state once, as GUILD_RESYNCED, when they drain."""
        try:
            while any(member.behind for member in self.members):
                await asyncio.sleep(RESYNC_CHECK_INTERVAL)
                payload = self._resync_payload()
                for member in tuple(self.members):
                    if member.behind and member.outbox.drained():
                        member.behind = False
                        member.deliver(payload)
        finally:
            self._resyncs = None

    def _resync_payload(self) -> str:
        data = copy.deepcopy(self._latest) or {}
        message = data.get(self._shape.field)
        if isinstance(message, dict):
            if self._shape.kind:
                message[self._shape.kind] = "GUILD_RESYNCED"
            if self._shape.role_id:
                message[self._shape.role_id] = None
        return orjson.dumps({"data": data}).decode()


def _stop_if_cancelled() -> None:
    """A cancellation that landed while the replay read Redis may have been swallowed there
    (redis-py does, see app/cache/gate.py), and the replay ran on to its end; whoever cancelled
    the subscription (a ``complete``, a client that left) asked it to stop, so stop, rather
    than join the group's messages for good."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _failed(result: ExecutionResult | PreExecutionError) -> bool:
    return isinstance(result, PreExecutionError) or bool(result.errors and result.data is None)


def _payload(result: ExecutionResult) -> str:
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    return orjson.dumps(body).decode()


class Fanout:
    def __init__(self, schema: PollySchema, *, buffer_limit: int = 256 * 1024) -> None:
        self.schema = schema
        self.buffer_limit = buffer_limit
        self.groups: dict[GroupKey, Group] = {}

    def shared(
        self, query: str, variables: dict[str, Any] | None, operation_name: str | None
    ) -> Shared | None:
        """How a subscription joins a group, or None when it is not one to share."""
        if not isinstance(query, str) or (variables is not None and not isinstance(variables, dict)):
            return None
        schema = self.schema
        limits = schema.limits
        shape = _shape(query, operation_name, schema.validation_schema, limits.max_tokens, schema.rules)
        if shape is None:
            return None
        group_variables = dict(variables or {})
        since = group_variables.pop(shape.since_variable, None) if shape.since_variable else None
        if since is not None and not isinstance(since, str):
            return None  # not a String: Strawberry reports it, the usual way
        guild = (
            shape.guild_literal if shape.guild_variable is None else group_variables.get(shape.guild_variable)
        )
        guild_id = parse_snowflake(str(guild)) if isinstance(guild, str | int) else None
        if guild_id is None:
            return None  # Strawberry reports the bad id, the usual way
        try:
            canonical = orjson.dumps(group_variables, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        replay = None
        if since is not None and shape.since_variable is not None:
            replay = {**group_variables, shape.since_variable: since}
        return Shared((query, operation_name or "", canonical), shape, guild_id, group_variables, replay)

    async def serve(
        self, shared: Shared, member: Member, query: str, operation_name: str | None, context: RequestContext
    ) -> Errors | None:
        """Serve ``member`` (a subscriber asking with ``context``) until its group ends: None
        when it completed, or the errors that ended it (or ended its replay, or refused it)."""
        try:
            authorize(context.principal, shared.guild_id, READ_ROLES)
        except PollyError as error:
            # As the unshared path answers for a guild that does not exist, to the byte: a
            # refusal must not tell that the guild exists.
            return [error.formatted]
        group = self.groups.get(shared.key)
        if group is None:
            group = Group(self, shared, query, operation_name, context)
            self.groups[shared.key] = group
        if shared.replay_variables is not None:
            member.hold()
        group.add(member)
        try:
            if shared.replay_variables is not None:
                replayed = await self._replay(context, shared.replay_variables, member, query, operation_name)
                if isinstance(replayed, list):
                    return replayed
                _stop_if_cancelled()
                member.release(after=replayed)
            return await member.done
        finally:
            group.remove(member)
            # What the group queued for this member goes out before its last message does.
            await member.outbox.flushed()

    async def _replay(
        self,
        context: RequestContext,
        variables: dict[str, Any],
        member: Member,
        query: str,
        operation_name: str | None,
    ) -> Errors | str | None:
        """Run the subscription with ``since`` for this member alone, until the replay ends:
        the id of the last event it sent, or the errors it ended with."""
        event_ids: deque[str | None] = deque()
        own = context.fresh(replay_only=True, announce=event_ids.append)
        source = await self.schema.subscribe(
            query, variable_values=variables, context_value=own, operation_name=operation_name
        )
        last: str | None = None
        first = True
        async with contextlib.aclosing(source):
            async for result in source:
                if first and _failed(result):
                    return [dict(error.formatted) for error in result.errors or []]
                first = False
                event_id = event_ids.popleft() if event_ids else None
                member.send_now(_payload(result))
                last = event_id or last
        return last

    @property
    def subscribers(self) -> int:
        return sum(len(group.members) for group in self.groups.values())
