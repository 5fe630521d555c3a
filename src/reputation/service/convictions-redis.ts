/**
 * The conviction log of services on one Redis (or Redis Cluster): a Redis stream (XADD, trimmed
 * to about CONVICTIONS_KEPT entries). Every service instance follows it with a blocking XREAD on
 * a connection of its own and hands each entry to its connected gateways, so a conviction made
 * at one instance reaches the gateways of all of them. Event ids are the stream's entry ids, the
 * same at every instance: a gateway may reconnect to any instance with its Last-Event-ID.
 */
import type { Logger } from 'pino';
import { connectRedis, RECONNECT_MAX_MS, type Client } from '../stores/redis-connection.js';
import { CONVICTIONS_KEPT, type ConvictionEvent, type ConvictionListener, type ConvictionLog, type Subscription, type VerdictChange } from './convictions.js';

/** A blocking read returns at least this often, so a closing service stops following in time. */
const BLOCK_MS = 2000;
const ENTRY_ID = /^\d+-\d+$/;

type StreamEntry = [id: string, fields: string[]];

function toEvent([id, fields]: StreamEntry): ConvictionEvent {
  const data = fields[fields.indexOf('data') + 1];
  if (data === undefined || data === 'reset') return { id, kind: 'reset' };
  try {
    return { id, kind: 'changes', changes: JSON.parse(data) as VerdictChange[] };
  } catch {
    return { id, kind: 'reset' };
  }
}

/** `a` before `b` as stream ids (`ms-seq`). */
function before(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am < bm || (am === bm && as < bs);
}

export class RedisConvictionLog implements ConvictionLog {
  readonly #writer: Client;
  readonly #reader: Client;
  readonly #key: string;
  readonly #log: Logger;
  readonly #listeners = new Set<ConvictionListener>();
  #closed = false;
  readonly #following: Promise<void>;

  private constructor(writer: Client, reader: Client, key: string, startId: string, log: Logger) {
    this.#writer = writer;
    this.#reader = reader;
    this.#key = key;
    this.#log = log;
    this.#following = this.#follow(startId);
  }

  static async open(urls: readonly string[], log: Logger, prefix = 'nimbus:'): Promise<RedisConvictionLog> {
    const writer = await connectRedis(urls);
    let reader: Client;
    try {
      reader = await connectRedis(urls);
    } catch (error) {
      writer.disconnect();
      throw error;
    }
    const key = `${prefix}convictions`;
    // Follow from the newest entry now: older ones are for gateways that ask with Last-Event-ID.
    const newest = (await writer.xrevrange(key, '+', '-', 'COUNT', 1)) as StreamEntry[];
    return new RedisConvictionLog(writer, reader, key, newest[0]?.[0] ?? '0-0', log);
  }

  get subscribers(): number {
    return this.#listeners.size;
  }

  async publish(changes: readonly VerdictChange[]): Promise<void> {
    if (changes.length > 0) await this.#writer.xadd(this.#key, 'MAXLEN', '~', CONVICTIONS_KEPT, '*', 'data', JSON.stringify(changes));
  }

  async publishReset(): Promise<void> {
    await this.#writer.xadd(this.#key, 'MAXLEN', '~', CONVICTIONS_KEPT, '*', 'data', 'reset');
  }

  async subscribe(lastEventId: string | null, listener: ConvictionListener): Promise<Subscription> {
    this.#listeners.add(listener);
    const unsubscribe = (): void => void this.#listeners.delete(listener);
    if (lastEventId === null) return { missed: [], unsubscribe };
    try {
      const oldest = (await this.#writer.xrange(this.#key, '-', '+', 'COUNT', 1)) as StreamEntry[];
      const newest = (await this.#writer.xrevrange(this.#key, '+', '-', 'COUNT', 1)) as StreamEntry[];
      const newestId = newest[0]?.[0] ?? '0-0';
      const known = ENTRY_ID.test(lastEventId) && !before(newestId, lastEventId) && (oldest[0] === undefined || !before(lastEventId, oldest[0][0]) || lastEventId === '0-0');
      if (!known) return { missed: [{ id: newestId, kind: 'reset' }], unsubscribe };
      // Exclusive start: everything after the gateway's last event.
      const entries = (await this.#writer.xrange(this.#key, `(${lastEventId}`, '+')) as StreamEntry[];
      return { missed: entries.map(toEvent), unsubscribe };
    } catch (error) {
      unsubscribe();
      throw error;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#reader.disconnect();
    await this.#following;
    this.#writer.disconnect();
  }

  async #follow(startId: string): Promise<void> {
    let last = startId;
    let failures = 0;
    while (!this.#closed) {
      try {
        const reply = (await this.#reader.xread('COUNT', 1000, 'BLOCK', BLOCK_MS, 'STREAMS', this.#key, last)) as [string, StreamEntry[]][] | null;
        failures = 0;
        for (const [, entries] of reply ?? []) {
          for (const entry of entries) {
            last = entry[0];
            const event = toEvent(entry);
            for (const listener of this.#listeners) listener(event);
          }
        }
      } catch (error) {
        if (this.#closed) return;
        failures++;
        if (failures === 1) this.#log.warn({ event: 'reputation.convictions_follow_failed', err: (error as Error).message }, 'cannot follow the convictions stream in Redis; retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(RECONNECT_MAX_MS, 100 * failures)));
      }
    }
  }
}
