/**
 * Statistics: every processed message becomes one durable local record; an uploader sends the
 * outbox to the reputation service only while the admin participates (src/stats/wire.ts decides
 * what leaves the host).
 */
import type { Config } from '../config/index.js';
import { NimbusError } from '../errors.js';
import type { Logger } from '../log.js';
import { maskUrl } from '../redact.js';
import type { GatewayMetrics } from './metrics.js';
import { RecordWriter } from './record-writer.js';
import { SampleKeeper, type SampleOutboxSummary } from './sample-outbox.js';
import { StatsStore, type SentBatch, type StoreReport } from './store.js';
export type { SentBatch } from './store.js';
import { ClientTransports, type StatsTransport } from './transport.js';
import type { StatsInput } from './types.js';
import { Uploader, participates, type UploaderState } from './uploader.js';

export type { StatsInput, LocalRecord, MessageAction } from './types.js';
export type { StatsTransport } from './transport.js';
export { ClientTransports, failureOf } from './transport.js';
export { isSendableFingerprint, toWireRecord, STATEMENT, NEVER_SENT } from './wire.js';
export { sampleCapture, selectSamples, type Sample } from './samples.js';
export { createGatewayMetrics, startMetricsServer, lookupMetricsObserver, countMessage, BREAKER_STATES, type GatewayMetrics, type MetricsServer } from './metrics.js';

const PRUNE_INTERVAL_MS = 3_600_000;

export interface StatisticsOptions {
  /** Replaces the HTTP transport (tests; or an adapter over the reputation client). */
  readonly transport?: (config: Config) => StatsTransport;
  readonly metrics?: GatewayMetrics;
  /** Start the uploader (default true); `nimbus stats` only reads. */
  readonly upload?: boolean;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  readonly idleMs?: number;
}

export interface StatsSummary extends StoreReport {
  readonly participation: Config['participation'];
  readonly statementAccepted: boolean;
  /** This process's uploader; null in a process that only reads (`nimbus stats`). */
  readonly uploader: UploaderState | null;
  readonly backlog: number;
  readonly dropped: number;
  readonly uploaded: number;
  readonly lastUpload: string | null;
  readonly lastError: string | null;
  /** Attachment samples (extended): waiting for upload, uploaded, dropped. */
  readonly samples: SampleOutboxSummary;
}

export interface Statistics {
  /** Resolves once the record is on disk (stats and outbox). */
  record(input: StatsInput): Promise<void>;
  summary(options?: { days?: number; top?: number }): StatsSummary;
  /** The last batches the service acknowledged, bodies as sent, newest first. */
  sentBatches(): SentBatch[];
  reload(config: Config): void;
  close(): Promise<void>;
}

export function openStatistics(config: Config, log: Logger, options: StatisticsOptions = {}): Statistics {
  const statsLog = log.child({ component: 'stats' });
  const bounds = (c: Config) => ({ dataDir: c.dataDir, outboxMaxRecords: c.outboxMaxRecords, outboxMaxAgeDays: c.outboxMaxAgeDays, statsRetentionDays: c.statsRetentionDays });
  const store = new StatsStore(bounds(config));
  const metrics = options.metrics;
  let current = config;
  const dropped = (n: number, why: string): void => {
    if (n <= 0) return;
    metrics?.recordsDropped.inc(n);
    statsLog.warn({ event: 'stats.outbox.dropped', records: n, why }, `statistics outbox ${why}: ${n} oldest records dropped`);
  };
  dropped(store.prune(), 'age bound');
  metrics?.backlog.set(store.backlog());
  if (metrics) metrics.backlogSource = () => store.outboxSize();
  // `nimbus stats` (upload: false) only reads, and never deletes samples a gateway is keeping.
  const samples = new SampleKeeper(config, statsLog, { readOnly: options.upload === false });
  const transports = new ClientTransports();
  const uploader =
    options.upload === false
      ? null
      : new Uploader(store, statsLog, config, {
          transport: options.transport ?? ((c) => transports.for(c)),
          ...(options.backoffBaseMs !== undefined ? { backoffBaseMs: options.backoffBaseMs } : {}),
          ...(options.backoffMaxMs !== undefined ? { backoffMaxMs: options.backoffMaxMs } : {}),
          ...(options.idleMs !== undefined ? { idleMs: options.idleMs } : {}),
          ...(metrics ? { metrics } : {}),
          ...(samples.outbox ? { samples: samples.outbox } : {}),
        });
  // Created at the first record: `nimbus stats` only reads and needs no thread.
  let writer: RecordWriter | null = null;
  const pruner = setInterval(() => {
    dropped(store.prune(), 'age bound');
    samples.prune();
  }, PRUNE_INTERVAL_MS);
  pruner.unref();
  let closed = false;

  return {
    async record({ samples: captured, ...input }) {
      if (closed) throw new NimbusError('STATS_CLOSED', 'statistics record after close()');
      // On disk before the record, so both are before the sender's reply.
      if (captured) samples.keep(captured, current);
      writer ??= new RecordWriter(bounds(current));
      // synchronous=FULL in the writer thread: the transaction is on disk when this resolves.
      const result = await writer.write(input, !participates(current));
      dropped(result.dropped, 'full');
      // The backlog gauge is read at each scrape (backlogSource), not set here: a read of the
      // outbox counter per message was ~1% of a gateway worker's CPU (profile, bench relay).
      uploader?.notify();
    },
    summary({ days = 14, top = 10 } = {}) {
      return {
        participation: current.participation,
        statementAccepted: current.acceptStatement,
        uploader: uploader?.state ?? null,
        backlog: store.backlog(),
        dropped: store.counter('dropped'),
        uploaded: store.counter('uploaded'),
        lastUpload: store.meta('lastUpload'),
        // Masked when read: an error stored by an older version may hold a URL's password.
        lastError: maskUrl(store.meta('lastError')),
        samples: samples.summary(),
        ...store.report(days, top),
      };
    },
    sentBatches: () => store.sentBatches(),
    reload(config) {
      current = config;
      store.setBounds(bounds(config));
      writer?.setBounds(bounds(config));
      uploader?.reload(config);
      // After the uploader stopped sending them: leaving extended deletes what waits.
      samples.reload(config);
    },
    async close() {
      if (closed) return;
      closed = true;
      if (metrics) metrics.backlogSource = null;
      clearInterval(pruner);
      await writer?.close();
      await uploader?.close();
      samples.close();
      transports.close();
      store.close();
    },
  };
}
