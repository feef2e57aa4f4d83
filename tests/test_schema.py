"""schema.graphql is what the code exports."""

from __future__ import annotations

from strawberry.printer import print_schema

from app.graphql.schema import schema
from tests.conftest import REPO


def test_committed_schema_matches_the_code() -> None:
    committed = (REPO / "schema.graphql").read_text()
    exported = print_schema(schema)
    assert committed.strip() == exported.strip(), (
        "schema.graphql is out of date; regenerate it with"
        " `strawberry export-schema app.graphql.schema:schema > schema.graphql`"
    )
