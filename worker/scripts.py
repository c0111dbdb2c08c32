"""Lua scripts for job-record transitions, so each transition is one atomic round trip.

A computation is the list of job ids attached to one model run
(`RedisKeys.computation`): identical in-flight requests join the list
instead of enqueueing again, and the worker settles every job on it.
Job hashes carry internal fields besides the public ones: `cache_key`,
`worker` and `deadline_at` (epoch seconds).
"""

# KEYS: job, computation, shared result ('-' if none), huey queue, heartbeats, stats,
#       queue tokens.
# ARGV: 1 id, 2 model, 3 version, 4 priority, 5 now, 6 job ttl, 7 huey message,
#       8 queue score, 9 cacheable, 10 cache key, 11 max depth ahead, 12 deadline_at
#       ('' for none), 13 deadline seconds, 14 heartbeat ttl, 15 owner ('' when open).
# Returns {'cached', result} | {'attached'} | {'enqueued'}
#       | {'rejected', reason, ahead, consumers, service_ms}.
SUBMIT = """
local function create(status, extra)
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', status, 'model', ARGV[2],
    'model_version', ARGV[3], 'priority', ARGV[4], 'created_at', ARGV[5],
    'attempts', 0, 'cached', extra.cached or '0', 'cache_key', ARGV[10], 'owner', ARGV[15])
  if extra.result then
    redis.call('HSET', KEYS[1], 'result', extra.result, 'started_at', ARGV[5],
      'finished_at', ARGV[5])
  end
  if ARGV[12] ~= '' and not extra.result then
    redis.call('HSET', KEYS[1], 'deadline_at', ARGV[12])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
if ARGV[9] == '1' then
  local hit = redis.call('GET', KEYS[3])
  if hit then
    create('succeeded', {cached = '1', result = hit})
    return {'cached', hit}
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[1])
    create('queued', {})
    return {'attached'}
  end
end
-- Admission: only a new computation adds work. Scores are negated priorities,
-- so everything scored at or below ours runs before us.
local ahead = redis.call('ZCOUNT', KEYS[4], '-inf', ARGV[8])
local consumers = redis.call('ZCOUNT', KEYS[5], tonumber(ARGV[5]) - tonumber(ARGV[14]), '+inf')
local service_ms = tonumber(redis.call('HGET', KEYS[6], 'service_ms') or '0')
if ahead >= tonumber(ARGV[11]) then
  return {'rejected', 'queue_full', ahead, consumers, tostring(service_ms)}
end
if ARGV[12] ~= '' then
  local deadline_ms = tonumber(ARGV[13]) * 1000
  if consumers == 0 or ahead * service_ms / consumers > deadline_ms then
    return {'rejected', 'deadline', ahead, consumers, tostring(service_ms)}
  end
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[6])
create('queued', {})
redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7])
redis.call('RPUSH', KEYS[7], '1')
return {'enqueued'}
"""

# A consumer's dequeue: pop the first message and, in the same step, record it as
# claimed by the popping thread, so a consumer that dies before START (which turns the
# claim into a lease) does not take the message with it: REAP puts it back.
# Consumers block on the token list (one token per message), not on the queue: Lua
# cannot block, so a consumer pipelines BLPOP tokens + this script in one round trip.
# KEYS: huey queue, queue tokens, claims.  ARGV: claim field, heartbeat id, now.
# Returns the message (with huey's 8-byte prefix) or false when the queue is empty.
CLAIM = """
local popped = redis.call('ZPOPMIN', KEYS[1])
if #popped == 0 then
  redis.call('DEL', KEYS[2])  -- no message left, so every token is stale
  redis.call('HDEL', KEYS[3], ARGV[1])
  return false
end
redis.call('HSET', KEYS[3], ARGV[1],
  ARGV[2] .. '\\n' .. ARGV[3] .. '\\n' .. popped[2] .. '\\n' .. popped[1])
return popped[1]
"""

