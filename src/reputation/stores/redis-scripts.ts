/**
 * The Redis store's Lua scripts: each update of a fingerprint runs as one script, so its keys
 * (which share a hash slot) change atomically in a Cluster too. OBSERVE mirrors scoring.observe.
 */
import type { Cluster, Redis } from 'ioredis';
import { AUDIT_KEPT } from '../engine.js';
import { INLINE_PAIRS, MAX_INLINE_REPORTER_BYTES, OBSERVATION_FORMAT, PAIR_BYTES, PAIR_FORMAT, STATE_AT, STATE_BYTES, STATE_FORMAT } from './redis-layout.js';

// One reporter's observations of N fingerprints. KEYS: state 1, …, state N, spill hash 1, …,
// spill hash N. ARGV: reporter, now, halfLife, ttl, wall clock, then the observations packed (one
// OBSERVATION_FORMAT per fingerprint; the reindex interval is 0 for items without a fuzzy index).
// Returns per fingerprint 1 when the caller must (re)file it in its fuzzy index: it is new, or it
// was last filed over one interval ago (index sets and the log keep an item no longer than twice
// that). The update of each fingerprint mirrors scoring.observe, with the arithmetic of the hash
// layout's script kept as it was (a pair's time is the fingerprint's). The states are read by one
// MGET: a redis.call costs ~0.7 µs whatever it does, and ingest and feedback pass each item once.
export const OBSERVE = `
local reporter = ARGV[1]; local now = tonumber(ARGV[2]); local hl = tonumber(ARGV[3]); local wall = tonumber(ARGV[5]); local obs = ARGV[6]
-- The TTL stays the string it came as: a Lua number argument is formatted on every call.
local ttl = ARGV[4]
local call = redis.call; local pow = math.pow; local max = math.max; local pack = struct.pack; local read = struct.unpack; local sub = string.sub
local rlen = #reporter
local inlinable = rlen <= ${MAX_INLINE_REPORTER_BYTES}
local n = #KEYS / 2
local states = call('MGET', unpack(KEYS, 1, n))
local out = {}
local o = 1
-- Locals rather than tables and closures per fingerprint: the script is most of Redis's work.
for k = 1, n do
  local key = KEYS[k]; local spillKey = KEYS[n + k]
  local oSeen, oSr, oHr, o1, o2, o3, o4, reindex
  oSeen, oSr, oHr, o1, o2, o3, o4, reindex, o = read('${OBSERVATION_FORMAT}', obs, o)
  local b = states[k]
  local isNew = b == false
  local sts, seen, sr, hr, se, sp, wk, hm, first, last, lg, rep, admin, spilled = now, 0, 0, 0, 0, 0, 0, 0, now, now, 0, 0, 0, 0
  if isNew then b = ''
  else
    sts, seen, sr, hr, se, sp, wk, hm, first, last, lg, rep, admin, spilled = read('${STATE_FORMAT}', b)
    local fs = 1
    if now > sts then fs = pow(2, -(now - sts) / hl) end
    seen = seen * fs; sr = sr * fs; hr = hr * fs; se = se * fs; sp = sp * fs; wk = wk * fs; hm = hm * fs
    -- NaN (never observed) compares false with everything, so it is replaced first.
    if first ~= first then first = now end
    if last ~= last then last = now end
  end
  local at = nil; local count = 0; local pos = ${STATE_BYTES + 1}
  while pos <= #b do
    local len = read('<H', b, pos)
    if len == rlen and sub(b, pos + 2, pos + 1 + len) == reporter then at = pos + 2 + len; break end
    pos = pos + 2 + len + ${PAIR_BYTES}; count = count + 1
  end
  local p1, p2, p3, p4, pts
  local spilledPair = false
  if at then p1, p2, p3, p4, pts = read('${PAIR_FORMAT}', b, at)
  elseif spilled == 1 then
    spilledPair = call('HGET', spillKey, reporter)
    if spilledPair then p1, p2, p3, p4, pts = read('${PAIR_FORMAT}', spilledPair) end
  end
  if pts then
    local pf = 1
    if now > pts then pf = pow(2, -(now - pts) / hl) end
    p1 = p1 * pf; p2 = p2 * pf; p3 = p3 * pf; p4 = p4 * pf
  else
    p1, p2, p3, p4 = 0, 0, 0, 0
    rep = rep + 1
  end
  local n1 = max(p1, o1); local n2 = max(p2, o2); local n3 = max(p3, o3); local n4 = max(p4, o4)
  seen = seen + oSeen; sr = sr + oSr; hr = hr + oHr
  se = se + n1 - p1; sp = sp + n2 - p2; wk = wk + n3 - p3; hm = hm + n4 - p4
  if now < first then first = now end
  if now > last then last = now end
  local ts = max(sts, now)
  local pt = max(now, ts)
  if reindex > 0 and (isNew or wall - lg >= reindex) then
    lg = wall
    out[k] = 1
  elseif isNew then out[k] = 1
  else out[k] = 0 end
  -- One pack per state, the reporter's values in their place: no concatenation.
  local state
  if at then
    state = pack('${STATE_FORMAT}c0${PAIR_FORMAT.slice(1)}c0', ts, seen, sr, hr, se, sp, wk, hm, first, last, lg, rep, admin, spilled,
      sub(b, ${STATE_BYTES + 1}, at - 1), n1, n2, n3, n4, pt, sub(b, at + ${PAIR_BYTES}))
  elseif spilledPair or count >= ${INLINE_PAIRS} or not inlinable then
    call('HSET', spillKey, reporter, pack('${PAIR_FORMAT}', n1, n2, n3, n4, pt))
    spilled = 1
    state = pack('${STATE_FORMAT}c0', ts, seen, sr, hr, se, sp, wk, hm, first, last, lg, rep, admin, spilled, sub(b, ${STATE_BYTES + 1}))
  else
    state = pack('${STATE_FORMAT}c0Hc0${PAIR_FORMAT.slice(1)}', ts, seen, sr, hr, se, sp, wk, hm, first, last, lg, rep, admin, spilled,
      sub(b, ${STATE_BYTES + 1}), rlen, reporter, n1, n2, n3, n4, pt)
  end
  if spilled == 1 then call('PEXPIRE', spillKey, ttl) end
  -- A plain SET also drops the TTL, as an admin verdict (which never expires) wants.
  if admin == 0 then call('SET', key, state, 'PX', ttl) else call('SET', key, state) end
end
return out
`;

