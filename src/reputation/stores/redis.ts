/**
 * The shared store: Redis, or Redis Cluster when more than one URL is given. Key design:
 * - `P st:{t}` string: a fingerprint's decayed counters, admin verdict and timestamps, and the
 *   evidence of its first INLINE_PAIRS reporters, packed as binary (STATE_FORMAT); `P sp:{t}`
 *   hash: the evidence of any further reporters (field = reporter id); `P why:{t}` string: the
 *   reason given with an admin verdict. `t` is a digest of the fingerprint used as the hash tag,
 *   so the keys share a slot and one Lua script updates them atomically in Cluster too (the
 *   formula's update step is mirrored from scoring.observe). `P audit:{t}` list: the audit trail
 *   of its overrides (JSON entries, the latest AUDIT_KEPT), kept without a TTL.
 * - `P schema`: the key layout's version; a store written before packed states (`P fp:{t}` and
 *   `P pair:{t}` hashes, a field per counter) is converted when opened (see upgrade).
 * - `P fz:<scheme#key>` sets: the fuzzy index, one set per band/chunk key, for schemes without
 *   an in-memory index (`body:minhash64`, `image:dhash64`).
 * - `P fzlog` stream: every stored item of an in-memory scheme (`image:phash256`), replayed by
 *   each instance into its own index (memory-index.ts) and read again, from the last entry seen,
 *   in the same wave as the exact reads of any lookup that may need it: probing ~1,200 buckets
 *   as sets would cost a round trip of ~1,200 SMEMBERS. Trimmed to FORGET_AFTER_MS; an item
 *   still in use is logged again after half of that (the state's `lg`), and items with an admin
 *   verdict (which never expire) are also kept in the `P fzpinned` set.
 * - `P batch:<mark>`: idempotency marks (engine.batchMark: key id and batch id) with a 7-day TTL;
 *   marks written before they named the key (`P batch:<batch id>`) answer for any key until they expire.
 * - `P key:<id>` hashes and the `P keys` set: API keys (secret stored as SHA-256 only).
 * Decay is also the TTL: a fingerprint untouched for four half-lives expires (admin verdicts
 * are kept). Every call issues its commands concurrently with auto-pipelining, so a lookup of N
 * items costs at most three pipelined waves, whatever N.
 */
import { hash } from 'node:crypto';
import { Redis, Cluster } from 'ioredis';
import { NimbusError } from '../../errors.js';
import { maskCredentials } from '../../redact.js';
import type { KeyRole, LookupResult, ReportRecord } from '../api.js';
import type {
  FeedbackLabel, FingerprintExplanation, IngestResult, KeyStore, OpenedReputation, OverrideAudit, OverrideBy, OverrideVerdict, Reporter, ReputationEngine, StoredKey,
} from '../engine-types.js';
import {
  AUDIT_KEPT, answerFuzzy, batchMark, decisiveness, explanation, feedbackObservation, fuzzyItem, nearAll, probeIndexKeys, recordObservations, storeIndexKeys,
  type FuzzyItem, type Neighbour, type ReporterPair,
} from '../engine.js';
import { isoTime } from '../iso-time.js';
import { formatToken, hashSecret, newKeyId, newSecret } from '../keys.js';
import { BATCH_TTL_MS, FORGET_AFTER_MS, HALF_LIFE_MS, VOICES_TO_CONVICT, freshVoices, judge, voiceChannel, type FingerprintState, type Observation, type PairState } from '../scoring.js';
import { MemoryIndexes, inMemory } from './memory-index.js';
import { DEFAULT_KEY_RATE } from './sqlite.js';

export type Client = Redis | Cluster;

/** Neighbours found in memory before a lookup's log read, and their state strings being read meanwhile. */
interface EarlyNeighbours {
  readonly near: Neighbour[];
  readonly states: Promise<(Buffer | null)[]>;
}

/**
 * A fingerprint's state as one string, packed with Lua's `struct` (read in JS with Buffer reads at
 * STATE_AT): ts, seen, sr, hr, se, sp, wk, hm, fs, ls, lg as float64 LE (fs and ls NaN until
 * first observed: an admin verdict can come first), the reporter count (u32), the admin verdict
 * (u8, ADMIN_CODES) and whether the spill hash may hold reporters (u8). Then up to INLINE_PAIRS
 * reporters, each a u16 length, the reporter id and PAIR_FORMAT. Strings instead of hash fields
 * spare the script a tonumber per field read and a number formatting per field written: the
 * hash layout cost ~19-24 µs of Redis's single thread per fingerprint, this one ~7-10 µs.
 */
