/**
 * The statistical classifier's counts (docs/design/bayes.md), kept in the embedded engine's file
 * so that they travel with it: per token hash (tokens.ts), how many learnt spam and ham messages
 * held it, and how many messages of each label were learnt. Written by `nimbus learn` only,
 * read by every scan; nothing here is ever sent anywhere.
 */
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from '../private-files.js';
import type { FeedbackLabel } from '../reputation/engine-types.js';
import { useWal } from '../sqlite-wal.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bayes_token (
  hash INTEGER PRIMARY KEY,
  spam INTEGER NOT NULL,
  ham INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bayes_total (
  label TEXT PRIMARY KEY,
  messages INTEGER NOT NULL
) WITHOUT ROWID;
`;

export interface TokenCounts {
  readonly spam: number;
  readonly ham: number;
}

/** One message's tokens counted in (+1) or out (−1) of a label. */
export interface TokenChange {
  readonly label: FeedbackLabel;
  readonly tokens: readonly number[];
  readonly delta: 1 | -1;
}

export class BayesStore {
  readonly #db: Database.Database;
  readonly #totals: Database.Statement<[], { label: FeedbackLabel; messages: number }>;
  readonly #counts: Database.Statement<[string], { hash: number; spam: number; ham: number }>;
  readonly #token: Record<FeedbackLabel, Database.Statement<[{ hash: number; delta: number }]>>;
  readonly #total: Database.Statement<[{ label: string; delta: number }]>;
  readonly #dropEmpty: Database.Statement<[number]>;

  constructor(path: string) {
    this.#db = openPrivateDatabase(path);
    useWal(this.#db);
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(SCHEMA);
    this.#totals = this.#db.prepare('SELECT label, messages FROM bayes_total');
    // One query per message whatever its number of tokens: the hashes go in as one JSON array.
    this.#counts = this.#db.prepare('SELECT hash, spam, ham FROM bayes_token WHERE hash IN (SELECT value FROM json_each(?))');
    // Counts never go below 0: a message relabelled by `nimbus learn` may have been recorded
    // first by `nimbus report`, which does not teach the classifier.
    const upsert = (column: FeedbackLabel): Database.Statement<[{ hash: number; delta: number }]> =>
      this.#db.prepare(
        `INSERT INTO bayes_token (hash, spam, ham) VALUES (@hash, ${column === 'spam' ? 'MAX(@delta, 0), 0' : '0, MAX(@delta, 0)'}) ` +
          `ON CONFLICT (hash) DO UPDATE SET ${column} = MAX(${column} + @delta, 0)`,
      );
    this.#token = { spam: upsert('spam'), ham: upsert('ham') };
    this.#total = this.#db.prepare('INSERT INTO bayes_total (label, messages) VALUES (@label, MAX(@delta, 0)) ON CONFLICT (label) DO UPDATE SET messages = MAX(messages + @delta, 0)');
    this.#dropEmpty = this.#db.prepare('DELETE FROM bayes_token WHERE hash = ? AND spam = 0 AND ham = 0');
  }

  /** Messages learnt per label. */
  totals(): TokenCounts {
    const totals = { spam: 0, ham: 0 };
    for (const row of this.#totals.all()) totals[row.label] = row.messages;
    return totals;
  }

  /** The counts of those of `tokens` ever learnt (the others are absent). */
  counts(tokens: readonly number[]): Map<number, TokenCounts> {
    const found = new Map<number, TokenCounts>();
    if (tokens.length === 0) return found;
    for (const row of this.#counts.all(JSON.stringify(tokens))) found.set(row.hash, { spam: row.spam, ham: row.ham });
    return found;
  }

  /** Applies a batch of learnt (or unlearnt) messages in one transaction. */
  apply(changes: readonly TokenChange[]): void {
    if (changes.length === 0) return;
    this.#db.transaction(() => {
      for (const change of changes) {
        const statement = this.#token[change.label];
        for (const token of new Set(change.tokens)) {
          statement.run({ hash: token, delta: change.delta });
          if (change.delta < 0) this.#dropEmpty.run(token);
        }
        this.#total.run({ label: change.label, delta: change.delta });
      }
    }).immediate();
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
