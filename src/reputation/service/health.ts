/**
 * Whether the store can serve, for the error handler (a failure while the store is unreachable
 * is a 503 STORE_UNAVAILABLE with Retry-After, not a 500) and for `GET /readyz`:
 * - `/healthz` is liveness: the process answers HTTP. A load balancer or orchestrator that
 *   restarts on failure should watch this one; a restart does not bring Redis back.
 * - `/readyz` is readiness: 200 `{ok: true, store}` when the store answers a round trip (Redis:
 *   a PING within a second), else 503 `{ok: false, store, reason}`. A load balancer should send
 *   traffic only to ready instances. SQLite cannot be unreachable: it is ready while the service runs.
 * The store going away and coming back are logged once each (`store_unavailable`,
 * `store_available`), when a request or a readiness check notices, not per failed request.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { OpenedReputation } from '../engine-types.js';
import { HTTP } from './errors.js';
import type { SampleStore } from './samples.js';

/** Retry-After of a 503: the longest wait between two reconnection attempts (stores/redis.ts RECONNECT_MAX_MS). */
export const STORE_RETRY_AFTER_S = 2;

export class StoreHealth {
  readonly #kind: string;
  readonly #opened: OpenedReputation;
  readonly #samples: SampleStore;
  readonly #log: Logger;
  /** The reason last seen while the store was down; null while it is up. */
  #down: string | null = null;

  constructor(kind: string, opened: OpenedReputation, samples: SampleStore, log: Logger) {
    this.#kind = kind;
    this.#opened = opened;
    this.#samples = samples;
    this.#log = log;
  }

  get kind(): string {
    return this.#kind;
  }

  /** Whether a failure may have been the store going away: re-checked only while it is down, or when asked. */
  get suspectedDown(): boolean {
    return this.#down !== null;
  }

  /** Why the store cannot serve now, from the connections' state (no round trip), or null. */
  unavailable(): string | null {
    return this.#note(this.#opened.unavailable?.() ?? this.#samples.unavailable?.() ?? null);
  }

  /** The same with a round trip to the store: what `/readyz` answers. */
  async check(): Promise<string | null> {
    const now = this.unavailable();
    if (now !== null || !this.#opened.ping) return now;
    try {
      await this.#opened.ping();
      return this.#note(null);
    } catch (error) {
      return this.#note((error as Error).message);
    }
  }

  #note(reason: string | null): string | null {
    if (reason !== null && this.#down === null) {
      this.#log.warn({ event: 'reputation.store_unavailable', store: this.#kind, reason }, 'reputation store unreachable: requests get 503 until it is back');
    } else if (reason === null && this.#down !== null) {
      this.#log.info({ event: 'reputation.store_available', store: this.#kind }, 'reputation store reachable again');
    }
    this.#down = reason;
    return reason;
  }
}

export function registerReadinessRoute(app: FastifyInstance, health: StoreHealth): void {
  app.get('/readyz', async (_request, reply) => {
    const reason = await health.check();
    if (reason === null) return { ok: true, store: health.kind };
    reply.code(HTTP.UNAVAILABLE).header('retry-after', String(STORE_RETRY_AFTER_S));
    return { ok: false, store: health.kind, reason };
  });
}
