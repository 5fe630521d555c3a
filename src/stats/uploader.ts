/**
 * Sends the outbox to the reputation service while participation is on and the statement is
 * accepted. One batch at a time, oldest first; a batch leaves the outbox only once the service
 * acknowledged it. Failures back off exponentially with jitter; a 401 stops uploads (one error
 * line, data kept) until the next reload. Switching off aborts the request in flight at once.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/index.js';
import type { Logger } from '../log.js';
import { maskUrl } from '../redact.js';
import type { SampleUpload } from '../reputation/api.js';
import type { GatewayMetrics } from './metrics.js';
import { Pause } from './pause.js';
import type { SampleOutbox } from './sample-outbox.js';
import { toWireSample, type Sample } from './samples.js';
import type { PendingBatch, StatsStore } from './store.js';
import {
  HTTP_BAD_REQUEST,
  HTTP_FORBIDDEN,
  HTTP_PAYLOAD_TOO_LARGE,
  HTTP_TOO_MANY_REQUESTS,
  HTTP_UNAUTHORIZED,
  failureOf,
  type StatsTransport,
} from './transport.js';

export interface UploaderOptions {
  /** Builds the transport for a configuration (default: HTTP to config.reputationUrl). */
  readonly transport: (config: Config) => StatsTransport;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** How often an idle uploader looks at the outbox even without a new record. */
  readonly idleMs?: number;
  readonly metrics?: GatewayMetrics;
  /** Attachment samples to send in extended mode, taking turns with the record batches. */
  readonly samples?: SampleOutbox;
}

