/**
 * The reputation service as the console's admin sees it (NIMBUS_REPUTATION_URL with
 * NIMBUS_CONSOLE_ADMIN_KEY): a fingerprint's evidence, and overrides. Errors come back as the
 * service's own message, shown on the page; nothing here is retried (an admin is watching).
 */
import type { FingerprintExplanation, OverrideVerdict } from '../reputation/engine-types.js';
import { maskUrl } from '../redact.js';

const TIMEOUT_MS = 10_000;

export interface ServiceEvidence extends FingerprintExplanation {
  readonly reporters: readonly (FingerprintExplanation['reporters'][number] & { readonly role: string | null })[];
}

/** A key as `GET /v1/keys` shows it. */
export interface ServiceKey {
  readonly id: string;
  readonly role: string;
  readonly label: string;
  readonly rateLimit: number;
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

export class ServiceAdmin {
  readonly #url: string;
  readonly #key: string;

  constructor(url: string, key: string) {
    this.#url = url.replace(/\/+$/, '');
    this.#key = key;
  }

  /** Shown on pages: the URL without any secret. */
  get shownUrl(): string {
    return maskUrl(this.#url) ?? '';
  }

  async #call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const response = await fetch(`${this.#url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.#key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    const text = await response.text();
    let json: unknown = null;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      json = { message: text.slice(0, 200) };
    }
    return { status: response.status, json };
  }

  #failure(status: number, json: unknown): Error {
    const message = (json as { message?: unknown } | null)?.message;
    return new Error(`the service answered ${status}${typeof message === 'string' ? `: ${message}` : ''}`);
  }

  /** The service's evidence, or null when it knows nothing about the fingerprint (404). */
  async evidence(fingerprint: string): Promise<ServiceEvidence | null> {
    const { status, json } = await this.#call('GET', `/v1/fingerprints/${encodeURIComponent(fingerprint)}`);
    if (status === 404) return null;
    if (status !== 200) throw this.#failure(status, json);
    return json as ServiceEvidence;
  }

  async override(fingerprint: string, verdict: OverrideVerdict, reason: string): Promise<void> {
    const { status, json } = await this.#call('PUT', `/v1/verdicts/${encodeURIComponent(fingerprint)}`, { verdict, reason });
    if (status !== 200) throw this.#failure(status, json);
  }

  async listKeys(): Promise<ServiceKey[]> {
    const { status, json } = await this.#call('GET', '/v1/keys');
    if (status !== 200) throw this.#failure(status, json);
    return (json as { keys: ServiceKey[] }).keys;
  }

  /** The new key with its token, which the service shows this once. */
  async addKey(role: string, label: string): Promise<ServiceKey & { token: string }> {
    const { status, json } = await this.#call('POST', '/v1/keys', { role, label });
    if (status !== 201) throw this.#failure(status, json);
    return json as ServiceKey & { token: string };
  }

  async revokeKey(id: string): Promise<void> {
    const { status, json } = await this.#call('DELETE', `/v1/keys/${encodeURIComponent(id)}`);
    if (status !== 200) throw this.#failure(status, json);
  }

  async clear(fingerprint: string, reason: string): Promise<void> {
    const { status, json } = await this.#call('DELETE', `/v1/verdicts/${encodeURIComponent(fingerprint)}?reason=${encodeURIComponent(reason)}`);
    if (status !== 200) throw this.#failure(status, json);
  }
}
