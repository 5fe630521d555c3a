/**
 * The local message history: one row per message a front handled (time, queue id, client,
 * envelope sender, recipient count, size, verdict, score, action, tests, and each looked-up
 * fingerprint with its answer, weight and contribution), for the console. It never leaves the
 * host: nothing here is read by the uploader.
 *
 * Its own file (dataDir/history.sqlite), apart from the statistics store: statistics are
 * synchronous=FULL because the sender's reply waits for them; the history is written in batches
 * after the reply, synchronous=NORMAL (WAL: a power cut may lose the last batch, never corrupt the
 * file), so it costs the relay little. Per-hour counts and the fingerprints that added points are
 * kept in small side tables written in the same transaction, so the console's charts read a few
 * hundred rows rather than a million.
 */
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from '../private-files.js';
import { useWal } from '../sqlite-wal.js';
import type { Verdict } from '../reputation/api.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** One looked-up fingerprint as the history keeps it. */
export interface HistoryFingerprint {
  readonly text: string;
  /** Local only: the IP in the clear, a link domain, a file name. */
  readonly label?: string;
  readonly verdict: Verdict;
  readonly reputation: number;
  readonly weight: number;
  readonly contribution: number;
  readonly complete: boolean;
}

export interface HistoryEntry {
  readonly time: number;
  readonly queueId: string;
  readonly clientIp: string;
  readonly helo: string;
  readonly mailFrom: string;
  readonly rcptCount: number;
  readonly size: number;
  readonly verdict: Verdict;
  readonly score: number;
  readonly action: string;
  readonly tests: readonly string[];
  readonly fingerprints: readonly HistoryFingerprint[];
  /** Only with NIMBUS_HISTORY_SUBJECTS=yes. */
  readonly subject: string | null;
}

export interface HistoryRow extends HistoryEntry {
  readonly id: number;
}

export interface HistoryFilter {
  readonly verdict?: string;
  readonly action?: string;
  /** The client address, exactly. */
  readonly client?: string;
  /** The envelope sender (an address), or its domain (`example.org` or `@example.org`); any case. */
  readonly sender?: string;
  readonly since?: number;
  readonly until?: number;
  /** Rows after this one in the list (older; the next page). */
  readonly before?: number;
  readonly limit?: number;
}

export interface HourCount {
  readonly hour: number;
  readonly verdict: string;
  readonly count: number;
}

