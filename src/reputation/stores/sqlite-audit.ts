/**
 * The SQLite store's audit trail of overrides: one `verdict_audit` row per change made by
 * setVerdict or clearVerdict (who, when, the override before and after, the reason), written in
 * the same transaction as the change. Kept after the fingerprint itself is forgotten; only the
 * latest AUDIT_KEPT changes of a fingerprint are kept.
 */
import type Database from 'better-sqlite3';
import type { OverrideAudit, OverrideVerdict } from '../engine-types.js';
import { AUDIT_KEPT } from '../engine.js';
import { isoTime } from '../iso-time.js';

export const AUDIT_SCHEMA = `
CREATE TABLE IF NOT EXISTS verdict_audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL, at REAL NOT NULL, by TEXT NOT NULL,
  before TEXT, after TEXT, reason TEXT
);
CREATE INDEX IF NOT EXISTS verdict_audit_item ON verdict_audit (item, seq);
`;

type AuditRow = [at: number, by: string, before: OverrideVerdict | null, after: OverrideVerdict | null, reason: string | null];

export class AuditTrail {
  readonly #s;

  /** Call after AUDIT_SCHEMA has run on `db`. */
  constructor(db: Database.Database) {
    this.#s = {
      add: db.prepare('INSERT INTO verdict_audit (item, at, by, before, after, reason) VALUES (?, ?, ?, ?, ?, ?)'),
      trim: db.prepare(
        'DELETE FROM verdict_audit WHERE item = ? AND seq <= (SELECT seq FROM verdict_audit WHERE item = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)',
      ),
      list: db.prepare<[string], AuditRow>('SELECT at, by, before, after, reason FROM verdict_audit WHERE item = ? ORDER BY seq').raw(),
    };
  }

  /** Records one change; call inside the transaction that makes it. */
  record(item: string, at: number, by: string, before: OverrideVerdict | null, after: OverrideVerdict | null, reason: string | null): void {
    this.#s.add.run(item, at, by, before, after, reason);
    this.#s.trim.run(item, item, AUDIT_KEPT);
  }

  /** The fingerprint's kept changes, oldest first. */
  list(item: string): OverrideAudit[] {
    return this.#s.list.all(item).map(([at, by, before, after, reason]) => ({ at: isoTime(at), by, before, after, reason }));
  }
}
