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
 *
 * Files: the binary layout and key names (redis-layout.ts), the Lua scripts (redis-scripts.ts),
 * connections and their reconnect policy (redis-connection.ts), API keys (redis-keys.ts), the
 * fuzzy log (redis-fuzzy-log.ts) and the one-time layout upgrade (redis-upgrade.ts).
 */
import { Cluster } from 'ioredis';
import { NimbusError } from '../../errors.js';
import { maskCredentials } from '../../redact.js';
import type { LookupResult, ReportRecord } from '../api.js';
import type { FeedbackLabel, FingerprintExplanation, IngestResult, OpenedReputation, OverrideBy, OverrideVerdict, Reporter, ReputationEngine } from '../engine-types.js';
import {
  answerFuzzy, batchMark, decisiveness, explanation, feedbackObservations, fuzzyItem, nearAll, probeIndexKeys, recordObservations, storeIndexKeys, type PairObservations,
  type FuzzyItem, type Neighbour, type ReporterPair,
} from '../engine.js';
import { BATCH_TTL_MS, FORGET_AFTER_MS, HALF_LIFE_MS, VOICES_TO_CONVICT, freshVoices, judge, voiceChannel, type Observation } from '../scoring.js';
import { inMemory } from './memory-index.js';
import { connectRedis, pingRedis, redisHosts, watchRedis, type Client } from './redis-connection.js';
import { FuzzyLog } from './redis-fuzzy-log.js';
import { RedisKeyStore } from './redis-keys.js';
import { ADMIN_CODES, OBSERVATION_BYTES, RedisKeyNames, STATE_AT, inlinePairs, readPair, toAudit, toState, writeObservation } from './redis-layout.js';
import { defineScripts, type Scripts } from './redis-scripts.js';
import { upgradeLayout } from './redis-upgrade.js';

export type { Client } from './redis-connection.js';

/** Neighbours found in memory before a lookup's log read, and their state strings being read meanwhile. */
interface EarlyNeighbours {
  readonly near: Neighbour[];
  readonly states: Promise<(Buffer | null)[]>;
}

/**
 * Fingerprints per OBSERVE call on a single Redis: one call instead of one per fingerprint
 * took the client's per-command work (arguments, promises, garbage) out of the ingest path,
 * and ~1 ms of script per call keeps Redis responsive to lookups in between. A Cluster needs
 * all keys of a script in one slot, so there each fingerprint is its own call.
 */
const OBSERVE_CHUNK = 100;

/** An item still in use is filed again after this long, so index sets and the log never lose it. */
const REINDEX_AFTER_MS = FORGET_AFTER_MS / 2;

export class RedisStore implements ReputationEngine {
  readonly #r: Client;
  readonly #k: RedisKeyNames;
  readonly #scripts: Scripts;
  readonly #log: FuzzyLog;

  constructor(client: Client, prefix: string) {
    this.#r = client;
    this.#k = new RedisKeyNames(prefix);
    this.#scripts = defineScripts(client);
    this.#log = new FuzzyLog(client, this.#k);
  }

