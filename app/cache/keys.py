"""Every Redis key (and pub/sub channel) this service reads or writes, in one place.

The first two are the origin design's contract (``guild_roles_ping:{guild_id}`` and
``role_validation:{guild_id}:{role_id}``); the rest support them. ``POLLY_CACHE_PREFIX``
goes in front of all of them.

The braces are Redis Cluster hash tags: only what is between them decides a key's slot, and
a script may only touch keys of one slot. So every key of a guild carries ``{<guild_id>}``
(its data, version, dependents, lock and streams are written together, by one script), a
caller's rate-limit bucket, cached API key record and cached answers carry the caller's
bucket (one script checks the key, takes a token and fetches the answer), and all of a bot's
Discord budgets share ``{budget}`` (one script spends from several at once). Keys always
written alone (``bot_guilds``, ``viewer``, ``poll_results``, ``interaction``) need no tag. A
standalone Redis ignores the braces: the names are the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


def response_name(bucket: str, digest: str) -> str:
    """What a cached answer is kept under: tagged with the caller's rate-limit bucket, so that
    the script taking the caller's token can fetch it in the same round trip."""
    return f"{{{bucket}}}:{digest}"


@dataclass(frozen=True)
class CacheKeys:
    prefix: str = ""

    def guild_roles(self, guild_id: int) -> str:
        """A guild's roles, the bot's member roles and channel overwrites (or why there are none)."""
        return f"{self.prefix}guild_roles_ping:{{{guild_id}}}"

    def role_validation(self, guild_id: int, role_id: int) -> str:
        """One role's validation result, for the guild as a whole (no channel)."""
        return f"{self.prefix}role_validation:{{{guild_id}}}:{role_id}"

    def last_known_guild_roles(self, guild_id: int) -> str:
        """The last good copy of ``guild_roles``, kept past its TTL to serve during Discord outages."""
        return f"{self.prefix}guild_roles_ping_last_known:{{{guild_id}}}"

    def guild_version(self, guild_id: int) -> str:
        """A counter that only grows; every write of guild data carries the version it was read at."""
        return f"{self.prefix}guild_version:{{{guild_id}}}"

    def guild_dependents(self, guild_id: int) -> str:
        """The set of keys computed from a guild's data (its role validations), dropped with it."""
        return f"{self.prefix}guild_dependents:{{{guild_id}}}"

    def guild_version_parts(self) -> tuple[str, str]:
        """``guild_version`` around the guild id, for a script that learns the ids as it runs."""
        before, after = self.guild_version(0).rsplit("0", 1)
        return before, after

    def fill_lock(self, guild_id: int) -> str:
        """Held by the one process fetching a guild from Discord."""
        return f"{self.prefix}fill_lock:{{{guild_id}}}"

    def guild_events(self, guild_id: int) -> str:
        """A guild's event stream (bounded); see ``announcements`` for the channel announcing each."""
        return f"{self.prefix}guild_events:{{{guild_id}}}"

    def poll_events(self, guild_id: int) -> str:
        """A guild's poll changes: a stream for replay; see ``announcements`` for the live channel."""
        return f"{self.prefix}poll_events:{{{guild_id}}}"

    @staticmethod
    def announcements(stream: str, *, sharded: bool) -> str:
        """The pub/sub channel announcing each entry of ``stream``. Sharded (a cluster): the
        stream's own name, so that the channel hashes to the stream's slot and one script can
        append and announce. Otherwise the name without its hash tag (``guild_events:<id>``),
        the channel subscribers have always known."""
        return stream if sharded else stream.replace("{", "").replace("}", "")

    def bot_guilds(self) -> str:
        """The set of guilds the gateway bot is in."""
        return f"{self.prefix}bot_guilds"

    def response(self, name: str) -> str:
        """A serialized GraphQL response with the guild versions it was computed from, by its
        ``response_name``."""
        return f"{self.prefix}response:{name}"

    def api_key(self, key_id: str) -> str:
        """An API key's record (hash, guilds, scopes), cached from the database; deleted on revoke.
        Tagged like the key's rate-limit bucket (``key:<id>``): one script reads both."""
        return f"{self.prefix}api_key:{{key:{key_id}}}"

    def access_changes(self) -> str:
        """The pub/sub channel announcing callers whose access changed (a key revoked, a login
        ended, a user's guilds changed): every API process checks their connections again."""
        return f"{self.prefix}access_changes"

    def viewer(self, session_hash: str) -> str:
        """A signed-in user's identity, guilds and permissions, cached briefly from Discord."""
        return f"{self.prefix}viewer:{session_hash}"

    def poll_results(self, poll_id: int) -> str:
        """A poll's results document (counts per option, voters), replaced by every vote."""
        return f"{self.prefix}poll_results:{poll_id}"

    def interaction(self, interaction_id: int) -> str:
        """Marks a Discord interaction as handled: one delivered twice counts once."""
        return f"{self.prefix}interaction:{interaction_id}"

    def discord_budget(self, scope: str) -> str:
        """The Discord requests one bot made lately in one of Discord's rate limits (``global``,
        ``channel:<id>:post``): a sorted set of request times, shared by its processes. One
        tag for all of them: a request is counted in several limits at once, atomically."""
        return f"{self.prefix}discord_budget:{{budget}}:{scope}"

    def rate_limit(self, bucket: str) -> str:
        """A caller's token bucket (``key:<id>``, ``user:<id>``, an address): tokens left and when
        it was last filled."""
        return f"{self.prefix}rate_limit:{{{bucket}}}"
