/**
 * Metrics of a multi-worker gateway (node:cluster): the primary serves NIMBUS_METRICS_LISTEN and,
 * on each scrape, asks every worker for its registry and sums the counters (prom-client's
 * AggregatorRegistry). Loaded by the primary only when metrics are on: prom-client is ~10 MB of
 * the primary's memory, which otherwise only forks and supervises.
 */
import { AggregatorRegistry, type PrometheusContentType, type Registry } from 'prom-client';
import type { HostPort } from '../config/index.js';
import { startMetricsServer, type MetricsServer } from './metrics.js';

class ClusterRegistry extends AggregatorRegistry<PrometheusContentType> {
  override metrics(): Promise<string> {
    return this.clusterMetrics();
  }
}

/** Primary: the metrics endpoint, answered from every worker's registry. */
export function startClusterMetricsServer(listen: HostPort): Promise<MetricsServer> {
  return startMetricsServer(listen, new ClusterRegistry());
}

/** Worker: answer the primary's requests for this worker's registry. */
export function answerPrimaryMetricsRequests(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // The constructor installs the listener that answers the primary's metrics requests.
  void new AggregatorRegistry();
}
