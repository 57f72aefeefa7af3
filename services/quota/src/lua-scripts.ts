/**
 * The quota Lua scripts, run with ioredis defineCommand (EVALSHA, falling back to EVAL once).
 * Each touches only one tenant's keys (hash tag `{tenant}`, see keys.ts), so it is atomic and
 * cluster-safe. Keys reached through a reservation record (release/reconcile) are the keys that
 * record's reserve call declared, in the same slot.
 *
 * Time: ARGV[1] is the caller's clock in ms; 0 means "use Redis TIME", which is what the service
 * does in production so that every replica uses the one clock of the Redis primary (tests pass
 * an injected clock to step through windows and day boundaries). Redis 7 replicates script
 * effects, so calling TIME in a writing script is safe.
 */

const COMMON = `
local function nowMs(arg)
  local n = tonumber(arg)
  if n and n > 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A reservation record, or nil when absent or past its expiry x on the script clock (with Redis
-- TIME that is its PX TTL; an injected test clock can step past it).
local function liveRecord(key, now)
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local rec = cjson.decode(raw)
  if rec.x and rec.x <= now then return nil end
  return rec
end

-- Stores a record that lives ttl ms (both as x on the script clock and as its PX TTL).
local function putRecord(key, rec, now, ttl)
  rec.x = now + ttl
  redis.call('SET', key, cjson.encode(rec), 'PX', ttl)
end

local function amountOf(member)
  return tonumber(string.match(member, '|(%d+)$')) or 0
end

-- Sliding-window log: drops entries that left the window (admitted at <= now - window), keeps
-- the running sum in step, returns the sum of what is still in the window.
local function trim(z, s, now, window)
  local cutoff = now - window
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)
  if #old > 0 then
    local freed = 0
    for _, m in ipairs(old) do freed = freed + amountOf(m) end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
    if redis.call('ZCARD', z) == 0 then
      redis.call('DEL', s)
      return 0
    end
    return tonumber(redis.call('DECRBY', s, freed))
  end
  return tonumber(redis.call('GET', s) or '0')
end

-- Budget alerts: the marker holds the highest threshold raised this period, so each of 80 and
-- 100 is reported by exactly one script run across all replicas.
local function raise(ak, ttl, name, used, limit, period, alerts)
  local level = 0
  if used >= limit then level = 100 elseif used * 5 >= limit * 4 then level = 80 end
  if level == 0 then return end
  local raised = tonumber(redis.call('GET', ak) or '0')
  if level <= raised then return end
  if ttl < 1 then ttl = 1 end
  redis.call('SET', ak, level, 'PX', ttl)
  for _, t in ipairs({80, 100}) do
    if t > raised and t <= level then
      alerts[#alerts + 1] = name
      alerts[#alerts + 1] = t
      alerts[#alerts + 1] = used
      alerts[#alerts + 1] = limit
      alerts[#alerts + 1] = period
    end
  end
end
`;

/**
 * KEYS[1] reservation record; KEYS[2i], KEYS[2i+1] the two keys of limit op i.
 * ARGV: now, request id, reservation ttl ms, n ops, budget grace ms, reserved model, record life
 *   ms, then per op (8 each): type (w|b|c), name, limit value, amount, param, measure
 *   (tok|usd|none), period, scope.
 * The record keeps the model and each entry's scope, so reconciliation can move per-model usage
 * to the model that served. It lives the record life (reservation ttl + late-event horizon), so
 * a late event still replaces the estimate. A record already there (a duplicate, an event that
 * came first, a release tombstone) means nothing is reserved.
 * Returns {allowed 1|0, limit, retry_after_ms, limit_value, remaining, reset_ms, duplicate 1|0,
 *   alerts as (name, threshold, used, limit, period)*}.
 */
