/**
 * How a batch reaches the service. The uploader needs only `send`; the production transport is
 * a POST /v1/reports with the sensor key (the same wire contract the reputation client speaks).
 * A failure throws StatsTransportError with the HTTP status (0: network, timeout or abort).
 */
import { NimbusError } from '../errors.js';
import type { ReportBatch } from '../reputation/api.js';

export const HTTP_UNAUTHORIZED = 401;

export interface StatsTransport {
  /** Resolves only when the service acknowledged the batch (2xx). */
  send(batch: ReportBatch, signal: AbortSignal): Promise<void>;
}

export class StatsTransportError extends NimbusError {
  readonly status: number;
  constructor(status: number, message: string, options?: { cause?: unknown }) {
    super(status === HTTP_UNAUTHORIZED ? 'AUTH_REJECTED' : status === 0 ? 'SERVICE_UNREACHABLE' : 'SERVICE_ERROR', message, options);
    this.status = status;
  }
}

export function httpTransport(options: { url: string; key: string | null; timeoutMs: number }): StatsTransport {
  const endpoint = `${options.url.replace(/\/+$/, '')}/v1/reports`;
  return {
    async send(batch, signal) {
      // The caller's signal (opt-out) and our own timeout both end the request.
      const combined = AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)]);
      let response: Response;
      try {
        response = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(options.key ? { authorization: `Bearer ${options.key}` } : {}) },
          body: JSON.stringify(batch),
          signal: combined,
        });
      } catch (error) {
        throw new StatsTransportError(0, `POST ${endpoint}: ${(error as Error).message}`, { cause: error });
      }
      const text = await response.text().catch(() => '');
      if (!response.ok) throw new StatsTransportError(response.status, `POST ${endpoint}: HTTP ${response.status} ${text.slice(0, 200)}`);
    },
  };
}
