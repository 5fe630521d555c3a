/**
 * Follows a service's `GET /v1/convictions` (Server-Sent Events) for the gateway's lookups and a
 * proxy's cache: each event names fingerprints whose verdict changed, and the follower drops its
 * cached answers for them. It reconnects with exponential backoff (with jitter, so gateways do
 * not come back in step) and `Last-Event-ID`, so nothing is missed across a reconnect; a service
 * that cannot tell what was missed sends `reset`. `up` and `down` say when the stream can be
 * relied on: while it is down, answers must be kept only briefly.
 *
 * The SSE parser is the few lines the format needs (fields `id`, `event`, `data`; comments).
 */
import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import { VERDICTS, type Verdict } from './api.js';

export interface ConvictionHandlers {
  /** Fingerprints whose verdict changed, with the verdict they have now. */
  changed(changes: readonly { readonly item: string; readonly verdict: Verdict }[]): void;
  /** Changes may have been missed: drop everything cached. */
  reset(): void;
  /** Connected: events will arrive from now on. */
  up(): void;
  /** Not connected (`status` 0: no answer, else the HTTP status; 401 for a refused key). */
  down(status: number, reason: string): void;
}

export interface ConvictionStreamOptions {
  readonly url: string;
  readonly key: string;
  readonly handlers: ConvictionHandlers;
  /** First reconnect delay, doubling up to maxBackoffMs. */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** No byte (not even the service's heartbeat) for this long: the connection is dead. */
  readonly idleMs?: number;
}

const changes = z.array(z.object({ item: z.string(), verdict: z.enum(VERDICTS) }));

export const DEFAULT_BACKOFF_MS = 500;
export const DEFAULT_MAX_BACKOFF_MS = 30_000;
/** Three of the service's heartbeats (HEARTBEAT_MS, 15 s). */
export const DEFAULT_IDLE_MS = 45_000;

export class ConvictionStream {
  readonly #options: ConvictionStreamOptions;
  readonly #base: string;
  #lastEventId: string | null = null;
  #request: http.ClientRequest | null = null;
  #timer: NodeJS.Timeout | null = null;
  #failures = 0;
  #closed = false;

  constructor(options: ConvictionStreamOptions) {
    this.#options = options;
    this.#base = options.url.replace(/\/+$/, '');
    this.#connect();
  }

  /** The id of the last event received (sent as Last-Event-ID on reconnect). */
  get lastEventId(): string | null {
    return this.#lastEventId;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#request?.destroy();
    this.#request = null;
  }

  #connect(): void {
    if (this.#closed) return;
    const url = new URL(`${this.#base}/v1/convictions`);
    const get = url.protocol === 'https:' ? https.request : http.request;
    const headers: Record<string, string> = { authorization: `Bearer ${this.#options.key}`, accept: 'text/event-stream', 'cache-control': 'no-store' };
    if (this.#lastEventId !== null) headers['last-event-id'] = this.#lastEventId;
    let ended = false;
    const end = (status: number, reason: string): void => {
      if (ended) return;
      ended = true;
      request.destroy();
      if (this.#request === request) this.#request = null;
      if (this.#closed) return;
      this.#options.handlers.down(status, reason);
      this.#retry(status);
    };
    const request = get(url, { method: 'GET', headers, agent: false });
    this.#request = request;
    request.setTimeout(this.#options.idleMs ?? DEFAULT_IDLE_MS, () => end(0, 'no heartbeat from the service'));
    request.once('error', (error) => end(0, error.message));
    request.once('response', (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        end(response.statusCode ?? 0, `GET /v1/convictions answered ${response.statusCode}`);
        return;
      }
      this.#failures = 0;
      this.#options.handlers.up();
      response.setEncoding('utf8');
      let buffer = '';
      let event = { id: null as string | null, type: 'message', data: [] as string[] };
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let at: number;
        while ((at = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, at).replace(/\r$/, '');
          buffer = buffer.slice(at + 1);
          if (line === '') {
            this.#dispatch(event.id, event.type, event.data.join('\n'));
            event = { id: null, type: 'message', data: [] };
            continue;
          }
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const name = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (name === 'id') event.id = value;
          else if (name === 'event') event.type = value;
          else if (name === 'data') event.data.push(value);
        }
      });
      response.once('end', () => end(0, 'the service closed the stream'));
      response.once('error', (error) => end(0, error.message));
    });
    request.end();
  }

  #dispatch(id: string | null, type: string, data: string): void {
    if (id !== null) this.#lastEventId = id;
    if (type === 'reset') this.#options.handlers.reset();
    else if (type === 'changes') {
      let parsed: z.infer<typeof changes>;
      try {
        parsed = changes.parse(JSON.parse(data));
      } catch {
        // An event we cannot read may have named anything: safest to forget everything.
        this.#options.handlers.reset();
        parsed = [];
      }
      if (parsed.length > 0) this.#options.handlers.changed(parsed);
    }
  }

  #retry(status: number): void {
    this.#failures++;
    const base = this.#options.backoffMs ?? DEFAULT_BACKOFF_MS;
    const max = this.#options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    // A refused key will not be accepted again by itself: wait the longest, not the shortest.
    const step = status === 401 || status === 403 ? max : Math.min(max, base * 2 ** (this.#failures - 1));
    const delay = step * (0.5 + Math.random() / 2);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect();
    }, delay);
  }
}
