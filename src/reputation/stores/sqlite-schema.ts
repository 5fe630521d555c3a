/**
 * The embedded store's tables and how they change: the schema, its migrations (user_version), the
 * rows as read in raw mode, and the prepared statements every engine call uses.
 */
import type Database from 'better-sqlite3';
import type { OverrideVerdict } from '../engine-types.js';
import type { ReporterPair } from '../engine.js';
import type { FingerprintState, PairState } from '../scoring.js';
import { AUDIT_SCHEMA } from './sqlite-audit.js';
import { MEMORY_SCHEMES } from './memory-index.js';
import type { FpRecord } from './sqlite-rows.js';

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS fp (
  item TEXT PRIMARY KEY, seen REAL NOT NULL, spam_reports REAL NOT NULL, ham_reports REAL NOT NULL,
  sensor_ev REAL NOT NULL, spam_ev REAL NOT NULL, weak_ev REAL NOT NULL, ham_ev REAL NOT NULL,
  reporters INTEGER NOT NULL, first_seen REAL, last_seen REAL, ts REAL NOT NULL,
  admin TEXT, admin_reason TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pair (
  item TEXT NOT NULL, reporter TEXT NOT NULL, sensor REAL NOT NULL, spam REAL NOT NULL,
  weak REAL NOT NULL, ham REAL NOT NULL, ts REAL NOT NULL, PRIMARY KEY (item, reporter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fuzzy (k TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (k, item)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fuzzy_log (seq INTEGER PRIMARY KEY, item TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batch (id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
-- AUTOINCREMENT: a flushed row's lsn names a journal row, so numbers must never be reused once
-- the journal has been emptied (plain rowids restart after the largest is deleted).
CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS batch_at ON batch (at);
CREATE TABLE IF NOT EXISTS api_key (
  id TEXT PRIMARY KEY, role TEXT NOT NULL, label TEXT NOT NULL, secret_hash TEXT NOT NULL,
  created_at TEXT NOT NULL, revoked_at TEXT, rate_limit REAL NOT NULL
);
`;

/**
 * Schema steps after SCHEMA; entry i moves user_version from i to i + 1, in one transaction.
 * 0 → 1: fingerprints of in-memory schemes leave their `fuzzy` key rows for `fuzzy_log` (files
 * written before the in-memory index; their keys used another chunking anyway).
 */
const MIGRATIONS: ((db: Database.Database) => void)[] = [
  (db) => {
    for (const id of MEMORY_SCHEMES) {
      db.prepare('INSERT INTO fuzzy_log (item) SELECT item FROM fp WHERE item > ? AND item < ? ORDER BY item').run(`${id}:`, `${id};`);
      db.prepare('DELETE FROM fuzzy WHERE k > ? AND k < ?').run(`${id}#`, `${id}$`);
    }
  },
  // 1 → 2: a fingerprint's first reporters live in its own row (`pairs`, see encodePair), so an
  // ingest dirties one page per fingerprint instead of two. Rows written before keep theirs in
  // `pair`: the default `spilled = 1` sends them there, and nothing has to be rewritten.
  (db) => {
    db.exec('ALTER TABLE fp ADD COLUMN pairs BLOB');
    db.exec('ALTER TABLE fp ADD COLUMN spilled INTEGER NOT NULL DEFAULT 1');
  },
  // 2 → 3: the last write-behind journal row a row includes (sqlite-write-behind.ts); rows written
  // before, or by a direct-mode engine, have 0 and are never ahead of a journal row.
  (db) => {
    db.exec('ALTER TABLE fp ADD COLUMN lsn INTEGER NOT NULL DEFAULT 0');
  },
];

/** Creates the tables a new file lacks and runs the migrations it has not had, in one transaction. */
export function migrate(db: Database.Database): void {
  db.exec(SCHEMA);
  db.exec(AUDIT_SCHEMA);
  db.transaction(() => {
    for (let v = db.pragma('user_version', { simple: true }) as number; v < MIGRATIONS.length; v++) {
      MIGRATIONS[v]!(db);
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}

/**
 * A row of `fp` as read by FP_COLUMNS, as an array: better-sqlite3's raw mode skips building an
 * object per row, about half the cost of a read on the ingest path (micro-benchmark, 250k rows).
 */
export type FpRow = [number, number, number, number, number, number, number, number, number | null, number | null, number, OverrideVerdict | null];
export const FP_COLUMNS = 'seen, spam_reports, ham_reports, sensor_ev, spam_ev, weak_ev, ham_ev, reporters, first_seen, last_seen, ts, admin';
export type PairRow = [number, number, number, number, number];
export type ReporterPairRow = [string, ...PairRow];
/** FpRow followed by the inline pairs, the `spilled` flag and the lsn, as the write paths read it. */
export type FpPairsRow = [...FpRow, Buffer | null, number, number];

export const toState = (r: FpRow): FingerprintState => ({
  seen: r[0],
  spamReports: r[1],
  hamReports: r[2],
  sensorEv: r[3],
  spamEv: r[4],
  weakEv: r[5],
  hamEv: r[6],
  reporters: r[7],
  firstSeen: r[8],
  lastSeen: r[9],
  ts: r[10],
  admin: r[11],
});

export const toPair = (r: PairRow): PairState => ({ sensor: r[0], spam: r[1], weak: r[2], ham: r[3], ts: r[4] });
export const toReporterPair = (r: ReporterPairRow): ReporterPair => ({ id: r[0], pair: { sensor: r[1], spam: r[2], weak: r[3], ham: r[4], ts: r[5] } });
export const toRecord = (r: FpPairsRow): FpRecord => ({ state: toState(r as unknown as FpRow), pairs: r[12], spilled: r[13] });

/** `fuzzy_log` rows read per query when an engine replays the log. */
export const LOG_PAGE = 10_000;

/** The engine's statements, prepared once per connection. */
export function prepareStatements(db: Database.Database) {
  return {
    getFp: db.prepare<[string], FpRow>(`SELECT ${FP_COLUMNS} FROM fp WHERE item = ?`).raw(),
    getFpPairs: db.prepare<[string], FpPairsRow>(`SELECT ${FP_COLUMNS}, pairs, spilled, lsn FROM fp WHERE item = ?`).raw(),
    putFp: db.prepare(
      `INSERT INTO fp (item, seen, spam_reports, ham_reports, sensor_ev, spam_ev, weak_ev, ham_ev, reporters, first_seen, last_seen, ts, admin, pairs, spilled)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)
       ON CONFLICT (item) DO UPDATE SET seen = excluded.seen, spam_reports = excluded.spam_reports, ham_reports = excluded.ham_reports,
         sensor_ev = excluded.sensor_ev, spam_ev = excluded.spam_ev, weak_ev = excluded.weak_ev, ham_ev = excluded.ham_ev,
         reporters = excluded.reporters, first_seen = excluded.first_seen, last_seen = excluded.last_seen, ts = excluded.ts,
         pairs = excluded.pairs, spilled = excluded.spilled`,
    ),
    getPair: db.prepare<[string, string], PairRow>('SELECT sensor, spam, weak, ham, ts FROM pair WHERE item = ? AND reporter = ?').raw(),
    // Read only for a lookup whose voices decide (scoring.voiceChannel), and by explain.
    getInline: db.prepare<[string], [Buffer | null, number]>('SELECT pairs, spilled FROM fp WHERE item = ?').raw(),
    getSpilled: db.prepare<[string], ReporterPairRow>('SELECT reporter, sensor, spam, weak, ham, ts FROM pair WHERE item = ?').raw(),
    getAdmin: db.prepare<[string], [OverrideVerdict | null, string | null]>('SELECT admin, admin_reason FROM fp WHERE item = ?').raw(),
    // Plain updates for rows just read: one B-tree descent where an upsert takes two.
    updateFp: db.prepare(
      `UPDATE fp SET seen = ?, spam_reports = ?, ham_reports = ?, sensor_ev = ?, spam_ev = ?, weak_ev = ?, ham_ev = ?, reporters = ?, first_seen = ?, last_seen = ?, ts = ?,
         pairs = ?, spilled = ? WHERE item = ?`,
    ),
    updatePair: db.prepare('UPDATE pair SET sensor = ?, spam = ?, weak = ?, ham = ?, ts = ? WHERE item = ? AND reporter = ?'),
    // The write-behind flush's versions of putFp and updateFp: the same columns and the row's lsn.
    flushNew: db.prepare(
      `INSERT INTO fp (item, seen, spam_reports, ham_reports, sensor_ev, spam_ev, weak_ev, ham_ev, reporters, first_seen, last_seen, ts, admin, pairs, spilled, lsn)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)
       ON CONFLICT (item) DO UPDATE SET seen = excluded.seen, spam_reports = excluded.spam_reports, ham_reports = excluded.ham_reports,
         sensor_ev = excluded.sensor_ev, spam_ev = excluded.spam_ev, weak_ev = excluded.weak_ev, ham_ev = excluded.ham_ev,
         reporters = excluded.reporters, first_seen = excluded.first_seen, last_seen = excluded.last_seen, ts = excluded.ts,
         pairs = excluded.pairs, spilled = excluded.spilled, lsn = excluded.lsn`,
    ),
    flushUpdate: db.prepare(
      `UPDATE fp SET seen = ?, spam_reports = ?, ham_reports = ?, sensor_ev = ?, spam_ev = ?, weak_ev = ?, ham_ev = ?, reporters = ?, first_seen = ?, last_seen = ?, ts = ?,
         pairs = ?, spilled = ?, lsn = ? WHERE item = ?`,
    ),
    putPair: db.prepare(
      `INSERT INTO pair (item, reporter, sensor, spam, weak, ham, ts) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (item, reporter) DO UPDATE SET sensor = excluded.sensor, spam = excluded.spam, weak = excluded.weak, ham = excluded.ham, ts = excluded.ts`,
    ),
    putIndex: db.prepare('INSERT OR IGNORE INTO fuzzy (k, item) VALUES (?, ?)'),
    probe: db.prepare<[string], { item: string }>('SELECT DISTINCT item FROM fuzzy WHERE k IN (SELECT value FROM json_each(?))'),
    putLog: db.prepare('INSERT INTO fuzzy_log (item) VALUES (?)'),
    // Pages of .all(): a whole page per call is cheaper than a native call per row (iterate). The
    // page size is written into the SQL: with `LIMIT ?` SQLite prepared the statement again on
    // every call (7 µs a call instead of 3; micro-benchmark, SQLite 3.53), once per fuzzy lookup.
    readLog: db.prepare<[number], [number, string]>(`SELECT seq, item FROM fuzzy_log WHERE seq > ? ORDER BY seq LIMIT ${LOG_PAGE}`).raw(),
    setAdmin: db.prepare('UPDATE fp SET admin = ?, admin_reason = ? WHERE item = ?'),
    clearAdmin: db.prepare('UPDATE fp SET admin = NULL, admin_reason = NULL WHERE item = ? AND admin IS NOT NULL'),
    // Marks are batchMark(key, batch id); marks written before they named the key hold the
    // batch id alone, and still answer for any key until they expire.
    hasBatch: db.prepare<[string, string], { id: string }>('SELECT id FROM batch WHERE id IN (?, ?)'),
    putBatch: db.prepare('INSERT INTO batch (id, at) VALUES (?, ?)'),
    expireBatches: db.prepare('DELETE FROM batch WHERE at < ?'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
