"""How errors reach GraphQL clients: a sentence and an ``extensions.code``; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from app.errors import PollyError
from app.storage.database import DatabaseError

# What a client is told when the database fails (its own words name a path or a host).
DATABASE_UNAVAILABLE = "The database cannot be used right now; try again in a moment."

log = logging.getLogger(__name__)


def error_code(error: GraphQLError) -> str:
    given = (error.extensions or {}).get("code")
    if isinstance(given, str) and given:
        return given  # set where the error was raised (our errors, the query limits)
    original = error.original_error
    if isinstance(original, PollyError):
        return original.code
    if isinstance(original, DatabaseError):
        return "SERVICE_UNAVAILABLE"  # busy or unreachable: the client may retry
    if isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if original is None and error.path is None:
        # Validation of the document, operation selection, or variable values.
        return "GRAPHQL_VALIDATION_FAILED" if not error.message.startswith("Variable") else "BAD_USER_INPUT"
    if isinstance(original, GraphQLError):
        return "BAD_USER_INPUT"
    return "INTERNAL_SERVER_ERROR"


def format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    code = error_code(error)
    if code == "INTERNAL_SERVER_ERROR":
        # Logged with its traceback by the schema (PollySchema.process_errors).
        formatted: dict[str, Any] = {
            "message": f"Internal error; quote request id {request_id} when reporting it.",
        }
        if error.path is not None:
            formatted["path"] = error.path
        formatted["extensions"] = {"code": code, "requestId": request_id}
        return formatted
    formatted = dict(error.formatted)
    formatted["extensions"] = {**(error.extensions or {}), "code": code}
    return formatted


def request_error(message: str, code: str = "BAD_REQUEST", **details: Any) -> dict[str, Any]:
    """A response body for a request that never reached execution."""
    return {"errors": [{"message": message, "extensions": {"code": code, **details}}]}
