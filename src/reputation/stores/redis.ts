/**
 * The shared store: Redis, or Redis Cluster when more than one URL is given. Key design:
 * - `P fp:{t}` hash: a fingerprint's decayed counters, admin verdict and timestamps, and
 *   `P pair:{t}` hash: its per-reporter evidence (field = reporter id). `t` is a digest of the
 *   fingerprint used as the hash tag, so both keys share a slot and one Lua script updates them
 *   atomically in Cluster too (the formula's update step is mirrored from scoring.observe).
 * - `P fz:<scheme#key>` sets: the fuzzy index, one set per band/chunk key, for schemes without
 *   an in-memory index (`body:minhash64`, `image:dhash64`).
 * - `P fzlog` stream: every stored item of an in-memory scheme (`image:phash256`), replayed by
 *   each instance into its own index (memory-index.ts) and read again, from the last entry seen,
 *   in the same wave as the exact reads of any lookup that may need it: probing ~1,200 buckets
 *   as sets would cost a round trip of ~1,200 SMEMBERS. Trimmed to FORGET_AFTER_MS; an item
 *   still in use is logged again after half of that (the `lg` field), and items with an admin
 *   verdict (which never expire) are also kept in the `P fzpinned` set.
 * - `P batch:<id>`: idempotency marks with a 7-day TTL.
 * - `P key:<id>` hashes and the `P keys` set: API keys (secret stored as SHA-256 only).
 * Decay is also the TTL: a fingerprint untouched for four half-lives expires (admin verdicts
 * are kept). Every call issues its commands concurrently with auto-pipelining, so a lookup of N
 * items costs at most three pipelined waves, whatever N.
 */
import { createHash } from 'node:crypto';
import { Redis, Cluster } from 'ioredis';
import { NimbusError } from '../../errors.js';
import type { KeyRole, LookupResult, ReportRecord } from '../api.js';
import type { FeedbackLabel, IngestResult, KeyStore, OpenedReputation, OverrideVerdict, Reporter, ReputationEngine, StoredKey } from '../engine-types.js';
import { answerFuzzy, decisiveness, feedbackObservation, fuzzyItem, nearAll, probeIndexKeys, recordObservations, storeIndexKeys, type FuzzyItem, type Neighbour } from '../engine.js';
import { formatToken, hashSecret, newKeyId, newSecret } from '../keys.js';
import { BATCH_TTL_MS, FORGET_AFTER_MS, HALF_LIFE_MS, judge, type FingerprintState, type Observation } from '../scoring.js';
import { MemoryIndexes, inMemory } from './memory-index.js';
import { DEFAULT_KEY_RATE } from './sqlite.js';

type Client = Redis | Cluster;

// KEYS: fp hash, pair hash. ARGV: reporter, now, halfLife, ttl, seen, spamReports, hamReports,
// sensor, spam, weak, ham, reindex interval (ms, 0 for items without a fuzzy index), wall clock.
// Returns 1 when the caller must (re)file the item in its fuzzy index: it is new, or it was
// last filed over one interval ago (index sets and the log outlive no longer than that twice).
const OBSERVE = `
local now = tonumber(ARGV[2]); local hl = tonumber(ARGV[3]); local ttl = tonumber(ARGV[4])
local function f(ts) if now > ts then return math.pow(2, -(now - ts) / hl) end return 1 end
local s = redis.call('HMGET', KEYS[1], 'ts', 'seen', 'sr', 'hr', 'se', 'sp', 'wk', 'hm', 'rep', 'fs', 'ls', 'admin', 'lg')
local isNew = s[1] == false
local sts = tonumber(s[1] or now)
local fs = f(sts)
local v = {}
for i = 2, 8 do v[i] = tonumber(s[i] or 0) * fs end
local rep = tonumber(s[9] or 0)
local p = redis.call('HGET', KEYS[2], ARGV[1])
local pv = {0, 0, 0, 0}
local newPair = p == false
if p then
  local pts; local i = 1
  for x in string.gmatch(p, '[^,]+') do if i <= 4 then pv[i] = tonumber(x) else pts = tonumber(x) end i = i + 1 end
  local pf = f(pts)
  for j = 1, 4 do pv[j] = pv[j] * pf end
end
local target = {tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])}
local nv = {}
for j = 1, 4 do nv[j] = math.max(pv[j], target[j]) end
v[2] = v[2] + tonumber(ARGV[5]); v[3] = v[3] + tonumber(ARGV[6]); v[4] = v[4] + tonumber(ARGV[7])
v[5] = v[5] + nv[1] - pv[1]; v[6] = v[6] + nv[2] - pv[2]; v[7] = v[7] + nv[3] - pv[3]; v[8] = v[8] + nv[4] - pv[4]
if newPair then rep = rep + 1 end
local first = tonumber(s[10] or now); if now < first then first = now end
local last = tonumber(s[11] or now); if now > last then last = now end
local ts = math.max(sts, now)
redis.call('HSET', KEYS[1], 'ts', ts, 'seen', v[2], 'sr', v[3], 'hr', v[4], 'se', v[5], 'sp', v[6], 'wk', v[7], 'hm', v[8], 'rep', rep, 'fs', first, 'ls', last)
redis.call('HSET', KEYS[2], ARGV[1], nv[1] .. ',' .. nv[2] .. ',' .. nv[3] .. ',' .. nv[4] .. ',' .. math.max(now, tonumber(ts)))
if s[12] == false then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('PEXPIRE', KEYS[2], ttl)
local reindex = tonumber(ARGV[12]); local wall = tonumber(ARGV[13])
if reindex > 0 and (isNew or wall - tonumber(s[13] or 0) >= reindex) then
  redis.call('HSET', KEYS[1], 'lg', wall)
  return 1
end
if isNew then return 1 end
return 0
`;