// One reporter's evidence of one label withdrawn from a fingerprint (engine forget), mirroring
// engine.withdrawn. KEYS: state, spill hash. ARGV: reporter, now, halfLife, channel (2: spam,
// 4: ham), ttl. Returns 1 when the reporter held evidence of that label there, else 0.
export const FORGET = `
local reporter = ARGV[1]; local now = tonumber(ARGV[2]); local hl = tonumber(ARGV[3]); local ch = tonumber(ARGV[4]); local ttl = ARGV[5]
local call = redis.call; local pow = math.pow; local max = math.max; local pack = struct.pack; local read = struct.unpack; local sub = string.sub
local b = call('GET', KEYS[1])
if not b then return 0 end
local sts, seen, sr, hr, se, sp, wk, hm, first, last, lg, rep, admin, spilled = read('${STATE_FORMAT}', b)
local rlen = #reporter
local at = nil; local pos = ${STATE_BYTES + 1}
while pos <= #b do
  local len = read('<H', b, pos)
  if len == rlen and sub(b, pos + 2, pos + 1 + len) == reporter then at = pos + 2 + len; break end
  pos = pos + 2 + len + ${PAIR_BYTES}
end
local p = {}
local pts
if at then p[1], p[2], p[3], p[4], pts = read('${PAIR_FORMAT}', b, at)
elseif spilled == 1 then
  local stored = call('HGET', KEYS[2], reporter)
  if stored then p[1], p[2], p[3], p[4], pts = read('${PAIR_FORMAT}', stored) end
end
if not pts then return 0 end
local fs = 1
if now > sts then fs = pow(2, -(now - sts) / hl) end
local pf = 1
if now > pts then pf = pow(2, -(now - pts) / hl) end
for i = 1, 4 do p[i] = p[i] * pf end
local evidence = p[ch]
if not (evidence > 0) then return 0 end
seen = seen * fs; sr = sr * fs; hr = hr * fs; se = se * fs; sp = sp * fs; wk = wk * fs; hm = hm * fs
if ch == 2 then sp = max(0, sp - evidence); sr = max(0, sr - pf) else hm = max(0, hm - evidence); hr = max(0, hr - pf) end
p[ch] = 0
local ts = max(sts, now)
local state
if at then
  state = pack('${STATE_FORMAT}c0${PAIR_FORMAT.slice(1)}c0', ts, seen, sr, hr, se, sp, wk, hm, first, last, lg, rep, admin, spilled,
    sub(b, ${STATE_BYTES + 1}, at - 1), p[1], p[2], p[3], p[4], ts, sub(b, at + ${PAIR_BYTES}))
else
  call('HSET', KEYS[2], reporter, pack('${PAIR_FORMAT}', p[1], p[2], p[3], p[4], ts))
  state = pack('${STATE_FORMAT}c0', ts, seen, sr, hr, se, sp, wk, hm, first, last, lg, rep, admin, spilled, sub(b, ${STATE_BYTES + 1}))
end
if admin == 0 then call('SET', KEYS[1], state, 'PX', ttl) else call('SET', KEYS[1], state) end
return 1
`;

