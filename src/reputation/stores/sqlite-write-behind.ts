/**
 * Write-behind for the reputation service's SQLite store: a report batch is durable as one
 * journal row before it is acknowledged, and the fingerprint rows it changes are written later,
 * merged and in key order.
 *
 * Why: in a store of a million fingerprints, each fingerprint of a batch lies on a different
 * B-tree leaf, so writing rows at once costs a 4 KB WAL frame per fingerprint (a batch of 2,000
 * wrote ~8 MB) and ingest stalled at ~9,000 records/s on this project's machines. The journal
 * row of a batch is a few pages; a flush writes each changed row once however often it changed,
 * and neighbouring rows share their page.
 *
 * Correctness rests on three rules:
 * - Every change goes through the journal in the same transaction as its batch id, so a crash
 *   loses nothing acknowledged: the next writer replays what was not flushed.
 * - A flushed row carries `lsn`, the last journal row it includes; replay skips a journal row's
 *   change to a row whose lsn is as new, so a row is never counted twice, whichever flush slices
 *   committed before the crash. Journal rows are deleted once every row they changed is flushed.
 * - Only one write-behind engine may write a file: its pending rows live in its memory, and a
 *   second writer's updates would be overwritten by the first one's flush. An exclusive lock on
 *   `<file>-writer` (held by SQLite for the process's lifetime, released by the OS if it dies)
 *   makes a second one fail at start. Other processes may still open the file: `nimbus keys`
 *   (keys only), and readers, which see rows as of the last flush.
 */
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from '../../private-files.js';
import { NimbusError } from '../../errors.js';
import type { FingerprintState, Observation, PairState } from '../scoring.js';
import { applyObservation, type FpRecord } from './sqlite-rows.js';

/** Pending rows that start a flush at once; otherwise a flush starts FLUSH_AFTER_MS after the first change. */
export const FLUSH_AT_ROWS = 20_000;
export const FLUSH_AFTER_MS = 1000;
/** Pending rows at which ingest waits for the next flush slice: bounds memory (~0.9 KB per row, measured) and replay. */
export const MAX_PENDING_ROWS = 100_000;
/** Rows written per flush transaction: the event loop serves requests between slices. */
export const FLUSH_SLICE_ROWS = 1000;

/** A fingerprint's row changed since it was last flushed. Replaced, never modified, on each change. */
interface Pending {
  readonly record: FpRecord;
  /** `pair` rows (reporters beyond the inline ones) changed since the last flush, by reporter. */
  readonly pairs: ReadonlyMap<string, PairState> | null;
  /** The row exists in `fp` (an update); otherwise an upsert writes it. */
  readonly inDb: boolean;
  /** The last journal row this state includes. */
  readonly lsn: number;
}

/** What the store reads and writes for write-behind (its prepared statements). */
export interface RowAccess {
  /** The stored row and its lsn, or undefined. */
  read(item: string): { record: FpRecord; lsn: number } | undefined;
  readPair(item: string, reporter: string): PairState | undefined;
  /** Writes the row with its lsn: an update when `inDb`, else an upsert. */
  write(item: string, record: FpRecord, lsn: number, inDb: boolean): void;
  writePair(item: string, reporter: string, pair: PairState): void;
  /** Files a fingerprint stored for the first time in its fuzzy index. */
  index(item: string): void;
}

/** Observation points (the crash test stops the process at a chosen one). */
export interface WriteBehindHooks {
  /** A flush slice has committed `rows` rows; the journal rows they cover are still there. */
  sliceWritten?(rows: number): void;
}

/** Changes of one journal row, applied to memory once it has committed. */
export interface Staged {
  readonly changes: Map<string, Pending>;
}

type JournalBody = [reporter: string, now: number, observations: [string, number, number, number, number, number, number, number][]];

const encodeObservations = (reporter: string, now: number, observations: readonly (readonly [string, Observation])[]): string =>
  JSON.stringify([reporter, now, observations.map(([item, o]) => [item, o.seen, o.spamReports, o.hamReports, o.sensor, o.spam, o.weak, o.ham])] satisfies JournalBody);

function decodeObservations(body: string): { reporter: string; now: number; observations: [string, Observation][] } {
  const [reporter, now, list] = JSON.parse(body) as JournalBody;
  return { reporter, now, observations: list.map(([item, seen, spamReports, hamReports, sensor, spam, weak, ham]) => [item, { seen, spamReports, hamReports, sensor, spam, weak, ham }]) };
}