/** Items of in-memory schemes read from the log per XREAD. */
const LOG_PAGE = 10_000;
/** An item still in use is filed again after this long, so index sets and the log never lose it. */
const REINDEX_AFTER_MS = FORGET_AFTER_MS / 2;

const FP_FIELDS = ['ts', 'seen', 'sr', 'hr', 'se', 'sp', 'wk', 'hm', 'rep', 'fs', 'ls', 'admin'] as const;

function toState(v: (string | null)[]): FingerprintState | null {
  if (v[0] === null || v[0] === undefined) return null;
  const n = (i: number) => Number(v[i] ?? 0);
  return {
    ts: n(0),
    seen: n(1),
    spamReports: n(2),
    hamReports: n(3),
    sensorEv: n(4),
    spamEv: n(5),
    weakEv: n(6),
    hamEv: n(7),
    reporters: n(8),
    firstSeen: v[9] ? Number(v[9]) : null,
    lastSeen: v[10] ? Number(v[10]) : null,
    admin: (v[11] as OverrideVerdict | null) ?? null,
  };
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
    client.defineCommand('nimbusObserve', { numberOfKeys: 2, lua: OBSERVE });
  }

  #tag(item: string): string {
    return createHash('sha1').update(item).digest('base64url').slice(0, 16);
  }
  #fpKey(item: string): string {
    return `${this.#p}fp:{${this.#tag(item)}}`;
  }
  #pairKey(item: string): string {
    return `${this.#p}pair:{${this.#tag(item)}}`;
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

  async #state(item: string): Promise<FingerprintState | null> {
    return toState(await this.#r.hmget(this.#fpKey(item), ...FP_FIELDS));
  }

  /** The exact row (when stored) and, unless it is decisive, every near neighbour: see answerFuzzy. */
  async #fuzzyLookup(item: string, f: FuzzyItem, exact: FingerprintState | null, now: number): Promise<LookupResult> {
    const judged: { match: Neighbour; result: LookupResult }[] = [];
    if (exact !== null) judged.push({ match: { item, similarity: 1 }, result: judge(item, exact, now) });
    if (judged.length === 0 || decisiveness(judged[0]!.result) < 2) {
      const near = inMemory(f) ? this.#memory.near(f, item) : nearAll(f, (await Promise.all(probeIndexKeys(f).map((k) => this.#r.smembers(this.#fzKey(k))))).flat(), item);
      // Index sets outlive expired fingerprints: a neighbour no longer stored is skipped.
      const states = await Promise.all(near.map((n) => this.#state(n.item)));
      states.forEach((state, i) => {
        if (state !== null) judged.push({ match: near[i]!, result: judge(item, state, now) });
      });
    }
    return answerFuzzy(item, judged, now);
  }

  async lookup(items: readonly string[], now = Date.now()): Promise<LookupResult[]> {
    const fuzzy = items.map((item) => fuzzyItem(item));
    // The log read rides in the same pipelined wave as the exact reads.
    const [states] = await Promise.all([Promise.all(items.map((item) => this.#state(item))), fuzzy.some((f) => f !== null && inMemory(f)) ? this.#catchUp() : null]);
    return Promise.all(
      items.map(async (item, i) => {
        const f = fuzzy[i]!;
        const state = states[i]!;
        return f === null ? judge(item, state, now) : this.#fuzzyLookup(item, f, state, now);
      }),
    );
  }

  async #apply(item: string, reporter: string, o: Observation, now: number): Promise<void> {
    const reindex = (await (this.#r as unknown as { nimbusObserve(...a: (string | number)[]): Promise<number> }).nimbusObserve(
      this.#fpKey(item),
      this.#pairKey(item),
      reporter,
      now,
      HALF_LIFE_MS,
      FORGET_AFTER_MS,
      o.seen,
      o.spamReports,
      o.hamReports,
      o.sensor,
      o.spam,
      o.weak,
      o.ham,
      fuzzyItem(item) === null ? 0 : REINDEX_AFTER_MS,
      Date.now(),
    )) === 1;
    if (reindex) await this.#index(item);
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
    const mark = `${this.#p}batch:${batchId}`;
    if ((await this.#r.set(mark, String(now), 'PX', BATCH_TTL_MS, 'NX')) === null) return { accepted: 0, duplicate: true };
    try {
      await Promise.all([...recordObservations(sensor, records)].map(([item, o]) => this.#apply(item, sensor.id, o, now)));
    } catch (error) {
      // Let the sensor's resend count the batch rather than lose it (a partial count is the lesser harm).
      await this.#r.del(mark).catch(() => undefined);
      throw error;
    }
    return { accepted: records.length, duplicate: false };
  }

  async feedback(reporter: Reporter, label: FeedbackLabel, items: readonly string[], now = Date.now()): Promise<void> {
    const o = feedbackObservation(reporter, label);
    await Promise.all([...new Set(items)].map((item) => this.#apply(item, reporter.id, o, now)));
  }

  async setVerdict(item: string, verdict: OverrideVerdict, reason?: string, now = Date.now()): Promise<void> {
    const key = this.#fpKey(item);
    const created = await this.#r.hsetnx(key, 'ts', String(now));
    await this.#r.hset(key, 'admin', verdict, 'reason', reason ?? '');
    await this.#r.persist(key);
    const f = fuzzyItem(item);
    // An admin verdict never expires, so its image must outlive the trimmed log too.
    if (f !== null && inMemory(f)) await this.#r.sadd(this.#pinnedKey, item);
    if (created === 1) await this.#index(item);
  }

  async clearVerdict(item: string): Promise<boolean> {
    const key = this.#fpKey(item);
    const removed = await this.#r.hdel(key, 'admin', 'reason');
    if (removed > 0) await Promise.all([this.#r.pexpire(key, FORGET_AFTER_MS), this.#r.srem(this.#pinnedKey, item)]);
    return removed > 0;
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

/** Opens Redis (one URL) or Redis Cluster (several seed URLs); fails clearly when unreachable. */
export async function openRedisStore(urls: readonly string[], prefix = 'nimbus:'): Promise<OpenedReputation> {
  if (urls.length === 0) throw new NimbusError('STORE_OPEN_FAILED', 'no Redis URL given for the reputation store');
  const options = { enableAutoPipelining: true, lazyConnect: true, maxRetriesPerRequest: 3 };
  let client: Client;
  if (urls.length === 1) {
    client = new Redis(urls[0]!, options);
  } else {
    const nodes = urls.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    });
    client = new Cluster(nodes, { enableAutoPipelining: true, lazyConnect: true, redisOptions: { maxRetriesPerRequest: 3 } });
  }
  client.on('error', () => undefined); // surfaced by the failing command instead
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw new NimbusError('STORE_OPEN_FAILED', `cannot connect to Redis at ${urls.join(', ')}: ${(error as Error).message}`, { cause: error });
  }
  const store = new RedisStore(client, prefix);
  return { engine: store, keys: store, close: () => store.close() };
}