// The audit entry of an override change, as JSON (cjson; `before` and `after` are admin codes).
export const AUDIT_ENTRY = `
local names = { 'spam', 'ham', 'bulk' }
local function audit(key, at, by, before, after, reason)
  redis.call('RPUSH', key, cjson.encode({ at = at, by = by, before = names[before] or cjson.null, after = names[after] or cjson.null, reason = reason ~= '' and reason or cjson.null }))
  redis.call('LTRIM', key, -${AUDIT_KEPT}, -1)
end
`;

// An admin verdict. KEYS: state, reason, audit. ARGV: admin code, reason ('' for none), now, key id.
// Returns 1 when the fingerprint was not stored before (the caller files it in its fuzzy index).
export const SET_VERDICT = `${AUDIT_ENTRY}
local call = redis.call
local code = tonumber(ARGV[1])
local created = 0
local before = 0
if call('EXISTS', KEYS[1]) == 0 then
  local nan = 0 / 0
  call('SET', KEYS[1], struct.pack('${STATE_FORMAT}', tonumber(ARGV[3]), 0, 0, 0, 0, 0, 0, 0, nan, nan, 0, 0, code, 0))
  created = 1
else
  before = string.byte(call('GETRANGE', KEYS[1], ${STATE_AT.admin}, ${STATE_AT.admin}))
  call('SETRANGE', KEYS[1], ${STATE_AT.admin}, string.char(code))
  call('PERSIST', KEYS[1])
end
if ARGV[2] == '' then call('DEL', KEYS[2]) else call('SET', KEYS[2], ARGV[2]) end
audit(KEYS[3], tonumber(ARGV[3]), ARGV[4], before, code, ARGV[2])
return created
`;

// Removes an admin verdict. KEYS: state, reason, audit. ARGV: ttl, now, key id, reason. Returns 1
// when there was one (and only then records the change).
export const CLEAR_VERDICT = `${AUDIT_ENTRY}
local code = redis.call('GETRANGE', KEYS[1], ${STATE_AT.admin}, ${STATE_AT.admin})
if code == '' or code == string.char(0) then return 0 end
redis.call('SETRANGE', KEYS[1], ${STATE_AT.admin}, string.char(0))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
audit(KEYS[3], tonumber(ARGV[2]), ARGV[3], string.byte(code), 0, ARGV[4])
return 1
`;