const STATE_FORMAT = '<dddddddddddIBB';
const STATE_AT = { ts: 0, seen: 8, sr: 16, hr: 24, se: 32, sp: 40, wk: 48, hm: 56, fs: 64, ls: 72, lg: 80, rep: 88, admin: 92, spilled: 93 } as const;
const STATE_BYTES = STATE_AT.spilled + 1;
/** One reporter's evidence: sensor, spam, weak, ham and the time they were brought up to date. */
const PAIR_FORMAT = '<ddddd';
const PAIR_BYTES = 5 * 8;
/** Per fingerprint of an OBSERVE call: seen, spamReports, hamReports, sensor, spam, weak, ham, reindex interval. */
const OBSERVATION_FORMAT = '<dddddddd';
const OBSERVATION_BYTES = 8 * 8;
/** The admin byte's values; 0 is none. */
const ADMIN_CODES: readonly (OverrideVerdict | null)[] = [null, 'spam', 'ham', 'bulk'];

/**
 * Reporters kept in the state string; further ones go to the spill hash (field = reporter id,
 * value = PAIR_FORMAT). Most fingerprints have a few reporters; a widely seen one (a newsletter's
 * sender) has hundreds, and a string that grew with each would be walked and rewritten whole on
 * every report. Four, as the SQLite store keeps inline.
 */
const INLINE_PAIRS = 4;
/** The length prefix is a u16: a longer reporter id (none is in practice) goes to the spill hash. */
const MAX_INLINE_REPORTER_BYTES = 0xffff;

// One reporter's observations of N fingerprints. KEYS: state 1, …, state N, spill hash 1, …,
// spill hash N. ARGV: reporter, now, halfLife, ttl, wall clock, then the observations packed (one
// OBSERVATION_FORMAT per fingerprint; the reindex interval is 0 for items without a fuzzy index).
// Returns per fingerprint 1 when the caller must (re)file it in its fuzzy index: it is new, or it
// was last filed over one interval ago (index sets and the log keep an item no longer than twice
// that). The update of each fingerprint mirrors scoring.observe, with the arithmetic of the hash
// layout's script kept as it was (a pair's time is the fingerprint's). The states are read by one
// MGET: a redis.call costs ~0.7 µs whatever it does, and ingest and feedback pass each item once.
const OBSERVE = `
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

// The audit entry of an override change, as JSON (cjson; `before` and `after` are admin codes).
const AUDIT_ENTRY = `
local names = { 'spam', 'ham', 'bulk' }
local function audit(key, at, by, before, after, reason)
  redis.call('RPUSH', key, cjson.encode({ at = at, by = by, before = names[before] or cjson.null, after = names[after] or cjson.null, reason = reason ~= '' and reason or cjson.null }))
  redis.call('LTRIM', key, -${AUDIT_KEPT}, -1)
end
`;

// An admin verdict. KEYS: state, reason, audit. ARGV: admin code, reason ('' for none), now, key id.
// Returns 1 when the fingerprint was not stored before (the caller files it in its fuzzy index).
const SET_VERDICT = `${AUDIT_ENTRY}
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
const CLEAR_VERDICT = `${AUDIT_ENTRY}
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
const UPGRADE = `
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

/** Version of the key layout, kept in `P schema`: 2 is packed states (none is the hash layout). */
const SCHEMA_VERSION = 2;
/** Keys per SCAN page while upgrading, each converted by its own UPGRADE call (pipelined). */
const UPGRADE_SCAN_COUNT = 1000;

/**
 * Fingerprints per OBSERVE call on a single Redis: one call instead of one per fingerprint
 * took the client's per-command work (arguments, promises, garbage) out of the ingest path,
 * and ~1 ms of script per call keeps Redis responsive to lookups in between. A Cluster needs
 * all keys of a script in one slot, so there each fingerprint is its own call.
 */
const OBSERVE_CHUNK = 100;

/** Items of in-memory schemes read from the log per XREAD. */
const LOG_PAGE = 10_000;
/** An item still in use is filed again after this long, so index sets and the log never lose it. */
const REINDEX_AFTER_MS = FORGET_AFTER_MS / 2;

const orNull = (x: number): number | null => (Number.isNaN(x) ? null : x);

