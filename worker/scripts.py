"""Lua scripts for job-record transitions, so each transition is one atomic round trip.

A computation is the list of job ids attached to one model run
(`RedisKeys.computation`): identical in-flight requests join the list
instead of enqueueing again, and the worker settles every job on it.
Each model version has its own queue (`RedisKeys.queue`), a sorted set whose
members are the computations' leaders (the job id that enqueued it) scored
`priority band + arrival number`. A short member keeps the queue cheap to write; the
rest is in the leader's hash. Job hashes carry internal fields besides the public
ones: `cache_key` (so the computation's key), `worker`, `owner`, `deadline_at` (epoch
seconds) and `input` (its JSON: what the model runs on, and what an operator requeues
when a job failed or expired). Plain data throughout: a consumer never unpickles job data.
"""

# The job index (`GET /jobs`): sorted sets of job ids scored by creation time. Every job
# goes into `<ns>:jobs:all` (and its owner's set) when it is created; a job that ends in a
# rare state an operator hunts for (failed, expired, canceled) also goes into that
# status's set. Common states (queued, running, succeeded) have no set of their own: it
# cost Redis three writes per job and state change, while a listing by them can filter
# the creation index (api/joblist.py). Entries older than the job TTL are pruned on
# about one creation in 256 (chosen by the random job id) and when a listing reads a set.
_INDEX = """
-- Locals for what every script reaches for per job: each use of a global (`redis`,
-- `ARGV`, `tonumber`) is a lookup in Lua's table of globals, and `redis.call` two.
local call, ARGV, KEYS, tonumber = redis.call, ARGV, KEYS, tonumber
local ENDED_INDEXED = {failed = true, expired = true, canceled = true}
local function index_base(job_prefix)
  return string.sub(job_prefix, 1, -5) .. 'jobs:'  -- '<ns>:job:' -> '<ns>:jobs:'
end
-- Old entries go on about one creation in 256: the sets a job `id` of `owner` is in.
local function index_prune(base, id, created, owner, ttl)
  if string.sub(id, -2) == '00' then
    local cutoff = tonumber(created) - tonumber(ttl)
    local sets = {base .. 'all'}
    if owner ~= '' then table.insert(sets, base .. 'owner:' .. owner) end
    for status in pairs(ENDED_INDEXED) do table.insert(sets, base .. 'status:' .. status) end
    for _, set in ipairs(sets) do call('ZREMRANGEBYSCORE', set, '-inf', cutoff) end
  end
end
local function index_new(base, id, created, owner, ttl)  -- base: index_base(job prefix)
  call('ZADD', base .. 'all', created, id)
  if owner ~= '' then call('ZADD', base .. 'owner:' .. owner, created, id) end
  index_prune(base, id, created, owner, ttl)
end
-- ZADD key, then score, member pairs from a flat list (in calls of at most 1000 pairs).
local function zadd_all(key, pairs_list)
  for first = 1, #pairs_list, 2000 do
    call('ZADD', key, unpack(pairs_list, first, math.min(#pairs_list, first + 1999)))
  end
end
-- A computation's key from its leader's cache key (`<ns>:inflight:<cache key>`, or
-- `<ns>:inflight:job:<leader>` for a model whose answers are not shared); nil if the
-- leader's record is gone.
local inflight = {}  -- per job prefix, its computations' prefix, built once per call
local function computation_of(job_prefix, leader, cache_key)
  if cache_key == nil then cache_key = call('HGET', job_prefix .. leader, 'cache_key') end
  if not cache_key then return nil end
  local prefix = inflight[job_prefix]
  if not prefix then
    prefix = string.sub(job_prefix, 1, -5) .. 'inflight:'  -- '<ns>:job:' -> '<ns>:inflight:'
    inflight[job_prefix] = prefix
  end
  return prefix .. (cache_key ~= '' and cache_key or 'job:' .. leader)
end
local function index_ended(job_prefix, id, status, created)
  if ENDED_INDEXED[status] and created then
    call('ZADD', index_base(job_prefix) .. 'status:' .. status, created, id)
  end
end
"""