export const RESERVE_LUA = `${COMMON}
local recKey = KEYS[1]
local now = nowMs(ARGV[1])
local reqId = ARGV[2]
local resTtl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])
local model = ARGV[6]
local life = tonumber(ARGV[7])

local rec = liveRecord(recKey, now)
if rec then
  local d = rec.d
  if not d then return {1, '', 0, 0, 0, 0, 1} end
  return {d[1], d[2], d[3], d[4], d[5], d[6], 1}
end

-- Phase 1: check every limit; nothing is reserved unless all of them admit the request.
local ops = {}
local deny = nil
for i = 1, n do
  local b = 8 + (i - 1) * 8
  local op = { t = ARGV[b], name = ARGV[b + 1], l = tonumber(ARGV[b + 2]), as = ARGV[b + 3], a = tonumber(ARGV[b + 3]),
    p = tonumber(ARGV[b + 4]), u = ARGV[b + 5], per = ARGV[b + 6], sc = ARGV[b + 7], k1 = KEYS[2 * i], k2 = KEYS[2 * i + 1] }
  ops[i] = op
  local need = math.max(op.a, 1)
  local cand = nil
  if op.t == 'w' then
    op.used = trim(op.k1, op.k2, now, op.p)
    if op.used + need > op.l then
      -- retry-after: when enough of the oldest entries have left the window (exact).
      local retry = op.p
      if need <= op.l then
        local toFree = op.used + need - op.l
        local entries = redis.call('ZRANGE', op.k1, 0, -1, 'WITHSCORES')
        local freed = 0
        for j = 1, #entries, 2 do
          freed = freed + amountOf(entries[j])
          if freed >= toFree then
            retry = tonumber(entries[j + 1]) + op.p - now
            break
          end
        end
      end
      local newest = redis.call('ZRANGE', op.k1, -1, -1, 'WITHSCORES')
      local reset = 0
      if newest[2] then reset = tonumber(newest[2]) + op.p - now end
      cand = {0, op.name, retry, op.l, math.max(op.l - op.used, 0), reset}
    end
  elseif op.t == 'b' then
    op.used = tonumber(redis.call('GET', op.k1) or '0')
    if op.used + need > op.l then
      cand = {0, op.name, op.p - now, op.l, math.max(op.l - op.used, 0), op.p - now}
    end
  else
    redis.call('ZREMRANGEBYSCORE', op.k1, '-inf', now)
    op.used = redis.call('ZCARD', op.k1)
    if op.used + 1 > op.l then
      local first = redis.call('ZRANGE', op.k1, 0, 0, 'WITHSCORES')
      local wait = tonumber(first[2]) - now
      cand = {0, op.name, math.min(wait, 1000), op.l, 0, wait}
    end
  end
  if cand and (deny == nil or cand[3] > deny[3]) then deny = cand end
end

if deny then
  local ttl = math.floor(math.max(1, math.min(deny[3], resTtl)))
  putRecord(recKey, {s = 'D', d = deny}, now, ttl)
  return {deny[1], deny[2], deny[3], deny[4], deny[5], deny[6], 0}
end

-- Phase 2: reserve against every limit and remember exactly what was added where.
local alerts = {}
local entries = {}
local best = nil
for i = 1, n do
  local op = ops[i]
  local rem = 0
  local reset = 0
  if op.t == 'w' then
    local member = reqId .. '|' .. op.as
    redis.call('ZADD', op.k1, now, member)
    local sum = tonumber(redis.call('INCRBY', op.k2, op.a))
    redis.call('PEXPIRE', op.k1, op.p)
    redis.call('PEXPIRE', op.k2, op.p)
    entries[#entries + 1] = {t = 'w', k = op.k1, s = op.k2, m = member, a = op.a, u = op.u, sc = op.sc}
    rem = op.l - sum
    reset = op.p
  elseif op.t == 'b' then
    local v = tonumber(redis.call('INCRBY', op.k1, op.a))
    local ttl = op.p - now + grace
    redis.call('PEXPIRE', op.k1, ttl)
    raise(op.k2, ttl, op.name, v, op.l, op.per, alerts)
    entries[#entries + 1] = {t = 'b', k = op.k1, a = op.a, u = op.u, n = op.name, l = op.l, ak = op.k2, p = op.per, sc = op.sc}
    rem = op.l - v
    reset = op.p - now
  else
    redis.call('ZADD', op.k1, now + op.p, reqId)
    redis.call('PEXPIRE', op.k1, op.p)
    entries[#entries + 1] = {t = 'c', k = op.k1, m = reqId, sc = op.sc}
    rem = op.l - op.used - 1
  end
  local ratio = rem / op.l
  if best == nil or ratio < best[1] then best = {ratio, op.name, op.l, math.max(rem, 0), reset} end
end

local d = {1, '', 0, 0, 0, 0}
if best then d = {1, best[2], 0, best[3], best[4], best[5]} end
putRecord(recKey, {s = 'A', d = d, e = entries, m = model}, now, life)
local out = {d[1], d[2], d[3], d[4], d[5], d[6], 0}
for _, v in ipairs(alerts) do out[#out + 1] = v end
return out
`;