// Converts one fingerprint of the hash layout (before packed states: an `fp:{t}` hash of fields
// as OBSERVE wrote them, and a `pair:{t}` hash of "sensor,spam,weak,ham,ts" per reporter) with
// its TTLs. KEYS: fp hash, pair hash, state, spill hash, reason. Returns 1 when converted; 0 when
// there is nothing to convert (done already) or a state exists already (left alone).
export const UPGRADE = `
local call = redis.call
if call('EXISTS', KEYS[1]) == 0 or call('EXISTS', KEYS[3]) == 1 then return 0 end
local f = {}
local h = call('HGETALL', KEYS[1])
for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
if f.ts == nil then return 0 end
local nan = 0 / 0
local function num(v, default) if v == nil then return default end return tonumber(v) end
local inline = {}
local spilled = 0
local p = call('HGETALL', KEYS[2])
for i = 1, #p, 2 do
  local r = p[i]
  local x1, x2, x3, x4, x5 = string.match(p[i + 1], '^([^,]+),([^,]+),([^,]+),([^,]+),([^,]+)')
  local pair = struct.pack('${PAIR_FORMAT}', tonumber(x1), tonumber(x2), tonumber(x3), tonumber(x4), tonumber(x5))
  if #inline < ${INLINE_PAIRS} and #r <= ${MAX_INLINE_REPORTER_BYTES} then inline[#inline + 1] = struct.pack('<H', #r) .. r .. pair
  else
    call('HSET', KEYS[4], r, pair)
    spilled = 1
  end
end
if spilled == 1 then
  local pttl = call('PTTL', KEYS[2])
  if pttl > 0 then call('PEXPIRE', KEYS[4], pttl) end
end
local codes = { spam = 1, ham = 2, bulk = 3 }
local admin = codes[f.admin] or 0
local state = struct.pack('${STATE_FORMAT}', tonumber(f.ts), num(f.seen, 0), num(f.sr, 0), num(f.hr, 0), num(f.se, 0), num(f.sp, 0), num(f.wk, 0), num(f.hm, 0),
  num(f.fs, nan), num(f.ls, nan), num(f.lg, 0), num(f.rep, 0), admin, spilled) .. table.concat(inline)
local pttl = call('PTTL', KEYS[1])
if pttl > 0 then call('SET', KEYS[3], state, 'PX', pttl) else call('SET', KEYS[3], state) end
if admin ~= 0 and f.reason ~= nil and f.reason ~= '' then call('SET', KEYS[5], f.reason) end
call('DEL', KEYS[1], KEYS[2])
return 1
`;

/** The scripts as ioredis defines them on the client (see the constructor). */
export interface Scripts {
  nimbusObserve(numKeys: number, ...a: (string | number | Buffer)[]): Promise<number[]>;
  nimbusObserveOne(...a: (string | number | Buffer)[]): Promise<number[]>;
  nimbusForget(state: string, spill: string, reporter: string, now: number, halfLife: number, channel: number, ttl: number): Promise<number>;
  nimbusSetVerdict(state: string, reason: string, audit: string, code: number, text: string, now: number, by: string): Promise<number>;
  nimbusClearVerdict(state: string, reason: string, audit: string, ttl: number, now: number, by: string, text: string): Promise<number>;
  nimbusUpgrade(fp: string, pair: string, state: string, spill: string, reason: string): Promise<number>;
}

/**
 * Defines the scripts on a client. Variable key count (the first argument says how many keys
 * follow) for a single Redis; in a Cluster ioredis must know the keys to route each call, so
 * there it is always one pair.
 */
export function defineScripts(client: Redis | Cluster): Scripts {
  client.defineCommand('nimbusObserve', { lua: OBSERVE });
  client.defineCommand('nimbusObserveOne', { numberOfKeys: 2, lua: OBSERVE });
  client.defineCommand('nimbusForget', { numberOfKeys: 2, lua: FORGET });
  client.defineCommand('nimbusSetVerdict', { numberOfKeys: 3, lua: SET_VERDICT });
  client.defineCommand('nimbusClearVerdict', { numberOfKeys: 3, lua: CLEAR_VERDICT });
  client.defineCommand('nimbusUpgrade', { numberOfKeys: 5, lua: UPGRADE });
  return client as unknown as Scripts;
}
