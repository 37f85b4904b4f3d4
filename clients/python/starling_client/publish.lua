-- Starling publish script (SPEC §6). One atomic call stores an ordered batch of events
-- in the channel's stream and announces it to every broker node with one PUBLISH.
-- The broker runs this exact text (embedded in RedisPublishScript.swift; a test keeps
-- the two identical), so a worker calling it directly is an HTTP publish in all but name.
--
--   EVALSHA <sha> 1 starling:{<channel>} <retain-events> <retain-seconds> <event>...
--   <event> is 7 arguments: name data kind conflate final producer seq
--     name      SSE event name, [A-Za-z0-9._:-]{1,64}, not starting "starling."
--     data      the event data, raw
--     kind      "text" (sent as is; a JSON string's content) or "json" (any other JSON value, compact)
--     conflate  conflation key, "" for none
--     final     "1" completes the channel (only on the last event), else "0"
--     producer  idempotent producer name, "" for none
--     seq       that producer's sequence number (integer), "" for none
--
-- Returns one entry per event: its stream ID, or "" when the producer already sent that seq.
-- Errors: "FINAL ..." when the channel is final (HTTP 409); "ERR starling: ..." on bad arguments.
--
-- Keys: the stream starling:{ch}, its producer record starling:{ch}:producers (same hash
-- slot). Stream fields: e=name d=data k=kind, c=conflate and f=1 only when present.
-- Notification (PUBLISH starling:{ch}): netstring-like fields "<len>:<bytes>", in order
-- "v1", the ID before the batch ("" if none), then per stored event: id, name,
-- flags ("t"|"j", then "c" if conflated, "f" if final), conflate, data.

local key = KEYS[1]
local maxlen = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local count = (#ARGV - 2) / 7

local function fail(msg)
  return redis.error_reply('ERR starling: ' .. msg)
end

if #KEYS ~= 1 or not string.match(key, '^starling:{[A-Za-z0-9._:@-]+}$') then
  return fail('the one key must be starling:{channel}')
end
if not maxlen or maxlen < 1 or not ttl or ttl < 1 then
  return fail('ARGV[1] retain-events and ARGV[2] retain-seconds must be positive integers')
end
if count < 1 or count ~= math.floor(count) then
  return fail('after the two retention arguments, each event takes 7: name data kind conflate final producer seq')
end

-- Check the whole batch before storing anything: all or nothing.
for i = 0, count - 1 do
  local b = 3 + i * 7
  local name, data, kind, final, seq = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 4], ARGV[b + 6]
  local at = 'event [' .. i .. ']: '
  if #name < 1 or #name > 64 or not string.match(name, '^[A-Za-z0-9._:-]+$')
      or string.sub(name, 1, 9) == 'starling.' then
    return fail(at .. 'bad event name')
  end
  if kind ~= 'text' and kind ~= 'json' then return fail(at .. 'kind must be text or json') end
  if kind == 'json' and not pcall(cjson.decode, data) then return fail(at .. 'data is not JSON') end
  if final ~= '0' and final ~= '1' then return fail(at .. 'final must be 0 or 1') end
  if final == '1' and i ~= count - 1 then return fail(at .. 'follows the final event') end
  if seq ~= '' and not string.match(seq, '^-?%d+$') then return fail(at .. 'seq must be an integer') end
end

-- The newest entry gives both the final state and the ID the notification chains from.
local prev = ''
local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
if #newest > 0 then
  prev = newest[1][1]
  local fields = newest[1][2]
  for j = 1, #fields, 2 do
    if fields[j] == 'f' then
      return redis.error_reply('FINAL starling: channel ' .. string.sub(key, 11, -2) .. ' is final and accepts no more events')
    end
  end
end

local function field(s) return #s .. ':' .. s end

local producers = key .. ':producers'
local seen = {}
local ids = {}
local notice = { field('v1'), field(prev) }
local stored = 0
local touchedProducers = false
local idMs, nextSeq
for i = 0, count - 1 do
  local b = 3 + i * 7
  local name, data, kind, conflate, final, producer, seq =
    ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  local duplicate = false
  if producer ~= '' and seq ~= '' then
    local q = tonumber(seq)
    local s = seen[producer]
    if s == nil then s = tonumber(redis.call('HGET', producers, producer) or '') or false end
    if s and q <= s then
      duplicate = true
    else
      seen[producer] = q
      redis.call('HSET', producers, producer, seq)
      touchedProducers = true
    end
  end
  if duplicate then
    ids[#ids + 1] = ''
  else
    local args = { 'XADD', key, 'MAXLEN', '~', maxlen, '*', 'e', name, 'd', data, 'k', kind }
    local flags = (kind == 'text') and 't' or 'j'
    if conflate ~= '' then
      args[#args + 1] = 'c'; args[#args + 1] = conflate; flags = flags .. 'c'
    end
    if final == '1' then
      args[#args + 1] = 'f'; args[#args + 1] = '1'; flags = flags .. 'f'
    end
    -- The first event takes Redis's next ID; the rest follow it as <ms>-<seq+1>, … so a
    -- batch's IDs are consecutive (as the memory engine makes them), whatever the clock does.
    if nextSeq then args[6] = idMs .. '-' .. nextSeq end
    local id = redis.call(unpack(args))
    if not nextSeq then
      local ms, seq = string.match(id, '^(%d+)-(%d+)$')
      idMs, nextSeq = ms, tonumber(seq)
    end
    nextSeq = nextSeq + 1
    ids[#ids + 1] = id
    stored = stored + 1
    notice[#notice + 1] = field(id)
    notice[#notice + 1] = field(name)
    notice[#notice + 1] = field(flags)
    notice[#notice + 1] = field(conflate)
    notice[#notice + 1] = field(data)
  end
end

if stored > 0 then
  -- Retention by age: drop entries older than retain-seconds, and let an idle channel's
  -- key (and its producer record) expire as a whole.
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ttl * 1000
  if cutoff > 0 then redis.call('XTRIM', key, 'MINID', '~', cutoff) end
  redis.call('PEXPIRE', key, ttl * 1000)
  redis.call('PUBLISH', key, table.concat(notice))
end
if touchedProducers then redis.call('PEXPIRE', producers, ttl * 1000) end
return ids
