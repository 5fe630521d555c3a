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

export type Client = Redis | Cluster;

/** Neighbours found in memory before a lookup's log read, and their rows being read meanwhile. */
interface EarlyNeighbours {
  readonly near: Neighbour[];
  readonly states: Promise<(FingerprintState | null)[]>;
}

// One reporter's observations of N fingerprints. KEYS: fp hash 1, pair hash 1, …, fp hash N,
// pair hash N. ARGV: reporter, now, halfLife, ttl, wall clock, then per fingerprint: seen,
// spamReports, hamReports, sensor, spam, weak, ham, reindex interval (ms, 0 for items without a
// fuzzy index). Returns per fingerprint 1 when the caller must (re)file it in its fuzzy index:
// it is new, or it was last filed over one interval ago (index sets and the log keep an item no
// longer than twice that). The update of each fingerprint mirrors scoring.observe.
const OBSERVE = `
local reporter = ARGV[1]; local now = tonumber(ARGV[2]); local hl = tonumber(ARGV[3]); local ttl = tonumber(ARGV[4]); local wall = tonumber(ARGV[5])
local call = redis.call; local pow = math.pow; local max = math.max; local match = string.match
local out = {}
-- Locals rather than tables and closures per fingerprint: the script is most of Redis's work.
for k = 1, #KEYS / 2 do
  local fpKey = KEYS[2 * k - 1]; local pairKey = KEYS[2 * k]; local a = 5 + (k - 1) * 8
  local s = call('HMGET', fpKey, 'ts', 'seen', 'sr', 'hr', 'se', 'sp', 'wk', 'hm', 'rep', 'fs', 'ls', 'admin', 'lg')
  local isNew = s[1] == false
  local sts = tonumber(s[1] or now)
  local fs = 1
  if now > sts then fs = pow(2, -(now - sts) / hl) end
  local seen = tonumber(s[2] or 0) * fs; local sr = tonumber(s[3] or 0) * fs; local hr = tonumber(s[4] or 0) * fs
  local se = tonumber(s[5] or 0) * fs; local sp = tonumber(s[6] or 0) * fs; local wk = tonumber(s[7] or 0) * fs; local hm = tonumber(s[8] or 0) * fs
  local rep = tonumber(s[9] or 0)
  local p = call('HGET', pairKey, reporter)
  local p1, p2, p3, p4 = 0, 0, 0, 0
  if p then
    local x1, x2, x3, x4, x5 = match(p, '^([^,]+),([^,]+),([^,]+),([^,]+),([^,]+)')
    local pts = tonumber(x5)
    local pf = 1
    if now > pts then pf = pow(2, -(now - pts) / hl) end
    p1 = tonumber(x1) * pf; p2 = tonumber(x2) * pf; p3 = tonumber(x3) * pf; p4 = tonumber(x4) * pf
  else
    rep = rep + 1
  end
  local n1 = max(p1, tonumber(ARGV[a + 4])); local n2 = max(p2, tonumber(ARGV[a + 5])); local n3 = max(p3, tonumber(ARGV[a + 6])); local n4 = max(p4, tonumber(ARGV[a + 7]))
  seen = seen + tonumber(ARGV[a + 1]); sr = sr + tonumber(ARGV[a + 2]); hr = hr + tonumber(ARGV[a + 3])
  se = se + n1 - p1; sp = sp + n2 - p2; wk = wk + n3 - p3; hm = hm + n4 - p4
  local first = tonumber(s[10] or now); if now < first then first = now end
  local last = tonumber(s[11] or now); if now > last then last = now end
  local ts = max(sts, now)
  call('HSET', fpKey, 'ts', ts, 'seen', seen, 'sr', sr, 'hr', hr, 'se', se, 'sp', sp, 'wk', wk, 'hm', hm, 'rep', rep, 'fs', first, 'ls', last)
  call('HSET', pairKey, reporter, n1 .. ',' .. n2 .. ',' .. n3 .. ',' .. n4 .. ',' .. max(now, ts))
  if s[12] == false then call('PEXPIRE', fpKey, ttl) end
  call('PEXPIRE', pairKey, ttl)
  local reindex = tonumber(ARGV[a + 8])
  if reindex > 0 and (isNew or wall - tonumber(s[13] or 0) >= reindex) then
    call('HSET', fpKey, 'lg', wall)
    out[k] = 1
  elseif isNew then out[k] = 1
  else out[k] = 0 end
end
return out
`;

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
    // Variable key count (the first argument says how many keys follow) for a single Redis; in a
    // Cluster ioredis must know the keys to route each call, so there it is always one pair.
    client.defineCommand('nimbusObserve', { lua: OBSERVE });
    client.defineCommand('nimbusObserveOne', { numberOfKeys: 2, lua: OBSERVE });
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

  /**
   * The exact row (when stored) and, unless it is decisive, every near neighbour: see answerFuzzy.
   * `early` are the neighbours of an in-memory scheme found before the log was caught up, with
   * their rows already being read; `grew` says whether the catch-up added anything to the index.
   */
  async #fuzzyLookup(item: string, f: FuzzyItem, exact: FingerprintState | null, now: number, early: EarlyNeighbours | null, grew: boolean): Promise<LookupResult> {
    const judged: { match: Neighbour; result: LookupResult }[] = [];
    if (exact !== null) judged.push({ match: { item, similarity: 1 }, result: judge(item, exact, now) });
    if (judged.length === 0 || decisiveness(judged[0]!.result) < 2) {
      let near: Neighbour[];
      let states: (FingerprintState | null)[];
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
      states.forEach((state, i) => {
        if (state !== null) judged.push({ match: near[i]!, result: judge(item, state, now) });
      });
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
        return f === null ? judge(item, state, now) : this.#fuzzyLookup(item, f, state, now, early[i]!, grew);
      }),
    );
  }

  /** Applies one reporter's observations; files new (or due) items in their fuzzy index. */
  async #applyAll(reporter: string, observations: readonly (readonly [string, Observation])[], now: number): Promise<void> {
    const cluster = this.#r instanceof Cluster;
    const chunk = cluster ? 1 : OBSERVE_CHUNK;
    const commands = this.#r as unknown as {
      nimbusObserve(numKeys: number, ...a: (string | number)[]): Promise<number[]>;
      nimbusObserveOne(...a: (string | number)[]): Promise<number[]>;
    };
    const observe = (keys: string[], args: (string | number)[]) => (cluster ? commands.nimbusObserveOne(...keys, ...args) : commands.nimbusObserve(keys.length, ...keys, ...args));
    const wall = Date.now();
    const calls: Promise<void>[] = [];
    for (let from = 0; from < observations.length; from += chunk) {
      const part = observations.slice(from, from + chunk);
      const keys: string[] = [];
      const args: (string | number)[] = [reporter, now, HALF_LIFE_MS, FORGET_AFTER_MS, wall];
      for (const [item, o] of part) {
        const tag = this.#tag(item);
        keys.push(`${this.#p}fp:{${tag}}`, `${this.#p}pair:{${tag}}`);
        args.push(o.seen, o.spamReports, o.hamReports, o.sensor, o.spam, o.weak, o.ham, fuzzyItem(item) === null ? 0 : REINDEX_AFTER_MS);
      }
      calls.push(
        observe(keys, args).then(async (reindex) => {
          await Promise.all(part.map(([item], i) => (reindex[i] === 1 ? this.#index(item) : undefined)));
        }),
      );
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
    const mark = `${this.#p}batch:${batchId}`;
    if ((await this.#r.set(mark, String(now), 'PX', BATCH_TTL_MS, 'NX')) === null) return { accepted: 0, duplicate: true };
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

/**
 * A connected client: Redis (one URL) or Redis Cluster (several seed URLs); fails clearly when
 * unreachable. Also used by the service's sample store (service/samples.ts).
 */
export async function connectRedis(urls: readonly string[]): Promise<Client> {
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
  return client;
}

/** Opens Redis (one URL) or Redis Cluster (several seed URLs); fails clearly when unreachable. */
export async function openRedisStore(urls: readonly string[], prefix = 'nimbus:'): Promise<OpenedReputation> {
  const store = new RedisStore(await connectRedis(urls), prefix);
  return { engine: store, keys: store, close: () => store.close() };
}
