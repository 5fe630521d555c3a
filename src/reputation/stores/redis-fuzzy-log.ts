/**
 * The `P fzlog` stream replayed into this instance's in-memory fuzzy index (memory-index.ts):
 * every stored item of an in-memory scheme (`image:phash256`) is logged once by whichever
 * instance stored it, and every instance reads the log, from the last entry it saw, before a
 * lookup that may need it. Items with an admin verdict, which never expire, are also kept in
 * the `P fzpinned` set, since the log is trimmed.
 */
import type { Client } from './redis-connection.js';
import type { RedisKeyNames } from './redis-layout.js';
import { MemoryIndexes } from './memory-index.js';

/** Items of in-memory schemes read from the log per XREAD. */
const LOG_PAGE = 10_000;

export class FuzzyLog {
  readonly memory = new MemoryIndexes();
  readonly #r: Client;
  readonly #k: RedisKeyNames;
  /** Id of the last `fzlog` entry replayed into memory ('0' before the first read). */
  #logId = '0';
  #pinnedLoaded = false;
  /** The log read in flight, and the one queued behind it (see catchUp). */
  #reading: Promise<void> | null = null;
  #queued: Promise<void> | null = null;

  constructor(client: Client, names: RedisKeyNames) {
    this.#r = client;
    this.#k = names;
  }

  /**
   * Replays log entries written since the last read into memory. Read-your-writes across
   * instances: the read a caller waits for always starts after the caller asked, so everything
   * stored before the lookup began is in memory when it probes. Concurrent callers share reads:
   * at most one in flight and one queued behind it, which everyone arriving meanwhile joins.
   */
  catchUp(): Promise<void> {
    if (this.#queued !== null) return this.#queued;
    if (this.#reading === null) return this.#startRead();
    const queued = this.#reading
      .catch(() => undefined)
      .then(() => {
        this.#queued = null;
        return this.#startRead();
      });
    this.#queued = queued;
    return queued;
  }

  #startRead(): Promise<void> {
    const reading = this.#readLog().finally(() => {
      if (this.#reading === reading) this.#reading = null;
    });
    this.#reading = reading;
    return reading;
  }

  async #readLog(): Promise<void> {
    if (!this.#pinnedLoaded) {
      for (const item of await this.#r.smembers(this.#k.pinned)) this.memory.add(item);
      this.#pinnedLoaded = true;
    }
    for (;;) {
      const read = (await this.#r.xread('COUNT', LOG_PAGE, 'STREAMS', this.#k.log, this.#logId)) as [string, [string, string[]][]][] | null;
      const entries = read?.[0]?.[1] ?? [];
      for (const [id, fields] of entries) {
        if (fields[1] !== undefined) this.memory.add(fields[1]);
        this.#logId = id;
      }
      if (entries.length < LOG_PAGE) return;
    }
  }
}