export class WriteBehind {
  readonly #db: Database.Database;
  readonly #rows: RowAccess;
  readonly #lock: Database.Database;
  readonly #pending = new Map<string, Pending>();
  readonly #s;
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  /** Ingest calls waiting for pending rows to drop below MAX_PENDING_ROWS; woken after each slice. */
  #sliceWaiters: (() => void)[] = [];
  /** Why the last flush failed (a full or failing disk): the next ingest reports it instead of being admitted. */
  #failure: Error | null = null;
  #closed = false;

  readonly #hooks: WriteBehindHooks;

  /** Takes the writer lock, then replays and flushes what a crashed writer left in the journal. */
  constructor(db: Database.Database, path: string, rows: RowAccess, hooks: WriteBehindHooks = {}) {
    this.#db = db;
    this.#rows = rows;
    this.#hooks = hooks;
    this.#lock = takeWriterLock(path);
    this.#s = {
      append: db.prepare('INSERT INTO journal (body) VALUES (?)'),
      journal: db.prepare<[], [number, string]>('SELECT seq, body FROM journal ORDER BY seq').raw(),
      last: db.prepare<[], [number | null]>('SELECT max(seq) FROM journal').raw(),
      trim: db.prepare('DELETE FROM journal WHERE seq <= ?'),
    };
    try {
      this.#recover();
    } catch (error) {
      this.#releaseLock();
      throw error;
    }
  }

  /** The pending state of a fingerprint, or undefined when its stored row is current. */
  state(item: string): FingerprintState | undefined {
    return this.#pending.get(item)?.record.state;
  }

  /** The pending row of a fingerprint and its pending `pair` rows, or undefined when its stored rows are current. */
  pending(item: string): { readonly record: FpRecord; readonly pairs: ReadonlyMap<string, PairState> | null } | undefined {
    return this.#pending.get(item);
  }

  /** Mirrors an admin verdict (written by the store itself, never by a flush) into a pending row. */
  setAdmin(item: string, admin: FingerprintState['admin']): void {
    const p = this.#pending.get(item);
    if (p !== undefined) this.#pending.set(item, { ...p, record: { ...p.record, state: { ...p.record.state, admin } } });
  }

  /**
   * Journals one reporter's observations and computes the rows they change. Call inside the
   * transaction that commits the journal row (with the batch's id), then `install` the result.
   */
  stage(groups: readonly { readonly pair: string; readonly observations: readonly (readonly [string, Observation])[] }[], now: number): Staged {
    // One journal row per pair, in order; later pairs build on the earlier ones' changes, which
    // are not pending until the transaction has committed.
    const changes = new Map<string, Pending>();
    for (const { pair, observations } of groups) {
      if (observations.length === 0) continue;
      const lsn = Number(this.#s.append.run(encodeObservations(pair, now, observations)).lastInsertRowid);
      this.#applyAll(pair, observations, now, lsn, false, changes);
    }
    return { changes };
  }

  /** Makes committed changes visible and schedules their flush. */
  install(staged: Staged): void {
    for (const [item, p] of staged.changes) this.#pending.set(item, p);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed || this.#flushing !== null || this.#pending.size === 0) return;
    if (this.#pending.size >= FLUSH_AT_ROWS) void this.#startFlush();
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => void this.#startFlush(), FLUSH_AFTER_MS);
      this.#timer.unref();
    }
  }

  /** Resolves when ingest may go on: at once, unless MAX_PENDING_ROWS are waiting for the disk. */
  async admit(): Promise<void> {
    for (;;) {
      const failure = this.#failure;
      this.#failure = null;
      if (failure !== null) throw failure;
      if (this.#pending.size < MAX_PENDING_ROWS) return;
      // Waits for the next slice, not the whole flush: ingest goes on as rows reach the disk.
      void this.#startFlush();
      await new Promise<void>((resolve) => this.#sliceWaiters.push(resolve));
    }
  }

  /** Flushes everything and releases the lock; the journal is empty afterwards. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    while (this.#flushing !== null) await this.#flushing;
    this.#flushNow();
    this.#releaseLock();
  }

  /** Observations applied on top of pending or stored rows; in replay, changes a flushed row already holds are skipped. */
  #applyAll(reporter: string, observations: readonly (readonly [string, Observation])[], now: number, lsn: number, replay: boolean, changes = new Map<string, Pending>()): Map<string, Pending> {
    const reporterBytes = Buffer.from(reporter);
    for (const [item, o] of observations) {
      let current = changes.get(item) ?? this.#pending.get(item);
      if (current === undefined) {
        const stored = this.#rows.read(item);
        if (stored !== undefined && replay && stored.lsn >= lsn) continue;
        if (stored !== undefined) current = { record: stored.record, pairs: null, inDb: true, lsn: stored.lsn };
      }
      const known = current;
      const applied = applyObservation(known?.record ?? null, reporterBytes, o, now, () => known?.pairs?.get(reporter) ?? this.#rows.readPair(item, reporter));
      // A replayed row's index entries committed with its journal row.
      if (applied.created && !replay) this.#rows.index(item);
      let pairs = known?.pairs ?? null;
      if (applied.spilledPair !== null) pairs = new Map(pairs ?? []).set(reporter, applied.spilledPair);
      changes.set(item, { record: applied.record, pairs, inDb: known?.inDb ?? false, lsn });
    }
    return changes;
  }

  #recover(): void {
    const rows = this.#s.journal.all();
    if (rows.length === 0) return;
    this.#db.transaction(() => {
      for (const [seq, body] of rows) {
        const { reporter, now, observations } = decodeObservations(body);
        for (const [item, p] of this.#applyAll(reporter, observations, now, seq, true)) this.#pending.set(item, p);
      }
    })();
    this.#flushNow();
  }

  #startFlush(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    // Nothing is lost when a flush fails: its rows stay pending and their journal rows stay.
    this.#flushing ??= this.#flushInSlices()
      .catch((error: unknown) => {
        this.#failure = error instanceof Error ? error : new Error(String(error));
      })
      .finally(() => {
        this.#flushing = null;
        this.#wakeWaiters();
        if (this.#failure === null) this.#schedule();
      });
    return this.#flushing;
  }

  /**
   * Writes every row pending at its start, in key order and in slices, then drops the journal
   * rows they cover. A row changed again meanwhile stays pending (with a newer lsn) for the next.
   */
  async #flushInSlices(): Promise<void> {
    const upTo = this.#s.last.get()?.[0] ?? 0;
    const items = [...this.#pending.keys()].sort();
    for (let from = 0; from < items.length; from += FLUSH_SLICE_ROWS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.#writeRows(items.slice(from, from + FLUSH_SLICE_ROWS));
      this.#wakeWaiters();
    }
    this.#s.trim.run(upTo);
  }

  /** Everything at once, synchronously (recovery, close). */
  #flushNow(): void {
    const upTo = this.#s.last.get()?.[0] ?? 0;
    this.#writeRows([...this.#pending.keys()].sort());
    this.#s.trim.run(upTo);
  }

  #writeRows(items: readonly string[]): void {
    const written: [string, Pending][] = [];
    this.#db.transaction(() => {
      for (const item of items) {
        const p = this.#pending.get(item);
        if (p === undefined) continue;
        this.#rows.write(item, p.record, p.lsn, p.inDb);
        if (p.pairs !== null) for (const [reporter, pair] of p.pairs) this.#rows.writePair(item, reporter, pair);
        written.push([item, p]);
      }
    }).immediate();
    for (const [item, p] of written) if (this.#pending.get(item) === p) this.#pending.delete(item);
    this.#hooks.sliceWritten?.(written.length);
  }

  #wakeWaiters(): void {
    const waiters = this.#sliceWaiters;
    this.#sliceWaiters = [];
    for (const wake of waiters) wake();
  }

  #releaseLock(): void {
    if (!this.#lock.open) return;
    this.#lock.exec('ROLLBACK');
    this.#lock.close();
  }
}

/**
 * An exclusive lock on `<path>-writer` for as long as the returned connection holds its
 * transaction: SQLite's own file locking (the OS drops it when the process dies), with no wait.
 */
function takeWriterLock(path: string): Database.Database {
  const lockPath = `${path}-writer`;
  const lock = openPrivateDatabase(lockPath, { timeout: 0 });
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    lock.close();
    if ((error as { code?: string }).code === 'SQLITE_BUSY') {
      throw new NimbusError('STORE_LOCKED', `${path} is already being written by another nimbus reputation (it holds ${lockPath}); stop that one, or give this one another NIMBUS_DATA_DIR`, { cause: error });
    }
    throw error;
  }
  return lock;
}
