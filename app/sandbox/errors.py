"""Discord's JSON errors: ``{"message": ..., "code": ...}`` with the HTTP status Discord uses."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError


class DiscordError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


_UNKNOWN = {
    "guild": (10004, "Unknown Guild"),
    "role": (10011, "Unknown Role"),
    "channel": (10003, "Unknown Channel"),
    "member": (10007, "Unknown Member"),
    "message": (10008, "Unknown Message"),
    "user": (10013, "Unknown User"),
}


def unknown(kind: str) -> DiscordError:
    code, message = _UNKNOWN[kind]
    return DiscordError(404, code, message)


def unauthorized() -> DiscordError:
    return DiscordError(401, 0, "401: Unauthorized")


def missing_access() -> DiscordError:
    return DiscordError(403, 50001, "Missing Access")


def missing_permissions() -> DiscordError:
    return DiscordError(403, 50013, "Missing Permissions")


def not_found() -> DiscordError:
    return DiscordError(404, 0, "404: Not Found")


def method_not_allowed() -> DiscordError:
    return DiscordError(405, 0, "405: Method Not Allowed")


def invalid_json() -> DiscordError:
    return DiscordError(400, 50109, "The request body contains invalid JSON.")


def unknown_interaction() -> DiscordError:
    return DiscordError(404, 10062, "Unknown interaction")


def already_acknowledged() -> DiscordError:
    return DiscordError(400, 40060, "Interaction has already been acknowledged.")


def unknown_webhook() -> DiscordError:
    return DiscordError(404, 10015, "Unknown Webhook")


def invalid_webhook_token() -> DiscordError:
    return DiscordError(401, 50027, "Invalid Webhook Token")


def empty_message() -> DiscordError:
    return DiscordError(400, 50006, "Cannot send an empty message")


def not_author() -> DiscordError:
    return DiscordError(403, 50005, "Cannot edit a message authored by another user")


def max_roles(limit: int) -> DiscordError:
    return DiscordError(400, 30005, f"Maximum number of guild roles reached ({limit})")


def invalid_role() -> DiscordError:
    return DiscordError(400, 50028, "Invalid Role")


def field_error(path: tuple[str | int, ...], code: str, message: str) -> DiscordError:
    return invalid_form_body([(path, code, message)])


def invalid_form_body(problems: list[tuple[tuple[str | int, ...], str, str]]) -> DiscordError:
    """A 50035 error; ``problems`` are (field path, Discord error code, sentence)."""
    errors: dict[str, Any] = {}
    for path, code, message in problems:
        node = errors
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
    return DiscordError(400, 50035, "Invalid Form Body", errors)


# The pydantic error type of form_problem: _translate passes its code and words through as they are.
FORM_PROBLEM = "discord_form_problem"


def form_problem(code: str, message: str) -> PydanticCustomError:
    """Raised by a body's validator: a field error in Discord's own code and words."""
    return PydanticCustomError(FORM_PROBLEM, "{message}", {"code": code, "message": message})


def _choices(expected: str) -> str:
    # pydantic lists choices as "1, 2 or 3"; Discord as "(1, 2, 3)".
    return "(" + expected.replace(" or ", ", ") + ")"


def _translate(problem: Any) -> tuple[str, str]:
    kind = problem["type"]
    ctx = problem.get("ctx") or {}
    value = problem.get("input")
    if kind == FORM_PROBLEM:
        return ctx["code"], ctx["message"]
    if kind == "missing":
        return "BASE_TYPE_REQUIRED", "This field is required"
    if kind in {"string_type"}:
        return "BASE_TYPE_STRING", "Must be a string."
    if kind in {"string_too_long", "string_too_short"}:
        low = ctx.get("min_length", 0)
        high = ctx.get("max_length")
        if high is None:
            return "BASE_TYPE_MIN_LENGTH", f"Must be {low} or more in length."
        return "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length."
    if kind in {"too_long"}:
        return "BASE_TYPE_MAX_LENGTH", f"Must be {ctx.get('max_length')} or fewer in length."
    if kind == "bool_type":
        return "BASE_TYPE_BOOLEAN", "Must be either true or false."
    if kind in {"int_type", "int_parsing", "int_from_float"}:
        return "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.'
    if kind in {"less_than_equal", "less_than"}:
        return "NUMBER_TYPE_MAX", f"int value should be less than or equal to {ctx.get('le', ctx.get('lt'))}."
    if kind in {"greater_than_equal", "greater_than"}:
        return (
            "NUMBER_TYPE_MIN",
            f"int value should be greater than or equal to {ctx.get('ge', ctx.get('gt'))}.",
        )
    if kind == "literal_error":
        return "BASE_TYPE_CHOICES", f"Value must be one of {_choices(str(ctx.get('expected')))}."
    if kind in {"list_type"}:
        return "BASE_TYPE_ARRAY", "Must be an array."
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
    if kind == "value_error":
        return "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.'
    return "BASE_TYPE_INVALID", str(problem.get("msg", "Invalid value."))


def from_validation_error(error: ValidationError) -> DiscordError:
    problems = []
    for problem in error.errors():
        # pydantic adds the name of a union member or validator to the location; Discord's
        # paths name only fields and list indexes.
        path = tuple(part for part in problem["loc"] if isinstance(part, int) or part.isidentifier())
        code, message = _translate(problem)
        problems.append((path, code, message))
    return invalid_form_body(problems)