# Submit a batch of jobs in one call: the API sends every submit of one event-loop turn
# together, so what all of them share (the pause flag, admission's view of the queues,
# the arrival sequence, the tokens) is read and written once per call, not once per job.
# Each job is answered from the shared cache, attached to an identical computation in
# flight, or admitted and enqueued, exactly as if it had been submitted alone, in order.
# KEYS: 1 heartbeats, 2 stats, 3 queue tokens, 4 arrival sequence, 5 queue index,
#       6 lease index, 7 overlapping arrivals, 8 the intake pause flag.
# ARGV: 1 job ttl, 2 max depth ahead, 3 heartbeat ttl, 4 priority band width, 5 the
#       prefix of job hashes, 6 of shared results ('' when results are not shared), 7 of
#       model queues, 8 the number P of priorities, then their
#       names from the highest (band 0) down; then 8 per job: id, model, version,
#       priority, now, input JSON, cache key ('' when its answers are not shared),
#       options: '' for none, else deadline_at ('' for none), the Idempotency-Key's
#       record key and the request's fingerprint ('' without one) and the owner ('' when
#       open), joined by newlines.
# A job's keys are built here from its id, cache key, model and version: every argument
# costs Redis its parsing and a Lua string, per job, and most jobs have no options.
# Returns per job: 'enqueued' | 'attached' (the common answers, without a list around
#       them) | {'cached', result} | {'existing', job id}
#       | {'rejected', reason, ahead, consumers, work ahead ms, run ms}.
# What can be derived here (bands, whether the result is shared, the deadline's length)
# is not passed: every argument costs Redis work, per job.
SUBMIT = (
    _INDEX
    + """
local NA = 8
local ttl, max_ahead, heartbeat_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local band_width, P = tonumber(ARGV[4]), tonumber(ARGV[8])
local JOB, RESULT, QUEUE = ARGV[5], ARGV[6], ARGV[7]
local H = 8 + P  -- arguments before the first job's
local jobs = (#ARGV - H) / NA
-- Each priority's band (a number) and the next band's lower bound (a string), on first use.
local band_of, next_of = {}, {}
local function bands_of(priority)
  if not band_of[priority] then
    for i = 1, P do
      if ARGV[8 + i] == priority then
        band_of[priority] = (i - 1) * band_width
        next_of[priority] = string.format('%.0f', i * band_width)
      end
    end
  end
  return band_of[priority], next_of[priority]
end
local replies = {}
if call('EXISTS', KEYS[8]) == 1 then  -- an operator paused intake
  for i = 1, jobs do replies[i] = {'rejected', 'paused', 0, 0, '0', '0'} end
  return replies
end
-- Admission's view, read on first need and kept up to date as this call enqueues:
-- queued computations of each queue scored below a band boundary, each queue's cost
-- per computation and time per batch, and how many consumers are live.
local queue_list, known, totals, costs, runs, sizes = nil, {}, {}, {}, {}, {}
local live, busy, seq, added, overlapping = nil, nil, nil, 0, 0
local bounds = {}  -- band strings as numbers, converted once
local function load_queues()
  if queue_list then return end
  queue_list = call('SMEMBERS', KEYS[5])
  for _, queue in ipairs(queue_list) do known[queue] = true end
end
-- What this call enqueues is written at its end, one ZADD per queue (and one per index
-- set): a ZADD per job cost Redis a command's overhead per job. Until then counts add it.
local pending, pending_at = {}, {}  -- per queue: flat score, member list; numeric scores
local function stat(cache, field, queue)
  if cache[queue] == nil then
    cache[queue] = tonumber(call('HGET', KEYS[2], field .. queue) or '0')
  end
  return cache[queue]
end
local function consumers(now)
  if live == nil then
    live = call('ZCOUNT', KEYS[1], tonumber(now) - heartbeat_ttl, '+inf')
  end
  return live
end
-- Every queued computation of any model scored below the next band (this priority or
-- higher) runs before a new one; each costs its model's measured time per computation.
-- Counted once per bound and call, then kept up to date as this call enqueues: {ahead, ms}.
local function ahead_of(bound)
  local total = totals[bound]
  if not total then
    load_queues()
    local at_most = tonumber(bound)
    local ahead, work_ms = 0, 0
    for _, queue in ipairs(queue_list) do
      local n = call('ZCOUNT', queue, '-inf', '(' .. bound)
      for _, at in ipairs(pending_at[queue] or {}) do
        if at < at_most then n = n + 1 end
      end
      if n > 0 then
        ahead = ahead + n
        work_ms = work_ms + n * stat(costs, 'cost:', queue)
      end
    end
    total = {ahead, work_ms}
    totals[bound], bounds[bound] = total, at_most
  end
  return total[1], total[2]
end
local function note_enqueued(queue, score)
  if not known[queue] then
    known[queue] = true
    table.insert(queue_list, queue)
    call('SADD', KEYS[5], queue)
  end
  for bound, total in pairs(totals) do
    if score < bounds[bound] then
      total[1], total[2] = total[1] + 1, total[2] + stat(costs, 'cost:', queue)
    end
  end
end
-- A new job's hash: the fields every job has, then `...` (more field, value pairs).
-- `attempts` (0), `cached` (0) and an open job's `owner` ('') are left out: readers
-- default them, and every argument costs Redis work.
local index = nil  -- the job index's key prefix, the same for every job of a call
local indexed, owned = {}, {}  -- created, id pairs for the index: all jobs; per owner
-- The id is the key's suffix: the hash does not repeat it.
local function create(j, status, ...)
  if j.idem then  -- only once the job exists: a refused request may be retried
    call('SET', j.idem, j.id .. ' ' .. j.fingerprint, 'EX', ttl)
  end
  if j.owner == '' then
    call('HSET', j.key, 'status', status, 'model', j.model, 'model_version', j.version,
      'priority', j.priority, 'created_at', j.now, 'cache_key', j.cache_key, 'input', j.input,
      ...)
  else
    call('HSET', j.key, 'owner', j.owner, 'status', status, 'model', j.model,
      'model_version', j.version, 'priority', j.priority, 'created_at', j.now, 'cache_key',
      j.cache_key, 'input', j.input, ...)
  end
  call('EXPIRE', j.key, ttl)
  index = index or index_base(JOB)
  local n = #indexed
  indexed[n + 1], indexed[n + 2] = j.now, j.id
  if j.owner ~= '' then
    local list = owned[j.owner]
    if not list then list = {}; owned[j.owner] = list end
    list[#list + 1], list[#list + 2] = j.now, j.id
  end
  index_prune(index, j.id, j.now, j.owner, ttl)
end
local function submit(j)
  -- The same Idempotency-Key again: the job it made, never a second one (a different
  -- request under the same key is refused).
  local seen = j.idem and call('GET', j.idem)
  if seen then
    local id, fingerprint = string.match(seen, '^(%S+) (.*)$')
    if fingerprint ~= j.fingerprint then
      return {'rejected', 'idempotency_mismatch', 0, 0, '0', '0'}
    end
    return {'existing', id}
  end
  local cacheable = j.result_key ~= '-'
  if cacheable then
    local hit = call('GET', j.result_key)
    if hit then
      create(j, 'succeeded', 'cached', '1', 'result', hit, 'started_at', j.now,
        'finished_at', j.now)
      return {'cached', hit}
    end
  end
  -- Join the computation first: a longer list means an identical one is in flight.
  if call('RPUSH', j.computation, j.id) > 1 and cacheable then
    create(j, 'queued')
    -- Marks the leader: a take or settle reads the computation's list only when marked.
    local leader = JOB .. call('LINDEX', j.computation, 0)
    if call('EXISTS', leader) == 1 then call('HSET', leader, 'shared', '1') end
    return 'attached'
  end
  -- Admission: only a new computation adds work.
  local band, next_band = bands_of(j.priority)
  local ahead, work_ms = ahead_of(next_band)
  if ahead >= max_ahead then
    call('RPOP', j.computation)
    return {'rejected', 'queue_full', ahead, consumers(j.now), tostring(work_ms), '0'}
  end
  if j.deadline_at ~= '' then
    -- The deadline is the whole budget: the wait ahead plus this model's own run.
    local n, run_ms = consumers(j.now), stat(runs, 'run:', j.queue)
    local budget_ms = (tonumber(j.deadline_at) - tonumber(j.now)) * 1000
    if n == 0 or work_ms / n + run_ms > budget_ms then
      call('RPOP', j.computation)
      return {'rejected', 'deadline', ahead, n, tostring(work_ms), tostring(run_ms)}
    end
  end
  call('EXPIRE', j.computation, ttl)
  seq = (seq or tonumber(call('GET', KEYS[4]) or '0')) + 1
  added = added + 1
  -- Arrivals while other work is queued or running are what delayed batching can
  -- gather; a lone client's never are.
  if sizes[j.queue] == nil then sizes[j.queue] = call('ZCARD', j.queue) end
  if busy == nil then busy = call('HLEN', KEYS[6]) > 0 end
  if sizes[j.queue] > 0 or busy then overlapping = overlapping + 1 end
  local at = band + seq
  local score = string.format('%d', at)
  if j.deadline_at == '' then
    create(j, 'queued')
  else
    create(j, 'queued', 'deadline_at', j.deadline_at)
  end
  local list = pending[j.queue]
  if not list then list = {}; pending[j.queue] = list; pending_at[j.queue] = {} end
  list[#list + 1], list[#list + 2] = score, j.id
  table.insert(pending_at[j.queue], at)
  sizes[j.queue] = sizes[j.queue] + 1
  load_queues()
  note_enqueued(j.queue, at)
  return 'enqueued'
end
-- Each model version's queue key, built once per call.
local queue_keys = {}
local function queue_of(model, version)
  local versions = queue_keys[model]
  if not versions then versions = {}; queue_keys[model] = versions end
  local queue = versions[version]
  if not queue then queue = QUEUE .. model .. ':' .. version; versions[version] = queue end
  return queue
end
local j = {}  -- one table for every job of the call, its fields set anew for each
for i = 1, jobs do
  local a = H + (i - 1) * NA
  local id, model, version, cache_key = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 7]
  j.id, j.model, j.version, j.priority, j.now, j.input, j.cache_key = id, model, version,
    ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], cache_key
  j.key, j.queue = JOB .. id, queue_of(model, version)
  j.computation = computation_of(JOB, id, cache_key)
  j.result_key = (cache_key ~= '' and RESULT ~= '') and RESULT .. cache_key or '-'
  local options = ARGV[a + 8]
  if options == '' then
    j.deadline_at, j.idem, j.fingerprint, j.owner = '', nil, nil, ''
  else
    local deadline_at, idem, fingerprint, owner = string.match(options,
      '^([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n(.*)$')
    j.deadline_at, j.owner = deadline_at, owner
    if idem == '' then idem, fingerprint = nil, nil end
    j.idem, j.fingerprint = idem, fingerprint
  end
  replies[i] = submit(j)
end
for queue, list in pairs(pending) do zadd_all(queue, list) end
if index then
  zadd_all(index .. 'all', indexed)
  for owner, list in pairs(owned) do zadd_all(index .. 'owner:' .. owner, list) end
end
if added > 0 then
  call('INCRBY', KEYS[4], added)
  if overlapping > 0 then call('INCRBY', KEYS[7], overlapping) end
  for first = 1, added, 1000 do
    local ones = {}
    for _ = first, math.min(added, first + 999) do table.insert(ones, '1') end
    call('RPUSH', KEYS[3], unpack(ones))
  end
end
return replies
"""
)

