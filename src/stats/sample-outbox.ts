/**
 * The gateway's sample outbox: `NIMBUS_DATA_DIR/sample-outbox.sqlite` (its own file: blobs stay
 * out of the statistics database and its WAL). WAL with synchronous=FULL, like the statistics: a
 * sample is on disk before the message it came with gets its final reply.
 *
 * One row per SHA-256: a sample waits with its bytes until the service acknowledged it; then its
 * bytes are deleted and the row stays as a marker, so the same attachment in later mail is not
 * captured and sent again. Bounds: waiting samples take at most NIMBUS_SAMPLE_OUTBOX_MAX_BYTES
 * (oldest dropped first) and live at most NIMBUS_OUTBOX_MAX_AGE_DAYS, like the records; drops are
 * counted. Gateway workers share the file: a sample is claimed by one uploader at a time (a claim
 * lapses after CLAIM_LEASE_MS, so the sample of a killed worker goes later, not never).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from '../private-files.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../log.js';
import { sampleCapture, type Sample } from './samples.js';
import { CLAIM_LEASE_MS } from './store.js';
import { useWal } from '../sqlite-wal.js';

const DAY_MS = 86_400_000;

export interface SampleOutboxBounds {
  readonly sampleOutboxMaxBytes: number;
  readonly outboxMaxAgeDays: number;
}

export interface SampleOutboxSummary {
  /** Samples waiting for upload, and their bytes. */
  readonly waiting: number;
  readonly waitingBytes: number;
  readonly uploaded: number;
  /** Dropped by the bounds, refused by the service (400, 413), or deleted on leaving extended. */
  readonly dropped: number;
}

export function sampleOutboxPath(dataDir: string): string {
  return join(dataDir, 'sample-outbox.sqlite');
}

export class SampleOutbox {
  readonly #db: Database.Database;
  #bounds: SampleOutboxBounds;

