/**
 * The local statistics store: SQLite at dataDir/nimbus.sqlite, WAL with synchronous=FULL so a
 * record is on disk before record() returns. Three parts:
 * - `stats`: every record, with the client IP in the clear, for `nimbus stats` (kept
 *   statsRetentionDays);
 * - `outbox`: what may be uploaded later (no client IP, no HELO), bounded by count and age;
 * - `batches`: an upload batch is fixed (id and body) when it is created and persisted, so a
 *   resend after a cut connection or a crash carries the same id and counts once at the service.
 * Counters (dropped, uploaded, outbox size, last upload, last error) live in `meta`.
 *
 * Several processes share the file (gateway workers, `nimbus stats`): every read-then-write is an
 * IMMEDIATE transaction (a deferred one that read first fails with SQLITE_BUSY instead of waiting
 * when another process wrote meanwhile), the outbox size is a counter in `meta` kept in the same
 * transactions (exact for every process, no scan), and a batch is claimed by one uploader at a
 * time so two workers never send the same batch side by side.
 */
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from '../private-files.js';
import type { ParticipationMode } from '../config/index.js';
import type { ReportBatch } from '../reputation/api.js';
import type { LocalRecord, StatsInput } from './types.js';
import { toStatsRow, type StatsRow } from './store-row.js';
import { toWireRecord } from './wire.js';
import { useWal } from '../sqlite-wal.js';
import { ownerAlive } from './claims.js';
import { statsReport, type StoreReport } from './report.js';
import { MIGRATIONS } from './store-schema.js';

const DAY_MS = 86_400_000;
/**
 * A claim on a batch lapses after this long even if its owner looks alive (a reused pid): longer
 * than an upload's own timeout, so a live uploader keeps its batch while it is sending it.
 */
export const CLAIM_LEASE_MS = 120_000;

export type { StoreReport } from './report.js';

/** Acknowledged batches kept for the console to show what left the host. */
const SENT_BATCHES_KEPT = 5;

export interface SentBatch {
  readonly id: string;
  /** When the service acknowledged it (ms). */
  readonly sent: number;
  readonly mode: ParticipationMode;
  /** The request body as sent (JSON). */
  readonly body: string;
}

export interface PendingBatch {
  readonly id: string;
  readonly mode: ParticipationMode;
  readonly batch: ReportBatch;
  readonly count: number;
}

export interface StoreOptions {
  readonly dataDir: string;
  readonly outboxMaxRecords: number;
  readonly outboxMaxAgeDays: number;
  readonly statsRetentionDays: number;
}

export class StatsStore {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  /** Made once: better-sqlite3's transaction() builds its wrapper functions anew on every call. */
  readonly #insertRows: Database.Transaction<(rows: readonly StatsRow[]) => { id: string; dropped: number }[]>;
  #options: StoreOptions;

