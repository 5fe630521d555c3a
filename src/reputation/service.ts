/**
 * The reputation service (`nimbus reputation`): fastify over the engine. Owns one metrics
 * registry, one key cache and one rate limiter per instance, so several instances can live in
 * one process (tests, proxy in front of upstream).
 */
import Fastify, { type FastifyError } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { maskCredentials, maskUrl } from '../redact.js';
import type { OpenedReputation } from './engine-types.js';
import { Authenticator } from './service/auth.js';
import { ERROR_CODES, HTTP, HttpError } from './service/errors.js';
import { registerReadinessRoute, STORE_RETRY_AFTER_S, StoreHealth } from './service/health.js';
import { ServiceMetrics } from './service/metrics.js';
import { openConfiguredReputation } from './service/open-store.js';
import { registerConvictionRoutes } from './service/conviction-routes.js';
import { MemoryConvictionLog, type ConvictionLog } from './service/convictions.js';
import { RedisConvictionLog } from './service/convictions-redis.js';
import { UpstreamProxy } from './service/proxy.js';
import { RateLimiter } from './service/rate-limit.js';
import { registerFingerprintRoutes } from './service/fingerprint-routes.js';
import { registerKeyRoutes } from './service/key-routes.js';
import { logRequest } from './service/request-log.js';
import { logRedisPersistence } from './service/redis-persistence.js';
import { registerAdmission, registerRoutes } from './service/routes.js';
import { registerSampleRoutes } from './service/sample-routes.js';
import { openSampleStore, type SampleStore } from './service/samples.js';

/** Largest request body: a full report batch (5,000 records) fits well below this. */
export const BODY_LIMIT_BYTES = 10 * 1024 * 1024;
/**
 * Longest path parameter (fastify's default is 100): a fingerprint in a path, as in
 * `PUT /v1/verdicts/{fingerprint}`, may be up to 2,048 characters (a body:minhash64 is 271),
 * each up to 3 when percent-encoded.
 */
export const MAX_PARAM_LENGTH = 3 * 2048;
/** How long a key lookup is cached: a revoked key is refused within this time. */
export const KEY_CACHE_MS = 5000;

export interface RunningReputationService {
  readonly url: string;
  close(): Promise<void>;
  reload(config: Config): void;
}