# A consumer's dequeue, pipelined after a BLPOP on the token list (Lua cannot block):
# huey's own tasks first, else a batch from the model queue whose head runs first
# (lowest score: highest priority, then oldest), up to that queue's target size.
# Each computation taken is leased to this consumer thread in the same step, and its
# queued jobs become running (canceled ones are dropped; one whose deadline falls
# before the batch's estimated run could end expires here), so a consumer that dies
# at any point after this loses nothing: REAP puts the batch back.
# Adaptive LIFO ("Fail at Scale"): once the head of the chosen queue has waited longer
# than ARGV[8] seconds, the queue is standing and its clients are likely gone, so the
# batch is taken newest first within the head's priority; otherwise FIFO.
# Retries whose back-off has passed move from the delayed set to their queues first.
# With ARGV[7] set, takes more from that queue into the lease the holder already has.
# With ARGV[7] '-' it is pipelined after FINISH instead, by a worker that just settled a
# batch: it pops a token itself and takes only model work (an empty token list or a
# queued huey task is left to the blocking take), so a busy worker settles one batch and
# takes the next in one round trip.
# KEYS: 1 queue tokens, 2 lease index, 3 this holder's lease, 4 huey's queue,
#       5 overlapping arrivals, 6 heartbeats, 7 delayed retries, 8 leaders to run alone,
#       9.. the model queues.
# ARGV: 1 worker id, 2 priority band width, 3 job key prefix, 4 expired-error json,
#       5 done channel, 6 heartbeat ttl, 7 queue number to add to ('' to choose, '-'
#       to choose after FINISH),
#       8 standing-queue age in seconds (0: always FIFO), then per queue: target size,
#       estimated run seconds of a batch.
# Returns false | {'task', message}
#   | {'batch', queue number, computations, expired, others queued, busy, live, seq}
#   where computations is a flat list of leader, cache key, input JSON, a count n and n
#   values: what this take started of it (the start stamp, then id, attempts, priority,
#   created_at per job: FINISH settles those without reading them again). Flat, not a
#   list per computation: Redis converts every table a script returns by probing it for
#   seven special fields (err, ok, double, ...), about 3,000 instructions per table,
#   and a nested list costs a deferred reply length besides. Expired is a flat list of
#   id, priority, created_at; busy, live and seq are 0, 0 and -1 for a full batch.
TAKE = (
    _INDEX
    + """
local Q = 8  -- KEYS[Q + i] is model queue i
local nq = #KEYS - Q
-- The server's clock: the caller's was read before the BLPOP that may have blocked.
-- (Strings where Lua would format numbers: every number formatted costs Redis work.)
local clock = call('TIME')
local stamp = clock[1] .. '.' .. string.rep('0', 6 - #clock[2]) .. clock[2]
local now = tonumber(stamp)
for _, due in ipairs(call('ZRANGEBYSCORE', KEYS[7], '-inf', stamp, 'LIMIT', '0', '32')) do
  call('ZREM', KEYS[7], due)
  local queue, score, member = string.match(due, '^([^\\n]*)\\n([^\\n]*)\\n(.*)$')
  call('ZADD', queue, score, member)
  call('RPUSH', KEYS[1], '1')
end
local after_finish = ARGV[7] == '-'
if after_finish and (call('EXISTS', KEYS[4]) == 1 or not call('LPOP', KEYS[1])) then
  return false
end
-- Queue scores are whole numbers, which Redis writes without exponent or leading zeros
-- up to 2^53: compared as strings, a shorter one is lower.
local function lower(a, b) return #a < #b or (#a == #b and a < b) end
local chosen = tonumber(ARGV[7])
local others = nil  -- whether another served queue holds work, when the head scan tells
local head = nil  -- the chosen queue's first entry, when the head scan read it
if not chosen then
  local task = call('ZPOPMIN', KEYS[4])
  if #task > 0 then return {'task', task[1]} end
  local heads = 0
  for i = 1, nq do
    local first = call('ZRANGE', KEYS[Q + i], '0', '0', 'WITHSCORES')
    if first[1] then
      heads = heads + 1
      if not head or lower(first[2], head[2]) then chosen, head = i, first end
    end
  end
  if not chosen then
    call('DEL', KEYS[1])  -- nothing queued, so every token is stale
    return false
  end
  others = heads > 1 and 1 or 0
end
local queue = KEYS[Q + chosen]
local want, run_s = tonumber(ARGV[7 + 2 * chosen]), tonumber(ARGV[8 + 2 * chosen])
local newest_below
local standing = tonumber(ARGV[8])
if standing > 0 then
  head = head or call('ZRANGE', queue, '0', '0', 'WITHSCORES')
  local created = head[1] and call('HGET', ARGV[3] .. head[1], 'created_at')
  if created and now - tonumber(created) > standing then
    local band_width = tonumber(ARGV[2])
    local band = math.floor(tonumber(head[2]) / band_width) * band_width
    newest_below = '(' .. string.format('%.0f', band + band_width)
  end
end
-- Up to `n` entries from the front: lowest scores (FIFO), or newest in the head's band.
local function pop(n)
  if not newest_below then return call('ZPOPMIN', queue, n) end
  local top = call('ZRANGE', queue, newest_below, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, n,
    'WITHSCORES')
  -- The highest scores below the bound: exactly the queue's entries from the lowest taken.
  if #top > 0 then call('ZREMRANGEBYSCORE', queue, top[#top], newest_below) end
  return top
end
-- Leaders of computations that were in a batch that ran out of time: each runs alone.
local any_solo = call('EXISTS', KEYS[8]) == 1
local members, expired, expired_ids, entries = {}, {}, {}, {}
local nm, ne = 0, 0  -- lengths of members, entries
local popped, taken, done = 0, 0, false
local horizon = now + run_s  -- a job due before this would expire mid-run
local NEXT = {['0'] = '1', ['1'] = '2', ['2'] = '3', ['3'] = '4'}  -- attempts, no tonumber
-- A queued job of a computation being taken: expired if its deadline falls before the
-- batch could end, else started. Returns its attempts if it started.
local function start(id, key, status, prio, created, due, attempts)
  if status ~= 'queued' then return nil end
  if due and tonumber(due) <= horizon then
    call('HSET', key, 'status', 'expired', 'finished_at', stamp, 'error', ARGV[4])
    index_ended(ARGV[3], id, 'expired', created)
    for _, v in ipairs({id, prio, created}) do table.insert(expired, v) end
    table.insert(expired_ids, id)
    return nil
  end
  attempts = NEXT[attempts or '0'] or tostring(tonumber(attempts) + 1)
  call('HSET', key, 'status', 'running', 'started_at', stamp, 'worker', ARGV[1],
    'attempts', attempts)
  return attempts
end
while not done and taken < want and popped < 4 * want + 16 do
  local heads = pop(want - taken)
  if #heads == 0 then break end
  for h = 1, #heads, 2 do
    local leader, score = heads[h], heads[h + 1]
    local solo = any_solo and call('SISMEMBER', KEYS[8], leader) == 1
    if done or (solo and taken > 0) then
      call('ZADD', queue, score, leader)  -- not this batch's: back where it was
      done = true
    else
      popped = popped + 1
      local key = ARGV[3] .. leader
      local fields = call('HMGET', key, 'status', 'priority', 'created_at', 'deadline_at',
        'attempts', 'cache_key', 'input', 'shared')
      local cache_key, input = fields[6], fields[7]  -- cache_key nil: the record is gone
      -- Written in place after its leader, cache key, input and count (placeholders until
      -- the computation is known to be taken; undone if it is not): what this take
      -- started of it, the stamp, then id, attempts, priority, created_at per job.
      local b, nr = nm + 4, 1
      members[nm + 1], members[nm + 2], members[nm + 3], members[nm + 4] = leader, false,
        false, 0
      members[b + 1] = stamp
      local attempts = cache_key and start(leader, key, fields[1], fields[2], fields[3],
        fields[4], fields[5])
      if attempts then
        members[b + 2], members[b + 3], members[b + 4], members[b + 5] = leader, attempts,
          fields[2], fields[3]
        nr = 5
      end
      -- Only a computation another job has joined has more ids than its leader's.
      if cache_key and fields[8] then
        for _, id in ipairs(call('LRANGE', computation_of(ARGV[3], leader, cache_key),
            '0', '-1')) do
          if id ~= leader then
            local other_key = ARGV[3] .. id
            local o = call('HMGET', other_key, 'status', 'priority', 'created_at',
              'deadline_at', 'attempts', 'input')
            input = input or o[6]
            local other = start(id, other_key, o[1], o[2], o[3], o[4], o[5])
            if other then
              members[b + nr + 1], members[b + nr + 2], members[b + nr + 3],
                members[b + nr + 4] = id, other, o[2], o[3]
              nr = nr + 4
            end
          end
        end
      end
      if nr > 1 and input then
        entries[ne + 1], entries[ne + 2], entries[ne + 3] = queue, score, leader
        ne = ne + 3
        members[nm + 2], members[nm + 3], members[nm + 4] = cache_key, input, nr
        nm = b + nr
        taken = taken + 1
        if solo then
          call('SREM', KEYS[8], leader)  -- it runs alone now
          done = true
        end
      else
        for k = nm + 1, b + nr do members[k] = nil end
        if cache_key then
          -- every job on it was canceled or expired
          call('DEL', computation_of(ARGV[3], leader, cache_key))
        end
      end
    end
  end
end
if #entries > 0 then
  -- One field of the lease hash: the worker id, then queue, score, leader per computation,
  -- joined by newlines (a list per lease and a set of them cost three commands here and
  -- three more at FINISH). A lease this holder still has (taking more) grows.
  local joined = table.concat(entries, '\\n')
  if call('HSETNX', KEYS[2], KEYS[3], ARGV[1] .. '\\n' .. joined) == 0 then
    call('HSET', KEYS[2], KEYS[3], call('HGET', KEYS[2], KEYS[3]) .. '\\n' .. joined)
  end
end
-- The BLPOP took one token for the first computation; drop those of the others.
local extra = popped - ((ARGV[7] == '' or after_finish) and 1 or 0)
if extra > 0 then call('LPOP', KEYS[1], extra) end
if others == nil then
  others = 0
  for i = 1, nq do
    if i ~= chosen and call('ZCARD', KEYS[Q + i]) > 0 then others = 1 end
  end
end
if #expired_ids > 0 then call('PUBLISH', ARGV[5], table.concat(expired_ids, ',')) end
-- What delayed batching weighs (busy leases, live workers, the arrival count) matters
-- only for a batch short of its target; a full one is dispatched at once.
local busy, live_workers, seq = 0, 0, '-1'
if taken < want then
  busy = call('HLEN', KEYS[2])
  live_workers = call('ZCOUNT', KEYS[6], now - tonumber(ARGV[6]), '+inf')
  seq = call('GET', KEYS[5]) or '0'
end
return {'batch', chosen, members, expired, others, busy, live_workers, seq}
"""
)