  constructor(options: StoreOptions) {
    this.#options = options;
    this.#db = openPrivateDatabase(join(options.dataDir, 'nimbus.sqlite'));
    useWal(this.#db);
    this.#db.pragma('synchronous = FULL');
    this.#migrate();
    this.#insertRows = this.#db.transaction((rows: readonly StatsRow[]) => rows.map((row) => this.#insertOne(row)));
  }

  /** Workers open the file at the same moment: the version is read inside the write lock. */
  #migrate(): void {
    this.#db.transaction(() => {
      const version = this.#db.pragma('user_version', { simple: true }) as number;
      for (let v = version; v < MIGRATIONS.length; v++) {
        this.#db.exec(MIGRATIONS[v]!);
        this.#db.pragma(`user_version = ${v + 1}`);
      }
    }).immediate();
  }

  setBounds(options: StoreOptions): void {
    this.#options = options;
  }

  /** Writes the record to `stats` and `outbox` in one transaction; returns the outbox drops. */
  insert(input: StatsInput, gatheredOff: boolean): { id: string; dropped: number } {
    return this.insertRows([toStatsRow(input, gatheredOff)])[0]!;
  }

  /** insertRows for records not yet made rows (the benches, tests). */
  insertMany(items: readonly { readonly input: StatsInput; readonly gatheredOff: boolean }[]): { id: string; dropped: number }[] {
    return this.insertRows(items.map(({ input, gatheredOff }) => toStatsRow(input, gatheredOff)));
  }

  /**
   * Writes every record in one transaction (one fsync for all of them: the writer thread commits
   * what arrived while the previous commit was on its way to disk). One result per record, in order.
   */
  insertRows(rows: readonly StatsRow[]): { id: string; dropped: number }[] {
    return this.#insertRows.immediate(rows);
  }

  #insertOne(row: StatsRow): { id: string; dropped: number } {
    const [id, time, clientIp, helo, verdict, score, action, size, nextHop, fingerprints, gatheredOff, outbox] = row;
    this.#statement('INSERT INTO stats (id, time, client_ip, helo, verdict, score, action, size, next_hop, fingerprints) VALUES (?,?,?,?,?,?,?,?,?,?)').run(
      id, time, clientIp, helo, verdict, score, action, size, nextHop, fingerprints,
    );
    this.#statement('INSERT INTO outbox (time, gathered_off, record) VALUES (?,?,?)').run(time, gatheredOff, outbox);
    this.#addCounter('outboxCount', 1);
    return { id, dropped: this.#dropOverflow() };
  }

  /** Statements of the per-message path, compiled once (compiling them per insert cost ~2% of a worker's CPU). */
  #statement(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Oldest first, never rows already fixed in a batch (that batch will still be sent). */
  #dropOverflow(): number {
    const excess = this.outboxSize() - this.#options.outboxMaxRecords;
    if (excess <= 0) return 0;
    const result = this.#statement('DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE batch_id IS NULL ORDER BY seq LIMIT ?)').run(excess);
    this.#addCounter('outboxCount', -result.changes);
    this.#addCounter('dropped', result.changes);
    return result.changes;
  }

  /** Drops outbox records past the age bound and local stats past retention; returns outbox drops. */
  prune(now = Date.now()): number {
    return this.#db.transaction(() => {
      const cutoff = now - this.#options.outboxMaxAgeDays * DAY_MS;
      const result = this.#db.prepare('DELETE FROM outbox WHERE time < ? AND batch_id IS NULL').run(cutoff);
      this.#addCounter('outboxCount', -result.changes);
      this.#addCounter('dropped', result.changes);
      this.#db.prepare('DELETE FROM stats WHERE time < ?').run(now - this.#options.statsRetentionDays * DAY_MS);
      return result.changes;
    }).immediate();
  }

  /** NIMBUS_UPLOAD_BACKLOG=no at opt-in: what was gathered while off never leaves (stats keep it). */
  discardGatheredWhileOff(): number {
    return this.#db.transaction(() => {
      const changes = this.#db.prepare('DELETE FROM outbox WHERE gathered_off = 1 AND batch_id IS NULL').run().changes;
      this.#addCounter('outboxCount', -changes);
      return changes;
    }).immediate();
  }

  /**
   * The batch for uploader `owner` to send, claimed for it: the oldest persisted one nobody else
   * is sending (same id as before a crash or cut), else a new one fixed now from the oldest outbox
   * records. A persisted batch built for a more generous mode than `mode` (extended, now
   * standard) is rebuilt: privacy beats idempotency there.
   */
  nextBatch(mode: ParticipationMode, size: number, owner: string, now = Date.now()): PendingBatch | null {
    if (mode === 'off') return null;
    return this.#db.transaction((): PendingBatch | null => {
      const persisted = this.#db.prepare('SELECT id, mode, body, owner, claimed FROM batches ORDER BY created').all() as {
        id: string;
        mode: ParticipationMode;
        body: string;
        owner: string | null;
        claimed: number | null;
      }[];
      for (const existing of persisted) {
        const busy = existing.owner !== null && existing.owner !== owner && (existing.claimed ?? 0) > now - CLAIM_LEASE_MS && ownerAlive(existing.owner);
        if (busy) continue;
        if (existing.mode === mode || existing.mode === 'standard') {
          this.#db.prepare('UPDATE batches SET owner = ?, claimed = ? WHERE id = ?').run(owner, now, existing.id);
          const batch = JSON.parse(existing.body) as ReportBatch;
          return { id: existing.id, mode: existing.mode, batch, count: batch.records.length };
        }
        this.#db.prepare('UPDATE outbox SET batch_id = NULL WHERE batch_id = ?').run(existing.id);
        this.#db.prepare('DELETE FROM batches WHERE id = ?').run(existing.id);
      }
      const rows = this.#db.prepare('SELECT seq, record FROM outbox WHERE batch_id IS NULL ORDER BY seq LIMIT ?').all(size) as { seq: number; record: string }[];
      if (rows.length === 0) return null;
      const id = `b-${randomUUID()}`;
      const records = rows.map((row) => toWireRecord(JSON.parse(row.record) as LocalRecord, mode)!);
      const batch: ReportBatch = { batchId: id, records };
      this.#db.prepare('INSERT INTO batches (id, created, mode, body, owner, claimed) VALUES (?,?,?,?,?,?)').run(id, now, mode, JSON.stringify(batch), owner, now);
      const assign = this.#db.prepare('UPDATE outbox SET batch_id = ? WHERE seq = ?');
      for (const row of rows) assign.run(id, row.seq);
      return { id, mode, batch, count: rows.length };
    }).immediate();
  }

  /** The uploader stops (opt-out, 401, close): its unacknowledged batches are free for others. */
  releaseClaims(owner: string): void {
    this.#db.prepare('UPDATE batches SET owner = NULL, claimed = NULL WHERE owner = ?').run(owner);
  }

  /**
   * The service acknowledged the batch: only now its records leave the outbox. Returns how many
   * left (0 when another uploader acknowledged the same batch first: counted once).
   */
  acknowledge(batchId: string): number {
    return this.#db.transaction(() => {
      const sent = Date.now();
      this.#db.prepare('INSERT OR IGNORE INTO sent_batches (id, sent, mode, body) SELECT id, ?, mode, body FROM batches WHERE id = ?').run(sent, batchId);
      this.#db.prepare('DELETE FROM sent_batches WHERE id NOT IN (SELECT id FROM sent_batches ORDER BY sent DESC LIMIT ?)').run(SENT_BATCHES_KEPT);
      const removed = this.#db.prepare('DELETE FROM outbox WHERE batch_id = ?').run(batchId).changes;
      this.#db.prepare('DELETE FROM batches WHERE id = ?').run(batchId);
      this.#addCounter('outboxCount', -removed);
      this.#addCounter('uploaded', removed);
      this.#setMeta('lastUpload', new Date().toISOString());
      return removed;
    }).immediate();
  }

  /** The last acknowledged batches, newest first, each with its body exactly as it was sent. */
  sentBatches(): SentBatch[] {
    return this.#db.prepare('SELECT id, sent, mode, body FROM sent_batches ORDER BY sent DESC').all() as SentBatch[];
  }

  setLastError(message: string | null): void {
    if (message === null) this.#db.prepare("DELETE FROM meta WHERE key = 'lastError'").run();
    else this.#setMeta('lastError', `${new Date().toISOString()} ${message}`);
  }

  /** The outbox size, from the counter every writer keeps in `meta` (no scan). */
  outboxSize(): number {
    return this.counter('outboxCount');
  }

  /** The outbox size, counted. */
  backlog(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;
  }

  meta(key: string): string | null {
    const row = this.#statement('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value ?? null;
  }

  counter(key: string): number {
    return Number(this.meta(key) ?? 0);
  }

  #setMeta(key: string, value: string): void {
    this.#db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  #addCounter(key: string, n: number): void {
    if (n === 0) return;
    this.#statement("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER) AS TEXT)").run(key, String(n));
  }

  /** Per-day counts and the top spam sources, for `nimbus stats` (local, IPs in the clear). */
  report(days: number, top: number): StoreReport {
    return statsReport(this.#db, days, top);
  }

  close(): void {
    this.#db.close();
  }
}