/** The reporters kept in a state string after its fixed part (see STATE_FORMAT). */
function inlinePairs(b: Buffer): ReporterPair[] {
  const out: ReporterPair[] = [];
  for (let at = STATE_BYTES; at < b.length; ) {
    const len = b.readUInt16LE(at);
    const values = at + 2 + len;
    out.push({ id: b.toString('utf8', at + 2, values), pair: readPair(b, values) });
    at = values + PAIR_BYTES;
  }
  return out;
}

const readPair = (b: Buffer, at: number): PairState => ({ sensor: b.readDoubleLE(at), spam: b.readDoubleLE(at + 8), weak: b.readDoubleLE(at + 16), ham: b.readDoubleLE(at + 24), ts: b.readDoubleLE(at + 32) });

/** An audit entry as SET_VERDICT and CLEAR_VERDICT write it. */
function toAudit(json: string): OverrideAudit {
  const e = JSON.parse(json) as { at: number; by: string; before?: OverrideVerdict | null; after?: OverrideVerdict | null; reason?: string | null };
  return { at: isoTime(e.at), by: e.by, before: e.before ?? null, after: e.after ?? null, reason: e.reason ?? null };
}

function toState(b: Buffer | null): FingerprintState | null {
  if (b === null) return null;
  const d = (at: number) => b.readDoubleLE(at);
  return {
    ts: d(STATE_AT.ts),
    seen: d(STATE_AT.seen),
    spamReports: d(STATE_AT.sr),
    hamReports: d(STATE_AT.hr),
    sensorEv: d(STATE_AT.se),
    spamEv: d(STATE_AT.sp),
    weakEv: d(STATE_AT.wk),
    hamEv: d(STATE_AT.hm),
    reporters: b.readUInt32LE(STATE_AT.rep),
    firstSeen: orNull(d(STATE_AT.fs)),
    lastSeen: orNull(d(STATE_AT.ls)),
    admin: ADMIN_CODES[b[STATE_AT.admin]!] ?? null,
  };
}

function writeObservation(b: Buffer, at: number, o: Observation, reindexMs: number): void {
  b.writeDoubleLE(o.seen, at);
  b.writeDoubleLE(o.spamReports, at + 8);
  b.writeDoubleLE(o.hamReports, at + 16);
  b.writeDoubleLE(o.sensor, at + 24);
  b.writeDoubleLE(o.spam, at + 32);
  b.writeDoubleLE(o.weak, at + 40);
  b.writeDoubleLE(o.ham, at + 48);
  b.writeDoubleLE(reindexMs, at + 56);
}

/** Redis glob metacharacters in a literal prefix, escaped for SCAN MATCH. */
const globLiteral = (s: string): string => s.replace(/[*?[\]\\]/g, '\\$&');

/** The scripts as ioredis defines them on the client (see the constructor). */
interface Scripts {
  nimbusObserve(numKeys: number, ...a: (string | number | Buffer)[]): Promise<number[]>;
  nimbusObserveOne(...a: (string | number | Buffer)[]): Promise<number[]>;
  nimbusSetVerdict(state: string, reason: string, audit: string, code: number, text: string, now: number, by: string): Promise<number>;
  nimbusClearVerdict(state: string, reason: string, audit: string, ttl: number, now: number, by: string, text: string): Promise<number>;
  nimbusUpgrade(fp: string, pair: string, state: string, spill: string, reason: string): Promise<number>;
}

export class RedisStore implements ReputationEngine, KeyStore {
  readonly #r: Client;
  readonly #p: string;
  readonly #memory = new MemoryIndexes();
  /** Id of the last `fzlog` entry replayed into #memory ('0' before the first read). */
  #logId = '0';
  #pinnedLoaded = false;
  /** The log read in flight, and the one queued behind it (see #catchUp). */
  #reading: Promise<void> | null = null;
  #queued: Promise<void> | null = null;

  constructor(client: Client, prefix: string) {
    this.#r = client;
    this.#p = prefix;
    // Variable key count (the first argument says how many keys follow) for a single Redis; in a
    // Cluster ioredis must know the keys to route each call, so there it is always one pair.
    client.defineCommand('nimbusObserve', { lua: OBSERVE });
    client.defineCommand('nimbusObserveOne', { numberOfKeys: 2, lua: OBSERVE });
    client.defineCommand('nimbusSetVerdict', { numberOfKeys: 3, lua: SET_VERDICT });
    client.defineCommand('nimbusClearVerdict', { numberOfKeys: 3, lua: CLEAR_VERDICT });
    client.defineCommand('nimbusUpgrade', { numberOfKeys: 5, lua: UPGRADE });
  }

