"""The GraphQL schema; ``schema.graphql`` at the top of the repository is exported from it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import strawberry
from graphql import ASTValidationRule, GraphQLError, GraphQLSchema
from graphql import build_schema as build_from_sdl
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types import ExecutionContext, Info

import app
from app.access.policy import READ_ROLES, permitted, require_authenticated, require_scope
from app.graphql.context import RequestContext
from app.graphql.errors import DATABASE_UNAVAILABLE, error_code
from app.graphql.limits import CACHED_QUERY_CHARS, QueryLimits, parse_document, validation_rules
from app.graphql.poll_types import Poll, PollConnection
from app.graphql.polls import Mutation, poll, polls
from app.graphql.subscription import Subscription
from app.graphql.types import Channel, Guild, Role, RoleValidation, snowflake
from app.graphql.viewer import Viewer
from app.roles.errors import InvalidInput, RolesError
from app.roles.pingability import bot_abilities, pingable_roles, validate_role
from app.storage.database import DatabaseError

log = logging.getLogger(__name__)

MAX_ROLE_IDS = 250  # a guild has at most 250 roles


Context = Info[RequestContext, None]


@strawberry.type
class Query:
    @strawberry.field(description="The version of Polly API answering.")
    def api_version(self) -> str:
        return app.__version__

    @strawberry.field(description="Every role of the guild, highest position first.")
    async def guild_roles(self, info: Context, guild_id: strawberry.ID) -> list[Role]:
        snapshot = await info.context.loader.guild(snowflake(guild_id, "guildId"))
        return [Role.from_discord(role) for role in snapshot.roles]

    @strawberry.field(
        description="The roles the bot can really ping in the guild (or in one channel of it), highest first."
    )
    async def pingable_roles(
        self, info: Context, guild_id: strawberry.ID, channel_id: strawberry.ID | None = None
    ) -> list[Role]:
        guild = snowflake(guild_id, "guildId")
        channel = None if channel_id is None else snowflake(channel_id, "channelId")
        snapshot = await info.context.loader.guild(guild)
        return [Role.from_discord(role) for role in pingable_roles(snapshot, channel)]

    @strawberry.field(
        description="One result per role id, in the order given: is it a role of the guild, can the bot"
        " ping it?"
    )
    async def validate_roles(
        self,
        info: Context,
        guild_id: strawberry.ID,
        role_ids: list[strawberry.ID],
        channel_id: strawberry.ID | None = None,
    ) -> list[RoleValidation]:
        guild = snowflake(guild_id, "guildId")
        if len(role_ids) > MAX_ROLE_IDS:
            raise InvalidInput(f"roleIds may hold at most {MAX_ROLE_IDS} ids; got {len(role_ids)}.")
        roles = [snowflake(role_id, f"roleIds[{index}]") for index, role_id in enumerate(role_ids)]
        if channel_id is None:
            validations = await info.context.loader.validations(guild, roles)
        else:
            channel = snowflake(channel_id, "channelId")
            snapshot = await info.context.loader.guild(guild)
            abilities = bot_abilities(snapshot, channel)
            validations = [validate_role(snapshot, role, abilities) for role in roles]
        return [RoleValidation.from_validation(validation) for validation in validations]

    poll: Poll = strawberry.field(
        resolver=poll, description="One poll, if it exists and the caller may read it."
    )
    polls: PollConnection = strawberry.field(
        resolver=polls, description="A guild's polls, newest first, a page at a time (first, after)."
    )

    @strawberry.field(
        description="Who is asking: a user logged in with Discord or an API key, with the guilds they may"
        " use; null for anonymous callers."
    )
    def viewer(self, info: Context) -> Viewer | None:
        principal = info.context.principal
        if principal.refused is not None:
            require_authenticated(principal)  # credentials were sent and refused: say why
        return Viewer.of(principal) if principal.authenticated else None

    @strawberry.field(
        description="The guilds the bot is in (as its gateway reported them) that the caller may read, with"
        " their channels; at most the per-request guild limit, lowest ids first."
    )
    async def bot_guilds(self, info: Context) -> list[Guild]:
        context = info.context
        require_scope(context.principal, READ_ROLES)
        # Which guilds the bot is in changes with no guild version to drop a cached answer by
        # (a guild joined); the answer is computed afresh each time.
        context.uncacheable = True
        readable = permitted(context.principal, await context.roles.bot_guild_ids(), READ_ROLES)
        ids = readable[: context.max_guilds]
        guilds = []
        for guild_id in ids:
            try:
                snapshot = await context.loader.guild(guild_id)
            except RolesError:
                continue  # left meanwhile, or unreachable: not listed
            channels = sorted(snapshot.channels.items(), key=lambda item: (item[1].position, item[0]))
            guilds.append(
                Guild(
                    id=strawberry.ID(str(guild_id)),
                    name=snapshot.name,
                    channels=[
                        Channel(
                            id=strawberry.ID(str(channel_id)),
                            name=channel.name,
                            type=channel.type,
                            position=channel.position,
                            parent_id=None
                            if channel.parent_id is None
                            else strawberry.ID(str(channel.parent_id)),
                        )
                        for channel_id, channel in channels
                    ],
                )
            )
        return guilds


def _unexpected(error: GraphQLError) -> bool:
    """Errors the client did not cause: masked, so no internals reach any transport."""
    return error_code(error) == "INTERNAL_SERVER_ERROR"


class ErrorCodes(MaskErrors):
    """Every error leaves with an ``extensions.code``, on every transport (HTTP, WebSocket, SSE);
    unexpected ones are masked first and carry the request id the logs have."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=self.classify, error_message="Internal error; it is logged.")

    def classify(self, error: GraphQLError) -> bool:
        """MaskErrors asks this of every error it sees, subscription events included: give the
        error its code (and a database failure its sentence), and say whether to mask it."""
        if isinstance(error.original_error, DatabaseError):
            log.warning("The database failed a request: %s", error.original_error)
            error.message = DATABASE_UNAVAILABLE
        if _unexpected(error):
            return True
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": error_code(error)}
        return False

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        request_id = getattr(self.execution_context.context, "request_id", None)
        masked.extensions = {
            "code": "INTERNAL_SERVER_ERROR",
            **({"requestId": request_id} if request_id else {}),
        }
        return masked


