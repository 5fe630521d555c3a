/**
 * Prometheus metrics of a gateway: one Registry per gateway (never the global default
 * registry, so two gateways in one test process do not collide), updated through the typed
 * handles below by the gateway, the lookup code and the statistics uploader.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { HostPort } from '../config/index.js';

export const BREAKER_STATES = { closed: 0, half_open: 1, open: 2 } as const;

export interface GatewayMetrics {
  readonly registry: Registry;
  /** labels: verdict (spam|bulk|ham|unknown), action (deliver|tag|reject|…) */
  readonly messages: Counter<'verdict' | 'action'>;
  /** label outcome (scanned|timeout|failed): a timeout or failure means the verdict was `unknown`. */
  readonly scans: Counter<'outcome'>;
  /** `nimbus milter`: messages answered by NIMBUS_MILTER_ON_ERROR because Nimbus failed; label reason (scan-failed|scan-timeout|internal|quarantine-failed). */
  readonly milterFailures: Counter<'reason'>;
  /** Seconds per lookup request to the service; label outcome (ok|cached|timeout|error|breaker-open|auth-rejected|disabled). */
  readonly lookupLatency: Histogram<'outcome'>;
  /** label result (hit|miss) */
  readonly lookupCache: Counter<'result'>;
  /** 0 closed, 1 half-open, 2 open (BREAKER_STATES). */
  readonly breakerState: Gauge;
  /** Statistics records waiting in the outbox. */
  readonly backlog: Gauge;
  /**
   * Read at each scrape when set (openStatistics sets it): the outbox is shared by the gateway
   * workers, so a value set by one worker at its last record goes stale when another uploads.
   */
  backlogSource: (() => number) | null;
  /** label kind (auth|network|http) */
  readonly uploadErrors: Counter<'kind'>;
  /** Records uploaded and acknowledged by the service. */
  readonly recordsUploaded: Counter;
  /** Outbox records dropped by the size or age bound. */
  readonly recordsDropped: Counter;
}

export function createGatewayMetrics(options: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'nimbus_' });
  const registers = [registry];
  const metrics: GatewayMetrics = {
    registry,
    messages: new Counter({ name: 'nimbus_messages_total', help: 'Messages processed, by verdict and action', labelNames: ['verdict', 'action'], registers }),
    scans: new Counter({ name: 'nimbus_scans_total', help: 'Scans by outcome: scanned, timeout (NIMBUS_SCAN_TIMEOUT_MS ran out), failed', labelNames: ['outcome'], registers }),
    milterFailures: new Counter({ name: 'nimbus_milter_failures_total', help: 'Milter messages answered by NIMBUS_MILTER_ON_ERROR because Nimbus failed, by reason', labelNames: ['reason'], registers }),
    lookupLatency: new Histogram({
      name: 'nimbus_lookup_duration_seconds',
      help: 'Reputation lookup latency',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2],
      registers,
    }),
    lookupCache: new Counter({ name: 'nimbus_lookup_cache_total', help: 'Lookup cache hits and misses', labelNames: ['result'], registers }),
    // Gauges of state shared by gateway workers (one outbox, one service): the primary's aggregate
    // of the workers' values is their max, not their sum (src/commands/gateway.ts).
    breakerState: new Gauge({ name: 'nimbus_lookup_breaker_state', help: 'Lookup circuit breaker: 0 closed, 1 half-open, 2 open', aggregator: 'max', registers }),
    backlog: new Gauge({
      name: 'nimbus_stats_backlog_records',
      help: 'Statistics records waiting for upload',
      aggregator: 'max',
      registers,
      collect() {
        try {
          if (metrics.backlogSource) this.set(metrics.backlogSource());
        } catch {
          // The store is closing: the last value stands.
        }
      },
    }),
    backlogSource: null,
    uploadErrors: new Counter({ name: 'nimbus_stats_upload_errors_total', help: 'Failed statistics uploads', labelNames: ['kind'], registers }),
    recordsUploaded: new Counter({ name: 'nimbus_stats_uploaded_records_total', help: 'Statistics records acknowledged by the service', registers }),
    recordsDropped: new Counter({ name: 'nimbus_stats_dropped_records_total', help: 'Outbox records dropped by the size or age bound', registers }),
  };
  return metrics;
}

/**
 * Adapts the registry to the lookup code's observer (src/scan/lookups.ts LookupObserver):
 * structural types, so this module does not depend on the verdict part.
 */
export function lookupMetricsObserver(metrics: GatewayMetrics): {
  remoteLookup(outcome: string, ms: number): void;
  cacheHits(hits: number, misses: number): void;
  breakerState(state: 'closed' | 'open' | 'half-open'): void;
} {
  return {
    remoteLookup(outcome, ms) {
      metrics.lookupLatency.observe({ outcome }, ms / 1000);
    },
    cacheHits(hits, misses) {
      if (hits > 0) metrics.lookupCache.inc({ result: 'hit' }, hits);
      if (misses > 0) metrics.lookupCache.inc({ result: 'miss' }, misses);
    },
    breakerState(state) {
      metrics.breakerState.set(state === 'half-open' ? BREAKER_STATES.half_open : BREAKER_STATES[state]);
    },
  };
}

/** Counts one processed message (the gateway's observer calls this). */
export function countMessage(metrics: GatewayMetrics, verdict: string, action: string): void {
  metrics.messages.inc({ verdict, action });
}

export interface MetricsServer {
  readonly address: HostPort;
  close(): Promise<void>;
}

/** GET /metrics on NIMBUS_METRICS_LISTEN; everything else is 404. */
export async function startMetricsServer(listen: HostPort, registry: Registry): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const info = server.address() as AddressInfo;
  return {
    address: { host: info.address, port: info.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
