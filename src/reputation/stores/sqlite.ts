/**
 * The embedded store: one SQLite file through better-sqlite3. Synchronous calls inside one
 * transaction per engine call, prepared statements only, WAL so lookups never wait for ingest.
 * Fuzzy fingerprints are filed under their scheme's index keys in `fuzzy`, so a near-neighbour
 * lookup reads the few rows sharing a key with the probe, never the whole table; schemes with an
 * in-memory index (`image:phash256`) are instead appended to `fuzzy_log`, which this instance
 * replays into memory (memory-index.ts): probing ~1,200 buckets through SQL costs milliseconds,
 * in memory a fraction of one.
 *
 * Two write modes: rows written at once (the gateway's embedded engine, whose workers share the
 * file), or behind a journal (`writeBehind`, the reputation service: sqlite-write-behind.ts).
 * Both apply an observation to a row the same way (sqlite-rows.ts).
 */
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from '../../private-files.js';
import type { LookupResult, ReportRecord } from '../api.js';
import type { FeedbackLabel, FingerprintExplanation, IngestResult, OverrideBy, OverrideVerdict, Reporter, ReputationEngine } from '../engine-types.js';
import {
  ForgetUnsupported, answerFuzzy, batchMark, decisiveness, explanation, feedbackObservations, fuzzyItem, nearAll, probeIndexKeys, recordObservations, storeIndexKeys, type PairObservations,
  type FuzzyItem, type Neighbour, type ReporterPair,
} from '../engine.js';
import { Checkpointer, MAIN_AUTOCHECKPOINT_PAGES } from './checkpointer.js';
import { MemoryIndexes, inMemory } from './memory-index.js';
import { BATCH_TTL_MS, VOICES_TO_CONVICT, emptyState, freshVoices, judge, voiceChannel, type FingerprintState, type Observation, type PairState } from '../scoring.js';
import { useWal } from '../../sqlite-wal.js';
import { AuditTrail } from './sqlite-audit.js';
import { SqliteKeyStore } from './sqlite-keys.js';
import { LOG_PAGE, migrate, prepareStatements, toPair, toRecord, toReporterPair, toState, type Statements } from './sqlite-schema.js';
import { applyObservation, inlinePairs, withdrawFromRecord } from './sqlite-rows.js';
import { WriteBehind, type WriteBehindHooks } from './sqlite-write-behind.js';

/** Size the WAL file is truncated back to after a checkpoint restarts it. */
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

export class SqliteStore implements ReputationEngine {
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #s: Statements;
  /** API keys, in the same file (sqlite-keys.ts). */
  readonly keys: SqliteKeyStore;
  // Made once: better-sqlite3's transaction() builds four wrapper functions per call, which on
  // the gateway's lookup path (every message) was ~1% of a worker's CPU (CPU profile, bench relay).
  readonly #lookup: Database.Transaction<(items: readonly string[], now: number) => LookupResult[]>;
  readonly #ingest: Database.Transaction<(batchId: string | null, sensor: Reporter, records: readonly ReportRecord[], now: number) => { result: IngestResult; committed: (() => void) | null }>;
  /** Started by the first ingest (CLI commands that only read or add a key never need it). */
  #checkpointer: Checkpointer | null = null;
  readonly #memory = new MemoryIndexes();
  /** Last `fuzzy_log` row replayed into #memory. */
  #logSeq = 0;

  readonly #audit: AuditTrail;
  readonly #backgroundCheckpoints: boolean;
  /** Set for the reputation service (see sqlite-write-behind.ts); null: every call writes its rows at once. */
  readonly #writeBehind: WriteBehind | null = null;