# KEYS: job.  ARGV: id, model, version, priority, now, job ttl, result, cache key, owner.
RECORD_CACHED = """
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', 'succeeded', 'model', ARGV[2],
  'model_version', ARGV[3], 'priority', ARGV[4], 'created_at', ARGV[5],
  'started_at', ARGV[5], 'finished_at', ARGV[5], 'attempts', 0, 'cached', '1',
  'result', ARGV[7], 'cache_key', ARGV[8], 'owner', ARGV[9])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""

# KEYS: job.  ARGV: now, done channel, id, owner.
# Returns 'ok', 'missing' (or another tenant's) or the status that prevents canceling.
CANCEL = """
local status, owner = unpack(redis.call('HMGET', KEYS[1], 'status', 'owner'))
if not status or (owner or '') ~= ARGV[4] then return 'missing' end
if status ~= 'queued' then return status end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 'ok'
"""

# KEYS: job.  ARGV: now, done channel, id, error json.
# Expires a queued job whose deadline has passed; returns 1 if it did.
EXPIRE_DUE = """
local status, due = unpack(redis.call('HMGET', KEYS[1], 'status', 'deadline_at'))
if status ~= 'queued' or not due or tonumber(due) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'expired', 'finished_at', ARGV[1], 'error', ARGV[4])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""

# KEYS: computation, done channel, lease index, lease, claims.
# ARGV: job key prefix, worker id, now, leader id, expired-error json, queue score,
#   queue message (to re-enqueue the computation if this worker is lost), claim field.
# Returns {started, expired}: flat lists of id, priority, created_at per job.
# An empty `started` means skip the model run; otherwise the worker holds a lease.
START = """
redis.call('HDEL', KEYS[5], ARGV[8])  -- the claim becomes a lease (or nothing to run)
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
if #ids == 0 then
  ids = {ARGV[4]}
  redis.call('RPUSH', KEYS[1], ARGV[4])  -- so a lost lease still finds its job
end
local started, expired, expired_ids, active = {}, {}, {}, 0
local now = tonumber(ARGV[3])
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local status, prio, created, due = unpack(redis.call('HMGET', key, 'status', 'priority',
    'created_at', 'deadline_at'))
  if status == 'queued' and due and tonumber(due) <= now then
    redis.call('HSET', key, 'status', 'expired', 'finished_at', ARGV[3], 'error', ARGV[5])
    for _, v in ipairs({id, prio, created}) do table.insert(expired, v) end
    table.insert(expired_ids, id)
  elseif status == 'queued' then
    redis.call('HSET', key, 'status', 'running', 'started_at', ARGV[3], 'worker', ARGV[2])
    redis.call('HINCRBY', key, 'attempts', 1)
    for _, v in ipairs({id, prio, created}) do table.insert(started, v) end
  elseif status == 'running' then
    active = active + 1
  end
end
if #started == 0 and active == 0 then redis.call('DEL', KEYS[1]) end
if #started > 0 then
  redis.call('SADD', KEYS[3], KEYS[1])
  redis.call('HSET', KEYS[4], 'worker', ARGV[2], 'score', ARGV[6], 'message', ARGV[7])
end
if #expired_ids > 0 then redis.call('PUBLISH', KEYS[2], table.concat(expired_ids, ',')) end
return {started, expired}
"""

# KEYS: computation, shared result ('-' if none), stats, lease index, lease.
# ARGV: 1 job key prefix, 2 status, 3 result json or '', 4 error json or '', 5 now,
#       6 result ttl (0: do not share), 7 done channel, 8 started_at, 9 leader id,
#       10 model run time in ms.
# Returns a flat list of id, priority per settled job, and publishes the settled job
# records themselves (a JSON list of field maps), so woken waiters need not read them.
FINISH = """
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
if #ids == 0 then ids = {ARGV[9]} end
redis.call('DEL', KEYS[1], KEYS[5])
redis.call('SREM', KEYS[4], KEYS[1])
local records, settled = {}, {}
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local status, prio = unpack(redis.call('HMGET', key, 'status', 'priority'))
  if status == 'queued' or status == 'running' then
    redis.call('HSET', key, 'status', ARGV[2], 'finished_at', ARGV[5])
    if status == 'queued' then redis.call('HSET', key, 'started_at', ARGV[8]) end
    if ARGV[3] ~= '' then redis.call('HSET', key, 'result', ARGV[3]) end
    if ARGV[4] ~= '' then redis.call('HSET', key, 'error', ARGV[4]) end
    local flat, record = redis.call('HGETALL', key), {}
    for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
    table.insert(records, record)
    table.insert(settled, id)
    table.insert(settled, prio)
  end
end
if ARGV[2] == 'succeeded' and tonumber(ARGV[6]) > 0 then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[6])
end
-- Recent service time, an exponentially weighted mean, for admission estimates.
local old = tonumber(redis.call('HGET', KEYS[3], 'service_ms') or ARGV[10])
redis.call('HSET', KEYS[3], 'service_ms', tostring(old * 0.8 + tonumber(ARGV[10]) * 0.2))
if #records > 0 then redis.call('PUBLISH', ARGV[7], cjson.encode(records)) end
return settled
"""

