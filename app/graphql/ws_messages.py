"""The shapes of the messages WebSocket clients may send, checked field by field before
Strawberry sees them, and the sentences that say what is wrong: graphql-transport-ws answers a
bad one with 4400 and the reason, graphql-ws with an error message.
"""

from __future__ import annotations

import json
from typing import Any

# What a close frame's reason may hold: 125 bytes of payload, 2 of them the code (RFC 6455 5.5).
MAX_REASON_BYTES = 123


class Unparseable:
    """What a socket hands on for a text message it cannot decode, for its protocol to answer."""

    __slots__ = ("detail",)

    def __init__(self, detail: str) -> None:
        self.detail = detail


NOT_JSON = Unparseable("not valid JSON")
TOO_DEEP = Unparseable("nested too deeply to read")


def shown(value: str) -> str:
    """A client's string quoted in an answer, cut short (a close reason holds 123 bytes)."""
    quoted = json.dumps(value[:24] + ("..." if len(value) > 24 else ""))
    return quoted if len(quoted) <= 48 else quoted[:44] + '..."'


def object_or_null(value: object) -> bool:
    return value is None or isinstance(value, dict)


def id_problem(message: dict[str, Any]) -> str | None:
    operation_id = message.get("id")
    if not isinstance(operation_id, str) or not operation_id:
        return 'its "id" must be a non-empty string naming the operation'
    return None


def payload_problem(payload: object) -> str | None:
    """What is wrong with an operation's payload (graphql-transport-ws ``subscribe``, graphql-ws
    ``start``), field by field; None when nothing is."""
    if not isinstance(payload, dict):
        return "its payload must be an object holding the query"
    if not isinstance(payload.get("query"), str):
        return "payload.query must be a string holding a GraphQL document"
    if not object_or_null(payload.get("variables")):
        return "payload.variables must be an object or null"
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        return "payload.operationName must be a string or null"
    if not object_or_null(payload.get("extensions")):
        return "payload.extensions must be an object or null"
    return None


def transport_problem(message: object) -> str | None:
    """Why ``message`` is not one a graphql-transport-ws client may send, as the reason of the
    protocol's 4400 close; None when it is one. The shapes are the protocol's (graphql-ws's
    PROTOCOL.md): ``connection_init``, ``ping`` and ``pong`` with an optional object payload;
    ``subscribe`` with an id and a payload holding the query; ``complete`` with an id."""
    if isinstance(message, Unparseable):
        return f"Invalid message: {message.detail}."
    if not isinstance(message, dict):
        return "Invalid message: each message must be a JSON object with a type."
    kind = message.get("type")
    if not isinstance(kind, str):
        return 'Invalid message: "type" must be a string.'
    if kind in ("connection_init", "ping", "pong"):
        if not object_or_null(message.get("payload")):
            return f'Invalid "{kind}" message: its payload must be an object or null.'
        return None
    if kind not in ("subscribe", "complete"):
        return f"Invalid message: unknown type {shown(kind)}."
    problem = id_problem(message)
    if problem is None and kind == "subscribe":
        problem = payload_problem(message.get("payload"))
    return None if problem is None else f'Invalid "{kind}" message: {problem}.'


LEGACY_TYPES = "connection_init, start, stop or connection_terminate"


def legacy_problem(message: object) -> tuple[str | None, str] | None:
    """Why ``message`` is not one a graphql-ws (subscriptions-transport-ws) client may send, with
    the operation it names if it names one; None when it is one. The shapes are the protocol's:
    ``connection_init`` with an optional object payload; ``start`` with an id and a payload
    holding the query; ``stop`` with an id; ``connection_terminate``."""
    if isinstance(message, Unparseable):
        return None, f"The message is {message.detail}; send a JSON object with a type ({LEGACY_TYPES})."
    if not isinstance(message, dict):
        return None, f"Each message must be a JSON object with a type ({LEGACY_TYPES})."
    operation_id = message.get("id") if id_problem(message) is None else None
    kind = message.get("type")
    if not isinstance(kind, str):
        return operation_id, f'The message needs a "type", a string: {LEGACY_TYPES}.'
    if kind == "connection_init":
        if not object_or_null(message.get("payload")):
            return None, "The connection_init payload must be an object or null."
        return None
    if kind == "connection_terminate":
        return None
    if kind not in ("start", "stop"):
        return operation_id, f"Unknown message type {shown(kind)}; send {LEGACY_TYPES}."
    problem = id_problem(message)
    if problem is not None:
        return None, f"This {kind} message cannot be handled: {problem}."
    problem = payload_problem(message.get("payload")) if kind == "start" else None
    return None if problem is None else (operation_id, f"This start message cannot run: {problem}.")


def normalised(message: dict[str, Any]) -> dict[str, Any]:
    """A valid message as Strawberry takes it: a null init payload is none at all, and an empty
    operationName none (as over HTTP)."""
    if message["type"] == "connection_init" and message.get("payload") is None:
        return {**message, "payload": {}}
    payload = message.get("payload")
    if (
        message["type"] in ("subscribe", "start")
        and isinstance(payload, dict)
        and payload.get("operationName") == ""
    ):
        return {**message, "payload": {**payload, "operationName": None}}
    return message


def close_reason(reason: str) -> str:
    encoded = reason.encode()
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."