export interface TopFingerprint {
  readonly text: string;
  readonly label: string | null;
  readonly messages: number;
  readonly points: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  queue_id TEXT NOT NULL,
  client_ip TEXT NOT NULL,
  helo TEXT NOT NULL,
  mail_from TEXT NOT NULL,
  rcpt_count INTEGER NOT NULL,
  size INTEGER NOT NULL,
  verdict TEXT NOT NULL,
  score REAL NOT NULL,
  action TEXT NOT NULL,
  tests TEXT NOT NULL,
  fingerprints TEXT NOT NULL,
  subject TEXT
);
CREATE INDEX IF NOT EXISTS messages_time ON messages (time);
CREATE INDEX IF NOT EXISTS messages_client ON messages (client_ip, id);
CREATE INDEX IF NOT EXISTS messages_sender ON messages (lower(mail_from), id);
CREATE INDEX IF NOT EXISTS messages_sender_domain ON messages (lower(substr(mail_from, instr(mail_from, '@') + 1)), id);
CREATE TABLE IF NOT EXISTS hourly (
  hour INTEGER NOT NULL,
  verdict TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (hour, verdict)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contributions (
  time INTEGER NOT NULL,
  fingerprint TEXT NOT NULL,
  label TEXT,
  points REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS contributions_time ON contributions (time);
CREATE TABLE IF NOT EXISTS fingerprint_messages (
  fingerprint TEXT NOT NULL,
  id INTEGER NOT NULL,
  PRIMARY KEY (fingerprint, id)
) WITHOUT ROWID;
`;

/**
 * Fingerprints up to this length are indexed to their messages (ip, net, url, attachment, image
 * hashes); longer ones (a body's minhash, 270 characters) would make the index larger than the
 * history itself, so the Why page searches the recent messages for them instead.
 */
const INDEXED_MAX_LENGTH = 100;
/** Messages searched for a fingerprint that is not indexed. */
const SCAN_WINDOW = 10_000;

export function historyPath(dataDir: string): string {
  return join(dataDir, 'history.sqlite');
}

interface MessageRowData {
  id: number;
  time: number;
  queue_id: string;
  client_ip: string;
  helo: string;
  mail_from: string;
  rcpt_count: number;
  size: number;
  verdict: Verdict;
  score: number;
  action: string;
  tests: string;
  fingerprints: string;
  subject: string | null;
}

export class HistoryStore {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #countHour: Database.Statement;
  readonly #contribute: Database.Statement;
  readonly #index: Database.Statement;
  /**
   * Made once: a transaction built per batch is a new closure each time, and V8 throws its
   * optimised code away with the closure at each full GC, so the batch loop was compiled again
   * and again (the most re-optimised function of the milter in steady state).
   */
  readonly #insertAll: Database.Transaction<(entries: readonly HistoryEntry[]) => void>;

  /** The console opens it too, maybe before the gateway's first message: either creates the tables. */
  constructor(dataDir: string) {
    this.#db = openPrivateDatabase(historyPath(dataDir));
    useWal(this.#db);
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(SCHEMA);
    this.#insert = this.#db.prepare(
      'INSERT INTO messages (time, queue_id, client_ip, helo, mail_from, rcpt_count, size, verdict, score, action, tests, fingerprints, subject) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)',
    );
    this.#countHour = this.#db.prepare('INSERT INTO hourly (hour, verdict, count) VALUES (?, ?, 1) ON CONFLICT (hour, verdict) DO UPDATE SET count = count + 1');
    this.#contribute = this.#db.prepare('INSERT INTO contributions (time, fingerprint, label, points) VALUES (?,?,?,?)');
    this.#index = this.#db.prepare('INSERT OR IGNORE INTO fingerprint_messages (fingerprint, id) VALUES (?, ?)');
    this.#insertAll = this.#db.transaction((entries: readonly HistoryEntry[]) => {
      for (const entry of entries) this.#insertEntry(entry);
    });
  }

  /** Every entry in one transaction (one commit for a whole batch). */
  insertMany(entries: readonly HistoryEntry[]): void {
    this.#insertAll.immediate(entries);
  }

  #insertEntry(entry: HistoryEntry): void {
    const score = Number.isFinite(entry.score) ? entry.score : 0;
    const { lastInsertRowid } = this.#insert.run(entry.time, entry.queueId, entry.clientIp, entry.helo, entry.mailFrom, entry.rcptCount, entry.size, entry.verdict, score, entry.action, JSON.stringify(entry.tests), JSON.stringify(entry.fingerprints), entry.subject);
    this.#countHour.run(Math.floor(entry.time / HOUR_MS) * HOUR_MS, entry.verdict);
    for (const fingerprint of entry.fingerprints) {
      if (fingerprint.contribution > 0) this.#contribute.run(entry.time, fingerprint.text, fingerprint.label ?? null, fingerprint.contribution);
      if (fingerprint.text.length <= INDEXED_MAX_LENGTH) this.#index.run(fingerprint.text, lastInsertRowid);
    }
  }

  /** Drops what is older than `days`; returns the messages dropped. */
  prune(days: number, now = Date.now()): number {
    const cutoff = now - days * DAY_MS;
    return this.#db.transaction(() => {
      const removed = this.#db.prepare('DELETE FROM messages WHERE time < ?').run(cutoff).changes;
      const oldest = (this.#db.prepare('SELECT min(id) AS id FROM messages').get() as { id: number | null }).id;
      this.#db.prepare('DELETE FROM fingerprint_messages WHERE id < ?').run(oldest ?? Number.MAX_SAFE_INTEGER);
      this.#db.prepare('DELETE FROM hourly WHERE hour < ?').run(Math.floor(cutoff / HOUR_MS) * HOUR_MS);
      this.#db.prepare('DELETE FROM contributions WHERE time < ?').run(cutoff);
      return removed;
    }).immediate();
  }

  /** Newest first. */
  list(filter: HistoryFilter = {}): HistoryRow[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (filter.verdict) (where.push('verdict = ?'), args.push(filter.verdict));
    if (filter.action) (where.push('action = ?'), args.push(filter.action));
    if (filter.client) (where.push('client_ip = ?'), args.push(filter.client));
    if (filter.sender) {
      // Whole addresses and domains only: both are indexed, a substring would read every row.
      const sender = filter.sender.trim().toLowerCase();
      if (sender.includes('@') && !sender.startsWith('@')) (where.push('lower(mail_from) = ?'), args.push(sender));
      else (where.push("lower(substr(mail_from, instr(mail_from, '@') + 1)) = ?"), args.push(sender.replace(/^@/, '')));
    }
    if (filter.since !== undefined) (where.push('time >= ?'), args.push(filter.since));
    if (filter.until !== undefined) (where.push('time < ?'), args.push(filter.until));
    if (filter.before !== undefined) (where.push('(time, id) < ((SELECT time FROM messages WHERE id = ?), ?)'), args.push(filter.before, filter.before));
    // By time, then id: the time index walks backwards from the end of a time range and stops at
    // the page's last row (ordered by id alone, a past day meant reading every newer row first).
    const sql = `SELECT * FROM messages ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY time DESC, id DESC LIMIT ?`;
    const rows = this.#db.prepare(sql).all(...args, filter.limit ?? 50) as MessageRowData[];
    return rows.map(toRow);
  }

  get(id: number): HistoryRow | null {
    const row = this.#db.prepare('SELECT * FROM messages WHERE id = ?').get(id) as MessageRowData | undefined;
    return row ? toRow(row) : null;
  }

  /** Messages per hour and verdict since `since` (ms). */
  hourly(since: number): HourCount[] {
    return this.#db.prepare('SELECT hour, verdict, count FROM hourly WHERE hour >= ? ORDER BY hour').all(Math.floor(since / HOUR_MS) * HOUR_MS) as HourCount[];
  }

  /** The fingerprints that added most points since `since`. */
  topContributors(since: number, top: number): TopFingerprint[] {
    return this.#db
      .prepare('SELECT fingerprint AS text, max(label) AS label, count(*) AS messages, sum(points) AS points FROM contributions WHERE time >= ? GROUP BY fingerprint ORDER BY points DESC LIMIT ?')
      .all(since, top) as TopFingerprint[];
  }

  /** Recent messages that carried this fingerprint, latest first (for a long one: among the last SCAN_WINDOW messages). */
  withFingerprint(text: string, limit = 20): HistoryRow[] {
    const rows =
      text.length <= INDEXED_MAX_LENGTH
        ? this.#db.prepare('SELECT m.* FROM fingerprint_messages f JOIN messages m ON m.id = f.id WHERE f.fingerprint = ? ORDER BY f.id DESC LIMIT ?').all(text, limit)
        : this.#db
            .prepare('SELECT * FROM messages WHERE id > (SELECT coalesce(max(id), 0) FROM messages) - ? AND instr(fingerprints, ?) > 0 ORDER BY id DESC LIMIT ?')
            .all(SCAN_WINDOW, JSON.stringify(text), limit);
    return (rows as MessageRowData[]).map(toRow);
  }

  close(): void {
    this.#db.close();
  }
}

function toRow(row: MessageRowData): HistoryRow {
  return {
    id: row.id,
    time: row.time,
    queueId: row.queue_id,
    clientIp: row.client_ip,
    helo: row.helo,
    mailFrom: row.mail_from,
    rcptCount: row.rcpt_count,
    size: row.size,
    verdict: row.verdict,
    score: row.score,
    action: row.action,
    tests: JSON.parse(row.tests) as string[],
    fingerprints: JSON.parse(row.fingerprints) as HistoryFingerprint[],
    subject: row.subject,
  };
}