# Re-enqueue computations whose worker is gone. Safe to run from many consumers at
# once: each lease is examined and removed atomically.
# A sweep also puts back the messages that lost consumers had claimed but not started.
# KEYS: lease index, heartbeats, huey queue, claims, queue tokens.
# ARGV: 1 job key prefix, 2 lease key prefix, 3 now, 4 heartbeat ttl, 5 max attempts,
#       6 done channel, 7 worker-lost error json, 8 one computation key to release
#       regardless of heartbeats ('' for a sweep).
# Returns {requeued job ids, failed job ids, number of claimed messages put back}.
REAP = """
local computations = redis.call('SMEMBERS', KEYS[1])
if ARGV[8] ~= '' then computations = {ARGV[8]} end
local requeued, failed = {}, {}
local cutoff = tonumber(ARGV[3]) - tonumber(ARGV[4])
for _, computation in ipairs(computations) do
  local lease = ARGV[2] .. computation
  local worker, score, message = unpack(redis.call('HMGET', lease, 'worker', 'score', 'message'))
  local seen = worker and redis.call('ZSCORE', KEYS[2], worker)
  if ARGV[8] ~= '' or not seen or tonumber(seen) < cutoff then
    local again = false
    for _, id in ipairs(redis.call('LRANGE', computation, 0, -1)) do
      local key = ARGV[1] .. id
      local status, attempts = unpack(redis.call('HMGET', key, 'status', 'attempts'))
      if status == 'running' and tonumber(attempts or '0') >= tonumber(ARGV[5]) then
        redis.call('HSET', key, 'status', 'failed', 'finished_at', ARGV[3], 'error', ARGV[7])
        table.insert(failed, id)
      elseif status == 'running' or status == 'queued' then
        redis.call('HSET', key, 'status', 'queued')
        table.insert(requeued, id)
        again = true
      end
    end
    if again and message then
      redis.call('ZADD', KEYS[3], score, message)
      redis.call('RPUSH', KEYS[5], '1')
    elseif not again then
      redis.call('DEL', computation)
    end
    redis.call('SREM', KEYS[1], computation)
    redis.call('DEL', lease)
  end
end
local restored = 0
if ARGV[8] == '' then
  local claims = redis.call('HGETALL', KEYS[4])
  for i = 1, #claims, 2 do
    local value = claims[i + 1]
    local a = string.find(value, '\\n', 1, true)
    local b = string.find(value, '\\n', a + 1, true)
    local c = string.find(value, '\\n', b + 1, true)
    local seen = redis.call('ZSCORE', KEYS[2], string.sub(value, 1, a - 1))
    local claimed_at = tonumber(string.sub(value, a + 1, b - 1))
    -- A claim is normally replaced by a lease within a millisecond; one older than a
    -- heartbeat ttl whose consumer is not beating was lost with its consumer.
    if claimed_at < cutoff and (not seen or tonumber(seen) < cutoff) then
      redis.call('ZADD', KEYS[3], string.sub(value, b + 1, c - 1), string.sub(value, c + 1))
      redis.call('RPUSH', KEYS[5], '1')
      redis.call('HDEL', KEYS[4], claims[i])
      restored = restored + 1
    end
  end
end
if #failed > 0 then redis.call('PUBLISH', ARGV[6], table.concat(failed, ',')) end
return {requeued, failed, restored}
"""
