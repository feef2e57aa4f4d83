"""The base of every error a client is meant to read: a sentence, and a code to act on."""

from __future__ import annotations

from typing import Any


class PollyError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def extensions(self) -> dict[str, Any]:
        """graphql-core copies these into the GraphQL error, on every transport."""
        return {"code": self.code, **self.details}

    @property
    def formatted(self) -> dict[str, Any]:
        """As a GraphQL error in a response (what ``GraphQLError.formatted`` gives)."""
        return {"message": self.message, "extensions": self.extensions}
