/**
 * The reputation service (`nimbus reputation`): fastify over the engine. Owns one metrics
 * registry, one key cache and one rate limiter per instance, so several instances can live in
 * one process (tests, proxy in front of upstream).
 */
import Fastify, { type FastifyError } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { OpenedReputation } from './engine-types.js';
import { Authenticator } from './service/auth.js';
import { ERROR_CODES, HTTP, HttpError } from './service/errors.js';
import { ServiceMetrics } from './service/metrics.js';
import { openConfiguredReputation } from './service/open-store.js';
import { UpstreamProxy } from './service/proxy.js';
import { RateLimiter } from './service/rate-limit.js';
import { registerFingerprintRoutes } from './service/fingerprint-routes.js';
import { registerRoutes } from './service/routes.js';
import { registerSampleRoutes } from './service/sample-routes.js';
import { openSampleStore, type SampleStore } from './service/samples.js';

/** Largest request body: a full report batch (5,000 records) fits well below this. */
export const BODY_LIMIT_BYTES = 10 * 1024 * 1024;
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
  const metrics = new ServiceMetrics();
  let proxy: UpstreamProxy | null = config.upstreamUrl ? new UpstreamProxy(config, log, metrics) : null;
  let upstream = `${config.upstreamUrl} ${config.upstreamKey}`;

  const app = Fastify({ bodyLimit: BODY_LIMIT_BYTES, logger: false, forceCloseConnections: 'idle' });

  app.addHook('onRequest', async (request) => {
    (request as unknown as { startedAt: bigint }).startedAt = process.hrtime.bigint();
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const started = (request as unknown as { startedAt?: bigint }).startedAt;
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    if (started !== undefined) metrics.latency.observe({ route, method: request.method }, Number(process.hrtime.bigint() - started) / 1e9);
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
      log.error({ event: 'request_failed', err: error, route: request.routeOptions.url }, 'request failed');
      reply.code(HTTP.INTERNAL).send({ error: ERROR_CODES.SERVER_ERROR, message: 'internal error (see the service log)' });
    }
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(HTTP.NOT_FOUND).send({ error: ERROR_CODES.NOT_FOUND, message: `no route ${request.method} ${request.url}` });
  });

  const auth = new Authenticator(store.keys, KEY_CACHE_MS);
  const limiter = new RateLimiter();
  registerRoutes(app, { opened: store, auth, limiter, metrics, proxy: () => proxy });
  registerFingerprintRoutes(app, { opened: store, auth, limiter });
  // Samples are kept here, never forwarded upstream in proxy mode.
  registerSampleRoutes(app, { auth, limiter, samples, maxBytes: config.sampleMaxBytes });

  try {
    await app.listen({ host: config.httpListen.host, port: config.httpListen.port });
  } catch (error) {
    await samples.close();
    if (owned) await store.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.httpListen.port;
  const host = config.httpListen.host.includes(':') ? `[${config.httpListen.host}]` : config.httpListen.host;
  const url = `http://${host}:${port}`;
  log.info({ event: 'reputation_listening', url, store: config.store, upstream: config.upstreamUrl }, 'reputation service listening');

  let closed: Promise<void> | null = null;
  return {
    url,
    close() {
      closed ??= (async () => {
        await app.close();
        proxy?.close();
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
        proxy = next.upstreamUrl ? new UpstreamProxy(next, log, metrics) : null;
        upstream = `${next.upstreamUrl} ${next.upstreamKey}`;
      } else proxy?.reload(next);
      log.info({ event: 'reputation_reloaded', upstream: next.upstreamUrl, participation: next.participation }, 'configuration reloaded');
    },
  };
}
