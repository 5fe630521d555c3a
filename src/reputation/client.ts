/**
 * HTTP client of the reputation service, used by the gateway's lookups, the statistics uploader,
 * `nimbus report` and the service's own proxy mode. Keep-alive sockets (a lookup per message
 * cannot afford a TCP handshake each time), a hard time budget per call, responses validated
 * against the wire schemas, and every failure turned into one typed error.
 */
import http from 'node:http';
import https from 'node:https';
import fetch, { type RequestInit } from 'node-fetch';
import { z } from 'zod';
import { NimbusError } from '../errors.js';
import { maskCredentials } from '../redact.js';
import {
  lookupResponse,
  lookupResult,
  type FeedbackRequest,
  type LookupResult,
  type ReportBatch,
  type SampleUpload,
  type VerdictOverride,
} from './api.js';

export const SERVICE_ERROR_CODES = {
  AUTH_REJECTED: 'AUTH_REJECTED',
  FORBIDDEN: 'FORBIDDEN',
  BAD_REQUEST: 'BAD_REQUEST',
  TOO_LARGE: 'TOO_LARGE',
  RATE_LIMITED: 'RATE_LIMITED',
  SERVER_ERROR: 'SERVER_ERROR',
  UNAVAILABLE: 'UNAVAILABLE',
  BAD_RESPONSE: 'BAD_RESPONSE',
} as const;
export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[keyof typeof SERVICE_ERROR_CODES];

/**
 * A failed call: `status` is the HTTP status, or 0 when no answer came (network, timeout).
 * `UNAVAILABLE` is either: no answer (status 0), or 503 (the service's store is unreachable).
 */
export class ReputationServiceError extends NimbusError {
  readonly status: number;
  /** Seconds from Retry-After (a 429, or a 503 while the service's store is unreachable), else null. */
  readonly retryAfter: number | null;
  constructor(code: ServiceErrorCode, status: number, message: string, options?: { cause?: unknown; retryAfter?: number | null }) {
    super(code, message, options);
    this.status = status;
    this.retryAfter = options?.retryAfter ?? null;
  }
}

export interface ReputationClientOptions {
  /** Base URL of the service, e.g. `http://127.0.0.1:8787`. */
  readonly url: string;
  /** Bearer token `nmb_<id>_<secret>`. */
  readonly key: string;
  /** Budget of each call, connection included. */
  readonly timeoutMs: number;
}

export interface ReputationClient {
  lookup(items: readonly string[], signal?: AbortSignal): Promise<LookupResult[]>;
  report(batch: ReportBatch, signal?: AbortSignal): Promise<{ accepted: number; duplicate: boolean }>;
  feedback(body: FeedbackRequest, signal?: AbortSignal): Promise<{ accepted: number }>;
  /** POST /v1/samples: idempotent by the sample's SHA-256 (`duplicate` when already stored). */
  sample(body: SampleUpload, signal?: AbortSignal): Promise<{ sha256: string; duplicate: boolean }>;
  setVerdict(item: string, body: VerdictOverride, signal?: AbortSignal): Promise<void>;
  clearVerdict(item: string, signal?: AbortSignal): Promise<boolean>;
  /** GET /v1/fingerprints/{item} (admin key): why it has its verdict; null when the service knows nothing of it (404). */
  explain(item: string, signal?: AbortSignal): Promise<ServiceExplanation | null>;
  /** Closes the idle keep-alive sockets. */
  close(): void;
}

const reportResponse = z.object({ accepted: z.number(), duplicate: z.boolean() });
const feedbackResponse = z.object({ accepted: z.number() });
const clearResponse = z.object({ removed: z.boolean() });
const sampleResponse = z.object({ sha256: z.string(), duplicate: z.boolean() });
const explanationResponse = z.object({
  item: z.string(),
  result: lookupResult,
  override: z.object({ verdict: z.enum(['spam', 'bulk', 'ham']), reason: z.string().nullable() }).nullable(),
  reporters: z.array(z.object({ id: z.string(), role: z.string().nullable(), sensor: z.number(), spam: z.number(), weak: z.number(), ham: z.number(), lastReport: z.string() })),
  reporterCount: z.number(),
  neighbours: z.array(z.object({ item: z.string(), similarity: z.number(), verdict: z.string(), score: z.number() })),
  audit: z.array(z.object({ at: z.string(), by: z.string(), before: z.string().nullable(), after: z.string().nullable(), reason: z.string().nullable() })),
});
export type ServiceExplanation = z.infer<typeof explanationResponse>;
const errorBody = z.object({ error: z.string(), message: z.string() });