/**
 * KEYS[1] reservation record. ARGV: now, record life ms. Returns the outcome name.
 * An unknown request id gets a tombstone (a released record without entries), so that its
 * reserve arriving later (timed out at the client but still queued in Redis, or reordered after
 * a reconnect) reserves nothing. A released record drops its entries: an event after the release
 * is charged to the event's limits.
 */
export const RELEASE_LUA = `${COMMON}
local now = nowMs(ARGV[1])
local life = tonumber(ARGV[2])
local rec = liveRecord(KEYS[1], now)
if not rec then
  putRecord(KEYS[1], {s = 'X'}, now, life)
  return 'unknown'
end
if rec.s == 'X' then return 'already_released' end
if rec.s == 'R' or rec.s == 'U' then return 'already_reconciled' end
if rec.s == 'D' then return 'denied' end
for _, e in ipairs(rec.e) do
  if e.t == 'w' then
    -- request counts stay (the request was made); token entries are given back
    if e.u ~= 'none' and redis.call('ZREM', e.k, e.m) == 1 then
      if redis.call('ZCARD', e.k) == 0 then redis.call('DEL', e.s) else redis.call('DECRBY', e.s, e.a) end
    end
  elseif e.t == 'b' then
    if redis.call('EXISTS', e.k) == 1 then redis.call('DECRBY', e.k, e.a) end
  else
    redis.call('ZREM', e.k, e.m)
  end
end
rec.s = 'X'
rec.e = nil
redis.call('SET', KEYS[1], cjson.encode(rec), 'KEEPTTL')
return 'released'
`;

/**
 * KEYS[1] reservation record; KEYS[2i], KEYS[2i+1] keys of the event's limits (tenant, route and
 * served model).
 * ARGV: now, request id, record life ms, n ops, budget grace ms, actual tokens, actual
 *   micro-dollars, served model, then per op (8 each) as in reserve (amount ignored).
 * A known reservation: its recorded counters get the actual usage; when another model than the
 * reserved one served, the reserved model's token and dollar counters get 0 and the served
 * model's token and dollar limits (the event's ops of a model scope) the actual usage.
 * A released one (its estimate already given back), an unknown one or one past its record life:
 * the event's ops get the actual usage, once (the record becomes a dedupe marker 'U').
 * Returns {outcome, alerts as (name, threshold, used, limit, period)*}.
 */