  constructor(dataDir: string, bounds: SampleOutboxBounds) {
    this.#bounds = bounds;
    this.#db = openPrivateDatabase(sampleOutboxPath(dataDir));
    useWal(this.#db);
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS samples (
        sha256 TEXT PRIMARY KEY, time INTEGER NOT NULL, type TEXT NOT NULL, size INTEGER NOT NULL,
        content BLOB, sent INTEGER, owner TEXT, claimed INTEGER);
      CREATE INDEX IF NOT EXISTS samples_time ON samples(time);
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);`);
  }

  setBounds(bounds: SampleOutboxBounds): void {
    this.#bounds = bounds;
  }

  /** Keeps the samples not seen before; returns how many waiting samples the bounds dropped. */
  add(samples: readonly Sample[], now = Date.now()): number {
    if (samples.length === 0) return 0;
    return this.#db.transaction(() => {
      const insert = this.#db.prepare('INSERT OR IGNORE INTO samples (sha256, time, type, size, content) VALUES (?,?,?,?,?)');
      for (const sample of samples) insert.run(sample.sha256, now, sample.type, sample.content.length, sample.content);
      return this.#pruneLocked(now);
    }).immediate();
  }

  /** Drops waiting samples past the age and byte bounds (counted), and old sent markers. */
  prune(now = Date.now()): number {
    return this.#db.transaction(() => this.#pruneLocked(now)).immediate();
  }

  #pruneLocked(now: number): number {
    const cutoff = now - this.#bounds.outboxMaxAgeDays * DAY_MS;
    this.#db.prepare('DELETE FROM samples WHERE sent IS NOT NULL AND time < ?').run(cutoff);
    let dropped = this.#db.prepare('DELETE FROM samples WHERE sent IS NULL AND time < ?').run(cutoff).changes;
    const { bytes } = this.#db.prepare('SELECT coalesce(sum(size), 0) AS bytes FROM samples WHERE sent IS NULL').get() as { bytes: number };
    let excess = bytes - this.#bounds.sampleOutboxMaxBytes;
    if (excess > 0) {
      // Oldest first; a sample being sent stays (it leaves on its own in a moment).
      const rows = this.#db.prepare('SELECT sha256, size FROM samples WHERE sent IS NULL AND owner IS NULL ORDER BY time, sha256').all() as { sha256: string; size: number }[];
      const remove = this.#db.prepare('DELETE FROM samples WHERE sha256 = ?');
      for (const row of rows) {
        if (excess <= 0) break;
        remove.run(row.sha256);
        excess -= row.size;
        dropped++;
      }
    }
    this.#count('dropped', dropped);
    return dropped;
  }

  /** The oldest waiting sample nobody else is sending, claimed for `owner`. */
  next(owner: string, now = Date.now()): Sample | null {
    return this.#db.transaction((): Sample | null => {
      const row = this.#db
        .prepare('SELECT sha256, type, content FROM samples WHERE sent IS NULL AND (owner IS NULL OR owner = ? OR claimed < ?) ORDER BY time, sha256 LIMIT 1')
        .get(owner, now - CLAIM_LEASE_MS) as { sha256: string; type: string; content: Buffer } | undefined;
      if (!row) return null;
      this.#db.prepare('UPDATE samples SET owner = ?, claimed = ? WHERE sha256 = ?').run(owner, now, row.sha256);
      return { sha256: row.sha256, type: row.type, size: row.content.length, content: row.content };
    }).immediate();
  }

  /** The service has it: the bytes go, a marker stays so it is not captured again. */
  acknowledge(sha256: string, now = Date.now()): void {
    this.#db.transaction(() => {
      const changed = this.#db.prepare('UPDATE samples SET content = NULL, sent = ?, owner = NULL, claimed = NULL WHERE sha256 = ? AND sent IS NULL').run(now, sha256).changes;
      this.#count('uploaded', changed);
    }).immediate();
  }

  /** The service will never take it (400, 413): dropped, counted, and not captured again. */
  refuse(sha256: string, now = Date.now()): void {
    this.#db.transaction(() => {
      const changed = this.#db.prepare('UPDATE samples SET content = NULL, sent = ?, owner = NULL, claimed = NULL WHERE sha256 = ? AND sent IS NULL').run(now, sha256).changes;
      this.#count('dropped', changed);
    }).immediate();
  }

  releaseClaims(owner: string): void {
    this.#db.prepare('UPDATE samples SET owner = NULL, claimed = NULL WHERE owner = ?').run(owner);
  }

  /** Leaving extended: what was captured for it is deleted, not kept for a later opt-in. */
  discardWaiting(): number {
    return this.#db.transaction(() => {
      const changed = this.#db.prepare('DELETE FROM samples WHERE sent IS NULL').run().changes;
      this.#count('dropped', changed);
      return changed;
    }).immediate();
  }

  summary(): SampleOutboxSummary {
    const waiting = this.#db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM samples WHERE sent IS NULL').get() as { n: number; bytes: number };
    const counter = (key: string) => (this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined)?.value ?? 0;
    return { waiting: waiting.n, waitingBytes: waiting.bytes, uploaded: counter('uploaded'), dropped: counter('dropped') };
  }

  #count(key: string, n: number): void {
    if (n === 0) return;
    this.#db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + excluded.value').run(key, n);
  }

  close(): void {
    this.#db.close();
  }
}

/**
 * The sample policy around the outbox, for one Statistics: keep samples only while this
 * configuration captures them (extended), delete what waits when it stops, bounds and counters.
 * Read-only (`nimbus stats`): opens an existing outbox to count it, and changes nothing.
 */
export class SampleKeeper {
  readonly outbox: SampleOutbox | null;
  readonly #log: Logger;
  readonly #readOnly: boolean;

  constructor(config: Config, log: Logger, options: { readonly readOnly: boolean }) {
    this.#log = log;
    this.#readOnly = options.readOnly;
    const exists = existsSync(sampleOutboxPath(config.dataDir));
    this.outbox = options.readOnly && !exists ? null : new SampleOutbox(config.dataDir, boundsOf(config));
    if (!this.#readOnly) {
      this.prune();
      this.reload(config);
    }
  }

  /** Keeps a message's samples if `config` captures them; never throws (the record matters more). */
  keep(samples: readonly Sample[], config: Config): void {
    const cap = sampleCapture(config);
    const kept = samples.filter((sample) => sample.content.length <= cap);
    if (this.#readOnly || !this.outbox || kept.length === 0) return;
    try {
      this.#dropped(this.outbox.add(kept), 'full');
    } catch (error) {
      this.#log.warn({ event: 'stats.samples.keep_failed', err: String(error) }, 'could not keep attachment samples; the message is recorded without them');
    }
  }

  reload(config: Config): void {
    if (this.#readOnly || !this.outbox) return;
    this.outbox.setBounds(boundsOf(config));
    if (sampleCapture(config) > 0) return;
    const deleted = this.outbox.discardWaiting();
    if (deleted > 0) {
      this.#log.info({ event: 'stats.samples.discarded', samples: deleted, participation: config.participation }, `participation is not extended (or samples are off): ${deleted} attachment samples not yet sent were deleted`);
    }
  }

  prune(): void {
    if (this.#readOnly || !this.outbox) return;
    this.#dropped(this.outbox.prune(), 'age bound');
  }

  summary(): SampleOutboxSummary {
    return this.outbox?.summary() ?? { waiting: 0, waitingBytes: 0, uploaded: 0, dropped: 0 };
  }

  close(): void {
    this.outbox?.close();
  }

  #dropped(n: number, why: string): void {
    if (n > 0) this.#log.warn({ event: 'stats.samples.dropped', samples: n, why }, `attachment sample outbox ${why}: ${n} oldest samples dropped`);
  }
}

function boundsOf(config: Config): SampleOutboxBounds {
  return { sampleOutboxMaxBytes: config.sampleOutboxMaxBytes, outboxMaxAgeDays: config.outboxMaxAgeDays };
}
