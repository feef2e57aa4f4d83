"""Lua scripts that keep a guild's data, version, dependents and events consistent in Redis.

Every write of guild data takes a new version inside Redis and drops what was computed from
the older data (its role validations), so nothing computed from old data outlives it. The
version is written into the stored document here, as its first key, which is why callers pass
documents without one.

Every key a script touches is passed in KEYS, and all the KEYS of one call share a hash tag
(see keys.py), as a Redis Cluster requires: one call runs on one slot. A guild's dependents
are passed too: the caller reads the set first, and a script finding other members than it was
given changes nothing and returns ``{'dependents', member...}``, for the caller to call again
with those.

Announcements go out with PUBLISH on one Redis server and SPUBLISH on a cluster
(``announcing``), on a channel passed in KEYS: a sharded channel is routed like a key.
"""

from __future__ import annotations


def announcing(script: str, *, sharded: bool) -> str:
    """``script`` announcing with SPUBLISH (a cluster) or PUBLISH."""
    return script.replace("'PUBLISH'", "'SPUBLISH'") if sharded else script


# Shared pieces. KEYS[1..4] are always: guild data, last-known copy, version, dependents; the
# dependents the caller read follow the script's own keys (FIXED_KEYS of them).
# ARGV[1..3] are always: document without version, ttl, last-known ttl (0: leave it alone).
_DEPENDENTS_AS_READ = """
local listed = {}
for i = FIXED_KEYS + 1, #KEYS do listed[KEYS[i]] = true end
local members = redis.call('SMEMBERS', KEYS[4])
local same = #members == #KEYS - FIXED_KEYS
if same then
  for _, member in ipairs(members) do
    if not listed[member] then same = false break end
  end
end
if not same then
  table.insert(members, 1, 'dependents')
  return members
end
"""
_NEW_VERSION_WITHOUT_DEPENDENTS = """
local version = redis.call('INCR', KEYS[3])
for i = FIXED_KEYS + 1, #KEYS, 500 do
  redis.call('DEL', unpack(KEYS, i, math.min(i + 499, #KEYS)))
end
redis.call('DEL', KEYS[4])
"""
_WRITE = """
local rest = string.sub(ARGV[1], 2)
if rest ~= '}' then rest = ',' .. rest end
local body = '{"version":' .. version .. rest
redis.call('SET', KEYS[1], body, 'EX', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], body, 'EX', ARGV[3]) end
"""


def _fixed(script: str, keys: int) -> str:
    return script.replace("FIXED_KEYS", str(keys))


# A fill from REST. ARGV[4]: the version read before calling Discord. If anything wrote the
# guild since, this data may be older than what is cached: the write loses. Returns the new
# version, or 0.
FILL_GUILD = _fixed(
    """
local current = tonumber(redis.call('GET', KEYS[3]) or '0')
if current ~= tonumber(ARGV[4]) then return 0 end
"""
    + _DEPENDENTS_AS_READ
    + _NEW_VERSION_WITHOUT_DEPENDENTS
    + _WRITE
    + """
return version
""",
    4,
)

# Discord's own event, written through by the gateway bot: always the newest data.
# KEYS[5]: the event stream; KEYS[6]: the channel announcing it. ARGV[4..9]: event kind (''
# for none), role id, channel id, event time, stream length, guild id. Returns {version, event
# id or false}.
APPLY_CHANGE = _fixed(
    _DEPENDENTS_AS_READ
    + _NEW_VERSION_WITHOUT_DEPENDENTS
    + _WRITE
    + """
if ARGV[4] == '' then return {version, false} end
local id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*',
  'guild_id', ARGV[9], 'kind', ARGV[4], 'role_id', ARGV[5], 'channel_id', ARGV[6],
  'version', version, 'at', ARGV[7])
redis.call('PUBLISH', KEYS[6], cjson.encode({
  id = id, guild_id = ARGV[9], kind = ARGV[4], role_id = ARGV[5], channel_id = ARGV[6],
  version = version, at = ARGV[7]}))
return {version, id}
""",
    6,
)

# Keeps a guild the bot is in from expiring: extends the TTLs, or, if the data expired,
# writes the bot's copy as a new version. Returns 0 (extended) or the new version.
REFRESH_GUILD = _fixed(
    """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return 0
end
"""
    + _DEPENDENTS_AS_READ
    + _NEW_VERSION_WITHOUT_DEPENDENTS
    + _WRITE
    + """
return version
""",
    4,
)

# KEYS: the guild's version, its dependents set, then m entry keys (all of that guild).
# ARGV: ttl, the expected version, m values. Entries computed from the guild's data are
# written only if it did not change meanwhile, and are registered to be dropped with it.
WRITE_DEPENDENTS = """
local ttl = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[2]) then return 0 end
for j = 3, #KEYS do
  redis.call('SET', KEYS[j], ARGV[j], 'EX', ttl)
  redis.call('SADD', KEYS[2], KEYS[j])
end
if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
return 1
"""

# The usual four keys and the dependents; returns the new version. The last-known copy stays:
# it is what an outage falls back to.
INVALIDATE_GUILD = _fixed(
    _DEPENDENTS_AS_READ
    + _NEW_VERSION_WITHOUT_DEPENDENTS
    + """
redis.call('DEL', KEYS[1])
return version
""",
    4,
)

