"""Subscriptions shared by every subscriber asking the same thing.

Subscribers whose subscription is the same — document, operation, variables and access
scope — join one *group*. A group runs the subscription once through Strawberry (one
resolver, one Redis subscription of the event hub), serializes each result once, and writes
it to every member's socket, which costs a frame header and a write per member. A member
whose socket falls behind is skipped (it never slows the others) and, once it has drained,
gets the group's latest state once as a GUILD_RESYNCED message instead of its backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
from collections.abc import Callable
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    validate,
)
from strawberry.types.execution import PreExecutionError

from app.graphql.context import RequestContext
from app.graphql.frames import SocketWriter
from app.graphql.schema import PollySchema

log = logging.getLogger(__name__)

SHARED_FIELD = "guildRolesChanged"
RESYNC_CHECK_INTERVAL = 0.1

GroupKey = tuple[str, str, str, bytes]


class Member:
    """One subscriber of a group: its socket, and the envelope its protocol wraps payloads in."""

    def __init__(self, writer: SocketWriter, operation_id: str, message_type: str) -> None:
        self.writer = writer
        self._head = (
            b'{"id":' + orjson.dumps(operation_id) + b',"type":"' + message_type.encode() + b'","payload":'
        )
        self.behind = False
        self.done: asyncio.Future[list[dict[str, Any]] | None] = asyncio.get_running_loop().create_future()

    def deliver(self, payload: bytes) -> None:
        if self.behind:
            return
        if not self.writer.write(self._head + payload + b"}"):
            self.behind = True

    def finish(self, errors: list[dict[str, Any]] | None) -> None:
        if not self.done.done():
            self.done.set_result(errors)


@functools.lru_cache(maxsize=512)
def _shared_operation(
    query: str, operation_name: str | None, schema: GraphQLSchema
) -> tuple[str, str, str] | None:
    """For a valid subscription to ``guildRolesChanged`` alone: the response keys of the field
    and of its ``kind`` and ``roleId`` (for rewriting a resync); None for anything else."""
    try:
        document: DocumentNode = parse(query)
    except GraphQLError:
        return None
    if validate(schema, document):
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name is not None and op.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operations[0].selection_set.selections
    if (
        len(selections) != 1
        or not isinstance(selections[0], FieldNode)
        or selections[0].name.value != SHARED_FIELD
    ):
        return None
    field = selections[0]
    keys = {"kind": "", "roleId": ""}
    for selection in field.selection_set.selections if field.selection_set else ():
        if isinstance(selection, FieldNode) and selection.name.value in keys:
            keys[selection.name.value] = (selection.alias or selection.name).value
    return ((field.alias or field.name).value, keys["kind"], keys["roleId"])


class Group:
    def __init__(
        self,
        fanout: Fanout,
        key: GroupKey,
        response_keys: tuple[str, str, str],
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: RequestContext,
    ) -> None:
        self._fanout = fanout
        self.key = key
        self._response_keys = response_keys
        self._query = query
        self._variables = variables
        self._operation_name = operation_name
        self._context = context
        self.members: set[Member] = set()
        self._latest: dict[str, Any] | None = None
        self._task = asyncio.create_task(self._run(), name=f"subscription-group-{len(fanout.groups)}")
        self._resyncs: asyncio.Task[None] | None = None

    def add(self, member: Member) -> None:
        self.members.add(member)

    def remove(self, member: Member) -> None:
        self.members.discard(member)
        if not self.members:
            self.stop()

    def stop(self) -> None:
        self._fanout.groups.pop(self.key, None)
        self._task.cancel()
        if self._resyncs is not None:
            self._resyncs.cancel()

    async def _run(self) -> None:
        errors: list[dict[str, Any]] | None = None
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
                    if first and (
                        isinstance(result, PreExecutionError) or (result.errors and result.data is None)
                    ):
                        errors = [dict(error.formatted) for error in result.errors or []]
                        return
                    first = False
                    self._broadcast(result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("A shared subscription failed; its subscribers are told so.")
            errors = [
                {"message": "Internal error; it is logged.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
            ]
        finally:
            self._fanout.groups.pop(self.key, None)
            for member in list(self.members):
                member.finish(errors)

    def _broadcast(self, result: Any) -> None:
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        if result.data is not None:
            self._latest = result.data
        payload = orjson.dumps(body)
        for member in tuple(self.members):
            member.deliver(payload)
        if self._resyncs is None and any(member.behind for member in self.members):
            self._resyncs = asyncio.create_task(self._resync_when_drained())

    async def _resync_when_drained(self) -> None:
        """Members that fell behind get the latest state once, as GUILD_RESYNCED, when they drain."""
        try:
            while any(member.behind for member in self.members):
                await asyncio.sleep(RESYNC_CHECK_INTERVAL)
                payload = self._resync_payload()
                for member in tuple(self.members):
                    if member.behind and member.writer.drained():
                        member.behind = False
                        member.deliver(payload)
        finally:
            self._resyncs = None

    def _resync_payload(self) -> bytes:
        data = copy.deepcopy(self._latest) or {}
        field, kind, role_id = self._response_keys
        message = data.get(field)
        if isinstance(message, dict):
            if kind:
                message[kind] = "GUILD_RESYNCED"
            if role_id:
                message[role_id] = None
        return orjson.dumps({"data": data})


class Fanout:
    def __init__(
        self, schema: PollySchema, context: Callable[[str], RequestContext], *, buffer_limit: int = 256 * 1024
    ) -> None:
        self.schema = schema
        self._context = context
        self.buffer_limit = buffer_limit
        self.groups: dict[GroupKey, Group] = {}

    def key_for(
        self, query: str, variables: dict[str, Any] | None, operation_name: str | None, scope: str
    ) -> tuple[GroupKey, tuple[str, str, str]] | None:
        """The group a subscription can join, or None when it is not one to share."""
        if not isinstance(query, str) or (variables is not None and not isinstance(variables, dict)):
            return None
        response_keys = _shared_operation(query, operation_name, self.schema._schema)
        if response_keys is None:
            return None
        try:
            canonical = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        return (scope, query, operation_name or "", canonical), response_keys

    async def join(
        self,
        key: GroupKey,
        response_keys: tuple[str, str, str],
        member: Member,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> list[dict[str, Any]] | None:
        """Serve ``member`` from its group until the group ends: None when it completed, or
        the errors that ended it."""
        group = self.groups.get(key)
        if group is None:
            group = Group(self, key, response_keys, query, variables, operation_name, self._context(key[0]))
            self.groups[key] = group
        group.add(member)
        try:
            return await member.done
        finally:
            group.remove(member)
            member.writer.close()

    @property
    def subscribers(self) -> int:
        return sum(len(group.members) for group in self.groups.values())