export async function startReputationService(config: Config, log: Logger, opened?: OpenedReputation): Promise<RunningReputationService> {
  const owned = opened === undefined;
  const store = opened ?? (await openConfiguredReputation(config, 'service'));
  let samples: SampleStore;
  try {
    samples = await openSampleStore(config);
  } catch (error) {
    if (owned) await store.close();
    throw error;
  }
  // With Redis, several instances share the store: the convictions log is a stream in it, so
  // every instance's gateways hear every instance's convictions.
  let convictions: ConvictionLog;
  try {
    convictions = config.store === 'redis' ? await RedisConvictionLog.open(config.redisUrls, log) : new MemoryConvictionLog();
  } catch (error) {
    await samples.close();
    if (owned) await store.close();
    throw error;
  }
  if (config.store === 'redis') await logRedisPersistence(config.redisUrls, log);
  const metrics = new ServiceMetrics();
  metrics.streamsNow = () => convictions.subscribers;
  const health = new StoreHealth(config.store, store, samples, log);
  let proxy: UpstreamProxy | null = config.upstreamUrl ? new UpstreamProxy(config, log, metrics, convictions) : null;
  let upstream = `${config.upstreamUrl} ${config.upstreamKey}`;

  const app = Fastify({ bodyLimit: BODY_LIMIT_BYTES, routerOptions: { maxParamLength: MAX_PARAM_LENGTH }, logger: false, forceCloseConnections: 'idle' });

  app.addHook('onRequest', async (request) => {
    (request as unknown as { startedAt: bigint }).startedAt = process.hrtime.bigint();
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const started = (request as unknown as { startedAt?: bigint }).startedAt;
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    const seconds = started === undefined ? 0 : Number(process.hrtime.bigint() - started) / 1e9;
    if (started !== undefined) metrics.latency.observe({ route, method: request.method }, seconds);
    logRequest(log, request, reply, seconds * 1000);
    // A request served while the store was marked down: see whether it is back (logged once).
    if (health.suspectedDown && reply.statusCode < HTTP.INTERNAL) health.unavailable();
  });

  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    if (error instanceof HttpError) {
      reply.headers(error.headers).code(error.status).send({ error: error.code, message: error.message });
      return;
    }
    const status = (error as FastifyError).statusCode ?? HTTP.INTERNAL;
    if (status === HTTP.PAYLOAD_TOO_LARGE) {
      // The sample route has its own limit (NIMBUS_SAMPLE_MAX_BYTES, base64-encoded).
      reply.code(status).send({ error: ERROR_CODES.TOO_LARGE, message: `request body over ${request.routeOptions.bodyLimit ?? BODY_LIMIT_BYTES} bytes` });
    } else if (status === HTTP.UNSUPPORTED) {
      reply.code(status).send({ error: ERROR_CODES.UNSUPPORTED, message: 'expected Content-Type: application/json' });
    } else if (status >= 400 && status < 500) {
      reply.code(status).send({ error: ERROR_CODES.BAD_REQUEST, message: `body: ${error.message}` });
    } else {
      // Failed because the store is unreachable: 503 (logged once by StoreHealth, not per request).
      const down = health.unavailable();
      if (down !== null) {
        reply.code(HTTP.UNAVAILABLE).header('retry-after', String(STORE_RETRY_AFTER_S));
        reply.send({ error: ERROR_CODES.STORE_UNAVAILABLE, message: `reputation store unavailable: ${down}; retry later` });
        return;
      }
      log.error({ event: 'reputation.request_failed', err: error, route: request.routeOptions.url }, 'request failed');
      reply.code(HTTP.INTERNAL).send({ error: ERROR_CODES.SERVER_ERROR, message: 'internal error (see the service log)' });
    }
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(HTTP.NOT_FOUND).send({ error: ERROR_CODES.NOT_FOUND, message: `no route ${request.method} ${request.url}` });
  });

  const auth = new Authenticator(store.keys, KEY_CACHE_MS);
  const limiter = new RateLimiter();
  registerAdmission(app, { auth, limiter });
  registerRoutes(app, { opened: store, auth, limiter, metrics, convictions, log, proxy: () => proxy });
  const streams = registerConvictionRoutes(app, { auth, limiter, convictions, log, recheckMs: KEY_CACHE_MS });
  registerFingerprintRoutes(app, { opened: store, auth, limiter });
  registerKeyRoutes(app, { opened: store, auth, limiter });
  // Samples are kept here, never forwarded upstream in proxy mode.
  registerSampleRoutes(app, { auth, limiter, samples, maxBytes: config.sampleMaxBytes });
  registerReadinessRoute(app, health);

  try {
    await app.listen({ host: config.httpListen.host, port: config.httpListen.port });
  } catch (error) {
    await convictions.close();
    await samples.close();
    if (owned) await store.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.httpListen.port;
  const host = config.httpListen.host.includes(':') ? `[${config.httpListen.host}]` : config.httpListen.host;
  const url = `http://${host}:${port}`;
  log.info(
    { event: 'reputation.listening', url, store: config.store, ...(config.store === 'redis' ? { redis: config.redisUrls.map(maskCredentials) } : {}), upstream: maskUrl(config.upstreamUrl) },
    'reputation service listening',
  );

  let closed: Promise<void> | null = null;
  return {
    url,
    close() {
      closed ??= (async () => {
        // Open streams never end by themselves: end them, or app.close() would wait for them.
        const closing = app.close();
        streams.closeAll();
        await closing;
        proxy?.close();
        await convictions.close();
        await samples.close();
        if (owned) await store.close();
      })();
      return closed;
    },
    reload(next: Config) {
      // Listen address and store need a restart; upstream and participation apply now.
      // A new upstream or key gets a new client and an empty cache (answers were the old one's).
      if (`${next.upstreamUrl} ${next.upstreamKey}` !== upstream) {
        proxy?.close();
        proxy = next.upstreamUrl ? new UpstreamProxy(next, log, metrics, convictions) : null;
        upstream = `${next.upstreamUrl} ${next.upstreamKey}`;
      } else proxy?.reload(next);
      log.info({ event: 'reputation.reloaded', upstream: maskUrl(next.upstreamUrl), participation: next.participation }, 'configuration reloaded');
    },
  };
}