/** One upload: a batch of records, or one attachment sample. */
type Work = { readonly kind: 'batch'; readonly pending: PendingBatch } | { readonly kind: 'sample'; readonly sample: Sample; readonly body: SampleUpload };

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
  readonly #pause = new Pause();
  #authStopped = false;
  /** The key may not upload samples (403): they stay local until the next reload. */
  #samplesForbidden = false;
  #state: UploaderState = 'off';
  #closed = false;
  /** Whose claim a batch carries in the shared store (gateway workers each have an uploader). */
  readonly #owner = `${process.pid}/${randomUUID()}`;

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
    this.#pause.nudge();
  }

  reload(config: Config): void {
    const was = participates(this.#config) && !this.#authStopped;
    const wasParticipating = participates(this.#config);
    const narrowed = this.#config.participation === 'extended' && config.participation === 'standard';
    this.#config = config;
    // A reload is also how a key with a larger role is picked up.
    this.#samplesForbidden = false;
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
    this.#release();
  }

  /** Another worker may send what this uploader will not (stopped, or closing). */
  #release(): void {
    try {
      this.#store.releaseClaims(this.#owner);
      this.#options.samples?.releaseClaims(this.#owner);
    } catch (error) {
      // A claim also lapses on its own (CLAIM_LEASE_MS, or when this process is gone).
      this.#log.warn({ event: 'stats.upload.release_failed', err: String(error) }, 'could not release this uploader\'s batch claims');
    }
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
    this.#pause.stop();
    this.#state = 'off';
    this.#release();
  }

  #start(): void {
    const generation = ++this.#generation;
    this.#log.info(
      { event: 'stats.upload.started', participation: this.#config.participation, backlog: this.#store.outboxSize(), url: maskUrl(this.#config.reputationUrl) },
      `statistics uploads on (${this.#config.participation}), ${this.#store.outboxSize()} records waiting`,
    );
    // Chained: the previous loop has been aborted and ends before this one begins.
    this.#loop = this.#loop.then(() => this.#run(generation)).catch((error: unknown) => {
      this.#log.error({ event: 'stats.upload.crashed', err: error }, 'statistics uploader stopped by an unexpected error');
    });
  }

  /**
   * What to send next: batches and samples take turns (`preferSample` after a batch), so a steady
   * stream of records never starves the samples, nor the reverse. Samples only in extended mode.
   */
  #nextWork(config: Config, transport: StatsTransport, preferSample: boolean): Work | null {
    const samples = this.#options.samples;
    const samplesAllowed = samples !== undefined && config.participation === 'extended' && !this.#samplesForbidden && transport.sendSample !== undefined;
    const batch = (): Work | null => {
      const pending = this.#store.nextBatch(config.participation, config.uploadBatchSize, this.#owner);
      return pending ? { kind: 'batch', pending } : null;
    };
    const sample = (): Work | null => {
      if (!samplesAllowed) return null;
      const next = samples.next(this.#owner);
      if (!next) return null;
      const body = toWireSample(next, config.participation);
      if (!body) {
        samples.releaseClaims(this.#owner);
        return null;
      }
      return { kind: 'sample', sample: next, body };
    };
    return preferSample ? (sample() ?? batch()) : (batch() ?? sample());
  }

  #current(generation: number): boolean {
    return generation === this.#generation && !this.#closed;
  }

  async #run(generation: number): Promise<void> {
    let failures = 0;
    const base = this.#options.backoffBaseMs ?? 1000;
    const max = this.#options.backoffMaxMs ?? 300_000;
    /** The next wait: full exponential step with jitter in its upper half, so gateways do not retry in step. */
    const nextDelay = (minimumMs = 0): number => {
      failures++;
      return Math.max(minimumMs, Math.min(max, base * 2 ** (failures - 1)) * (0.5 + Math.random() / 2));
    };
    const backoff = async (delay: number): Promise<void> => {
      this.#state = 'backoff';
      await this.#pause.wait(delay, false);
    };
    // The shared file busy past busy_timeout (other workers) or a disk error: retried, never a
    // reason to stop uploading for good.
    const storeFailed = async (error: unknown, batchId: string | null): Promise<void> => {
      const delay = nextDelay();
      this.#log.warn({ event: 'stats.upload.store_error', batchId, failures, retryInMs: Math.round(delay), err: String(error) }, 'statistics store busy or failing during an upload, retrying');
      await backoff(delay);
    };
    let preferSample = false;
    while (this.#current(generation)) {
      const config = this.#config;
      const transport = this.#options.transport(config);
      let work: Work | null;
      try {
        work = this.#nextWork(config, transport, preferSample);
      } catch (error) {
        await storeFailed(error, null);
        continue;
      }
      if (!work) {
        this.#state = 'idle';
        await this.#pause.wait(this.#options.idleMs ?? 30_000, true);
        continue;
      }
      preferSample = work.kind === 'batch';
      this.#state = 'uploading';
      const controller = new AbortController();
      this.#controller = controller;
      let failure: unknown = null;
      try {
        if (work.kind === 'batch') await transport.send(work.pending.batch, controller.signal);
        else await transport.sendSample!(work.body, controller.signal);
      } catch (error) {
        failure = error;
      } finally {
        if (this.#controller === controller) this.#controller = null;
      }
      if (failure === null) {
        // Acknowledged: even if an opt-out came this instant, the service has it.
        try {
          if (work.kind === 'batch') this.#batchAcknowledged(work.pending);
          else this.#sampleAcknowledged(work.sample);
          failures = 0;
        } catch (error) {
          // Not recorded as sent: it goes again (same batch id, same sample hash) and counts once.
          await storeFailed(error, work.kind === 'batch' ? work.pending.id : null);
        }
        continue;
      }
      if (controller.signal.aborted || !this.#current(generation)) return;
      const { status, retryAfter } = failureOf(failure);
      const message = failure instanceof Error ? failure.message : String(failure);
      this.#options.metrics?.uploadErrors.inc({ kind: status === HTTP_UNAUTHORIZED ? 'auth' : status === 0 ? 'network' : 'http' });
      try {
        this.#store.setLastError(message);
      } catch {
        // Only the display of the error is lost; the upload is retried anyway.
      }
      if (status === HTTP_UNAUTHORIZED) {
        this.#authStopped = true;
        this.#state = 'stopped-auth';
        this.#release();
        this.#log.error(
          { event: 'stats.upload.auth_rejected', url: maskUrl(config.reputationUrl) },
          'the reputation service rejected NIMBUS_REPUTATION_KEY (401): statistics uploads stopped, records kept locally; fix the key and reload (SIGHUP)',
        );
        return;
      }
      if (work.kind === 'sample' && this.#sampleRefused(work.sample, status, message, config)) continue;
      const delay = nextDelay(status === HTTP_TOO_MANY_REQUESTS && retryAfter !== null ? retryAfter * 1000 : 0);
      const what = work.kind === 'batch' ? { batchId: work.pending.id } : { sample: work.sample.sha256 };
      this.#log.warn({ event: 'stats.upload.failed', ...what, status, failures, retryInMs: Math.round(delay), err: message }, 'statistics upload failed, retrying');
      await backoff(delay);
    }
  }

  #batchAcknowledged(pending: PendingBatch): void {
    // 0 when another worker acknowledged the same batch first: counted once.
    const removed = this.#store.acknowledge(pending.id);
    this.#store.setLastError(null);
    const backlog = this.#store.outboxSize();
    this.#options.metrics?.recordsUploaded.inc(removed);
    this.#options.metrics?.backlog.set(backlog);
    this.#log.info({ event: 'stats.upload.batch', batchId: pending.id, records: pending.count, backlog }, `uploaded ${pending.count} statistics records, ${backlog} waiting`);
  }

  #sampleAcknowledged(sample: Sample): void {
    this.#options.samples!.acknowledge(sample.sha256);
    this.#store.setLastError(null);
    this.#log.info({ event: 'stats.upload.sample', sha256: sample.sha256, size: sample.size }, `uploaded the sample of attachment ${sample.sha256}`);
  }

  /**
   * A sample the service will not take, whatever the retries: true when handled. 403: this key
   * may not upload samples (a sensor key), so none goes until a reload, and records carry on.
   * 400 or 413: this sample is refused for good (over the service's size limit, say): dropped.
   */
  #sampleRefused(sample: Sample, status: number, message: string, config: Config): boolean {
    if (status === HTTP_FORBIDDEN) {
      this.#samplesForbidden = true;
      this.#options.samples?.releaseClaims(this.#owner);
      this.#log.error(
        { event: 'stats.samples.forbidden', url: maskUrl(config.reputationUrl), err: message },
        'the reputation service refused samples from NIMBUS_REPUTATION_KEY (403: samples need a reporter or admin key): samples stay local, records are still uploaded; change the key and reload (SIGHUP)',
      );
      return true;
    }
    if (status === HTTP_BAD_REQUEST || status === HTTP_PAYLOAD_TOO_LARGE) {
      try {
        this.#options.samples?.refuse(sample.sha256);
      } catch {
        // Still waiting, then: it is offered again and refused again, which costs one request.
      }
      this.#log.warn({ event: 'stats.samples.refused', sha256: sample.sha256, size: sample.size, status, err: message }, 'the reputation service refused an attachment sample; it is dropped');
      return true;
    }
    return false;
  }
}
