/**
 * The service's log of verdict changes, behind `GET /v1/convictions`: each change gets an event
 * id, connected gateways hear it at once, and a gateway that reconnects with `Last-Event-ID`
 * gets what it missed. When the id is no longer (or never was) in the log, the answer is a
 * `reset`: the gateway drops every cached answer, which is always safe.
 *
 * Two logs: in memory for the SQLite store (one service process owns the file), and a Redis
 * stream for the Redis store, so that an event published by any service instance reaches the
 * gateways connected to every other one (convictions-redis.ts).
 */
import type { Verdict } from '../api.js';

export interface VerdictChange {
  readonly item: string;
  readonly verdict: Verdict;
}

export type ConvictionEvent =
  | { readonly id: string; readonly kind: 'changes'; readonly changes: readonly VerdictChange[] }
  /** Some changes may have been missed: drop every cached answer. */
  | { readonly id: string; readonly kind: 'reset' };

export type ConvictionListener = (event: ConvictionEvent) => void;

export interface Subscription {
  /** What the subscriber missed since its Last-Event-ID (a single `reset` when that is not known). */
  readonly missed: readonly ConvictionEvent[];
  unsubscribe(): void;
}

export interface ConvictionLog {
  publish(changes: readonly VerdictChange[]): Promise<void>;
  /** Tells every subscriber to drop its whole cache (a proxy whose upstream said so). */
  publishReset(): Promise<void>;
  /** `lastEventId` null: a fresh subscriber, nothing missed. */
  subscribe(lastEventId: string | null, listener: ConvictionListener): Promise<Subscription>;
  /** Connected subscribers (the `nimbus_convictions_streams` gauge). */
  readonly subscribers: number;
  close(): Promise<void>;
}

/** Events kept for reconnecting gateways: at a conviction a second, more than two hours. */
export const CONVICTIONS_KEPT = 10_000;

/**
 * The log of one service process. Ids are `<boot>-<n>`: after a restart, an id of the previous
 * boot is unknown and its gateway gets a `reset`, since the changes it missed are not here.
 */
export class MemoryConvictionLog implements ConvictionLog {
  readonly #boot = Date.now().toString(36);
  readonly #events: ConvictionEvent[] = [];
  readonly #listeners = new Set<ConvictionListener>();
  #next = 1;

  get subscribers(): number {
    return this.#listeners.size;
  }

  async publish(changes: readonly VerdictChange[]): Promise<void> {
    if (changes.length > 0) this.#emit({ id: this.#id(), kind: 'changes', changes });
  }

  async publishReset(): Promise<void> {
    this.#emit({ id: this.#id(), kind: 'reset' });
  }

  async subscribe(lastEventId: string | null, listener: ConvictionListener): Promise<Subscription> {
    this.#listeners.add(listener);
    return { missed: this.#missedSince(lastEventId), unsubscribe: () => this.#listeners.delete(listener) };
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }

  #id(): string {
    return `${this.#boot}-${this.#next++}`;
  }

  #emit(event: ConvictionEvent): void {
    this.#events.push(event);
    if (this.#events.length > CONVICTIONS_KEPT) this.#events.splice(0, this.#events.length - CONVICTIONS_KEPT);
    for (const listener of this.#listeners) listener(event);
  }

  #missedSince(lastEventId: string | null): ConvictionEvent[] {
    if (lastEventId === null) return [];
    const [boot, n] = lastEventId.split('-');
    const seq = Number(n);
    const last = this.#next - 1;
    if (boot !== this.#boot || !Number.isInteger(seq) || seq > last) return [{ id: `${this.#boot}-${last}`, kind: 'reset' }];
    const oldest = last - this.#events.length + 1;
    // The event right after the gateway's last one is gone: it may have missed changes.
    if (seq + 1 < oldest) return [{ id: `${this.#boot}-${last}`, kind: 'reset' }];
    return this.#events.slice(seq + 1 - oldest);
  }
}