function codeFor(status: number): ServiceErrorCode {
  if (status === 401) return SERVICE_ERROR_CODES.AUTH_REJECTED;
  if (status === 403) return SERVICE_ERROR_CODES.FORBIDDEN;
  if (status === 413) return SERVICE_ERROR_CODES.TOO_LARGE;
  if (status === 429) return SERVICE_ERROR_CODES.RATE_LIMITED;
  // The service is up but its store is not (it says when to retry): the same code as no answer.
  if (status === 503) return SERVICE_ERROR_CODES.UNAVAILABLE;
  if (status >= 500) return SERVICE_ERROR_CODES.SERVER_ERROR;
  return SERVICE_ERROR_CODES.BAD_REQUEST;
}

export function createReputationClient(options: ReputationClientOptions): ReputationClient {
  return new HttpReputationClient(options);
}

class HttpReputationClient implements ReputationClient {
  readonly #base: string;
  readonly #auth: string;
  readonly #timeoutMs: number;
  readonly #agent: http.Agent;

  constructor(options: ReputationClientOptions) {
    this.#base = options.url.replace(/\/+$/, '');
    this.#auth = `Bearer ${options.key}`;
    this.#timeoutMs = options.timeoutMs;
    const agentOptions = { keepAlive: true, maxSockets: 64, maxFreeSockets: 16 };
    this.#agent = this.#base.startsWith('https:') ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  }

  async lookup(items: readonly string[], signal?: AbortSignal): Promise<LookupResult[]> {
    const body = await this.#call('POST', '/v1/lookup', { items }, lookupResponse, signal);
    return body.results;
  }

  report(batch: ReportBatch, signal?: AbortSignal): Promise<{ accepted: number; duplicate: boolean }> {
    return this.#call('POST', '/v1/reports', batch, reportResponse, signal);
  }

  feedback(body: FeedbackRequest, signal?: AbortSignal): Promise<{ accepted: number }> {
    return this.#call('POST', '/v1/feedback', body, feedbackResponse, signal);
  }

  sample(body: SampleUpload, signal?: AbortSignal): Promise<{ sha256: string; duplicate: boolean }> {
    return this.#call('POST', '/v1/samples', body, sampleResponse, signal);
  }

  async setVerdict(item: string, body: VerdictOverride, signal?: AbortSignal): Promise<void> {
    await this.#call('PUT', `/v1/verdicts/${encodeURIComponent(item)}`, body, z.unknown(), signal);
  }

  async clearVerdict(item: string, signal?: AbortSignal): Promise<boolean> {
    const body = await this.#call('DELETE', `/v1/verdicts/${encodeURIComponent(item)}`, undefined, clearResponse, signal);
    return body.removed;
  }

  async explain(item: string, signal?: AbortSignal): Promise<ServiceExplanation | null> {
    try {
      return await this.#call('GET', `/v1/fingerprints/${encodeURIComponent(item)}`, undefined, explanationResponse, signal);
    } catch (error) {
      if (error instanceof ReputationServiceError && error.status === 404) return null;
      throw error;
    }
  }

  close(): void {
    this.#agent.destroy();
  }

  async #call<T>(method: string, path: string, payload: unknown, schema: z.ZodType<T>, signal?: AbortSignal): Promise<T> {
    // One budget for connect + request + body, whatever the caller's own signal says.
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const init: RequestInit = {
      method,
      headers: { authorization: this.#auth, accept: 'application/json', ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
      agent: this.#agent,
      // node-fetch's AbortSignal type predates the DOM one; they are compatible at run time.
      signal: combined as RequestInit['signal'],
      ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
    };
    // Errors are logged and stored (`nimbus stats`): the URL, and node-fetch's own message
    // (which repeats the URL), never carry a password.
    const what = `${method} ${maskCredentials(this.#base)}${path}`;
    let status = 0;
    let text: string;
    let retryAfterHeader: string | null = null;
    try {
      const response = await fetch(`${this.#base}${path}`, init);
      status = response.status;
      retryAfterHeader = response.headers.get('retry-after');
      text = await response.text();
    } catch (error) {
      const reason = timeout.aborted ? `no answer within ${this.#timeoutMs} ms` : signal?.aborted ? 'aborted by the caller' : maskCredentials((error as Error).message);
      throw new ReputationServiceError(SERVICE_ERROR_CODES.UNAVAILABLE, 0, `${what}: ${reason}`, { cause: error });
    }
    let json: unknown = undefined;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (status < 200 || status >= 300) {
      const parsed = errorBody.safeParse(json);
      const detail = parsed.success ? `${parsed.data.error}: ${parsed.data.message}` : text.slice(0, 200);
      const retryAfter = retryAfterHeader !== null && Number.isFinite(Number(retryAfterHeader)) ? Number(retryAfterHeader) : null;
      throw new ReputationServiceError(codeFor(status), status, `${what} answered ${status} (${detail})`, { retryAfter });
    }
    const checked = schema.safeParse(json);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      throw new ReputationServiceError(
        SERVICE_ERROR_CODES.BAD_RESPONSE,
        status,
        `${what}: unexpected response at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
      );
    }
    return checked.data;
  }
}