  constructor(path: string, options: { backgroundCheckpoints?: boolean; writeBehind?: boolean; writeBehindHooks?: WriteBehindHooks } = {}) {
    this.#db = openPrivateDatabase(path);
    this.#path = path;
    this.#backgroundCheckpoints = options.backgroundCheckpoints ?? true;
    useWal(this.#db);
    // NORMAL in WAL: a power cut may lose the last transactions, never corrupt the file; the
    // statistics that feed it are resent by idempotent batch id.
    this.#db.pragma('synchronous = NORMAL');
    const db = this.#db;
    migrate(db);
    this.#s = prepareStatements(db);
    this.keys = new SqliteKeyStore(db);
    this.#audit = new AuditTrail(db);
    this.#lookup = db.transaction((items: readonly string[], now: number) => this.#lookupItems(items, now));
    this.#ingest = db.transaction((batchId: string | null, sensor: Reporter, records: readonly ReportRecord[], now: number) => this.#ingestBatch(batchId, sensor, records, now));
    if (options.writeBehind) {
      try {
        this.#writeBehind = this.#openWriteBehind(options.writeBehindHooks);
      } catch (error) {
        db.close();
        throw error;
      }
    }
  }

  #openWriteBehind(hooks: WriteBehindHooks | undefined): WriteBehind {
    return new WriteBehind(this.#db, this.#path, {
      read: (item) => {
        const row = this.#s.getFpPairs.get(item);
        return row === undefined ? undefined : { record: toRecord(row), lsn: row[14] };
      },
      readPair: (item, reporter) => this.#storedPair(item, reporter),
      write: (item, { state: s, pairs, spilled }, lsn, inDb) => {
        if (inDb) this.#s.flushUpdate.run(s.seen, s.spamReports, s.hamReports, s.sensorEv, s.spamEv, s.weakEv, s.hamEv, s.reporters, s.firstSeen, s.lastSeen, s.ts, pairs, spilled, lsn, item);
        else this.#s.flushNew.run(item, s.seen, s.spamReports, s.hamReports, s.sensorEv, s.spamEv, s.weakEv, s.hamEv, s.reporters, s.firstSeen, s.lastSeen, s.ts, pairs, spilled, lsn);
      },
      writePair: (item, reporter, p) => this.#s.putPair.run(item, reporter, p.sensor, p.spam, p.weak, p.ham, p.ts),
      index: (item) => this.#index(item),
    }, hooks);
  }

  // One transaction per call: a lookup of N items reads a consistent snapshot with N exact
  // reads plus, for each fuzzy item not decided by its exact row, one probe read and one read per
  // near neighbour (see answerFuzzy for which neighbour answers).
  #lookupItems(items: readonly string[], now: number): LookupResult[] {
    return items.map((item) => {
      const exact = this.#state(item);
      const fuzzy = fuzzyItem(item);
      if (fuzzy === null) return this.#judge(item, item, exact, now);
      const judged: { match: Neighbour; result: LookupResult }[] = [];
      if (exact !== null) judged.push({ match: { item, similarity: 1 }, result: this.#judge(item, item, exact, now) });
      if (judged.length === 0 || decisiveness(judged[0]!.result) < 2) judged.push(...this.#neighbours(item, fuzzy, now));
      return answerFuzzy(item, judged, now);
    });
  }

  /** Every stored near neighbour of a fuzzy item, judged as the answer to `item`. */
  #neighbours(item: string, fuzzy: FuzzyItem, now: number): { match: Neighbour; result: LookupResult }[] {
    const judged: { match: Neighbour; result: LookupResult }[] = [];
    for (const match of this.#near(item, fuzzy)) {
      const state = this.#state(match.item);
      if (state !== null) judged.push({ match, result: this.#judge(item, match.item, state, now) });
    }
    return judged;
  }

  /**
   * Judges `stored`'s state as the answer to `item`, reading its reporters only when their fresh
   * voices decide (scoring.voiceChannel): first the inline ones, then `pair` when those are too few.
   */
  #judge(item: string, stored: string, state: FingerprintState | null, now: number): LookupResult {
    const channel = state === null ? null : voiceChannel(state, now);
    if (channel === null) return judge(item, state, now);
    const row = this.#inline(stored);
    const pairs = row.inline.map((p) => p.pair);
    if (freshVoices(pairs, channel, now) < VOICES_TO_CONVICT && row.spilled) pairs.push(...this.#spilledPairs(stored).map((p) => p.pair));
    return judge(item, state, now, pairs);
  }

  /** The reporters kept in a fingerprint's row, and whether more are in `pair` (pending in write-behind, else stored). */
  #inline(item: string): { inline: ReporterPair[]; spilled: boolean } {
    const pending = this.#writeBehind?.pending(item);
    if (pending !== undefined) return { inline: inlinePairs(pending.record.pairs), spilled: pending.record.spilled !== 0 };
    const row = this.#s.getInline.get(item);
    return { inline: inlinePairs(row?.[0] ?? null), spilled: (row?.[1] ?? 0) !== 0 };
  }

  /** The reporters beyond the inline ones (`pair` rows, with changes pending in write-behind). */
  #spilledPairs(item: string): ReporterPair[] {
    const stored = this.#s.getSpilled.all(item).map(toReporterPair);
    const pending = this.#writeBehind?.pending(item)?.pairs;
    if (pending === undefined || pending === null) return stored;
    const merged = new Map(stored.map((p) => [p.id, p.pair] as const));
    for (const [id, pair] of pending) merged.set(id, pair);
    return [...merged].map(([id, pair]) => ({ id, pair }));
  }

  /** A fingerprint's current state: pending in write-behind, else its row. */
  #state(item: string): FingerprintState | null {
    const pending = this.#writeBehind?.state(item);
    if (pending !== undefined) return pending;
    const row = this.#s.getFp.get(item);
    return row === undefined ? null : toState(row);
  }

  async lookup(items: readonly string[], now = Date.now()): Promise<LookupResult[]> {
    return this.#lookup(items, now);
  }

  /** Confirmed near neighbours of a fuzzy item (other than itself), most similar first. */
  #near(item: string, fuzzy: FuzzyItem): Neighbour[] {
    if (!inMemory(fuzzy)) return nearAll(fuzzy, this.#s.probe.all(JSON.stringify(probeIndexKeys(fuzzy))).map((r) => r.item), item);
    // Items logged since the last lookup, by this process or another one on the same file
    // (one indexed range read, empty almost always; the whole log on the first lookup).
    for (;;) {
      const rows = this.#s.readLog.all(this.#logSeq);
      for (const [seq, logged] of rows) {
        this.#memory.add(logged);
        this.#logSeq = seq;
      }
      if (rows.length < LOG_PAGE) break;
    }
    return this.#memory.near(fuzzy, item);
  }

  #storedPair(item: string, reporter: string): PairState | undefined {
    const row = this.#s.getPair.get(item, reporter);
    return row === undefined ? undefined : toPair(row);
  }

  /**
   * One reporter's observation of one item, written at once: one read and one write of the
   * item's row when the reporter's pair is inline (or new, with room for it), plus a read and a
   * write of `pair` for a reporter beyond the first INLINE_PAIRS (or one stored before inline
   * pairs existed).
   */
  #apply(item: string, reporter: string, reporterBytes: Buffer, o: Observation, now: number): void {
    const row = this.#s.getFpPairs.get(item);
    const applied = applyObservation(row === undefined ? null : toRecord(row), reporterBytes, o, now, () => this.#storedPair(item, reporter));
    const { state: s, pairs, spilled } = applied.record;
    if (applied.created) this.#putFp(item, s, pairs, spilled);
    else this.#s.updateFp.run(s.seen, s.spamReports, s.hamReports, s.sensorEv, s.spamEv, s.weakEv, s.hamEv, s.reporters, s.firstSeen, s.lastSeen, s.ts, pairs, spilled, item);
    const p = applied.spilledPair;
    if (p !== null && applied.spilledPairExists) this.#s.updatePair.run(p.sensor, p.spam, p.weak, p.ham, p.ts, item, reporter);
    else if (p !== null) this.#s.putPair.run(item, reporter, p.sensor, p.spam, p.weak, p.ham, p.ts);
    if (applied.created) this.#index(item);
  }

  /** One reporter's observations: journalled and pending in write-behind, else written at once. */
  #applyAll(groups: readonly PairObservations[], now: number): (() => void) | null {
    if (this.#writeBehind === null) {
      for (const { pair, observations } of groups) {
        const pairBytes = Buffer.from(pair);
        for (const [item, o] of observations) this.#apply(item, pair, pairBytes, o, now);
      }
      return null;
    }
    const writeBehind = this.#writeBehind;
    const staged = writeBehind.stage(groups, now);
    return () => writeBehind.install(staged);
  }

  // Positional parameters: named ones cost an object per row on the ingest hot path.
  #putFp(item: string, s: FingerprintState, pairs: Buffer | null, spilled: number): void {
    this.#s.putFp.run(item, s.seen, s.spamReports, s.hamReports, s.sensorEv, s.spamEv, s.weakEv, s.hamEv, s.reporters, s.firstSeen, s.lastSeen, s.ts, pairs, spilled);
  }

  #index(item: string): void {
    const fuzzy = fuzzyItem(item);
    if (fuzzy === null) return;
    if (inMemory(fuzzy)) this.#s.putLog.run(item);
    else for (const k of storeIndexKeys(fuzzy)) this.#s.putIndex.run(k, item);
  }

  /** Returns what to run once the transaction has committed (write-behind's install), if anything. */
  #ingestBatch(batchId: string | null, sensor: Reporter, records: readonly ReportRecord[], now: number): { result: IngestResult; committed: (() => void) | null } {
    const mark = batchId === null ? null : batchMark(sensor.id, batchId);
    if (mark !== null && this.#s.hasBatch.get(mark, batchId!) !== undefined) return { result: { accepted: 0, duplicate: true }, committed: null };
    // Marks expire on every ingest, with a batch id or without (a gateway's file only has the latter once it runs this version).
    this.#s.expireBatches.run(now - BATCH_TTL_MS);
    if (mark !== null) this.#s.putBatch.run(mark, now);
    // In key order, successive reads descend through the same interior pages, still cached:
    // ~5% faster on a store of a million (bench/reputation-engine.ts).
    const groups = recordObservations(sensor, records).map(inKeyOrder);
    return { result: { accepted: records.length, duplicate: false }, committed: this.#applyAll(groups, now) };
  }

  async ingest(batchId: string | null, sensor: Reporter, records: readonly ReportRecord[], now = Date.now()): Promise<IngestResult> {
    this.#startCheckpointer();
    await this.#writeBehind?.admit();
    const { result, committed } = this.#ingest.immediate(batchId, sensor, records, now);
    committed?.();
    return result;
  }

  async feedback(reporter: Reporter, label: FeedbackLabel, items: readonly string[], now = Date.now()): Promise<void> {
    const groups = feedbackObservations(reporter, label, items);
    await this.#writeBehind?.admit();
    const committed = this.#db.transaction(() => this.#applyAll(groups, now)).immediate();
    committed?.();
  }

  async forget(reporterId: string, label: FeedbackLabel, items: readonly string[], now = Date.now()): Promise<number> {
    // Write-behind journals observations, which only ever raise a pair: a withdrawal is not one.
    if (this.#writeBehind !== null) throw new ForgetUnsupported('this store writes behind a journal (the reputation service) and cannot undo a report');
    const reporterBytes = Buffer.from(reporterId);
    return this.#db.transaction(() => {
      let count = 0;
      for (const item of new Set(items)) {
        const row = this.#s.getFpPairs.get(item);
        const change = row === undefined ? null : withdrawFromRecord(toRecord(row), reporterBytes, label, now, () => this.#storedPair(item, reporterId));
        if (change === null) continue;
        const { state: s, pairs, spilled } = change.record;
        this.#s.updateFp.run(s.seen, s.spamReports, s.hamReports, s.sensorEv, s.spamEv, s.weakEv, s.hamEv, s.reporters, s.firstSeen, s.lastSeen, s.ts, pairs, spilled, item);
        const p = change.spilledPair;
        if (p !== null) this.#s.updatePair.run(p.sensor, p.spam, p.weak, p.ham, p.ts, item, reporterId);
        count++;
      }
      return count;
    }).immediate();
  }

  async setVerdict(item: string, verdict: OverrideVerdict, by: OverrideBy, now = Date.now()): Promise<void> {
    // The admin columns are written here only, never by a write-behind flush; a fingerprint
    // pending but not yet stored gets an empty row for them, which its flush then fills.
    this.#db.transaction(() => {
      const known = this.#state(item) !== null;
      const row = this.#s.getAdmin.get(item);
      if (row === undefined) this.#putFp(item, emptyState(now), null, 0);
      if (!known) this.#index(item);
      this.#s.setAdmin.run(verdict, by.reason ?? null, item);
      this.#audit.record(item, now, by.by, row?.[0] ?? null, verdict, by.reason ?? null);
    }).immediate();
    this.#writeBehind?.setAdmin(item, verdict);
  }

  async clearVerdict(item: string, by: OverrideBy, now = Date.now()): Promise<boolean> {
    const removed = this.#db.transaction(() => {
      const before = this.#s.getAdmin.get(item)?.[0] ?? null;
      if (before === null) return false;
      this.#s.clearAdmin.run(item);
      this.#audit.record(item, now, by.by, before, null, by.reason ?? null);
      return true;
    }).immediate();
    if (removed) this.#writeBehind?.setAdmin(item, null);
    return removed;
  }

  async explain(item: string, now = Date.now()): Promise<FingerprintExplanation | null> {
    return this.#db.transaction(() => {
      const state = this.#state(item);
      const audit = this.#audit.list(item);
      if (state === null && audit.length === 0) return null;
      const admin = this.#s.getAdmin.get(item);
      const fuzzy = fuzzyItem(item);
      const row = this.#inline(item);
      const pairs = row.spilled ? [...row.inline, ...this.#spilledPairs(item)] : row.inline;
      return explanation({
        result: this.#lookupItems([item], now)[0]!,
        override: admin?.[0] ? { verdict: admin[0], reason: admin[1] } : null,
        pairs,
        neighbours: fuzzy === null ? [] : this.#neighbours(item, fuzzy, now),
        audit,
      }, now);
    })();
  }

  /** Moves checkpoints to a worker (checkpointer.ts); the main connection keeps only a safety cap. */
  #startCheckpointer(): void {
    if (this.#checkpointer !== null || this.#db.memory || !this.#backgroundCheckpoints) return;
    this.#checkpointer = new Checkpointer(this.#path);
    this.#db.pragma(`wal_autocheckpoint = ${MAIN_AUTOCHECKPOINT_PAGES}`);
    // The WAL file is cut back to this size when it restarts, so a burst leaves no 256 MB file
    // behind (MAIN_AUTOCHECKPOINT_PAGES lets it reach that while ingest runs back to back).
    this.#db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
  }

  async close(): Promise<void> {
    await this.#writeBehind?.close();
    const checkpointer = this.#checkpointer;
    this.#checkpointer = null;
    if (checkpointer !== null) await checkpointer.close();
    // The last connection to close checkpoints the whole WAL and removes it.
    if (this.#db.open) this.#db.close();
  }
}

/**
 * The pair's observations sorted by key. A module function with its comparator rather than arrows
 * made per ingest: V8 drops a dead closure's optimised code at each full GC, and the comparator
 * was re-optimised again and again in milter steady state (--trace-opt).
 */
function inKeyOrder({ pair, observations }: PairObservations): PairObservations {
  return { pair, observations: [...observations].sort(byKey) };
}

function byKey(a: readonly [string, Observation], b: readonly [string, Observation]): number {
  return a[0] < b[0] ? -1 : 1;
}
