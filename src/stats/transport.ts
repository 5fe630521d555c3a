/**
 * How a batch reaches the service. The uploader needs only `send`; the production transport is
 * the reputation client's `report` (POST /v1/reports with the sensor key). Failures throw an
 * error carrying the HTTP `status` (0: network, timeout or abort): ReputationServiceError.
 */
import type { Config } from '../config/index.js';
import type { ReportBatch, SampleUpload } from '../reputation/api.js';
import { createReputationClient, type ReputationClient } from '../reputation/client.js';

export const HTTP_BAD_REQUEST = 400;
export const HTTP_UNAUTHORIZED = 401;
export const HTTP_FORBIDDEN = 403;
export const HTTP_PAYLOAD_TOO_LARGE = 413;
export const HTTP_TOO_MANY_REQUESTS = 429;

/** A batch upload is larger than a lookup: its own budget, never under this. */
const MIN_UPLOAD_TIMEOUT_MS = 30_000;

export interface StatsTransport {
  /** Resolves only when the service acknowledged the batch (2xx). */
  send(batch: ReportBatch, signal: AbortSignal): Promise<void>;
  /** POST /v1/samples; resolves once stored (or already there). Without it no sample is sent. */
  sendSample?(sample: SampleUpload, signal: AbortSignal): Promise<void>;
}

/** The HTTP status of a failed send (0 when none came), and a Retry-After in seconds if any. */
export function failureOf(error: unknown): { status: number; retryAfter: number | null } {
  const e = error as { status?: unknown; retryAfter?: unknown };
  return { status: typeof e?.status === 'number' ? e.status : 0, retryAfter: typeof e?.retryAfter === 'number' ? e.retryAfter : null };
}

/**
 * One reputation client per (url, key): a reload with other values closes the old one.
 * Owned by one Statistics instance, so no module-level state.
 */
export class ClientTransports {
  #client: ReputationClient | null = null;
  #identity = '';

  for(config: Config): StatsTransport {
    const identity = `${config.reputationUrl}\n${config.reputationKey ?? ''}`;
    if (this.#client === null || identity !== this.#identity) {
      this.#client?.close();
      this.#identity = identity;
      this.#client = createReputationClient({ url: config.reputationUrl ?? '', key: config.reputationKey ?? '', timeoutMs: Math.max(MIN_UPLOAD_TIMEOUT_MS, config.lookupTimeoutMs) });
    }
    const client = this.#client;
    return {
      async send(batch, signal) {
        await client.report(batch, signal);
      },
      async sendSample(sample, signal) {
        await client.sample(sample, signal);
      },
    };
  }

  close(): void {
    this.#client?.close();
    this.#client = null;
  }
}