# A token bucket per caller, on Redis's own clock so that every API process agrees. A caller
# holds at most `burst` tokens and gains `rate` a second; a request takes one. Work found
# costly after the fact (a rejected document) is charged too, down to `-burst`: a debt the
# caller's next requests wait out.
_TOKEN_BUCKET = """
local function refill(bucket, rate, burst)
  local now_parts = redis.call('TIME')
  local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
  local tokens = burst
  local stored = redis.call('GET', bucket)
  if stored then
    local sep = string.find(stored, ':', 1, true)
    local left = tonumber(string.sub(stored, 1, sep - 1))
    local at = tonumber(string.sub(stored, sep + 1))
    tokens = math.min(burst, left + math.max(0, now - at) * rate / 1000)
  end
  return tokens, now
end

local function store(bucket, tokens, now, rate, burst)
  redis.call('SET', bucket, string.format('%.6f', tokens) .. ':' .. now,
             'PX', math.ceil((burst - tokens) * 1000 / rate) + 1000)
end

local function take(bucket, rate, burst, cost)
  local tokens, now = refill(bucket, rate, burst)
  local allowed = 0
  local retry = 0
  if tokens >= cost then
    tokens = tokens - cost
    allowed = 1
  else
    retry = math.ceil((cost - tokens) * 1000 / rate)
  end
  store(bucket, tokens, now, rate, burst)
  return allowed, retry
end
"""

# KEYS[1]: the bucket; KEYS[2], if given: a cached response, returned when the request is
# allowed. ARGV: rate, burst, cost. Returns {allowed, retry after in ms, response or false}.
# A cached answer (see response_cache.py: "guild=version,...\n" then the body), if every guild
# it was computed from is still at that version: the entry, or false. On one Redis server the
# versions are read here, from the keys ``before .. guild .. after`` name (the entry says which
# guilds: they cannot be declared in KEYS beforehand, which only a Redis Cluster requires);
# with no ``before`` (a cluster, where they live on other nodes) the entry comes back
# unchecked, for the caller to check (response_cache.fresh).
_FRESH = """
local function fresh(entry, before, after)
  if not entry or before == '' then return entry end
  local newline = string.find(entry, '\\n', 1, true)
  if not newline then return false end
  for guild, version in string.gmatch(string.sub(entry, 1, newline - 1), '(%d+)=(%d+)') do
    if (redis.call('GET', before .. guild .. after) or '0') ~= version then return false end
  end
  return entry
end
"""

# KEYS: the bucket, [the response]. ARGV: rate, burst, cost, and the version keys' two parts
# (see _FRESH). Returns {allowed, retry ms, the fresh response or false}.
TAKE_TOKEN = (
    _TOKEN_BUCKET
    + _FRESH
    + """
local allowed, retry = take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
local cached = false
if allowed == 1 and KEYS[2] then cached = fresh(redis.call('GET', KEYS[2]), ARGV[4], ARGV[5]) end
return {allowed, retry, cached}
"""
)

# KEYS[1]: the bucket. ARGV: rate, burst, cost. Takes `cost` tokens whatever is left (down
# to -burst). Returns the tokens left.
CHARGE = (
    _TOKEN_BUCKET
    + """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, now = refill(KEYS[1], rate, burst)
tokens = math.max(-burst, tokens - tonumber(ARGV[3]))
store(KEYS[1], tokens, now, rate, burst)
return tostring(tokens)
"""
)

# An API key's request in one round trip: its cached record (a hash: record, secret_hash,
# revoked), its bucket, and the cached response. The bucket is only charged once the secret
# matches, so nobody can spend a key's requests by knowing its (public) id.
# KEYS: record, bucket, [response]. ARGV: sha256 of the secret, rate, burst, cost, and the
# version keys' two parts (see _FRESH).
# Returns {'miss'} | {'refused', record} | {'limited', retry ms} | {'ok', record, response or false}
# (the record with the response too: a response found stale is not the answer after all).
ADMIT_KEY = (
    _TOKEN_BUCKET
    + _FRESH
    + """
local found = redis.call('HMGET', KEYS[1], 'record', 'secret_hash', 'revoked')
if not found[1] then return {'miss'} end
if found[2] ~= ARGV[1] or found[3] ~= '0' then return {'refused', found[1]} end
local allowed, retry = take(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
if allowed == 0 then return {'limited', retry} end
local cached = false
if KEYS[3] then cached = fresh(redis.call('GET', KEYS[3]), ARGV[5], ARGV[6]) end
return {'ok', found[1], cached}
"""
)

# Discord's rate limits, shared by every process of one bot: a sliding log per limit (at most
# ARGV[2i-1] requests in any ARGV[2i] milliseconds), on Redis's clock. Sliding, not a token
# bucket: Discord counts fixed windows that start at a first request we cannot see, and only a
# log that never holds more than the limit in any window stays under every such window.
# Takes a slot in every key or in none; returns 0, or the milliseconds until one may succeed.
SPEND_DISCORD_BUDGET = """
local parts = redis.call('TIME')
local now = tonumber(parts[1]) * 1000 + math.floor(tonumber(parts[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now + 1)
  end
end
if wait > 0 then
  return wait
end
local member = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i]) + 1000)
end
return 0
"""

# Replace a versioned document only with a newer one (votes commit in order, but their writes
# to Redis may arrive in any order). ARGV: version, document, ttl in seconds. Returns 1 if
# written.
PUT_IF_NEWER = """
local stored = redis.call('GET', KEYS[1])
if stored then
  local version = tonumber(string.match(stored, '^(%d+):'))
  if version and version >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""

# A poll's change: appended to its guild's poll stream and announced on its channel,
# atomically. KEYS[1]: the stream; KEYS[2]: the channel. ARGV: guild id, poll id, kind,
# version, time, stream length. Returns the event id.
APPEND_POLL_EVENT = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*',
  'guild_id', ARGV[1], 'poll_id', ARGV[2], 'kind', ARGV[3], 'version', ARGV[4], 'at', ARGV[5])
redis.call('PUBLISH', KEYS[2], cjson.encode({id = id, guild_id = ARGV[1], poll_id = ARGV[2],
  kind = ARGV[3], version = ARGV[4], at = ARGV[5]}))
return id
"""
