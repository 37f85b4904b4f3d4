-- Starling publish script (SPEC §6). One atomic call stores an ordered batch of events
-- in the channel's stream and announces it to every broker node with one SPUBLISH
-- (sharded pub/sub, Redis 7: on a cluster the message stays on the slot's shard).
-- The broker runs this exact text (embedded in RedisPublishScript.swift; a test keeps
-- the two identical), so a worker calling it directly is an HTTP publish in all but name.
--
--   EVALSHA <sha> 1 starling:{<channel>} [lease <ms>] <retain-events> <retain-seconds> <event>...
--   EVALSHA <sha> 1 starling:{<channel>} cancel <retain-events> <retain-seconds> <data>
--   EVALSHA <sha> 1 starling:{<channel>} hold <retain-events> <retain-seconds>
--   EVALSHA <sha> 1 starling:{<channel>} lapse <retain-events> <retain-seconds>
--   EVALSHA <sha> <n> starling:{<ch1>} … starling:{<chn>} batch [checked] <retain-events> <retain-seconds> <argc1> <args1>… <argcn> <argsn>…
--   runs n calls in one: call k is KEYS[k] with the argc_k arguments after its count, as
--   its own EVALSHA would take them without `checked` and the retention pair, which the
--   batch gives once for all ([lease <ms>] <event>…, cancel <data>, hold, lapse). The reply
--   holds each call's reply (a one-event publish's: its ID alone, not an array of one); an
--   error among them is that call's alone (nothing of that call is stored). The broker sends the publishes of one loop turn this way to one Redis (not
--   to a cluster, whose keys of one call must share a slot): the call's own cost in Redis
--   and the arguments every call repeats are paid once per batch (docs/redis.md).
--   Any form may start with `checked` (EVALSHA <sha> 1 starling:{<channel>} checked ...):
--   the caller has already checked the channel name, the event names, kinds, JSON data,
--   the final event's place and the seqs as SPEC §4 and §5 ask (the broker does, before it
--   calls), and the script does not check them again: those checks were ~10 % of a
--   publish's cost in Redis (docs/redis.md). A worker calling the script leaves it out.
--   <event> is 7 arguments: name data kind conflate final producer seq
--     name      SSE event name, [A-Za-z0-9._:-]{1,64}, not starting "starling."
--     data      the event data, raw
--     kind      "text" (sent as is; a JSON string's content) or "json" (any other JSON value, compact)
--     conflate  conflation key, "" for none
--     final     "1" completes the channel (only on the last event), else "0"
--     producer  idempotent producer name, "" for none
--     seq       that producer's sequence number, "<seq>" or "<epoch>:<seq>" (decimal
--               integers 0 .. 2^63-1; no epoch reads as 0), "" for none
--   A call of one plain event (no conflate, not final, no producer) may give just its first
--   3 (name data kind): the broker's token publishes do, as every argument costs Redis
--   ~1.5 k instructions to read and hand to Lua (3.3 % of a batched publish, docs/redis.md).
--
-- Idempotent producers (SPEC §4), per channel and producer: the first seq (or the first
-- of a higher epoch) may be any value; then each event carries highest+1. A repeat
-- (<= highest) is acknowledged and not stored; a jump ahead or a lower epoch refuses the
-- whole batch. Seqs and epochs are compared exactly, as decimal strings: Lua's numbers
-- are doubles, exact only up to 2^53.
--
-- Lifecycle (SPEC §4). A channel ends with its final event; the event's name says how:
-- starling.cancelled (Stop: the `cancel` form, <data> its JSON data), starling.abandoned
-- (its lease ran out), anything else (the publisher's own final event).
--   lease <ms>  the batch sets the channel's lease (1000 .. 86400000 ms). Every publish to a
--               leased channel renews the deadline to Redis's TIME + lease; so does `hold`
--               (an open streaming publish, every third of the lease).
--   lapse       ends the channel as abandoned if its deadline has passed (brokers with
--               subscribers call it periodically). Every form first does the same, so the
--               end happens once, at the first call after the deadline, whoever makes it.
-- The lease lives in the channel's state record (fields ms, due), gone once the channel
-- ends. Events stored while the channel is leased carry l=1 (flag "l" in the
-- notification), so a node watching the channel knows to check it.
--
-- Returns one entry per event: its stream ID, or "" when the producer already sent that seq.
-- `cancel` returns the ID of the starling.cancelled event; `hold` returns the state
-- ("open", "final", "cancelled", "abandoned"); `lapse` the ID of the starling.abandoned
-- event it stored, or "".
-- Errors (nothing of the batch is stored):
--   "FINAL starling: ..."   the channel is final (HTTP 409 channel_final); a batch made
--                           only of repeats is still acknowledged
--   "CANCELLED starling: ...", "ABANDONED starling: ..."  likewise, the channel was
--                           cancelled (409 channel_cancelled) or abandoned (409
--                           channel_abandoned); `cancel` on an ended channel gets the same
--   "SEQGAP starling: event [k]: producer "p": seq S jumps ahead; expected seq E"  (409 producer_seq_gap)
--   "FENCED starling: event [k]: producer "p": epoch E is below its current epoch F"  (409 producer_fenced)
--   "ERR starling: ..."     bad arguments (400)
--
-- Keys (one hash slot): the stream starling:{ch}; its state record starling:{ch}:state (hash:
-- id = the newest ID stored, e = final|cancelled|abandoned once ended, ms and due = the
-- lease; older versions kept the lease in starling:{ch}:lease and no record: a channel
-- without one is read from its newest entry, and the old lease hash moved in); its
-- producer record starling:{ch}:producers (field = producer, value = "<epoch>:<highest
-- seq>", or a bare "<highest seq>" for epoch 0 as older versions wrote it). Stream fields: e=name d=data k=kind, c=conflate
-- and f=1 only when present.
-- Expiry: the stream expires retain-seconds after its last publish; the state record never
-- after the stream; the producer record retain-seconds after
-- the last event that carried a seq. Before trusting the record, the script asks the stream
-- (XREAD after the record's id) whether another writer appended since: an older script or a
-- bare XADD; then it reads the newest entry instead.
-- Notification (SPUBLISH starling:{ch}): netstring-like fields "<len>:<bytes>", in order
-- "v1", the ID before the batch ("" if none), then per stored event: id, name,
-- flags ("t"|"j", then "c" if conflated, "f" if final), conflate, data.

-- A length in decimal. string.format and number-to-string conversions run sprintf, ~1.5k
-- instructions each under callgrind: the notification's lengths (IDs, names, short
-- data) are made with string.char instead, sprintf only from 10,000 up.
local function dec(n)
  if n < 10 then return string.char(48 + n) end
  local u = n % 10
  local t = (n - u) / 10
  if n < 100 then return string.char(48 + t, 48 + u) end
  local tt = t % 10
  local h = (t - tt) / 10
  if n < 1000 then return string.char(48 + h, 48 + tt, 48 + u) end
  if n < 10000 then local hh = h % 10; return string.char(48 + (h - hh) / 10, 48 + hh, 48 + tt, 48 + u) end
  return string.format('%d', n)
end

-- One call: `key` with ARGV[first .. last] as its arguments; returns its reply. In a batch
-- `r` is the ARGV index of the shared <retain-events> (and `checked` the batch's); alone,
-- the retention pair follows the call's form. (The body is not indented one step further,
-- so its history stays readable.)
local function run(key, first, last, r, checked)
local mode = 'publish'
local a = first        -- ARGV index of the call's next argument
if not r and ARGV[a] == 'checked' then checked = true; a = a + 1 end
local leaseForm = ARGV[a] == 'lease'
local leaseMs
if leaseForm then
  leaseMs = tonumber(ARGV[a + 1])
  a = a + 2
elseif ARGV[a] == 'cancel' or ARGV[a] == 'hold' or ARGV[a] == 'lapse' then
  mode = ARGV[a]
  a = a + 1
end
if not r then r = a; a = a + 2 end
-- Now ARGV[r], ARGV[r + 1] are the retention pair and ARGV[a .. last] the events (or the
-- cancel's data).
-- One plain event (no conflate, final, producer or seq) may come as its first 3 of the 7.
local plain = mode == 'publish' and last - a == 2
local count = plain and 1 or (last - a + 1) / 7

-- (A plain publish runs no code it does not need: every closure and table a call makes
-- costs allocation and garbage collection, which callgrind showed as the bulk of a
-- publish's instructions. Helpers are made only on the paths that use them; the common
-- path, one event without conflate/final/lease/producer, makes no closure and no table
-- but the reply.)
local bad   -- the message of a refusal: 'ERR starling: ' .. bad

-- (string.find, not string.match: a match makes a string of what it matched.)
if not (checked or string.find(key, '^starling:{[A-Za-z0-9._:@-]+}$')) then
  return redis.error_reply('ERR starling: the one key must be starling:{channel}')
end
-- Numbers handed to redis.call or joined to strings are formatted with "%.14g" each time,
-- and tonumber runs strtod: plain integer arguments (the broker's) are passed on as their
-- own digits; anything else tonumber accepts is read and formatted as before.
local maxlenArg, ttlMsArg = ARGV[r], nil
if string.find(maxlenArg or '', '^[1-9]%d*$') and string.find(ARGV[r + 1] or '', '^[1-9]%d*$') then
  ttlMsArg = ARGV[r + 1] .. '000'
else
  local maxlen, ttl = tonumber(ARGV[r]), tonumber(ARGV[r + 1])
  if not maxlen or maxlen < 1 or not ttl or ttl < 1 then
    return redis.error_reply('ERR starling: retain-events and retain-seconds must be positive integers')
  end
  maxlenArg = string.find(ARGV[r], '^%d+$') and ARGV[r] or string.format('%d', maxlen)
  ttlMsArg = string.find(ARGV[r + 1], '^%d+$') and (ARGV[r + 1] .. '000') or string.format('%d', ttl * 1000)
end
if leaseForm and (not leaseMs or leaseMs ~= math.floor(leaseMs) or leaseMs < 1000 or leaseMs > 86400000) then
  bad = 'lease takes whole milliseconds from 1000 to 86400000'
elseif mode == 'cancel' and (last ~= a or not pcall(cjson.decode, ARGV[a])) then
  bad = 'cancel takes retain-events, retain-seconds and the JSON data of the starling.cancelled event'
elseif (mode == 'hold' or mode == 'lapse') and last ~= a - 1 then
  bad = mode .. ' takes retain-events and retain-seconds'
elseif mode == 'publish' and (count < 1 or count % 1 ~= 0) then
  bad = 'after the two retention arguments, each event takes 7: name data kind conflate final producer seq (or 3, name data kind, for one plain event)'
end
if bad then return redis.error_reply('ERR starling: ' .. bad) end

-- Producer seqs: helpers only when some event carries one.
local seqs = false
for i = 0, (mode == 'publish' and not plain and count or 0) - 1 do
  if ARGV[a + 6 + i * 7] ~= '' then seqs = true; break end
end
local less, integer, succ, position
local MAXINT = '9223372036854775807'
if seqs then
-- a < b for canonical integers (below): by length, then as two halves of at most 10
-- digits, each exact as a double (no string collation involved).
function less(a, b)
  if #a ~= #b then return #a < #b end
  local ha, hb = tonumber(string.sub(a, 1, -11)) or 0, tonumber(string.sub(b, 1, -11)) or 0
  if ha ~= hb then return ha < hb end
  return tonumber(string.sub(a, -10)) < tonumber(string.sub(b, -10))
end
-- An exact integer 0 .. 2^63-1 as a canonical decimal string (no leading zeros); nil if not one.
function integer(s)
  if not s or not string.match(s, '^%d+$') then return nil end
  s = string.match(s, '^0*(%d-)$')
  if s == '' then s = '0' end
  if #s > 19 or less(MAXINT, s) then return nil end
  return s
end
-- s + 1 for a canonical integer.
function succ(s)
  local i = #s
  while i > 0 and string.sub(s, i, i) == '9' do i = i - 1 end
  if i == 0 then return '1' .. string.rep('0', #s) end
  return string.sub(s, 1, i - 1) .. string.char(string.byte(s, i) + 1) .. string.rep('0', #s - i)
end
-- "<seq>" or "<epoch>:<seq>" -> epoch, seq (canonical); nil if malformed.
function position(text)
  local e, q = string.match(text, '^(%d+):(%d+)$')
  if not e then e, q = '0', text end
  e, q = integer(e), integer(q)
  if not e or not q then return nil end
  return e, q
end
end

-- Check the whole batch before storing anything: all or nothing (`checked`: the caller did).
for i = 0, (mode == 'publish' and not checked and count or 0) - 1 do
  local b = a + i * 7
  local name, data, kind = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local final, seq = '0', ''
  if not plain then final, seq = ARGV[b + 4], ARGV[b + 6] end
  if #name < 1 or #name > 64 or not string.find(name, '^[A-Za-z0-9._:-]+$')
      or (#name >= 9 and string.sub(name, 1, 9) == 'starling.') then
    bad = 'bad event name'
  elseif kind ~= 'text' and kind ~= 'json' then bad = 'kind must be text or json'
  elseif kind == 'json' and not pcall(cjson.decode, data) then bad = 'data is not JSON'
  elseif final ~= '0' and final ~= '1' then bad = 'final must be 0 or 1'
  elseif final == '1' and i ~= count - 1 then bad = 'follows the final event'
  elseif seq ~= '' and not position(seq) then
    bad = 'seq must be <seq> or <epoch>:<seq>, integers from 0 to ' .. MAXINT
  end
  if bad then
    return redis.error_reply('ERR starling: event [' .. string.format('%d', i) .. ']: ' .. bad)
  end
end

-- The channel's state record starling:{ch}:state (hash): id = the newest ID the script
-- stored, e = how the channel ended (final, cancelled, abandoned; absent while open), ms and
-- due = its lease. One HGETALL replaces reading and parsing the stream's newest entry
-- (cheaper than HMGET of the four fields: one argument, and an open channel's record
-- holds only id).
local stateKey = key .. ':state'
local st = redis.call('HGETALL', stateKey)
local prev, ended_as, leaseLen, leaseDue = false, false, false, false
for j = 1, #st, 2 do
  local f = st[j]
  if f == 'id' then prev = st[j + 1]
  elseif f == 'e' then ended_as = st[j + 1]
  elseif f == 'ms' then leaseLen = st[j + 1]
  elseif f == 'due' then leaseDue = st[j + 1] end
end
local state = 'open'
local recorded = prev ~= false
if recorded and not ended_as and redis.call('XREAD', 'COUNT', '1', 'STREAMS', key, prev) then
  -- Entries after the recorded one: another writer appended (an older version of this
  -- script, or by hand). The stream says how things stand, as below. (XREAD answers nil
  -- at once when the stream's last ID is not above `prev`, without the reverse range
  -- walk or a '(' .. prev string: 8.4k instructions against XREVRANGE's 9.7k. A non-nil
  -- answer, even one without entries, only sends the call down the slower path below.)
  recorded = false
end
if not recorded then
  -- No record: a stream written by an older version of this script (or one whose record
  -- expired first, up to a second before it). The newest entry gives the end state and the
  -- ID the notification chains from; an older version's lease hash is moved in below.
  prev = ''
  local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', '1')
  if #newest > 0 then
    prev = newest[1][1]
    local fields = newest[1][2]
    local name, final = '', false
    for j = 1, #fields, 2 do
      if fields[j] == 'f' then final = true end
      if fields[j] == 'e' then name = fields[j + 1] end
    end
    if final then
      if name == 'starling.cancelled' then state = 'cancelled'
      elseif name == 'starling.abandoned' then state = 'abandoned'
      else state = 'final' end
    end
  end
  if not leaseLen then
    local oldLease = key .. ':lease'
    local old = redis.call('HMGET', oldLease, 'ms', 'due')
    leaseLen, leaseDue = old[1], old[2]
    if leaseLen then redis.call('DEL', oldLease) end
  end
elseif ended_as then
  -- Ended, unless the stream has gone since (deleted or expired: the channel starts over).
  if redis.call('EXISTS', key) == 1 then state = ended_as else prev = '' end
end

local clock, finish, renew, ended_reply
local abandoned = ''
if mode ~= 'publish' or leaseMs or leaseLen or leaseDue then
local now
-- Appends one entry. NOMKSTREAM while the record says the stream holds `prev`: when the
-- stream has gone meanwhile the channel starts over, chaining from nothing. (The event
-- loop below does the same inline.)
local function xadd(args)
  if prev ~= '' then
    local id = redis.call('XADD', key, 'NOMKSTREAM', unpack(args, 3))
    if id then return id end
    prev = ''
  end
  return redis.call(unpack(args))
end
local function field(s) return string.format('%d', #s) .. ':' .. s end
function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end

-- Stores the broker's own final event (name, JSON data) and announces it; the lease goes.
function finish(name, data)
  local id = xadd({ 'XADD', key, 'MAXLEN', '~', maxlenArg, '*', 'e', name, 'd', data, 'k', 'json', 'f', '1' })
  redis.call('PEXPIRE', key, ttlMsArg)
  redis.call('HDEL', stateKey, 'ms', 'due')
  redis.call('HSET', stateKey, 'id', id, 'e', string.sub(name, 10))
  redis.call('PEXPIRE', stateKey, ttlMsArg)
  redis.call('SPUBLISH', key, table.concat({ '2:v1', field(prev), field(id), field(name), '2:jf', '0:', field(data) }))
  prev = id
  return id
end

-- A lease that ran out ends the channel now, whichever call comes first.
if state == 'open' then
  if leaseDue and tonumber(leaseDue) <= clock() then
    abandoned = finish('starling.abandoned', '{"reason":"lease_expired"}')
    state = 'abandoned'
  end
end

end

if state ~= 'open' then
function ended_reply()
  local label = { final = 'FINAL', cancelled = 'CANCELLED', abandoned = 'ABANDONED' }
  local why = { final = 'is final', cancelled = 'was cancelled (Stop)', abandoned = 'was abandoned (its lease ran out)' }
  return redis.error_reply(label[state] .. ' starling: channel ' .. string.sub(key, 11, -2) .. ' ' .. why[state]
    .. ' and accepts no more events')
end

end

-- Moves a leased channel's deadline to now + its lease; true if the channel is leased.
-- (`leaseMs`: this batch has just set it.)
local leaseNow = leaseMs or leaseLen
if leaseNow then
function renew()
  local ms = leaseNow
  redis.call('HSET', stateKey, 'ms', ms, 'due', clock() + tonumber(ms))
  redis.call('PEXPIRE', stateKey, ttlMsArg)
  return true
end
end

if mode == 'lapse' then return abandoned end
if mode == 'hold' then
  if state == 'open' and renew then renew() end
  return state
end
if mode == 'cancel' then
  if state ~= 'open' then return ended_reply() end
  return finish('starling.cancelled', ARGV[a])
end

-- Judge every producer event before writing anything: repeat, next, or refusal.
local producers = seqs and key .. ':producers'
local at               -- producer -> { epoch, highest } as the batch moves it
local changed          -- producers whose record the batch moves, in first-seen order
local repeated         -- event index -> true for a repeat
local repeats = 0
local refusal
if seqs then
at, changed, repeated = {}, {}, {}
local isChanged = {}
for i = 0, count - 1 do
  local b = a + i * 7
  local producer, seq = ARGV[b + 5], ARGV[b + 6]
  if producer ~= '' and seq ~= '' then
    local e, q = position(seq)
    local cur = at[producer]
    if cur == nil then
      local rec = redis.call('HGET', producers, producer)
      if rec then
        local ce, cq = position(rec)
        if ce then cur = { ce, cq } else cur = false end
      else
        cur = false
      end
      at[producer] = cur
    end
    local label = cur and 'event [' .. string.format('%d', i) .. ']: producer "' .. producer .. '": '
    if cur and less(e, cur[1]) then
      refusal = 'FENCED starling: ' .. label .. 'epoch ' .. e .. ' is below its current epoch ' .. cur[1]
      break
    elseif cur and e == cur[1] and not less(cur[2], q) then
      repeated[i] = true
      repeats = repeats + 1
    elseif cur and e == cur[1] and q ~= succ(cur[2]) then
      refusal = 'SEQGAP starling: ' .. label .. 'seq ' .. q .. ' jumps ahead; expected seq ' .. succ(cur[2])
      break
    else
      if not isChanged[producer] then isChanged[producer] = true; changed[#changed + 1] = producer end
      at[producer] = { e, q }
    end
  end
end
end
if state ~= 'open' and (refusal or repeats < count) then return ended_reply() end
if refusal then return redis.error_reply(refusal) end

-- The lease: set by this batch, renewed by every batch of a leased channel.
local leased = state == 'open' and renew ~= nil and renew()

local ended = false
local ids                -- the reply: one ID (or "") per event
local notice             -- the notification: a string for one event, else its parts
local stored = 0
local first, idMs, nextSeq, last    -- the batch's first ID, its milliseconds (batches only)
for i = 0, count - 1 do
  local b = a + i * 7
  if repeated and repeated[i] then
    if ids then ids[#ids + 1] = '' else ids = { '' } end
  else
    local name, data, kind, conflate, final = ARGV[b], ARGV[b + 1], ARGV[b + 2], '', '0'
    if not plain then conflate, final = ARGV[b + 3], ARGV[b + 4] end
    -- The first event takes Redis's next ID (NOMKSTREAM while the record says the stream
    -- holds `prev`: when the stream has gone meanwhile the channel starts over, chaining
    -- from nothing); the rest follow it as <ms>-<seq+1>, … so a batch's IDs are
    -- consecutive (as the memory engine makes them), whatever the clock does.
    local xid = '*'
    if idMs then
      if not nextSeq then nextSeq = tonumber(string.sub(last, #idMs + 2)) end
      nextSeq = nextSeq + 1
      xid = idMs .. '-' .. string.format('%d', nextSeq)
    end
    local nomk = not idMs and prev ~= ''
    local flags = (kind == 'text') and 't' or 'j'
    local id
    if conflate == '' and final ~= '1' and not leased then
      -- The common event: no argument table.
      if nomk then
        id = redis.call('XADD', key, 'NOMKSTREAM', 'MAXLEN', '~', maxlenArg, '*', 'e', name, 'd', data, 'k', kind)
        if not id then prev = '' end
      end
      if not id then
        id = redis.call('XADD', key, 'MAXLEN', '~', maxlenArg, xid, 'e', name, 'd', data, 'k', kind)
      end
    else
      local args = { 'XADD', key, 'MAXLEN', '~', maxlenArg, xid, 'e', name, 'd', data, 'k', kind }
      if conflate ~= '' then
        args[#args + 1] = 'c'; args[#args + 1] = conflate; flags = flags .. 'c'
      end
      if final == '1' then
        args[#args + 1] = 'f'; args[#args + 1] = '1'; flags = flags .. 'f'
        ended = true
      end
      if leased then
        args[#args + 1] = 'l'; args[#args + 1] = '1'; flags = flags .. 'l'
      end
      if nomk then
        id = redis.call('XADD', key, 'NOMKSTREAM', unpack(args, 3))
        if not id then prev = '' end
      end
      if not id then id = redis.call(unpack(args)) end
    end
    if not first then
      first = id
      -- "v1", the ID before the batch, then the first event's fields (one concatenation;
      -- the common lengths as constants: an ID of a 13-digit millisecond time is 15 or 16
      -- long, a plain event's flags "t" or "j" and its conflate key "").
      local li, lp = #id, #prev
      li = li == 15 and '15' or li == 16 and '16' or dec(li)
      lp = lp == 15 and '15' or lp == 16 and '16' or lp == 0 and '0' or dec(lp)
      notice = '2:v1' .. lp .. ':' .. prev .. li .. ':' .. id .. dec(#name) .. ':' .. name
        .. (#flags == 1 and '1' or dec(#flags)) .. ':' .. flags .. (conflate == '' and '0' or dec(#conflate))
        .. ':' .. conflate .. dec(#data) .. ':' .. data
      if count > 1 then
        notice = { notice }
        idMs = string.sub(id, 1, string.find(id, '-', 1, true) - 1)
      end
    else
      notice[#notice + 1] = dec(#id) .. ':' .. id .. dec(#name) .. ':' .. name .. dec(#flags) .. ':' .. flags
        .. dec(#conflate) .. ':' .. conflate .. dec(#data) .. ':' .. data
    end
    last = id
    if ids then ids[#ids + 1] = id else ids = { id } end
    stored = stored + 1
  end
end
if changed then
  for _, producer in ipairs(changed) do
    redis.call('HSET', producers, producer, at[producer][1] .. ':' .. at[producer][2])
  end
end

if stored > 0 then
  -- The state record follows the stream: its newest ID, the end, and (ended) no lease.
  -- (HSET before HDEL: a record holding only the lease would otherwise go with the HDEL and
  -- come back without its expiry.)
  if ended then
    redis.call('HSET', stateKey, 'id', last, 'e', 'final')
    redis.call('HDEL', stateKey, 'ms', 'due')
  else
    redis.call('HSET', stateKey, 'id', last)
  end
  -- Retention by age: drop entries older than retain-seconds (at the first publish in
  -- each new second of the channel, judged from the IDs, so at most one XTRIM per channel
  -- per second and entries outlive the cutoff by under a second), and let an idle
  -- channel's key expire as a whole retain-seconds after its last publish (PEXPIRE on every
  -- publish: once a second would save a command but move the expiry by up to a second). The
  -- state record's expiry moves at those first publishes of a second only (and with every
  -- lease renewal), so it never outlives the stream; should it go first (by under a
  -- second), the next publish reads the newest entry instead.
  -- (A new second: prev has not the same digits up to the first ID's seconds, or not its
  -- '-' at the same place.)
  local dash = string.find(first, '-', 1, true)
  if not recorded or string.byte(prev, dash) ~= 45 or string.sub(prev, 1, dash - 4) ~= string.sub(first, 1, dash - 4) then
    local ms, ttlMs = tonumber(string.sub(first, 1, dash - 1)), tonumber(ttlMsArg)
    if ms > ttlMs then redis.call('XTRIM', key, 'MINID', '~', string.format('%d', ms - ttlMs)) end
    if not leased then redis.call('PEXPIRE', stateKey, ttlMsArg) end
  end
  redis.call('PEXPIRE', key, ttlMsArg)
  redis.call('SPUBLISH', key, count > 1 and table.concat(notice) or notice)
end
if changed and #changed > 0 then redis.call('PEXPIRE', producers, ttlMsArg) end
return ids
end

if ARGV[1] ~= 'batch' then
  if #KEYS ~= 1 then return redis.error_reply('ERR starling: the one key must be starling:{channel}') end
  return run(KEYS[1], 1, #ARGV)
end
-- A batch: check its shape, then run each call; a call that raises (a command refused
-- midway, say OOM) answers with its error and the others go on.
local checked = ARGV[2] == 'checked'
local r = checked and 3 or 2
local firsts, lasts, i = {}, {}, r + 2
while i <= #ARGV do
  local argc = tonumber(ARGV[i])
  if not argc or argc < 1 or argc % 1 ~= 0 or i + argc > #ARGV then break end
  firsts[#firsts + 1], lasts[#lasts + 1] = i + 1, i + argc
  i = i + argc + 1
end
if i ~= #ARGV + 1 or #firsts ~= #KEYS then
  return redis.error_reply('ERR starling: batch takes [checked], the retention pair, then per key a count and that many arguments')
end
local replies = {}
for k = 1, #KEYS do
  local ok, reply = pcall(run, KEYS[k], firsts[k], lasts[k], r, checked)
  if not ok then
    reply = type(reply) == 'table' and reply.err and reply or redis.error_reply('ERR starling: ' .. tostring(reply))
  elseif type(reply) == 'table' and not reply.err and #reply == 1 then
    -- A one-event publish's reply is its ID ("" for a repeat) alone: an array of one
    -- costs the caller's reader two objects more per publish.
    reply = reply[1]
  end
  replies[k] = reply
end
return replies