# KEYS: job.  ARGV: id, model, version, priority, now, job ttl, result, cache key, owner.
RECORD_CACHED = (
    _INDEX
    + """
call('HSET', KEYS[1], 'status', 'succeeded', 'model', ARGV[2],
  'model_version', ARGV[3], 'priority', ARGV[4], 'created_at', ARGV[5],
  'started_at', ARGV[5], 'finished_at', ARGV[5], 'cached', '1',
  'result', ARGV[7], 'cache_key', ARGV[8], 'owner', ARGV[9])
call('EXPIRE', KEYS[1], ARGV[6])
index_new(index_base(string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])), ARGV[1], ARGV[5], ARGV[9],
  ARGV[6])
return 1
"""
)

# Take a computation out of its queue once none of its jobs is queued or running any
# more (a cancel or an expiry): otherwise it would count in admission until a worker
# popped it, and an identical request would attach to a computation nobody runs.
# KEYS[2] is the token list; ARGV[5], [6], [7] are the computation, queue and job
# key prefixes.
_DROP_IF_DEAD = """
local function drop_if_dead(id, model, version, cache_key)
  local computation = ARGV[5] .. ((cache_key and cache_key ~= '') and cache_key or 'job:' .. id)
  local ids = call('LRANGE', computation, 0, -1)
  for _, other in ipairs(ids) do
    local status = call('HGET', ARGV[7] .. other, 'status')
    if status == 'queued' or status == 'running' then return end
  end
  -- The queue's member is the computation's leader, its first id.
  local queue = ARGV[6] .. model .. ':' .. version
  if ids[1] and call('ZREM', queue, ids[1]) > 0 then call('LPOP', KEYS[2]) end
  call('DEL', computation)
end
"""

