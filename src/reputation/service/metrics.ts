/**
 * Prometheus metrics of one service instance: its own registry (two instances in one process,
 * as in the proxy test, must not collide on the global one).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly latency: Histogram<'route' | 'method'>;
  readonly lookups: Counter;
  readonly recordsIngested: Counter;
  readonly upstreamFailures: Counter;
  readonly proxyCacheHits: Counter;
  readonly convictionsPublished: Counter;
  readonly convictionStreams: Gauge;
  /** Read when /metrics is asked: the gateways following this instance's convictions stream. */
  streamsNow: () => number = () => 0;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'nimbus_reputation_' });
    this.requests = new Counter({
      name: 'nimbus_reputation_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers: [this.registry],
    });
    this.latency = new Histogram({
      name: 'nimbus_reputation_request_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route', 'method'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: [this.registry],
    });
    this.lookups = new Counter({ name: 'nimbus_reputation_lookups_total', help: 'Fingerprints looked up', registers: [this.registry] });
    this.recordsIngested = new Counter({
      name: 'nimbus_reputation_records_ingested_total',
      help: 'Report records counted (duplicates of a batch excluded)',
      registers: [this.registry],
    });
    this.upstreamFailures = new Counter({
      name: 'nimbus_reputation_upstream_failures_total',
      help: 'Proxy mode: upstream calls that failed (answered from local data instead)',
      registers: [this.registry],
    });
    this.proxyCacheHits = new Counter({
      name: 'nimbus_reputation_proxy_cache_hits_total',
      help: 'Proxy mode: lookups answered from the upstream answer cache',
      registers: [this.registry],
    });
    this.convictionsPublished = new Counter({
      name: 'nimbus_reputation_convictions_published_total',
      help: 'Fingerprints whose verdict changed, published to GET /v1/convictions',
      registers: [this.registry],
    });
    const streams = (): number => this.streamsNow();
    this.convictionStreams = new Gauge({
      name: 'nimbus_reputation_conviction_streams',
      help: 'Gateways (and proxies) connected to this instance\'s GET /v1/convictions',
      registers: [this.registry],
      collect() {
        this.set(streams());
      },
    });
  }
}