  get #commands(): Scripts {
    return this.#r as unknown as Scripts;
  }

  #tag(item: string): string {
    // One-shot: a Hash object per item was ~1.8 µs, a tenth of the ingest's JS per fingerprint.
    return hash('sha1', item, 'base64url').slice(0, 16);
  }
  #stateKey(tag: string): string {
    return `${this.#p}st:{${tag}}`;
  }
  #spillKey(tag: string): string {
    return `${this.#p}sp:{${tag}}`;
  }
  #reasonKey(tag: string): string {
    return `${this.#p}why:{${tag}}`;
  }
  #auditKey(tag: string): string {
    return `${this.#p}audit:{${tag}}`;
  }
  #fzKey(k: string): string {
    return `${this.#p}fz:${k}`;
  }
  get #logKey(): string {
    return `${this.#p}fzlog`;
  }
  get #pinnedKey(): string {
    return `${this.#p}fzpinned`;
  }

  /**
   * Replays log entries written since the last read into #memory. Read-your-writes across
   * instances: the read a caller waits for always starts after the caller asked, so everything
   * stored before the lookup began is in memory when it probes. Concurrent callers share reads:
   * at most one in flight and one queued behind it, which everyone arriving meanwhile joins.
   */
  #catchUp(): Promise<void> {
    if (this.#queued !== null) return this.#queued;
    if (this.#reading === null) return this.#startRead();
    const queued = this.#reading
      .catch(() => undefined)
      .then(() => {
        this.#queued = null;
        return this.#startRead();
      });
    this.#queued = queued;
    return queued;
  }

  #startRead(): Promise<void> {
    const reading = this.#readLog().finally(() => {
      if (this.#reading === reading) this.#reading = null;
    });
    this.#reading = reading;
    return reading;
  }

  async #readLog(): Promise<void> {
    if (!this.#pinnedLoaded) {
      for (const item of await this.#r.smembers(this.#pinnedKey)) this.#memory.add(item);
      this.#pinnedLoaded = true;
    }
    for (;;) {
      const read = (await this.#r.xread('COUNT', LOG_PAGE, 'STREAMS', this.#logKey, this.#logId)) as [string, [string, string[]][]][] | null;
      const entries = read?.[0]?.[1] ?? [];
      for (const [id, fields] of entries) {
        if (fields[1] !== undefined) this.#memory.add(fields[1]);
        this.#logId = id;
      }
      if (entries.length < LOG_PAGE) return;
    }
  }

  /** A fingerprint's state string (toState reads it), or null. */
  #state(item: string): Promise<Buffer | null> {
    return this.#r.getBuffer(this.#stateKey(this.#tag(item)));
  }

  /**
   * Judges the state string `b` of `stored` as the answer to `item`, reading reporters only when
   * their fresh voices decide (scoring.voiceChannel): the inline ones, which the string holds,
   * then the spill hash when those are too few (one more round trip, for such fingerprints only).
   */
  async #judge(item: string, stored: string, b: Buffer | null, now: number): Promise<LookupResult> {
    const state = toState(b);
    const channel = state === null ? null : voiceChannel(state, now);
    if (channel === null) return judge(item, state, now);
    const pairs = inlinePairs(b!).map((p) => p.pair);
    if (freshVoices(pairs, channel, now) < VOICES_TO_CONVICT && b![STATE_AT.spilled] === 1) pairs.push(...(await this.#spilledPairs(stored)).map((p) => p.pair));
    return judge(item, state, now, pairs);
  }

  async #spilledPairs(item: string): Promise<ReporterPair[]> {
    const fields = await this.#r.hgetallBuffer(this.#spillKey(this.#tag(item)));
    return Object.entries(fields).map(([id, value]) => ({ id, pair: readPair(value, 0) }));
  }

  /** Every stored near neighbour of a fuzzy item, judged as the answer to `item` (explain). */
  async #neighbours(item: string, f: FuzzyItem, now: number): Promise<{ match: Neighbour; result: LookupResult }[]> {
    let near: Neighbour[];
    if (inMemory(f)) {
      await this.#catchUp();
      near = this.#memory.near(f, item);
    } else near = nearAll(f, (await Promise.all(probeIndexKeys(f).map((k) => this.#r.smembers(this.#fzKey(k))))).flat(), item);
    return this.#judgeAll(item, near, await Promise.all(near.map((n) => this.#state(n.item))), now);
  }

  /** Neighbours judged from their state strings; one no longer stored is skipped. */
  async #judgeAll(item: string, near: readonly Neighbour[], states: readonly (Buffer | null)[], now: number): Promise<{ match: Neighbour; result: LookupResult }[]> {
    const judged = await Promise.all(
      near.map(async (match, i) => {
        const b = states[i] ?? null;
        return b === null ? null : { match, result: await this.#judge(item, match.item, b, now) };
      }),
    );
    return judged.filter((j) => j !== null);
  }

  /**
   * Converts a store written in the hash layout, once: every instance opening a store without
   * `P schema` scans for `P fp:{t}` hashes (on every master of a Cluster) before it serves, so
   * the hot path never looks for old keys. Instances opening at once may both scan; UPGRADE
   * converts a fingerprint only while its hashes exist, so each is converted once.
   */
  async upgrade(): Promise<void> {
    const schemaKey = `${this.#p}schema`;
    if (Number(await this.#r.get(schemaKey)) >= SCHEMA_VERSION) return;
    const legacy = `${this.#p}fp:{`;
    const nodes = this.#r instanceof Cluster ? this.#r.nodes('master') : [this.#r];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${globLiteral(legacy)}*}`, 'COUNT', UPGRADE_SCAN_COUNT);
        cursor = next;
        await Promise.all(
          keys.map((key) => {
            const tag = key.slice(legacy.length, -1);
            return this.#commands.nimbusUpgrade(key, `${this.#p}pair:{${tag}}`, this.#stateKey(tag), this.#spillKey(tag), this.#reasonKey(tag));
          }),
        );
      } while (cursor !== '0');
    }
    await this.#r.set(schemaKey, String(SCHEMA_VERSION));
  }

  /**
   * The exact row (when stored) and, unless it is decisive, every near neighbour: see answerFuzzy.
   * `early` are the neighbours of an in-memory scheme found before the log was caught up, with
   * their rows already being read; `grew` says whether the catch-up added anything to the index.
   */
  async #fuzzyLookup(item: string, f: FuzzyItem, exact: Buffer | null, now: number, early: EarlyNeighbours | null, grew: boolean): Promise<LookupResult> {
    const judged: { match: Neighbour; result: LookupResult }[] = [];
    if (exact !== null) judged.push({ match: { item, similarity: 1 }, result: await this.#judge(item, item, exact, now) });
    if (judged.length === 0 || decisiveness(judged[0]!.result) < 2) {
      let near: Neighbour[];
      let states: (Buffer | null)[];
      if (early !== null) {
        const read = await early.states;
        near = grew ? this.#memory.near(f, item) : early.near;
        const known = new Map(early.near.map((n, i) => [n.item, read[i]!] as const));
        // Images logged meanwhile (rare): only their rows cost another wave.
        states = await Promise.all(near.map((n) => (known.has(n.item) ? known.get(n.item)! : this.#state(n.item))));
      } else {
        near = nearAll(f, (await Promise.all(probeIndexKeys(f).map((k) => this.#r.smembers(this.#fzKey(k))))).flat(), item);
        states = await Promise.all(near.map((n) => this.#state(n.item)));
      }
      // Index sets and the log outlive expired fingerprints: a neighbour no longer stored is skipped.
      judged.push(...(await this.#judgeAll(item, near, states, now)));
    }
    return answerFuzzy(item, judged, now);
  }

  async lookup(items: readonly string[], now = Date.now()): Promise<LookupResult[]> {
    const fuzzy = items.map((item) => fuzzyItem(item));
    const known = this.#memory.size;
    // In-memory schemes: the neighbours already indexed, their rows and the log's new entries
    // are all read in the same pipelined wave as the exact rows, so a found neighbour costs one
    // round trip, not two.
    const early = fuzzy.map((f, i): EarlyNeighbours | null => {
      if (f === null || !inMemory(f)) return null;
      const near = this.#memory.near(f, items[i]!);
      const rows = Promise.all(near.map((n) => this.#state(n.item)));
      rows.catch(() => undefined); // not awaited when the exact row decides; a failure surfaces where it is
      return { near, states: rows };
    });
    const [states] = await Promise.all([Promise.all(items.map((item) => this.#state(item))), early.some((e) => e !== null) ? this.#catchUp() : null]);
    const grew = this.#memory.size !== known;
    return Promise.all(
      items.map(async (item, i) => {
        const f = fuzzy[i]!;
        const state = states[i]!;
        return f === null ? this.#judge(item, item, state, now) : this.#fuzzyLookup(item, f, state, now, early[i]!, grew);
      }),
    );
  }

  /** Applies one reporter's observations; files new (or due) items in their fuzzy index. */
  async #applyAll(reporter: string, observations: readonly (readonly [string, Observation])[], now: number): Promise<void> {
    const cluster = this.#r instanceof Cluster;
    const chunk = cluster ? 1 : OBSERVE_CHUNK;
    const commands = this.#commands;
    const observe = (keys: string[], args: (string | number | Buffer)[]) => (cluster ? commands.nimbusObserveOne(...keys, ...args) : commands.nimbusObserve(keys.length, ...keys, ...args));
    const wall = Date.now();
    const calls: Promise<void>[] = [];
    for (let from = 0; from < observations.length; from += chunk) {
      const part = observations.slice(from, from + chunk);
      const keys: string[] = new Array(2 * part.length);
      // Packed as doubles: cheaper than a string per number on both sides of the wire.
      const packed = Buffer.allocUnsafe(part.length * OBSERVATION_BYTES);
      part.forEach(([item, o], i) => {
        const tag = this.#tag(item);
        keys[i] = this.#stateKey(tag);
        keys[part.length + i] = this.#spillKey(tag);
        writeObservation(packed, i * OBSERVATION_BYTES, o, fuzzyItem(item) === null ? 0 : REINDEX_AFTER_MS);
      });
      const call = observe(keys, [reporter, now, HALF_LIFE_MS, FORGET_AFTER_MS, wall, packed]).then(async (reindex) => {
        await Promise.all(part.map(([item], i) => (reindex[i] === 1 ? this.#index(item) : undefined)));
      });
      call.catch(() => undefined); // awaited below; a failure while later calls are built is not unhandled
      calls.push(call);
      // Let the auto-pipeline send what is built before building more: Redis works through it
      // meanwhile instead of waiting for the whole batch.
      if ((from + chunk) % OBSERVE_CHUNK === 0 && from + chunk < observations.length) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(calls);
  }

  async #index(item: string): Promise<void> {
    const f = fuzzyItem(item);
    if (f === null) return;
    if (inMemory(f)) {
      // Stream ids are the server's milliseconds: entries older than FORGET_AFTER_MS go (approximately).
      await this.#r.xadd(this.#logKey, 'MINID', '~', String(Date.now() - FORGET_AFTER_MS), '*', 'i', item);
      return;
    }
    await Promise.all(storeIndexKeys(f).map(async (k) => {
      await this.#r.sadd(this.#fzKey(k), item);
      await this.#r.pexpire(this.#fzKey(k), FORGET_AFTER_MS);
    }));
  }

  async ingest(batchId: string, sensor: Reporter, records: readonly ReportRecord[], now = Date.now()): Promise<IngestResult> {
    const mark = `${this.#p}batch:${batchMark(sensor.id, batchId)}`;
    const [fresh, legacy] = await Promise.all([this.#r.set(mark, String(now), 'PX', BATCH_TTL_MS, 'NX'), this.#r.exists(`${this.#p}batch:${batchId}`)]);
    if (fresh === null || legacy === 1) return { accepted: 0, duplicate: true };
    try {
      await this.#applyAll(sensor.id, [...recordObservations(sensor, records)], now);
    } catch (error) {
      // Let the sensor's resend count the batch rather than lose it (a partial count is the lesser harm).
      await this.#r.del(mark).catch(() => undefined);
      throw error;
    }
    return { accepted: records.length, duplicate: false };
  }

  async feedback(reporter: Reporter, label: FeedbackLabel, items: readonly string[], now = Date.now()): Promise<void> {
    const o = feedbackObservation(reporter, label);
    await this.#applyAll(reporter.id, [...new Set(items)].map((item) => [item, o] as const), now);
  }

  async setVerdict(item: string, verdict: OverrideVerdict, by: OverrideBy, now = Date.now()): Promise<void> {
    const tag = this.#tag(item);
    const created = await this.#commands.nimbusSetVerdict(this.#stateKey(tag), this.#reasonKey(tag), this.#auditKey(tag), ADMIN_CODES.indexOf(verdict), by.reason ?? '', now, by.by);
    const f = fuzzyItem(item);
    // An admin verdict never expires, so its image must outlive the trimmed log too.
    if (f !== null && inMemory(f)) await this.#r.sadd(this.#pinnedKey, item);
    if (created === 1) await this.#index(item);
  }

  async clearVerdict(item: string, by: OverrideBy, now = Date.now()): Promise<boolean> {
    const tag = this.#tag(item);
    const removed = await this.#commands.nimbusClearVerdict(this.#stateKey(tag), this.#reasonKey(tag), this.#auditKey(tag), FORGET_AFTER_MS, now, by.by, by.reason ?? '');
    if (removed === 1) await this.#r.srem(this.#pinnedKey, item);
    return removed === 1;
  }

  async explain(item: string, now = Date.now()): Promise<FingerprintExplanation | null> {
    const tag = this.#tag(item);
    const [b, reason, audit] = await Promise.all([this.#r.getBuffer(this.#stateKey(tag)), this.#r.get(this.#reasonKey(tag)), this.#r.lrange(this.#auditKey(tag), 0, -1)]);
    const state = toState(b);
    if (state === null && audit.length === 0) return null;
    const f = fuzzyItem(item);
    const [result, spilled, neighbours] = await Promise.all([
      this.lookup([item], now),
      b !== null && b[STATE_AT.spilled] === 1 ? this.#spilledPairs(item) : [],
      f === null ? [] : this.#neighbours(item, f, now),
    ]);
    return explanation({
      result: result[0]!,
      override: state?.admin ? { verdict: state.admin, reason } : null,
      pairs: b === null ? [] : [...inlinePairs(b), ...spilled],
      neighbours,
      audit: audit.map(toAudit),
    }, now);
  }

  #keyKey(id: string): string {
    return `${this.#p}key:${id}`;
  }

  async addKey(role: KeyRole, label: string, rateLimit = DEFAULT_KEY_RATE): Promise<{ key: StoredKey; token: string }> {
    const secret = newSecret();
    for (;;) {
      const id = newKeyId();
      const key: StoredKey = { id, role, label, secretHash: hashSecret(secret), createdAt: new Date().toISOString(), revokedAt: null, rateLimit };
      if ((await this.#r.hsetnx(this.#keyKey(id), 'id', id)) === 0) continue;
      await this.#r.hset(this.#keyKey(id), 'role', role, 'label', label, 'secretHash', key.secretHash, 'createdAt', key.createdAt, 'rateLimit', String(rateLimit));
      await this.#r.sadd(`${this.#p}keys`, id);
      return { key, token: formatToken(id, secret) };
    }
  }

  async findKey(id: string): Promise<StoredKey | null> {
    const h = await this.#r.hgetall(this.#keyKey(id));
    if (h.id === undefined || h.role === undefined) return null;
    return { id, role: h.role as KeyRole, label: h.label ?? '', secretHash: h.secretHash ?? '', createdAt: h.createdAt ?? '', revokedAt: h.revokedAt ?? null, rateLimit: Number(h.rateLimit ?? DEFAULT_KEY_RATE) };
  }

  async listKeys(): Promise<StoredKey[]> {
    const ids = (await this.#r.smembers(`${this.#p}keys`)).sort();
    const keys = await Promise.all(ids.map((id) => this.findKey(id)));
    return keys.filter((k): k is StoredKey => k !== null).sort((a, b) => (a.createdAt + a.id < b.createdAt + b.id ? -1 : 1));
  }

  async revokeKey(id: string): Promise<boolean> {
    if ((await this.findKey(id)) === null) return false;
    await this.#r.hsetnx(this.#keyKey(id), 'revokedAt', new Date().toISOString());
    return true;
  }

  async close(): Promise<void> {
    if (this.#r.status !== 'end') await this.#r.quit().catch(() => this.#r.disconnect());
  }
}

/**
 * Reconnect and retry policy of every Redis client (store, samples, CLI), so that a Redis outage
 * costs a request a few milliseconds and a clear error instead of a wait:
 * - while not connected, a command fails at once (`enableOfflineQueue: false`): nothing queues
 *   for a Redis that may be gone for minutes, and the service answers 503 (service/health.ts);
 * - commands in flight when the connection drops fail at once (`maxRetriesPerRequest: 0`) and
 *   are never sent again after a reconnect (`autoResendUnfulfilledCommands: false`): a script
 *   whose reply was lost may have run, and running it twice would count a report twice; the
 *   caller resends (a report batch is idempotent by its id);
 * - the client reconnects forever, RECONNECT_FIRST_MS doubling to RECONNECT_MAX_MS between
 *   attempts (a Cluster: ioredis's clusterRetryStrategy, also at most 2 s), so the service
 *   serves again within about RECONNECT_MAX_MS of Redis coming back, without a restart.
 */
export const RECONNECT_FIRST_MS = 50;
export const RECONNECT_MAX_MS = 2000;
/** How long a readiness PING may take before the store counts as unreachable. */
export const PING_TIMEOUT_MS = 1000;

export function reconnectDelay(attempt: number): number {
  return Math.min(RECONNECT_FIRST_MS * 2 ** Math.max(0, attempt - 1), RECONNECT_MAX_MS);
}

const FAIL_FAST = { maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false } as const;

/** host:port of each URL: for messages and logs, never the password a URL may carry. */
export function redisHosts(urls: readonly string[]): string {
  return urls
    .map((u) => {
      try {
        return new URL(u).host;
      } catch {
        return '(bad URL)';
      }
    })
    .join(', ');
}

/**
 * A connected client: Redis (one URL) or Redis Cluster (several seed URLs), with the policy
 * above; fails clearly when unreachable. Also used by the service's sample store (service/samples.ts).
 */
export async function connectRedis(urls: readonly string[]): Promise<Client> {
  if (urls.length === 0) throw new NimbusError('STORE_OPEN_FAILED', 'no Redis URL given for the reputation store');
  let client: Client;
  if (urls.length === 1) {
    client = new Redis(urls[0]!, { enableAutoPipelining: true, lazyConnect: true, enableOfflineQueue: false, retryStrategy: reconnectDelay, ...FAIL_FAST });
  } else {
    const nodes = urls.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    });
    client = new Cluster(nodes, { enableAutoPipelining: true, lazyConnect: true, enableOfflineQueue: false, redisOptions: FAIL_FAST });
  }
  // Later errors surface through the failing command. While connecting, ioredis rejects with
  // "Connection is closed." and says why (WRONGPASS, ECONNREFUSED…) only in an error event.
  let why: Error | null = null;
  const remember = (error: Error): void => {
    why ??= error;
  };
  client.on('error', remember);
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    const reason = why ?? (error as Error);
    throw new NimbusError('STORE_OPEN_FAILED', `cannot connect to Redis at ${redisHosts(urls)}: ${maskCredentials(reason.message)}`, { cause: reason });
  }
  client.off('error', remember);
  client.on('error', () => undefined);
  return client;
}

/**
 * Follows a client's connection: the returned function tells why it cannot serve now (not
 * connected, or reconnecting, with the last connection error, e.g. WRONGPASS after a password
 * change), or null when it is ready. No host and no secret in it: `/readyz` answers it to anyone.
 */
export function watchRedis(client: Client): () => string | null {
  let lastError: string | null = null;
  client.on('error', (error: Error) => (lastError = maskCredentials(error.message)));
  client.on('ready', () => (lastError = null));
  // The error, not the status, names the outage: the status cycles through every reconnect attempt.
  return () => (client.status === 'ready' ? null : lastError ? `Redis is not connected: ${lastError}` : `Redis is not connected (${client.status})`);
}

/** One PING, rejected when it fails or takes over PING_TIMEOUT_MS (a Redis that hangs rather than refuses). */
export async function pingRedis(client: Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer PING within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
  });
  try {
    await Promise.race([client.ping().catch((error: Error) => Promise.reject(new Error(`Redis PING failed: ${error.message}`))), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens Redis (one URL) or Redis Cluster (several seed URLs); fails clearly when unreachable. */
export async function openRedisStore(urls: readonly string[], prefix = 'nimbus:'): Promise<OpenedReputation> {
  const client = await connectRedis(urls);
  const store = new RedisStore(client, prefix);
  try {
    await store.upgrade();
  } catch (error) {
    await store.close();
    throw new NimbusError('STORE_OPEN_FAILED', `cannot upgrade the reputation store at ${redisHosts(urls)}: ${maskCredentials((error as Error).message)}`, { cause: error });
  }
  return {
    engine: store,
    keys: store,
    close: () => store.close(),
    unavailable: watchRedis(client),
    ping: () => pingRedis(client),
  };
}
