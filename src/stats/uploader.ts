/**
 * Sends the outbox to the reputation service while participation is on and the statement is
 * accepted. One batch at a time, oldest first; a batch leaves the outbox only once the service
 * acknowledged it. Failures back off exponentially with jitter; a 401 stops uploads (one error
 * line, data kept) until the next reload. Switching off aborts the request in flight at once.
 */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { GatewayMetrics } from './metrics.js';
import type { StatsStore } from './store.js';
import { HTTP_TOO_MANY_REQUESTS, HTTP_UNAUTHORIZED, failureOf, type StatsTransport } from './transport.js';

export interface UploaderOptions {
  /** Builds the transport for a configuration (default: HTTP to config.reputationUrl). */
  readonly transport: (config: Config) => StatsTransport;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** How often an idle uploader looks at the outbox even without a new record. */
  readonly idleMs?: number;
  readonly metrics?: GatewayMetrics;
}

export type UploaderState = 'off' | 'uploading' | 'idle' | 'backoff' | 'stopped-auth';

/** Uploads happen only when all of these hold. */
export function participates(config: Config): boolean {
  return config.participation !== 'off' && config.acceptStatement && config.reputationUrl !== null;
}

export class Uploader {
  readonly #store: StatsStore;
  readonly #log: Logger;
  readonly #options: UploaderOptions;
  #config: Config;
  #generation = 0;
  #loop: Promise<void> = Promise.resolve();
  #controller: AbortController | null = null;
  #wake: (() => void) | null = null;
  #wakeOnRecord = false;
  #authStopped = false;
  #state: UploaderState = 'off';
  #closed = false;

  constructor(store: StatsStore, log: Logger, config: Config, options: UploaderOptions) {
    this.#store = store;
    this.#log = log;
    this.#config = config;
    this.#options = options;
    if (participates(config)) {
      if (!config.uploadBacklog) this.#discardBacklog();
      this.#start();
    }
  }

  get state(): UploaderState {
    return this.#state;
  }

  /** A new record is in the outbox: an idle uploader starts at once. */
  notify(): void {
    if (this.#wakeOnRecord) this.#wake?.();
  }

  reload(config: Config): void {
    const was = participates(this.#config) && !this.#authStopped;
    const wasParticipating = participates(this.#config);
    const narrowed = this.#config.participation === 'extended' && config.participation === 'standard';
    this.#config = config;
    if (this.#closed) return;
    if (!participates(config)) {
      if (was || this.#authStopped) this.#log.info({ event: 'stats.upload.stopped', participation: config.participation, accepted: config.acceptStatement }, 'statistics uploads stopped: participation off or statement not accepted');
      this.#stop();
      this.#authStopped = false;
      return;
    }
    if (!wasParticipating && !config.uploadBacklog) this.#discardBacklog();
    // extended -> standard: an extended batch in flight is aborted and rebuilt (nextBatch).
    if (this.#authStopped || !was || narrowed) {
      // A reload is how a fixed key is picked up after a 401.
      this.#authStopped = false;
      this.#stop();
      this.#start();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stop();
    await this.#loop;
  }

  #discardBacklog(): void {
    const n = this.#store.discardGatheredWhileOff();
    this.#options.metrics?.backlog.set(this.#store.backlog());
    this.#log.info({ event: 'stats.backlog.discarded', records: n }, `NIMBUS_UPLOAD_BACKLOG=no: ${n} records gathered while off stay local and will not be uploaded`);
  }

  #stop(): void {
    this.#generation++;
    this.#controller?.abort(new Error('participation switched off'));
    this.#controller = null;
    this.#wake?.();
    this.#state = 'off';
  }

  #start(): void {
    const generation = ++this.#generation;
    this.#log.info(
      { event: 'stats.upload.started', participation: this.#config.participation, backlog: this.#store.outboxSize(), url: this.#config.reputationUrl },
      `statistics uploads on (${this.#config.participation}), ${this.#store.outboxSize()} records waiting`,
    );
    // Chained: the previous loop has been aborted and ends before this one begins.
    this.#loop = this.#loop.then(() => this.#run(generation)).catch((error: unknown) => {
      this.#log.error({ event: 'stats.upload.crashed', err: error }, 'statistics uploader stopped by an unexpected error');
    });
  }

  #current(generation: number): boolean {
    return generation === this.#generation && !this.#closed;
  }

  async #run(generation: number): Promise<void> {
    let failures = 0;
    const base = this.#options.backoffBaseMs ?? 1000;
    const max = this.#options.backoffMaxMs ?? 300_000;
    while (this.#current(generation)) {
      const config = this.#config;
      const pending = this.#store.nextBatch(config.participation, config.uploadBatchSize);
      if (!pending) {
        this.#state = 'idle';
        await this.#sleep(this.#options.idleMs ?? 30_000, true);
        continue;
      }
      this.#state = 'uploading';
      const controller = new AbortController();
      this.#controller = controller;
      try {
        await this.#options.transport(config).send(pending.batch, controller.signal);
        // Acknowledged: even if an opt-out came this instant, the service has the batch.
        this.#store.acknowledge(pending.id, pending.count);
        this.#store.setLastError(null);
        failures = 0;
        const backlog = this.#store.outboxSize();
        this.#options.metrics?.recordsUploaded.inc(pending.count);
        this.#options.metrics?.backlog.set(backlog);
        this.#log.info({ event: 'stats.upload.batch', batchId: pending.id, records: pending.count, backlog }, `uploaded ${pending.count} statistics records, ${backlog} waiting`);
      } catch (error) {
        if (controller.signal.aborted || !this.#current(generation)) return;
        const { status, retryAfter } = failureOf(error);
        const message = (error as Error).message;
        this.#store.setLastError(message);
        this.#options.metrics?.uploadErrors.inc({ kind: status === HTTP_UNAUTHORIZED ? 'auth' : status === 0 ? 'network' : 'http' });
        if (status === HTTP_UNAUTHORIZED) {
          this.#authStopped = true;
          this.#state = 'stopped-auth';
          this.#log.error(
            { event: 'stats.upload.auth_rejected', url: config.reputationUrl },
            'the reputation service rejected NIMBUS_REPUTATION_KEY (401): statistics uploads stopped, records kept locally; fix the key and reload (SIGHUP)',
          );
          return;
        }
        failures++;
        // Full exponential step with jitter in its upper half, so gateways do not retry in step.
        let delay = Math.min(max, base * 2 ** (failures - 1)) * (0.5 + Math.random() / 2);
        if (status === HTTP_TOO_MANY_REQUESTS && retryAfter !== null) delay = Math.max(delay, retryAfter * 1000);
        this.#state = 'backoff';
        this.#log.warn({ event: 'stats.upload.failed', batchId: pending.id, status, failures, retryInMs: Math.round(delay), err: message }, 'statistics upload failed, retrying');
        await this.#sleep(delay, false);
      } finally {
        if (this.#controller === controller) this.#controller = null;
      }
    }
  }

  /** Ends early on stop/reload/close, and on a new record when `wakeOnRecord`. */
  #sleep(ms: number, wakeOnRecord: boolean): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        if (self.#wake === done) {
          self.#wake = null;
          self.#wakeOnRecord = false;
        }
        resolve();
      }
      this.#wake = done;
      this.#wakeOnRecord = wakeOnRecord;
    });
  }
}
