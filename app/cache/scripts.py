"""Lua scripts that keep a guild's data, version, dependents and events consistent in Redis.

Every write of guild data takes a new version inside Redis and drops what was computed from
the older data (validations, cached responses), so nothing computed from old data outlives
it. The version is written into the stored document here, as its first key, which is why
callers pass documents without one.
"""

from __future__ import annotations

# Shared pieces. KEYS[1..4] are always: guild data, last-known copy, version, dependents.
# ARGV[1..3] are always: document without version, ttl, last-known ttl (0: leave it alone).
_NEW_VERSION_WITHOUT_DEPENDENTS = """
local version = redis.call('INCR', KEYS[3])
local dependents = redis.call('SMEMBERS', KEYS[4])
for i = 1, #dependents, 500 do
  redis.call('DEL', unpack(dependents, i, math.min(i + 499, #dependents)))
end
redis.call('DEL', KEYS[4])
"""
_TAKE_VERSION_AND_WRITE = (
    _NEW_VERSION_WITHOUT_DEPENDENTS
    + """
local rest = string.sub(ARGV[1], 2)
if rest ~= '}' then rest = ',' .. rest end
local body = '{"version":' .. version .. rest
redis.call('SET', KEYS[1], body, 'EX', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], body, 'EX', ARGV[3]) end
"""
)

# A fill from REST. ARGV[4]: the version read before calling Discord. If anything wrote the
# guild since, this data may be older than what is cached: the write loses. Returns the new
# version, or 0.
FILL_GUILD = (
    """
local current = tonumber(redis.call('GET', KEYS[3]) or '0')
if current ~= tonumber(ARGV[4]) then return 0 end
"""
    + _TAKE_VERSION_AND_WRITE
    + """
return version
"""
)

# Discord's own event, written through by the gateway bot: always the newest data.
# KEYS[5]: the event stream. ARGV[4..10]: event kind ('' for none), role id, channel id, event
# time, stream length, pub/sub channel, guild id. Returns {version, event id or false}.
APPLY_CHANGE = (
    _TAKE_VERSION_AND_WRITE
    + """
if ARGV[4] == '' then return {version, false} end
local id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*',
  'guild_id', ARGV[10], 'kind', ARGV[4], 'role_id', ARGV[5], 'channel_id', ARGV[6],
  'version', version, 'at', ARGV[7])
redis.call('PUBLISH', ARGV[9], cjson.encode({
  id = id, guild_id = ARGV[10], kind = ARGV[4], role_id = ARGV[5], channel_id = ARGV[6],
  version = version, at = ARGV[7]}))
return {version, id}
"""
)

# Keeps a guild the bot is in from expiring: extends the TTLs, or, if the data expired,
# writes the bot's copy as a new version. Returns 0 (extended) or the new version.
REFRESH_GUILD = (
    """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return 0
end
"""
    + _TAKE_VERSION_AND_WRITE
    + """
return version
"""
)

# KEYS: n version keys, n dependents sets, m entry keys.
# ARGV: n, m, ttl, n expected versions, m values.
# Entries computed from guild data are written only if no guild they depend on changed
# meanwhile, and are registered to be dropped with each of those guilds.
WRITE_DEPENDENTS = """
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[i]) or '0') ~= tonumber(ARGV[3 + i]) then return 0 end
end
for j = 1, m do
  local key = KEYS[2 * n + j]
  redis.call('SET', key, ARGV[3 + n + j], 'EX', ttl)
  for i = 1, n do redis.call('SADD', KEYS[n + i], key) end
end
for i = 1, n do
  if redis.call('TTL', KEYS[n + i]) < ttl then redis.call('EXPIRE', KEYS[n + i], ttl) end
end
return 1
"""

# The usual four keys; returns the new version. The last-known copy stays: it is what an
# outage falls back to.
INVALIDATE_GUILD = (
    _NEW_VERSION_WITHOUT_DEPENDENTS
    + """
redis.call('DEL', KEYS[1])
return version
"""
)
