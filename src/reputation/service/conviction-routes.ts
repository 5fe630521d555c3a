/**
 * `GET /v1/convictions` (sensor key): Server-Sent Events of fingerprints whose verdict just
 * changed, so gateways drop those cached answers and catch the next copy at once. Events:
 * `changes` (`data: [{item, verdict}…]`, with an `id:`), `reset` (drop every cached answer: what
 * was missed is not known). A comment line every HEARTBEAT_MS keeps proxies from closing an idle
 * stream and lets the gateway notice a dead one. The key is checked again as often as keys are
 * cached: a revoked key's stream is closed, and its reconnect gets the 401 any request would.
 *
 * Also the one place that says what changed: `recordChanges` runs the engine call that may
 * change verdicts (feedback, trap records, overrides) between two lookups of its items.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { LookupResult } from '../api.js';
import type { ReputationEngine } from '../engine-types.js';
import type { ConvictionEvent, ConvictionLog, VerdictChange } from './convictions.js';
import type { ServiceMetrics } from './metrics.js';
import type { RouteContext } from './routes.js';

/** A comment this often: far below the idle timeouts of proxies (60 s is common) and of the gateway. */
export const HEARTBEAT_MS = 15_000;
/** Events written but not yet taken by a client, past which its stream is closed. */
const MAX_UNREAD_BYTES = 1024 * 1024;
/** Reconnect delay suggested to clients (`retry:`), in ms. */
const RETRY_MS = 1000;

export interface ConvictionRouteContext extends Pick<RouteContext, 'auth' | 'limiter'> {
  readonly convictions: ConvictionLog;
  readonly log: Logger;
  /** How often an open stream's key is checked again (the key cache's lifetime). */
  readonly recheckMs: number;
}

/** The SSE text of one event. */
export function eventText(event: ConvictionEvent): string {
  const data = event.kind === 'changes' ? JSON.stringify(event.changes) : '{}';
  return `id: ${event.id}\nevent: ${event.kind}\ndata: ${data}\n\n`;
}

/**
 * Runs `change` (a write that may change the verdicts of `items`) and publishes the items whose
 * verdict it changed. Publishing never fails the write: a gateway that misses an event still
 * learns within its cache time.
 */
export interface ChangeContext {
  readonly engine: ReputationEngine;
  readonly convictions: ConvictionLog;
  readonly log: Logger;
  readonly metrics: Pick<ServiceMetrics, 'convictionsPublished'>;
}

export async function recordChanges(context: ChangeContext, items: readonly string[], change: () => Promise<void>): Promise<void> {
  const { engine, convictions, log } = context;
  const unique = [...new Set(items)];
  if (unique.length === 0) return change();
  const verdicts = (results: readonly LookupResult[]): Map<string, string> => new Map(results.map((r) => [r.item, r.verdict]));
  const before = verdicts(await engine.lookup(unique));
  await change();
  const after = await engine.lookup(unique);
  const changed: VerdictChange[] = after.filter((r) => before.get(r.item) !== r.verdict).map((r) => ({ item: r.item, verdict: r.verdict }));
  try {
    await convictions.publish(changed);
    context.metrics.convictionsPublished.inc(changed.length);
  } catch (error) {
    log.warn({ event: 'reputation.convictions_publish_failed', items: changed.length, err: (error as Error).message }, 'verdict changes not published to the convictions stream');
  }
}

/** Ends every open stream: a closing service must not wait for gateways that never hang up. */
export interface OpenStreams {
  closeAll(): void;
}

export function registerConvictionRoutes(app: FastifyInstance, context: ConvictionRouteContext): OpenStreams {
  const streams = new Set<() => void>();
  app.get('/v1/convictions', { config: { role: 'sensor' } }, async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers['last-event-id'];
    const lastEventId = typeof header === 'string' && header.trim() !== '' ? header.trim() : null;
    const socket = reply.raw;
    let open = true;
    const write = (text: string): void => {
      if (open) socket.write(text);
    };
    // Live events go through `deliver` once the stream can be closed; until then, written as they come.
    let deliver = write;
    const subscription = await context.convictions.subscribe(lastEventId, (event) => deliver(eventText(event)));
    reply.hijack();
    socket.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    socket.write(`retry: ${RETRY_MS}\n: connected\n\n`);
    for (const event of subscription.missed) write(eventText(event));
    const keyId = request.apiKey?.id ?? null;
    context.log.info({ event: 'reputation.convictions_connected', key: keyId, lastEventId, missed: subscription.missed.length }, 'a gateway follows the convictions stream');
    const authorization = request.headers.authorization;
    const close = (): void => {
      if (!open) return;
      open = false;
      clearInterval(heartbeat);
      clearInterval(recheck);
      streams.delete(close);
      subscription.unsubscribe();
      socket.end();
    };
    deliver = (text) => {
      write(text);
      // A client that does not read would have the service buffer every event for it: cut it
      // off; it reconnects with its Last-Event-ID and gets what it missed (or a reset).
      if (socket.writableLength > MAX_UNREAD_BYTES) close();
    };
    const heartbeat = setInterval(() => deliver(': ping\n\n'), HEARTBEAT_MS);
    const recheck = setInterval(() => {
      context.auth.authenticate(authorization, 'sensor').catch(() => {
        context.log.info({ event: 'reputation.convictions_key_refused', key: keyId }, 'convictions stream closed: its key is no longer accepted');
        close();
      });
    }, context.recheckMs);
    streams.add(close);
    request.raw.once('close', close);
    socket.once('close', close);
  });
  return {
    closeAll() {
      for (const close of [...streams]) close();
    },
  };
}
