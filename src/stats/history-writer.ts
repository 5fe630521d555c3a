/**
 * Writes the message history in batches, off the sender's path: `add` only queues the entry (the
 * reply does not wait), and one transaction commits what queued up in the last moment. A failed
 * write is logged and the batch dropped: the history is for the admin's eyes, and mail never
 * waits for it.
 */
import type { Logger } from 'pino';
import { HistoryStore, type HistoryEntry } from './history-store.js';

/**
 * Long enough to gather a busy second's messages into one commit, short enough to look live.
 * A commit writes every page it touched, and a message's short fingerprints are filed in as many
 * places of the fingerprint index as it has (23 on the 5 KB mix): the pages a commit writes grow
 * with the distinct fingerprints, not with the messages. At 200 ms the history was most of a
 * milter worker's file writes (strace during `npm run bench -- milter`: ~5,500 WAL page writes
 * and ~3,200 page reads in 4 s, the reads for pages the other worker's commits had changed).
 */
const FLUSH_DELAY_MS = 1000;
/** A batch this big is committed at once rather than waiting for the delay. */
const FLUSH_AT = 500;
const PRUNE_INTERVAL_MS = 3_600_000;

export interface HistoryWriterOptions {
  readonly dataDir: string;
  readonly retentionDays: number;
  readonly log: Logger;
}

export class HistoryWriter {
  readonly #store: HistoryStore;
  readonly #log: Logger;
  #retentionDays: number;
  #pending: HistoryEntry[] = [];
  #timer: NodeJS.Timeout | null = null;
  readonly #pruner: NodeJS.Timeout;
  #closed = false;

  constructor(options: HistoryWriterOptions) {
    this.#store = new HistoryStore(options.dataDir);
    this.#log = options.log;
    this.#retentionDays = options.retentionDays;
    this.#prune();
    this.#pruner = setInterval(() => this.#prune(), PRUNE_INTERVAL_MS);
    this.#pruner.unref();
  }

  add(entry: HistoryEntry): void {
    if (this.#closed) return;
    this.#pending.push(entry);
    if (this.#pending.length >= FLUSH_AT) this.flush();
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
      this.#timer.unref();
    }
  }

  /** Commits what is queued now. */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    try {
      this.#store.insertMany(batch);
    } catch (error) {
      this.#log.error({ event: 'stats.history.write_failed', err: error, dropped: batch.length }, 'message history write failed; these entries are not in the history');
    }
  }

  setRetention(days: number): void {
    this.#retentionDays = days;
  }

  #prune(): void {
    try {
      this.#store.prune(this.#retentionDays);
    } catch (error) {
      this.#log.warn({ event: 'stats.history.prune_failed', err: error }, 'message history pruning failed; retried within the hour');
    }
  }

  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    clearInterval(this.#pruner);
    this.#store.close();
  }
}