export const RECONCILE_LUA = `${COMMON}
local recKey = KEYS[1]
local now = nowMs(ARGV[1])
local reqId = ARGV[2]
local life = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])
local tokensS = ARGV[6]
local tokens = tonumber(ARGV[6])
local cost = tonumber(ARGV[7])
local served = ARGV[8]
local alerts = {}

-- Adds the actual usage to op i's token window or budget (request counts and leases: nothing).
local function applyActual(i)
  local b = 9 + (i - 1) * 8
  local t = ARGV[b]
  local name = ARGV[b + 1]
  local l = tonumber(ARGV[b + 2])
  local p = tonumber(ARGV[b + 4])
  local u = ARGV[b + 5]
  local per = ARGV[b + 6]
  local k1 = KEYS[2 * i]
  local k2 = KEYS[2 * i + 1]
  if t == 'w' and u == 'tok' then
    trim(k1, k2, now, p)
    redis.call('ZADD', k1, now, reqId .. '|' .. tokensS)
    redis.call('INCRBY', k2, tokens)
    redis.call('PEXPIRE', k1, p)
    redis.call('PEXPIRE', k2, p)
  elseif t == 'b' then
    local amt = cost
    if u == 'tok' then amt = tokens end
    local v = tonumber(redis.call('INCRBY', k1, amt))
    local ttl = p - now + grace
    redis.call('PEXPIRE', k1, ttl)
    raise(k2, ttl, name, v, l, per, alerts)
  end
end

local outcome = 'orphan_applied'
local rec = liveRecord(recKey, now)
if rec then
  if rec.s == 'R' or rec.s == 'U' then return {'duplicate'} end
  -- Released (degraded admission whose late reserve was released, or a release before the
  -- provider call whose money was spent anyway): the usage is charged below, once.
  if rec.s == 'X' then outcome = 'after_release' end
  if rec.s == 'A' then
    local switched = served ~= '' and type(rec.m) == 'string' and rec.m ~= '' and rec.m ~= served
    for _, e in ipairs(rec.e) do
      local tok = tokens
      local tokS = tokensS
      local usd = cost
      if switched and type(e.sc) == 'string' and string.sub(e.sc, 1, 6) == 'model:' then
        tok = 0
        tokS = '0'
        usd = 0
      end
      if e.t == 'w' then
        if e.u == 'tok' then
          local score = redis.call('ZSCORE', e.k, e.m)
          if score then
            redis.call('ZREM', e.k, e.m)
            redis.call('ZADD', e.k, score, reqId .. '|' .. tokS)
            redis.call('INCRBY', e.s, tok - e.a)
          end
        end
      elseif e.t == 'b' then
        if redis.call('EXISTS', e.k) == 1 then
          local actual = usd
          if e.u == 'tok' then actual = tok end
          local v = tonumber(redis.call('INCRBY', e.k, actual - e.a))
          raise(e.ak, tonumber(redis.call('PTTL', e.k)), e.n, v, e.l, e.p, alerts)
        end
      else
        redis.call('ZREM', e.k, e.m)
      end
    end
    if switched then
      for i = 1, n do
        local sc = ARGV[9 + (i - 1) * 8 + 7]
        if string.sub(sc, 1, 6) == 'model:' then applyActual(i) end
      end
    end
    rec.s = 'R'
    rec.e = nil
    redis.call('SET', recKey, cjson.encode(rec), 'KEEPTTL')
    local out = {'reconciled'}
    for _, v in ipairs(alerts) do out[#out + 1] = v end
    return out
  end
end

-- Released, unknown or expired reservation (or a denied one): add the actual usage once.
for i = 1, n do applyActual(i) end
putRecord(recKey, {s = 'U'}, now, life)
local out = {outcome}
for _, v in ipairs(alerts) do out[#out + 1] = v end
return out
`;

/**
 * KEYS[2i-1], KEYS[2i] keys of limit op i. ARGV: now, n, then per op (3 each): type, limit, param.
 * Returns {used, reset_ms} per op. Read-only.
 */
export const STATUS_LUA = `
local now = tonumber(ARGV[1])
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local n = tonumber(ARGV[2])
local out = {}
for i = 1, n do
  local b = 3 + (i - 1) * 3
  local t = ARGV[b]
  local p = tonumber(ARGV[b + 2])
  local k1 = KEYS[2 * i - 1]
  local used = 0
  local reset = 0
  if t == 'w' then
    local entries = redis.call('ZRANGEBYSCORE', k1, '(' .. (now - p), '+inf', 'WITHSCORES')
    for j = 1, #entries, 2 do
      used = used + (tonumber(string.match(entries[j], '|(%d+)$')) or 0)
      reset = tonumber(entries[j + 1]) + p - now
    end
  elseif t == 'b' then
    used = tonumber(redis.call('GET', k1) or '0')
    reset = p - now
  else
    local live = redis.call('ZRANGEBYSCORE', k1, '(' .. now, '+inf', 'WITHSCORES')
    used = #live / 2
    if live[2] then reset = tonumber(live[2]) - now end
  end
  out[#out + 1] = used
  out[#out + 1] = reset
end
return out
`;