  /** A fingerprint's state string (toState reads it), or null. */
  #state(item: string): Promise<Buffer | null> {
    return this.#r.getBuffer(this.#k.state(this.#k.tag(item)));
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
    const fields = await this.#r.hgetallBuffer(this.#k.spill(this.#k.tag(item)));
    return Object.entries(fields).map(([id, value]) => ({ id, pair: readPair(value, 0) }));
  }

  /** Every stored near neighbour of a fuzzy item, judged as the answer to `item` (explain). */
  async #neighbours(item: string, f: FuzzyItem, now: number): Promise<{ match: Neighbour; result: LookupResult }[]> {
    let near: Neighbour[];
    if (inMemory(f)) {
      await this.#log.catchUp();
      near = this.#log.memory.near(f, item);
    } else near = nearAll(f, (await Promise.all(probeIndexKeys(f).map((k) => this.#r.smembers(this.#k.fuzzy(k))))).flat(), item);
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

  /** Converts a store written in the hash layout, once (redis-upgrade.ts). */
  upgrade(): Promise<void> {
    return upgradeLayout(this.#r, this.#k, this.#scripts);
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
        near = grew ? this.#log.memory.near(f, item) : early.near;
        const known = new Map(early.near.map((n, i) => [n.item, read[i]!] as const));
        // Images logged meanwhile (rare): only their rows cost another wave.
        states = await Promise.all(near.map((n) => (known.has(n.item) ? known.get(n.item)! : this.#state(n.item))));
      } else {
        near = nearAll(f, (await Promise.all(probeIndexKeys(f).map((k) => this.#r.smembers(this.#k.fuzzy(k))))).flat(), item);
        states = await Promise.all(near.map((n) => this.#state(n.item)));
      }
      // Index sets and the log outlive expired fingerprints: a neighbour no longer stored is skipped.
      judged.push(...(await this.#judgeAll(item, near, states, now)));
    }
    return answerFuzzy(item, judged, now);
  }

  async lookup(items: readonly string[], now = Date.now()): Promise<LookupResult[]> {
    const fuzzy = items.map((item) => fuzzyItem(item));
    const known = this.#log.memory.size;
    // In-memory schemes: the neighbours already indexed, their rows and the log's new entries
    // are all read in the same pipelined wave as the exact rows, so a found neighbour costs one
    // round trip, not two.
    const early = fuzzy.map((f, i): EarlyNeighbours | null => {
      if (f === null || !inMemory(f)) return null;
      const near = this.#log.memory.near(f, items[i]!);
      const rows = Promise.all(near.map((n) => this.#state(n.item)));
      rows.catch(() => undefined); // not awaited when the exact row decides; a failure surfaces where it is
      return { near, states: rows };
    });
    const [states] = await Promise.all([Promise.all(items.map((item) => this.#state(item))), early.some((e) => e !== null) ? this.#log.catchUp() : null]);
    const grew = this.#log.memory.size !== known;
    return Promise.all(
      items.map(async (item, i) => {
        const f = fuzzy[i]!;
        const state = states[i]!;
        return f === null ? this.#judge(item, item, state, now) : this.#fuzzyLookup(item, f, state, now, early[i]!, grew);
      }),
    );
  }

  /** Applies one reporter's observations; files new (or due) items in their fuzzy index. */
  /** Each pair's observations in turn (a fingerprint may be in more than one). */
  async #applyGroups(groups: readonly PairObservations[], now: number): Promise<void> {
    for (const { pair, observations } of groups) if (observations.length > 0) await this.#applyAll(pair, observations, now);
  }

  async #applyAll(reporter: string, observations: readonly (readonly [string, Observation])[], now: number): Promise<void> {
    const cluster = this.#r instanceof Cluster;
    const chunk = cluster ? 1 : OBSERVE_CHUNK;
    const commands = this.#scripts;
    const observe = (keys: string[], args: (string | number | Buffer)[]) => (cluster ? commands.nimbusObserveOne(...keys, ...args) : commands.nimbusObserve(keys.length, ...keys, ...args));
    const wall = Date.now();
    const calls: Promise<void>[] = [];
    for (let from = 0; from < observations.length; from += chunk) {
      const part = observations.slice(from, from + chunk);
      const keys: string[] = new Array(2 * part.length);
      // Packed as doubles: cheaper than a string per number on both sides of the wire.
      const packed = Buffer.allocUnsafe(part.length * OBSERVATION_BYTES);
      part.forEach(([item, o], i) => {
        const tag = this.#k.tag(item);
        keys[i] = this.#k.state(tag);
        keys[part.length + i] = this.#k.spill(tag);
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
      await this.#r.xadd(this.#k.log, 'MINID', '~', String(Date.now() - FORGET_AFTER_MS), '*', 'i', item);
      return;
    }
    await Promise.all(storeIndexKeys(f).map(async (k) => {
      await this.#r.sadd(this.#k.fuzzy(k), item);
      await this.#r.pexpire(this.#k.fuzzy(k), FORGET_AFTER_MS);
    }));
  }

  async ingest(batchId: string | null, sensor: Reporter, records: readonly ReportRecord[], now = Date.now()): Promise<IngestResult> {
    const mark = batchId === null ? null : this.#k.batch(batchMark(sensor.id, batchId));
    if (mark !== null) {
      const [fresh, legacy] = await Promise.all([this.#r.set(mark, String(now), 'PX', BATCH_TTL_MS, 'NX'), this.#r.exists(this.#k.batch(batchId!))]);
      if (fresh === null || legacy === 1) return { accepted: 0, duplicate: true };
    }
    try {
      await this.#applyGroups(recordObservations(sensor, records), now);
    } catch (error) {
      // Let the sensor's resend count the batch rather than lose it (a partial count is the lesser harm).
      if (mark !== null) await this.#r.del(mark).catch(() => undefined);
      throw error;
    }
    return { accepted: records.length, duplicate: false };
  }

  async feedback(reporter: Reporter, label: FeedbackLabel, items: readonly string[], now = Date.now()): Promise<void> {
    await this.#applyGroups(feedbackObservations(reporter, label, items), now);
  }

  async forget(reporterId: string, label: FeedbackLabel, items: readonly string[], now = Date.now()): Promise<number> {
    const channel = label === 'spam' ? 2 : 4; // FORGET's index of the pair's spam or ham value
    const done = await Promise.all([...new Set(items)].map((item) => {
      const tag = this.#k.tag(item);
      return this.#scripts.nimbusForget(this.#k.state(tag), this.#k.spill(tag), reporterId, now, HALF_LIFE_MS, channel, FORGET_AFTER_MS);
    }));
    return done.reduce((sum, one) => sum + one, 0);
  }

  async setVerdict(item: string, verdict: OverrideVerdict, by: OverrideBy, now = Date.now()): Promise<void> {
    const tag = this.#k.tag(item);
    const created = await this.#scripts.nimbusSetVerdict(this.#k.state(tag), this.#k.reason(tag), this.#k.audit(tag), ADMIN_CODES.indexOf(verdict), by.reason ?? '', now, by.by);
    const f = fuzzyItem(item);
    // An admin verdict never expires, so its image must outlive the trimmed log too.
    if (f !== null && inMemory(f)) await this.#r.sadd(this.#k.pinned, item);
    if (created === 1) await this.#index(item);
  }

  async clearVerdict(item: string, by: OverrideBy, now = Date.now()): Promise<boolean> {
    const tag = this.#k.tag(item);
    const removed = await this.#scripts.nimbusClearVerdict(this.#k.state(tag), this.#k.reason(tag), this.#k.audit(tag), FORGET_AFTER_MS, now, by.by, by.reason ?? '');
    if (removed === 1) await this.#r.srem(this.#k.pinned, item);
    return removed === 1;
  }

  async explain(item: string, now = Date.now()): Promise<FingerprintExplanation | null> {
    const tag = this.#k.tag(item);
    const [b, reason, audit] = await Promise.all([this.#r.getBuffer(this.#k.state(tag)), this.#r.get(this.#k.reason(tag)), this.#r.lrange(this.#k.audit(tag), 0, -1)]);
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

  async close(): Promise<void> {
    if (this.#r.status !== 'end') await this.#r.quit().catch(() => this.#r.disconnect());
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
    keys: new RedisKeyStore(client, new RedisKeyNames(prefix)),
    close: () => store.close(),
    unavailable: watchRedis(client),
    ping: () => pingRedis(client),
  };
}
