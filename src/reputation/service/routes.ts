/**
 * The /v1 routes. Each one: authenticate (401/403) and rate-limit per key (429) before its body
 * is read, validate the body against the wire schema (400 naming the field; nothing is touched
 * before that), then call the engine. A route names the key role it needs as route config
 * (`{config: {role}}`); one onRequest hook (registerAdmission) admits the request before fastify
 * reads and parses the body, so a request without a valid key costs no body (up to 10 MB) read
 * or parsed, and keyless floods do not slow keyed requests down.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { fingerprintMessage } from '../../fingerprint/index.js';
import type { z } from 'zod';
import { feedbackRequest, fingerprintText, lookupRequest, reportBatch, verdictOverride, type KeyRole } from '../api.js';
import type { OpenedReputation, StoredKey } from '../engine-types.js';
import type { Logger } from 'pino';
import type { Authenticator } from './auth.js';
import { recordChanges, type ChangeContext } from './conviction-routes.js';
import type { ConvictionLog } from './convictions.js';
import { ERROR_CODES, HTTP, HttpError } from './errors.js';
import type { ServiceMetrics } from './metrics.js';
import type { UpstreamProxy } from './proxy.js';
import type { RateLimiter } from './rate-limit.js';

export interface RouteContext {
  readonly opened: OpenedReputation;
  readonly auth: Authenticator;
  readonly limiter: RateLimiter;
  readonly metrics: ServiceMetrics;
  /** Where verdict changes go (GET /v1/convictions). */
  readonly convictions: ConvictionLog;
  readonly log: Logger;
  /** The current proxy (null when not in proxy mode); read per request so reload applies. */
  proxy(): UpstreamProxy | null;
}

export function validate<T>(schema: z.ZodType<T>, value: unknown, where = 'body'): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.slice(0, 5).map((issue) => `${[where, ...issue.path].join('.')}: ${issue.message}`);
  throw new HttpError(HTTP.BAD_REQUEST, ERROR_CODES.BAD_REQUEST, issues.join('; '));
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The key role a route needs: checked, with the key's rate, before the body is read. */
    role?: KeyRole;
  }
  interface FastifyRequest {
    /** The key admitted by the onRequest hook (routes with config.role), else null. */
    apiKey: StoredKey | null;
  }
}

/** The onRequest hook that admits requests to routes with `config.role`, before their body is read. */
export function registerAdmission(app: FastifyInstance, context: Pick<RouteContext, 'auth' | 'limiter'>): void {
  app.decorateRequest('apiKey', null);
  app.addHook('onRequest', async (request) => {
    const role = request.routeOptions.config.role;
    if (role !== undefined) request.apiKey = await authenticateAndLimit(context, request, role);
  });
}

/**
 * The key of a request with at least `role`: the one the onRequest hook admitted, or (a route
 * that declares no config.role) authenticated and rate-limited here, after its body was read.
 */
export async function admit(context: Pick<RouteContext, 'auth' | 'limiter'>, request: FastifyRequest, role: KeyRole): Promise<StoredKey> {
  if (request.apiKey !== null) {
    context.auth.authorize(request.apiKey, role);
    return request.apiKey;
  }
  request.apiKey = await authenticateAndLimit(context, request, role);
  return request.apiKey;
}

async function authenticateAndLimit(context: Pick<RouteContext, 'auth' | 'limiter'>, request: FastifyRequest, role: KeyRole): Promise<StoredKey> {
  const key = await context.auth.authenticate(request.headers.authorization, role);
  const wait = context.limiter.take(key.id, key.rateLimit);
  if (wait > 0) {
    throw new HttpError(HTTP.TOO_MANY_REQUESTS, ERROR_CODES.RATE_LIMITED, `key ${key.id} is over its rate of ${key.rateLimit} requests/s`, {
      'retry-after': String(wait),
    });
  }
  return key;
}

export function registerRoutes(app: FastifyInstance, context: RouteContext): void {
  const { opened, metrics } = context;
  const changes: ChangeContext = { engine: opened.engine, convictions: context.convictions, log: context.log, metrics };

  app.post('/v1/lookup', { config: { role: 'sensor' } }, async (request) => {
    await admit(context, request, 'sensor');
    const body = validate(lookupRequest, request.body);
    let results = await opened.engine.lookup(body.items);
    const proxy = context.proxy();
    if (proxy) results = await proxy.lookup(results);
    metrics.lookups.inc(body.items.length);
    return { results };
  });

  app.post('/v1/reports', { config: { role: 'sensor' } }, async (request) => {
    const key = await admit(context, request, 'sensor');
    const batch = validate(reportBatch, request.body);
    // The role decides what a trap record weighs (engine.ts recordObservations): weak evidence from
    // a sensor key, one voice from a reporter key, trusted from an admin key as its feedback is.
    // Trap hits are the records that can convict at once: their fingerprints go to the stream.
    const trapped = batch.records.filter((record) => record.action === 'trap').flatMap((record) => record.fingerprints);
    let result = { accepted: 0, duplicate: false };
    await recordChanges(changes, trapped, async () => {
      result = await opened.engine.ingest(batch.batchId, { id: key.id, weight: 1, role: key.role, trusted: key.role === 'admin' }, batch.records);
    });
    metrics.recordsIngested.inc(result.accepted);
    // A duplicate was forwarded the first time; upstream is idempotent by the same id anyway.
    const proxy = context.proxy();
    if (proxy && !result.duplicate) await proxy.forwardReport(batch);
    return { accepted: result.accepted, duplicate: result.duplicate };
  });

  app.post('/v1/feedback', { config: { role: 'reporter' } }, async (request) => {
    const key = await admit(context, request, 'reporter');
    const body = validate(feedbackRequest, request.body);
    let items: string[];
    if ('items' in body) items = body.items;
    else {
      const found = await fingerprintMessage(Buffer.from(body.message, 'utf8'), {});
      items = found.fingerprints.map((item) => item.text);
    }
    // An admin key belongs to whoever runs this service: at a private service that is the
    // organisation's own mail admin, whose one report should protect every gateway at once
    // (DESIGN: the admin is trusted). Reporter keys stay one voice among many.
    if (items.length > 0) await recordChanges(changes, items, () => opened.engine.feedback({ id: key.id, weight: 1, trusted: key.role === 'admin' }, body.label, items));
    const proxy = context.proxy();
    if (proxy) await proxy.forwardFeedback(body.label, items);
    return { accepted: items.length };
  });

  app.put<{ Params: { fingerprint: string } }>('/v1/verdicts/:fingerprint', { config: { role: 'admin' } }, async (request) => {
    const key = await admit(context, request, 'admin');
    const item = validate(fingerprintText, request.params.fingerprint, 'params.fingerprint');
    const body = validate(verdictOverride, request.body);
    await recordChanges(changes, [item], () => opened.engine.setVerdict(item, body.verdict, { by: key.id, reason: body.reason }));
    return { item, verdict: body.verdict };
  });

  app.delete<{ Params: { fingerprint: string }; Querystring: { reason?: unknown } }>('/v1/verdicts/:fingerprint', { config: { role: 'admin' } }, async (request) => {
    const key = await admit(context, request, 'admin');
    const item = validate(fingerprintText, request.params.fingerprint, 'params.fingerprint');
    const reason = validate(verdictOverride.shape.reason, request.query.reason, 'query.reason');
    let removed = false;
    await recordChanges(changes, [item], async () => {
      removed = await opened.engine.clearVerdict(item, { by: key.id, reason });
    });
    return { item, removed };
  });

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
