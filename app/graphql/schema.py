"""The GraphQL schema; ``schema.graphql`` at the top of the repository is exported from it."""

from __future__ import annotations

import strawberry

import app


@strawberry.type
class Query:
    @strawberry.field(description="The version of Polly API answering.")
    def api_version(self) -> str:
        return app.__version__


schema = strawberry.Schema(query=Query)
