"""The sandbox's gateway: Discord's WebSocket protocol (v10, JSON, uncompressed).

HELLO, heartbeats and ACKs; IDENTIFY → READY → one GUILD_CREATE per guild of the shard;
RESUME → replay of what the session missed → RESUMED; op 7 RECONNECT and op 9
INVALID_SESSION on request; and every state change dispatched to the sessions that may see it.
Frames are always text: discord.py asks for zlib-stream but reads plain text frames too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from app.sandbox import shapes
from app.sandbox.state import GUILD_MEMBERS, NO_INTENT, Dispatch, GuildState, SandboxState

log = logging.getLogger(__name__)

# Opcodes
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE_UPDATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

# Close codes
UNKNOWN_ERROR = 4000
UNKNOWN_OPCODE, DECODE_ERROR, NOT_AUTHENTICATED, AUTHENTICATION_FAILED = 4001, 4002, 4003, 4004
ALREADY_AUTHENTICATED, SESSION_TIMED_OUT, INVALID_SHARD, INVALID_API_VERSION, INVALID_INTENTS = (
    4005,
    4009,
    4010,
    4012,
    4013,
)

BACKLOG = 5000
SESSION_TTL_SECONDS = 300.0
MAX_OUTBOX = 10_000
SEND_TIMEOUT = 10.0
# A round trip to Discord's gateway from a well-connected host.
HEARTBEAT_ACK_DELAY_MS = 40


def _frame(op: int, d: Any = None, *, t: str | None = None, s: int | None = None) -> str:
    return json.dumps({"op": op, "d": d, "s": s, "t": t}, separators=(",", ":"))


class Connection:
    """One WebSocket: frames are queued so that dispatches never wait on a slow socket.

    A client that falls too far behind is disconnected (what it missed waits in its
    session's backlog for a RESUME), as Discord disconnects clients that cannot keep up.
    """

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())
        self._too_slow = False

    def send(self, frame: str) -> None:
        if self._too_slow:
            return
        if self._outbox.qsize() >= MAX_OUTBOX:
            self._too_slow = True
            self._outbox.put_nowait(None)
            return
        self._outbox.put_nowait(frame)

    async def _write(self) -> None:
        while (frame := await self._outbox.get()) is not None:
            if self.ws.closed:
                return
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return  # the peer went away; the read side notices and cleans up
            except TimeoutError:
                self._too_slow = True
                break
        if self._too_slow and not self.ws.closed:
            await self.ws.close(code=UNKNOWN_ERROR, message=b"Client too slow to read.")

    async def close(self, code: int, reason: str) -> None:
        await self.finish()
        await self.ws.close(code=code, message=reason.encode())

    async def finish(self) -> None:
        """Flush what is queued, then stop writing."""
        self._outbox.put_nowait(None)
        # asyncio.wait, not await: cancelling the handler must still cancel the handler.
        await asyncio.wait({self._writer})


class Session:
    def __init__(self, shard: tuple[int, int], intents: int) -> None:
        self.id = secrets.token_hex(16)
        self.shard_id, self.shard_count = shard
        self.intents = intents
        self.seq = 0
        self.backlog: deque[tuple[int, str]] = deque(maxlen=BACKLOG)
        self.connection: Connection | None = None
        self.detached_at: float | None = None
        self.heartbeats = 0

    def covers(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.shard_count == self.shard_id

    def wants(self, event: Dispatch, bot_id: int) -> bool:
        if not self.covers(event.guild_id):
            return False
        if event.intent == NO_INTENT:
            return True
        if event.intent == GUILD_MEMBERS and event.user_id == bot_id:
            return True  # Discord sends the current user's member updates without the intent
        return bool(self.intents & event.intent)

    def push(self, name: str, data: Any) -> None:
        self.seq += 1
        frame = _frame(DISPATCH, data, t=name, s=self.seq)
        self.backlog.append((self.seq, frame))
        if self.connection is not None:
            self.connection.send(frame)


class Gateway:
    def __init__(
        self,
        state: SandboxState,
        *,
        heartbeat_interval_ms: int = 41250,
        heartbeat_ack_delay_ms: int = HEARTBEAT_ACK_DELAY_MS,
    ) -> None:
        self.state = state
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.heartbeat_ack_delay = heartbeat_ack_delay_ms / 1000
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        state.subscribe(self._on_change)

    # -- fan-out --------------------------------------------------------------------------------

    def _on_change(self, event: Dispatch) -> None:
        for session in self.sessions.values():
            if session.wants(event, self.state.bot.id):
                session.push(event.name, event.data)

    async def reconnect_all(self) -> int:
        """Send op 7 to every connected session; clients close and RESUME."""
        count = 0
        for session in self.sessions.values():
            if session.connection is not None:
                session.connection.send(_frame(RECONNECT))
                # Like Discord, nothing more is sent on a connection told to reconnect: what
                # happens from now on waits in the backlog for the RESUME.
                session.connection = None
                session.detached_at = time.monotonic()
                count += 1
        return count

    async def invalidate_all(self) -> int:
        """Send op 9 (not resumable) to every connected session and forget all sessions."""
        count = 0
        for session in list(self.sessions.values()):
            if session.connection is not None:
                session.connection.send(_frame(INVALID_SESSION, False))
                count += 1
        self.sessions.clear()
        return count

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "session_id": s.id,
                "shard": [s.shard_id, s.shard_count],
                "intents": s.intents,
                "seq": s.seq,
                "connected": s.connection is not None,
                "heartbeats": s.heartbeats,
            }
            for s in self.sessions.values()
        ]

    async def close(self) -> None:
        for connection in list(self.connections):
            await connection.close(1001, "Sandbox shutting down.")

    # -- the socket -----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=4096 * 1024)
        await ws.prepare(request)
        connection = Connection(ws)
        self.connections.add(connection)
        session: Session | None = None
        try:
            if request.query.get("v", "10") != "10":
                await connection.close(INVALID_API_VERSION, "Invalid API version.")
                return ws
            if request.query.get("encoding", "json") != "json":
                await connection.close(DECODE_ERROR, "Only encoding=json is supported.")
                return ws
            connection.send(_frame(HELLO, {"heartbeat_interval": self.heartbeat_interval_ms}))
            timeout = self.heartbeat_interval_ms / 1000 * 2
            while True:
                try:
                    message = await ws.receive(timeout=timeout)
                except TimeoutError:
                    if session is not None:
                        self.sessions.pop(session.id, None)  # Discord: start a new session
                    await connection.close(SESSION_TIMED_OUT, "Session timed out.")
                    return ws
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return ws
                if message.type != WSMsgType.TEXT:
                    await connection.close(DECODE_ERROR, "Error while decoding payload.")
                    return ws
                try:
                    payload = json.loads(message.data)
                    op = payload["op"]
                except (ValueError, KeyError, TypeError):
                    await connection.close(DECODE_ERROR, "Error while decoding payload.")
                    return ws
                data = payload.get("d")
                if session is not None and session.id not in self.sessions:
                    session = None  # invalidated (op 9): the client may IDENTIFY afresh
                if op == HEARTBEAT:
                    if session is not None:
                        session.heartbeats += 1
                    self._acknowledge(connection)
                elif op == IDENTIFY:
                    if session is not None:
                        await connection.close(ALREADY_AUTHENTICATED, "Already authenticated.")
                        return ws
                    session = await self._identify(request, connection, data)
                    if session is None:
                        return ws
                elif op == RESUME:
                    if session is not None:
                        await connection.close(ALREADY_AUTHENTICATED, "Already authenticated.")
                        return ws
                    session = self._resume(connection, data)
                elif op in (PRESENCE_UPDATE, VOICE_STATE_UPDATE, REQUEST_GUILD_MEMBERS):
                    if session is None:
                        await connection.close(NOT_AUTHENTICATED, "Not authenticated.")
                        return ws
                else:
                    await connection.close(UNKNOWN_OPCODE, "Unknown opcode.")
                    return ws
        finally:
            self.connections.discard(connection)
            if session is not None and session.connection is connection:
                session.connection = None
                session.detached_at = time.monotonic()
            await connection.finish()

    def _acknowledge(self, connection: Connection) -> None:
        """HEARTBEAT_ACK after the round trip a real network takes. discord.py's heartbeat
        thread records when it sent a heartbeat only after the event loop has written it; an ACK
        read before then makes discord.py measure a whole heartbeat interval as latency (and
        warn "Can't keep up"). Discord is never that close."""
        if self.heartbeat_ack_delay <= 0:
            connection.send(_frame(HEARTBEAT_ACK))
        else:
            asyncio.get_running_loop().call_later(
                self.heartbeat_ack_delay, connection.send, _frame(HEARTBEAT_ACK)
            )

    def _forget_stale_sessions(self) -> None:
        now = time.monotonic()
        for session_id, session in list(self.sessions.items()):
            if session.detached_at is not None and now - session.detached_at > SESSION_TTL_SECONDS:
                del self.sessions[session_id]

    async def _identify(self, request: web.Request, connection: Connection, data: Any) -> Session | None:
        if not isinstance(data, dict) or data.get("token") != self.state.bot.token:
            await connection.close(AUTHENTICATION_FAILED, "Authentication failed.")
            return None
        intents = data.get("intents")
        if not isinstance(intents, int) or isinstance(intents, bool) or intents < 0 or intents >= 1 << 26:
            await connection.close(INVALID_INTENTS, "Invalid intent(s).")
            return None
        shard = data.get("shard", [0, 1])
        if (
            not isinstance(shard, list)
            or len(shard) != 2
            or not all(isinstance(n, int) for n in shard)
            or not 0 <= shard[0] < shard[1]
        ):
            await connection.close(INVALID_SHARD, "Invalid shard.")
            return None
        self._forget_stale_sessions()
        session = Session((shard[0], shard[1]), intents)
        session.connection = connection
        self.sessions[session.id] = session

        scheme = "wss" if request.secure else "ws"
        guilds = [guild for guild in self.state.bot_guilds() if session.covers(guild.id)]
        session.push(
            "READY",
            {
                "v": 10,
                "user": shapes.current_user_json(self.state.bot),
                "guilds": [{"id": str(guild.id), "unavailable": True} for guild in guilds],
                "session_id": session.id,
                "session_type": "normal",
                "resume_gateway_url": f"{scheme}://{request.host}/gateway/resume",
                "shard": [session.shard_id, session.shard_count],
                "application": {"id": str(self.state.application.id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "user_settings": {},
                "guild_join_requests": [],
                "geo_ordered_rtc_regions": [],
                "auth": {},
            },
        )
        for guild in guilds:
            session.push("GUILD_CREATE", self._guild_create(guild, session))
        return session

    def _resumable(self, data: Any) -> tuple[Session, int] | None:
        """The session a RESUME names and the sequence to replay from, if it can be resumed."""
        if not isinstance(data, dict) or data.get("token") != self.state.bot.token:
            return None
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        if session is None or not isinstance(seq, int) or seq > session.seq:
            return None
        if session.backlog and session.backlog[0][0] > seq + 1:
            return None  # what it missed has fallen out of the backlog
        return session, seq

    def _resume(self, connection: Connection, data: Any) -> Session | None:
        resumable = self._resumable(data)
        if resumable is None:
            connection.send(_frame(INVALID_SESSION, False))
            return None
        session, seq = resumable
        previous = session.connection
        if previous is not None and previous is not connection:
            closing = asyncio.create_task(previous.close(4000, "Session resumed elsewhere."))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        for number, frame in session.backlog:
            if number > seq:
                connection.send(frame)
        session.connection = connection
        session.detached_at = None
        session.push("RESUMED", {"_trace": ["sandbox"]})
        return session

    def _guild_create(self, guild: GuildState, session: Session) -> dict[str, Any]:
        bot_id = self.state.bot.id
        members = [
            member
            for member in guild.members.values()
            if member.user_id == bot_id or session.intents & GUILD_MEMBERS
        ]
        data = shapes.guild_json(guild.guild, guild.sorted_roles())
        data.update(
            {
                "joined_at": shapes.timestamp(guild.members[bot_id].joined_at),
                "large": len(guild.members) > 250,
                "unavailable": False,
                "member_count": len(guild.members),
                "members": [self.state.member_json(guild, member) for member in members],
                "channels": [shapes.channel_json(channel, guild.id) for channel in guild.channels.values()],
                "threads": [],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
            }
        )
        return data