class SharedParserCache(SchemaExtension):
    """Documents come from the one cache the HTTP endpoint reads too (parse_document)."""

    def __init__(self, max_tokens: int) -> None:
        super().__init__()
        self.max_tokens = max_tokens

    def on_parse(self) -> Iterator[None]:
        document = parse_document(self.execution_context.query or "", self.max_tokens)
        if not isinstance(document, GraphQLError):
            self.execution_context.graphql_document = document
        yield  # a bad document Strawberry parses itself, to report what is wrong the usual way


class ShortValidationCache(ValidationCache):
    def on_validate(self) -> Iterator[None]:
        if len(self.execution_context.query or "") > CACHED_QUERY_CHARS:
            yield  # Strawberry validates it itself
        else:
            yield from super().on_validate()


class PollySchema(strawberry.Schema):
    # Set by build_schema: what every document must pass, for code that parses one itself.
    limits: QueryLimits
    rules: tuple[type[ASTValidationRule], ...]
    # The same schema built from its SDL, to validate documents against: Strawberry keeps its
    # own graphql-core schema private.
    validation_schema: GraphQLSchema

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Runs before MaskErrors: unexpected errors are logged here with their traceback and
        # the request id clients see; errors clients caused are theirs to read, not ours to
        # page on.
        request_id = getattr(getattr(execution_context, "context", None), "request_id", "-")
        for error in errors:
            if _unexpected(error):
                log.error(
                    "Unexpected error (request %s) at %s",
                    request_id,
                    error.path,
                    exc_info=error.original_error,
                )
            else:
                log.debug("GraphQL error for the client: %s", error.message)


def build_schema(limits: QueryLimits) -> PollySchema:
    rules = validation_rules(limits)
    # Factories: a fresh extension per request, sharing Strawberry's process-wide LRU caches.
    built = PollySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
            lambda: SharedParserCache(limits.max_tokens),
            lambda: AddValidationRules(rules),
            lambda: ShortValidationCache(maxsize=1024),
            ErrorCodes,
        ],
    )
    built.limits, built.rules = limits, tuple(rules)
    built.validation_schema = build_from_sdl(built.as_str())
    return built


# With the default limits: what `strawberry export-schema` writes to schema.graphql.
schema = build_schema(QueryLimits())
