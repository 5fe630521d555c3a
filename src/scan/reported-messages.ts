/**
 * The record of the messages the local admin reported or learnt (`nimbus report`, `nimbus
 * learn`), kept in the embedded engine's file: each message's digest, label and fingerprints, and
 * per fingerprint how many recorded messages of each label hold it.
 *
 * Why: the engine keeps one reporter's evidence per fingerprint, not per message, so it cannot
 * tell which of the admin's reports put it there. With this record, undoing one message
 * (`nimbus report --forget`) withdraws only the fingerprints no other reported message of the
 * same label holds: forgetting one mistaken newsletter does not forget the link domain of a
 * hundred real spam messages learnt from the Junk folder. And learning the same message twice
 * (the same Junk folder learnt again) counts it once.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from '../private-files.js';
import type { FeedbackLabel } from '../reputation/engine-types.js';
import { useWal } from '../sqlite-wal.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS reported_message (
  digest TEXT PRIMARY KEY,
  label TEXT NOT NULL,
  items TEXT NOT NULL,
  at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reported_item (
  item TEXT NOT NULL,
  label TEXT NOT NULL,
  messages INTEGER NOT NULL,
  PRIMARY KEY (item, label)
) WITHOUT ROWID;
`;

/** Headers that name the message itself; the ones mail stores add on the way (Received, Status, X-…) are left out. */
const IDENTITY_HEADERS = ['message-id', 'date', 'from', 'to', 'subject'];

/**
 * A message's identity: the same message kept in two folders, or once by Postfix and once by
 * an mbox with its `From ` line and `Status:` flags, has one digest. SHA-256 of its identifying
 * headers and its body with LF line ends.
 */
export function messageDigest(raw: Buffer): string {
  let text = raw.toString('latin1').replace(/\r\n/g, '\n');
  if (text.startsWith('From ')) text = text.slice(text.indexOf('\n') + 1);
  const end = text.indexOf('\n\n');
  const head = (end < 0 ? text : text.slice(0, end)).replace(/\n[ \t]+/g, ' ').split('\n');
  const hash = createHash('sha256');
  for (const name of IDENTITY_HEADERS) {
    const line = head.find((candidate) => candidate.toLowerCase().startsWith(`${name}:`));
    hash.update(`${name}:${line === undefined ? '' : line.slice(name.length + 1).trim()}\n`);
  }
  hash.update(end < 0 ? '' : text.slice(end + 2), 'latin1');
  return hash.digest('hex');
}

export interface RecordedMessage {
  readonly digest: string;
  readonly label: FeedbackLabel;
  readonly items: readonly string[];
}

/** What recording a message changed. */
export interface Recorded {
  /** `new`: not recorded before; `known`: recorded with this label already; `relabelled`: recorded with the other one. */
  readonly status: 'new' | 'known' | 'relabelled';
  /** With `relabelled`: fingerprints no message of the old label holds any more (their old evidence may go). */
  readonly released: readonly string[];
}

export class ReportedMessages {
  readonly #db: Database.Database;
  readonly #get: Database.Statement<[string], { label: FeedbackLabel; items: string }>;
  readonly #put: Database.Statement<[string, string, string, number]>;
  readonly #delete: Database.Statement<[string]>;
  readonly #count: Database.Statement<[string, string], { messages: number }>;
  readonly #up: Database.Statement<[string, string]>;
  readonly #down: Database.Statement<[string, string]>;
  readonly #drop: Database.Statement<[string, string]>;

  constructor(path: string) {
    this.#db = openPrivateDatabase(path);
    useWal(this.#db);
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(SCHEMA);
    this.#get = this.#db.prepare('SELECT label, items FROM reported_message WHERE digest = ?');
    this.#put = this.#db.prepare('INSERT OR REPLACE INTO reported_message (digest, label, items, at) VALUES (?, ?, ?, ?)');
    this.#delete = this.#db.prepare('DELETE FROM reported_message WHERE digest = ?');
    this.#count = this.#db.prepare('SELECT messages FROM reported_item WHERE item = ? AND label = ?');
    this.#up = this.#db.prepare('INSERT INTO reported_item (item, label, messages) VALUES (?, ?, 1) ON CONFLICT (item, label) DO UPDATE SET messages = messages + 1');
    this.#down = this.#db.prepare('UPDATE reported_item SET messages = messages - 1 WHERE item = ? AND label = ?');
    this.#drop = this.#db.prepare('DELETE FROM reported_item WHERE item = ? AND label = ? AND messages <= 0');
  }

  /** The label a message was recorded with, or null. */
  labelOf(digest: string): FeedbackLabel | null {
    return this.#get.get(digest)?.label ?? null;
  }

  /** Records messages in one transaction (a learn batch); one result per message, in order. */
  recordAll(messages: readonly RecordedMessage[], now = Date.now()): Recorded[] {
    return this.#db.transaction(() => messages.map((message) => this.#record(message, now))).immediate();
  }

  /**
   * Removes a message from the record. Returns its label and the fingerprints no other recorded
   * message of that label holds (their evidence from the admin may go), or null when it was not
   * recorded.
   */
  forget(digest: string): { label: FeedbackLabel; released: string[] } | null {
    return this.#db.transaction(() => {
      const row = this.#get.get(digest);
      if (row === undefined) return null;
      this.#delete.run(digest);
      return { label: row.label, released: this.#release(JSON.parse(row.items) as string[], row.label) };
    }).immediate();
  }

  /** Of `items`, those no recorded message of `label` holds. */
  unheld(items: readonly string[], label: FeedbackLabel): string[] {
    return items.filter((item) => (this.#count.get(item, label)?.messages ?? 0) <= 0);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  #record(message: RecordedMessage, now: number): Recorded {
    const before = this.#get.get(message.digest);
    if (before?.label === message.label) return { status: 'known', released: [] };
    const released = before === undefined ? [] : this.#release(JSON.parse(before.items) as string[], before.label);
    const items = [...new Set(message.items)];
    this.#put.run(message.digest, message.label, JSON.stringify(items), now);
    for (const item of items) this.#up.run(item, message.label);
    return { status: before === undefined ? 'new' : 'relabelled', released };
  }

  #release(items: readonly string[], label: FeedbackLabel): string[] {
    const released: string[] = [];
    for (const item of items) {
      this.#down.run(item, label);
      if (this.#drop.run(item, label).changes > 0) released.push(item);
    }
    return released;
  }
}