# KEYS: job, queue tokens.  ARGV: now, done channel, id, owner, then the prefixes above.
# Returns 'ok', 'missing' (or another tenant's) or the status that prevents canceling.
CANCEL = (
    _INDEX
    + _DROP_IF_DEAD
    + """
local status, owner, model, version, cache_key, created = unpack(call('HMGET', KEYS[1],
  'status', 'owner', 'model', 'model_version', 'cache_key', 'created_at'))
if not status or (owner or '') ~= ARGV[4] then return 'missing' end
if status ~= 'queued' then return status end
call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[1])
index_ended(ARGV[7], ARGV[3], 'canceled', created)
drop_if_dead(ARGV[3], model, version, cache_key)
call('PUBLISH', ARGV[2], ARGV[3])
return 'ok'
"""
)

# KEYS: job, queue tokens.  ARGV: now, done channel, id, '', the prefixes above, error json.
# Expires a queued job whose deadline has passed; returns 1 if it did.
EXPIRE_DUE = (
    _INDEX
    + _DROP_IF_DEAD
    + """
local status, due, model, version, cache_key, created = unpack(call('HMGET', KEYS[1],
  'status', 'deadline_at', 'model', 'model_version', 'cache_key', 'created_at'))
if status ~= 'queued' or not due or tonumber(due) > tonumber(ARGV[1]) then return 0 end
call('HSET', KEYS[1], 'status', 'expired', 'finished_at', ARGV[1], 'error', ARGV[8])
index_ended(ARGV[7], ARGV[3], 'expired', created)
drop_if_dead(ARGV[3], model, version, cache_key)
call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
)

# Settle a whole batch: every job of every computation in it, lease released.
# A computation whose model failed transiently goes back to wait for a retry instead
# (status `queued`, in the delayed set until its back-off passes), unless it has had
# all its attempts or a retry could not finish before a job's deadline.
# KEYS: 1 lease (a field of 2), 2 leases, 3 stats, 4 the batch's queue, 5 delayed retries.
# ARGV: 1 job key prefix, 2 now, 3 result ttl (0: do not share), 4 done channel,
#       5 the queue's recent model time per computation in ms ('' to leave the stats as
#       they are), 6 model time of this batch in ms, 7 attempts allowed for a transient
#       failure, 8 first retry delay in seconds, 9 the queue's recent model time per batch
#       in ms (written with 5), 10 '1' when a computation asks for a retry (its lease
#       entry is read to put it back), 11 the completion message to publish if the
#       result is exact ('' when the caller publishes it), then per computation, in
#       lease order:
#       computation key, shared result key ('-' if none), status (succeeded, failed or
#       retry), result json (succeeded) or error json, n, and n values: the id of each
#       job TAKE started of it, each followed by its created_at unless the status is
#       succeeded (only a failed job is indexed by it).
# Returns {exact, flat list of id, priority ('' when TAKE told it), status}: with exact
# '1' every job of a computation that did not ask for a retry was settled as the caller
# told (the list holds only the others: jobs that joined later, retries that failed);
# with '0' the list holds every job settled.
# While the lease is held, nobody else has touched the jobs TAKE started (only REAP and
# TIME_OUT take a lease back, and they remove it): those are settled from what TAKE
# told, without reading them; a job that joined the computation later is read.
# The completion message (a JSON list of the settled records, so woken waiters need not
# read them) is built by the caller for the jobs it settles, and published only if this
# settles exact: encoding it here cost Redis more than anything else per job. A short one
# is passed in and published here (a round trip saved); a batch's long one is published
# by the caller once this returned exact '1', because every string that enters Redis's
# Lua is hashed byte by byte. Otherwise the settled ids are published here, and their
# waiters read their records. The ids of a computation that asked for a retry and had
# none left (it fails here) go out here too.
FINISH = (
    _INDEX
    + """
local extra, settled, told = {}, {}, {}  -- records read here; returned; told and settled
local reread = {}  -- ids settled here that the caller's message does not hold
local ne, ns, nt, nr = 0, 0, 0, 0
local expected = 0  -- jobs the caller's message covers
-- The lease goes first (a script runs alone); its entries are read only for a retry.
local lease = nil
if ARGV[10] == '1' then
  local value = call('HGET', KEYS[2], KEYS[1])
  lease = {}
  for entry in string.gmatch(value or '', '[^\\n]+') do lease[#lease + 1] = entry end
end
local held = call('HDEL', KEYS[2], KEYS[1]) == 1
local now, run_s = tonumber(ARGV[2]), tonumber(ARGV[6]) / 1000
local function retry_at(computation)
  local ids, most, due = call('LRANGE', computation, 0, -1), 0, nil
  for _, id in ipairs(ids) do
    most = math.max(most, tonumber(call('HGET', ARGV[1] .. id, 'attempts') or '0'))
  end
  if most >= tonumber(ARGV[7]) then return nil end
  due = now + tonumber(ARGV[8]) * 2 ^ math.max(0, most - 1)
  for _, id in ipairs(ids) do
    local deadline = call('HGET', ARGV[1] .. id, 'deadline_at')
    if deadline and deadline ~= '' and due + run_s > tonumber(deadline) then return nil end
  end
  return due
end
-- A job of a running computation that joined after TAKE (or any, once the lease was
-- lost): read, and settled if it is still queued or running; its record goes out here.
local function settle_read(id, status, outcome, value)
  local key = ARGV[1] .. id
  local old, prio, started, attempts, cache_key, created = unpack(call('HMGET', key,
    'status', 'priority', 'started_at', 'attempts', 'cache_key', 'created_at'))
  if old ~= 'queued' and old ~= 'running' then return end
  -- `started_at` is written for a job that never started (its record exists: just read).
  call('HSET', key, 'status', status, 'finished_at', ARGV[2], 'started_at',
    started or ARGV[2], outcome, value)
  index_ended(ARGV[1], id, status, created)
  local record = {id = id, status = status, finished_at = ARGV[2],
    started_at = started or ARGV[2], attempts = attempts, cache_key = cache_key}
  record[outcome] = value
  ne = ne + 1
  extra[ne] = record
  settled[ns + 1], settled[ns + 2], settled[ns + 3] = id, prio, status
  ns = ns + 3
end
local share = ARGV[3] ~= '0'
local c, slot = 12, 2
while c <= #ARGV do
  local computation, result_key, status, value = ARGV[c], ARGV[c + 1], ARGV[c + 2], ARGV[c + 3]
  local took = c + 4  -- ARGV[took] is n: then id (and created_at) per job TAKE started
  local stride = status == 'succeeded' and 1 or 2
  c = took + 1 + tonumber(ARGV[took])
  local covered = status ~= 'retry'  -- the caller's message holds these jobs
  -- A lease taken back (REAP, TIME_OUT) put the computation back already: a retry of it
  -- leaves it there.
  local requeued = not covered and not held
  local due = not covered and held and retry_at(computation)
  if covered then expected = expected + (c - took - 1) / stride else status = 'failed' end
  local outcome = status == 'succeeded' and 'result' or 'error'
  if requeued then
    -- nothing: its jobs wait in the queue to run again
  elseif due then
    for _, id in ipairs(call('LRANGE', computation, 0, -1)) do
      if call('HGET', ARGV[1] .. id, 'status') == 'running' then
        call('HSET', ARGV[1] .. id, 'status', 'queued')
      end
    end
    call('ZADD', KEYS[5], due,
      lease[slot] .. '\\n' .. lease[slot + 1] .. '\\n' .. lease[slot + 2])
  else
    -- Every id on the computation, and the list goes with them.
    for _, id in ipairs(call('LPOP', computation, '1000000') or {}) do
      local at = nil
      if held then
        for i = took + 1, c - 1, stride do
          if ARGV[i] == id then at = i; break end
        end
      end
      if not at then
        settle_read(id, status, outcome, value)
      else
        -- Written unread: a running job's record already has `status`, so three new
        -- fields mean it expired (its TTL ran out) while the model ran: that is deleted
        -- again, not left behind without a TTL.
        local key = ARGV[1] .. id
        if call('HSET', key, 'status', status, 'finished_at', ARGV[2], outcome,
            value) == 3 then
          call('DEL', key)
        else
          if stride == 2 then index_ended(ARGV[1], id, status, ARGV[at + 1]) end
          if covered then
            told[nt + 1], told[nt + 2] = id, status
            nt = nt + 2
          else  -- a retry that ran out: its waiters read the record
            settled[ns + 1], settled[ns + 2], settled[ns + 3] = id, '', status
            ns = ns + 3
            nr = nr + 1
            reread[nr] = id
          end
        end
      end
    end
    if status == 'succeeded' and result_key ~= '-' and share then
      call('SET', result_key, value, 'EX', ARGV[3])
    end
  end
  slot = slot + 3
end
-- Recent cost per computation and time per batch of this queue, for admission and for a
-- worker's start-or-expire decision: weighed by the consumer, written when they moved.
if ARGV[5] ~= '' then
  call('HSET', KEYS[3], 'cost:' .. KEYS[4], ARGV[5], 'run:' .. KEYS[4], ARGV[9])
end
local exact = held and nt == 2 * expected
if not exact then
  for i = 1, nt, 2 do
    nr = nr + 1
    reread[nr] = told[i]
    settled[ns + 1], settled[ns + 2], settled[ns + 3] = told[i], '', told[i + 1]
    ns = ns + 3
  end
end
if nr > 0 then call('PUBLISH', ARGV[4], table.concat(reread, ',')) end
if ne > 0 then call('PUBLISH', ARGV[4], cjson.encode(extra)) end
-- The caller's message, the records it wrote: sent here, not in a round trip of its own.
if exact and ARGV[11] ~= '' then call('PUBLISH', ARGV[4], ARGV[11]) end
return {exact and '1' or '0', settled}
"""
)

# Hand back what a lease held: each computation goes back to its queue with its old score
# (to the front of its priority) if `settle(id, job key)` keeps any of its jobs, else it
# is dropped; then the lease goes. REAP and TIME_OUT differ only in `settle`.
# `held`: the leases hash's fields and values (HGETALL), as {lease, entries} pairs with
# each lease's entries split into the worker id, then queue, score, leader per computation.
_RELEASE = """
local function entries_of(value)
  local entries = {}
  for entry in string.gmatch(value, '[^\\n]+') do entries[#entries + 1] = entry end
  return entries
end
local function held_leases(leases)
  local flat, held = call('HGETALL', leases), {}
  for i = 1, #flat, 2 do held[#held + 1] = {flat[i], entries_of(flat[i + 1])} end
  return held
end
local function release(leases, lease, entries, job_prefix, tokens, settle)
  for i = 2, #entries, 3 do
    local queue, score, leader = entries[i], entries[i + 1], entries[i + 2]
    local computation = computation_of(job_prefix, leader)
    local again = false
    for _, id in ipairs(computation and call('LRANGE', computation, 0, -1) or {}) do
      if settle(id, job_prefix .. id) then again = true end
    end
    if again then
      call('ZADD', queue, score, leader)
      call('RPUSH', tokens, '1')
    elseif computation then
      call('DEL', computation)
    end
  end
  call('HDEL', leases, lease)
end
"""

# Put back the batches of workers whose heartbeat has gone stale. Safe to run from many
# consumers at once: each lease is examined and removed atomically. A computation goes
# back with its old score: to the front of its priority, ahead of later arrivals.
# KEYS: 1 leases, 2 heartbeats, 3 queue tokens.
# ARGV: 1 job key prefix, 2 now, 3 heartbeat ttl, 4 max attempts, 5 done channel,
#       6 worker-lost error json, 7 one lease to release regardless of heartbeats
#       ('' for a sweep).
# Returns {requeued job ids, failed job ids}.
REAP = (
    _INDEX
    + _RELEASE
    + """
local requeued, failed = {}, {}
local cutoff = tonumber(ARGV[2]) - tonumber(ARGV[3])
local function settle(id, key)
  local status, attempts, created = unpack(call('HMGET', key, 'status', 'attempts',
    'created_at'))
  if status == 'running' and tonumber(attempts or '0') >= tonumber(ARGV[4]) then
    call('HSET', key, 'status', 'failed', 'finished_at', ARGV[2], 'error', ARGV[6])
    index_ended(ARGV[1], id, 'failed', created)
    table.insert(failed, id)
  elseif status == 'running' or status == 'queued' then
    call('HSET', key, 'status', 'queued')
    table.insert(requeued, id)
    return true
  end
  return false
end
for _, held in ipairs(held_leases(KEYS[1])) do
  local lease, entries = held[1], held[2]
  local seen = ARGV[7] == '' and call('ZSCORE', KEYS[2], entries[1])
  if lease == ARGV[7] or (ARGV[7] == '' and (not seen or tonumber(seen) < cutoff)) then
    release(KEYS[1], lease, entries, ARGV[1], KEYS[3], settle)
  end
end
if #failed > 0 then call('PUBLISH', ARGV[5], table.concat(failed, ',')) end
return {requeued, failed}
"""
)

# Hand back a batch taken after FINISH that this worker will not start (it is shutting
# down, or lost the take's reply): its jobs are queued again as if never taken, their
# attempts as they were.
# KEYS: 1 leases, 2 queue tokens. ARGV: 1 job key prefix, 2 the lease.
# Returns the job ids queued again.
UNTAKE = (
    _INDEX
    + _RELEASE
    + """
local requeued = {}
local function settle(id, key)
  local status = call('HGET', key, 'status')
  if status == 'running' then
    call('HSET', key, 'status', 'queued')
    call('HINCRBY', key, 'attempts', -1)
    call('HDEL', key, 'started_at', 'worker')
  elseif status ~= 'queued' then
    return false
  end
  table.insert(requeued, id)
  return true
end
local value = call('HGET', KEYS[1], ARGV[2])
if value then release(KEYS[1], ARGV[2], entries_of(value), ARGV[1], KEYS[2], settle) end
return requeued
"""
)

# A worker process was killed because its model call ran past the time limit: settle
# what it held. A batch of one computation ran out of time by itself, so its jobs fail
# with `timeout` (unless its model opted in to retries and attempts are left); a batch
# of several goes back to the queue (old scores) with every job marked to run alone, so
# only the computation that hangs fails next time.
# KEYS: 1 leases, 2 heartbeats, 3 queue tokens, 4 leaders to run alone.
# ARGV: 1 job key prefix, 2 now, 3 done channel, 4 timeout error json, 5 worker id,
#       6 attempts allowed, 7.. models that retry a timed-out job.
# Returns {failed: flat id, model, priority; requeued job ids}.
TIME_OUT = (
    _INDEX
    + _RELEASE
    + """
local failed, requeued = {}, {}
local retries = {}
for i = 7, #ARGV do retries[ARGV[i]] = true end
for _, held in ipairs(held_leases(KEYS[1])) do
  local lease, entries = held[1], held[2]
  if entries[1] == ARGV[5] then
    local alone = #entries == 4
    local function settle(id, key)
      local status, model, prio, attempts, created = unpack(call('HMGET', key, 'status',
        'model', 'priority', 'attempts', 'created_at'))
      if status ~= 'running' and status ~= 'queued' then return false end
      local retry = retries[model] and tonumber(attempts or '0') < tonumber(ARGV[6])
      if alone and not retry then
        call('HSET', key, 'status', 'failed', 'finished_at', ARGV[2], 'error', ARGV[4])
        index_ended(ARGV[1], id, 'failed', created)
        for _, v in ipairs({id, model, prio}) do table.insert(failed, v) end
        return false
      end
      call('HSET', key, 'status', 'queued')
      if not alone then
        call('SADD', KEYS[4], id)
        call('EXPIRE', KEYS[4], 86400)  -- a leader that never runs again goes too
      end
      table.insert(requeued, id)
      return true
    end
    release(KEYS[1], lease, entries, ARGV[1], KEYS[3], settle)
  end
end
call('ZREM', KEYS[2], ARGV[5])
local ids = {}
for i = 1, #failed, 3 do table.insert(ids, failed[i]) end
if #ids > 0 then call('PUBLISH', ARGV[3], table.concat(ids, ',')) end
return {failed, requeued}
"""
)

# An operator's purge: cancel the queued jobs of every model queue that matches (one
# model's versions, or all) within a score range (one priority band, or all), and take
# their computations out of the queues. With ARGV[6] = '1' only counts (a dry run).
# A reload uses it too, to fail the queued jobs of a version that was removed.
# KEYS: 1 queue index, 2 queue tokens.
# ARGV: 1 job key prefix, 2 now, 3 done channel, 4 lowest score, 5 highest score
#       (exclusive), 6 dry run, 7 queue key prefix of the model ('' for every queue),
#       8 error JSON to fail the jobs with ('' cancels them), 9 '1' when ARGV[7] is one
#       whole queue key.
# Returns {number of jobs, up to 1000 of their ids}.
PURGE = (
    _INDEX
    + """
local count, ids = 0, {}
for _, queue in ipairs(call('SMEMBERS', KEYS[1])) do
  local matches = ARGV[7] == '' or string.sub(queue, 1, #ARGV[7]) == ARGV[7]
  if ARGV[9] == '1' then matches = queue == ARGV[7] end
  if matches then
    for _, leader in ipairs(call('ZRANGE', queue, ARGV[4], '(' .. ARGV[5], 'BYSCORE')) do
      local computation = computation_of(ARGV[1], leader)
      for _, id in ipairs(computation and call('LRANGE', computation, 0, -1) or {}) do
        local status, created = unpack(call('HMGET', ARGV[1] .. id, 'status', 'created_at'))
        if status == 'queued' then
          count = count + 1
          if #ids < 1000 then table.insert(ids, id) end
          if ARGV[6] ~= '1' then
            if ARGV[8] == '' then
              call('HSET', ARGV[1] .. id, 'status', 'canceled', 'finished_at', ARGV[2])
              index_ended(ARGV[1], id, 'canceled', created)
            else
              call('HSET', ARGV[1] .. id, 'status', 'failed', 'finished_at', ARGV[2],
                'error', ARGV[8])
              index_ended(ARGV[1], id, 'failed', created)
            end
          end
        end
      end
      if ARGV[6] ~= '1' then
        call('ZREM', queue, leader)
        if computation then call('DEL', computation) end
        call('LPOP', KEYS[2])
      end
    end
  end
end
if ARGV[6] ~= '1' and #ids > 0 then call('PUBLISH', ARGV[3], table.concat(ids, ',')) end
return {count, ids}
"""
)
