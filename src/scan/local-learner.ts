/**
 * The embedded engine learns from the gateway's own traffic in batches, after the sender's reply.
 * Learning is a bonus, not a durability requirement (the statistics record is that): one
 * transaction per batch instead of one per message, and none of it inside the time the sender
 * waits for its `250`. A crash loses at most the last batch's local learning, never mail.
 */
import type { Logger } from 'pino';
import type { ReportRecord } from '../reputation/api.js';
import type { ReputationEngine } from '../reputation/engine-types.js';

/** The embedded engine's sensor id for the gateway's own traffic. */
export const LOCAL_SENSOR = { id: 'local', weight: 1 } as const;

/**
 * Records wait at most this long (a quiet gateway still learns within a blink)… A batch counts
 * each fingerprint once however many of its messages carry it (recordObservations), and every
 * commit writes each page it touched: at 20 ms a milter at ~400 messages/s learnt in batches of
 * ~9 and spent ~86 µs per message on it, at 100 ms ~23 µs (in-process harness, the bench's 5 KB
 * messages; ~960 and ~380 µs when every body is new). Nothing waits for it: the gateway's own
 * sightings never convict or change a verdict by themselves (scoring.ts: WEAK_CAP, BULK_SENSORS
 * distinct sensors), and a report or a trap is learnt at once, not through this queue.
 */
const FLUSH_DELAY_MS = 100;
/** …or until this many are waiting (a busy one learns in transactions of this size). */
const FLUSH_RECORDS = 128;

export class LocalLearner {
  readonly #engine: ReputationEngine;
  readonly #log: Logger;
  #pending: ReportRecord[] = [];
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> = Promise.resolve();

  constructor(engine: ReputationEngine, log: Logger) {
    this.#engine = engine;
    this.#log = log;
  }

  learn(record: ReportRecord): void {
    this.#pending.push(record);
    if (this.#pending.length >= FLUSH_RECORDS) this.#flush();
    else this.#timer ??= setTimeout(() => this.#flush(), FLUSH_DELAY_MS);
  }

  /** Learns what is waiting; resolves when every batch started so far is done. */
  drain(): Promise<void> {
    this.#flush();
    return this.#flushing;
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#pending.length === 0) return;
    const records = this.#pending;
    this.#pending = [];
    // One batch at a time, in order: a later batch never overtakes an earlier one.
    this.#flushing = this.#flushing.then(async () => {
      try {
        // No batch id: nothing resends these records, so an idempotency mark (kept for days,
        // one per batch, at a random place in its table) would be written and never read.
        await this.#engine.ingest(null, LOCAL_SENSOR, records, Date.now());
      } catch (error) {
        this.#log.warn({ event: 'scan.local_learn_failed', records: records.length, err: String(error) }, 'the embedded engine could not learn from these messages');
      }
    });
  }
}
