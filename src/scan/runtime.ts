/**
 * Assembles what a front (the relay, the milter) runs with beyond its protocol: the embedded
 * reputation engine, the service client when participation allows, lookups, feedback, the
 * scanner, statistics, metrics and the quarantine; and re-assembles the parts that depend on
 * configuration on SIGHUP.
 *
 * Participation is decided here, once per configuration: with `off` (or no accepted statement)
 * no client exists at all, so nothing can be sent by mistake.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { DnsLists } from '../dns/lists.js';
import { DnsResolver } from '../dns/resolver.js';
import type { Fingerprint } from '../fingerprint/types.js';
import { ImageHashCache } from '../fingerprint/image-cache.js';
import { makePrivateDir } from '../private-files.js';
import { Quarantine, quarantineDir } from '../quarantine/store.js';
import { maskUrl } from '../redact.js';
import { createReputationClient, type ReputationClient } from '../reputation/client.js';
import type { OpenedReputation } from '../reputation/engine-types.js';
import { openReputation } from '../reputation/open.js';
import {
  createGatewayMetrics,
  isSendableFingerprint,
  lookupMetricsObserver,
  openStatistics,
  sampleCapture,
  startMetricsServer,
  type GatewayMetrics,
  type MetricsServer,
  type Statistics,
} from '../stats/index.js';
import { Authenticator } from './authentication.js';
import type { ConvictionStream } from '../reputation/convictions-client.js';
import { followConvictions } from './convictions.js';
import { Feedback } from './feedback.js';
import { LocalLearner } from './local-learner.js';
import { ReputationLookups } from './lookups.js';
import { HistoryWriter } from '../stats/history-writer.js';
import { MessageRecorder } from './recorder.js';
import { Scanner, type ScanParts } from './scanner.js';
import { BayesClassifier } from '../bayes/classify.js';
import { BayesStore } from '../bayes/store.js';

/** The embedded engine's file inside NIMBUS_DATA_DIR (shared by gateway workers and `nimbus report`). */
export function localReputationPath(config: Pick<Config, 'dataDir'>): string {
  return join(config.dataDir, 'local-reputation.sqlite');
}

export async function openLocalReputation(config: Pick<Config, 'dataDir'>): Promise<OpenedReputation> {
  makePrivateDir(config.dataDir);
  return openReputation({ store: 'sqlite', path: localReputationPath(config), backgroundCheckpoints: false });
}

/** The service client, or null when this configuration must not talk to a service. */
export function serviceClientFor(config: Config): ReputationClient | null {
  if (config.participation === 'off' || !config.acceptStatement || config.reputationUrl === null) return null;
  return createReputationClient({ url: config.reputationUrl, key: config.reputationKey ?? '', timeoutMs: Math.max(config.lookupTimeoutMs, 1) });
}

export function sendableIn(config: Config): (fingerprint: Fingerprint) => boolean {
  const mode = config.participation;
  return (fingerprint) => isSendableFingerprint(fingerprint.text, mode);
}

/** Feedback wired as the configuration allows (also used by `nimbus report`). */
export function feedbackFor(config: Config, local: OpenedReputation, client: ReputationClient | null, log: Logger): Feedback {
  return new Feedback({ local: local.engine, remote: client, sendable: sendableIn(config), timeoutMs: config.lookupTimeoutMs, log });
}

/** The resolver a configuration needs: `current` when its servers and budget are the same, else a new one. */
export function resolverFor(config: Pick<Config, 'dnsServers' | 'dnsTimeoutMs'>, current: DnsResolver | null = null): DnsResolver {
  const same = current !== null && current.timeoutMs === config.dnsTimeoutMs && JSON.stringify(current.configured) === JSON.stringify(config.dnsServers);
  return same ? current : new DnsResolver({ servers: config.dnsServers, timeoutMs: config.dnsTimeoutMs });
}

/** SPF, DKIM, DMARC and ARC as a configuration asks (NIMBUS_AUTH_CHECKS), or null when off. */
export function authenticatorFor(config: Pick<Config, 'authChecks' | 'hostname'>, resolver: DnsResolver, log: Logger): Authenticator | null {
  return config.authChecks ? new Authenticator({ resolver, hostname: config.hostname, log }) : null;
}

/** The public DNS lists of a configuration, or null when it has none. */
export function dnsListsFor(config: Pick<Config, 'dnsLists'>, resolver: DnsResolver, log: Logger): DnsLists | null {
  return config.dnsLists.length === 0 ? null : new DnsLists({ lists: config.dnsLists, resolver, log });
}

export interface ScanRuntime {
  readonly scanner: Scanner;
  readonly recorder: MessageRecorder;
  readonly quarantine: Quarantine;
  readonly metrics: GatewayMetrics;
  readonly metricsServer: MetricsServer | null;
  readonly stats: Statistics;
  readonly local: OpenedReputation;
  reload(config: Config): void;
  close(): Promise<void>;
}

export async function openScanRuntime(config: Config, log: Logger): Promise<ScanRuntime> {
  const local = await openLocalReputation(config);
  // The classifier's counts live in the engine's file (`nimbus learn` writes them); read only here.
  const bayesStore = new BayesStore(localReputationPath(config));
  const bayes = new BayesClassifier(bayesStore);
  const metrics = createGatewayMetrics();
  const stats = openStatistics(config, log, { metrics });
  const learner = new LocalLearner(local.engine, log.child({ component: 'local-learning' }));
  const observer = lookupMetricsObserver(metrics);
  let client: ReputationClient | null = null;
  // Kept across reloads (a reload only replaces it when NIMBUS_IMAGE_HASH_CACHE changes size).
  let imageHashes: ImageHashCache | undefined;
  // Kept across reloads with its cache, unless NIMBUS_DNS_SERVERS or NIMBUS_DNS_TIMEOUT_MS change;
  // a replaced one is not cancelled: scans still using it finish their queries.
  let resolver: DnsResolver | null = null;
  // Made anew with the lookups on reload: a new key, URL or participation gets a new stream (or none).
  let convictions: ConvictionStream | null = null;

  const parts = (current: Config): ScanParts => {
    if ((imageHashes?.max ?? 0) !== current.imageHashCache) imageHashes = current.imageHashCache > 0 ? new ImageHashCache(current.imageHashCache) : undefined;
    client?.close();
    client = serviceClientFor(current);
    const lookups = new ReputationLookups({
      local: local.engine,
      remote: client,
      sendable: sendableIn(current),
      timeoutMs: current.lookupTimeoutMs,
      shortTtlMs: current.unknownCacheMs,
      log: log.child({ component: 'lookups' }),
      observer,
    });
    convictions?.close();
    convictions = followConvictions(current, log.child({ component: 'convictions' }), () => lookups);
    resolver = resolverFor(current, resolver);
    return {
      policy: current,
      lookups,
      feedback: feedbackFor(current, local, client, log.child({ component: 'feedback' })),
      sampleMaxBytes: sampleCapture(current),
      imageHashes,
      // Made anew on reload, so a refused list is said again once after its configuration changed.
      dnsLists: dnsListsFor(current, resolver, log.child({ component: 'dns' })),
      authentication: authenticatorFor(current, resolver, log.child({ component: 'authentication' })),
      bayes,
    };
  };

  const history = new HistoryWriter({ dataDir: config.dataDir, retentionDays: config.historyRetentionDays, log: log.child({ component: 'history' }) });
  const scanner = new Scanner({ ...parts(config), log: log.child({ component: 'scan' }), observer: { scanned: (outcome) => metrics.scans.inc({ outcome }) } });
  let metricsServer: MetricsServer | null = null;
  try {
    metricsServer = config.metricsListen ? await startMetricsServer(config.metricsListen, metrics.registry) : null;
  } catch (error) {
    history.close();
    await stats.close();
    bayesStore.close();
    await local.close();
    throw error;
  }
  log.info(
    {
      event: 'scan.runtime_ready',
      participation: config.participation,
      service: config.participation === 'off' ? null : maskUrl(config.reputationUrl),
      metrics: metricsServer?.address ?? null,
      dnsLists: config.dnsLists.map((list) => list.name),
      authChecks: config.authChecks,
    },
    config.participation === 'off' ? 'local reputation only (NIMBUS_PARTICIPATION=off)' : `participating (${config.participation}) with ${maskUrl(config.reputationUrl)}`,
  );
  const metricsListen = config.metricsListen;

  return {
    scanner,
    recorder: new MessageRecorder({ stats, learner, metrics, log, history }),
    quarantine: new Quarantine(quarantineDir(config)),
    metrics,
    metricsServer,
    stats,
    local,
    reload(next) {
      // Opting out takes effect here: the old client is closed and no new one exists.
      scanner.reload(parts(next));
      stats.reload(next);
      history.setRetention(next.historyRetentionDays);
      if (JSON.stringify(next.metricsListen) !== JSON.stringify(metricsListen)) {
        log.warn({ event: 'process.reload_needs_restart', variable: 'NIMBUS_METRICS_LISTEN' }, 'NIMBUS_METRICS_LISTEN changes on restart');
      }
    },
    async close() {
      await metricsServer?.close();
      history.close();
      await stats.close();
      convictions?.close();
      client?.close();
      resolver?.close();
      await learner.drain();
      bayesStore.close();
      await local.close();
    },
  };
}

/** Commands wait longer for the service than the SMTP path: an admin at a terminal, not a sender. */
export const COMMAND_SERVICE_TIMEOUT_MS = 10_000;

export interface CommandReputation {
  readonly scanner: Scanner;
  /** The embedded engine (`nimbus report --forget`, `learn`, `verdict`). */
  readonly local: OpenedReputation;
  readonly feedback: Feedback;
  /** DKIM and DMARC of a reported message (`nimbus report`), when NIMBUS_AUTH_CHECKS is on. */
  readonly authentication: Authenticator | null;
  /** True when this configuration exchanges with a service. */
  readonly participating: boolean;
  close(): Promise<void>;
}

/**
 * What `nimbus check` and `nimbus report` use: the same engine file, service and scan as the
 * fronts; the service is waited for longer, and the scan's own budget with it.
 */
export async function openCommandReputation(config: Config, log: Logger): Promise<CommandReputation> {
  const local = await openLocalReputation(config);
  const timeoutMs = Math.max(config.lookupTimeoutMs, COMMAND_SERVICE_TIMEOUT_MS);
  const client = serviceClientFor({ ...config, lookupTimeoutMs: timeoutMs });
  const lookups = new ReputationLookups({ local: local.engine, remote: client, sendable: sendableIn(config), timeoutMs, log, cacheSize: 1000 });
  const feedback = new Feedback({ local: local.engine, remote: client, sendable: sendableIn(config), timeoutMs, log });
  const policy = { ...config, scanTimeoutMs: Math.max(config.scanTimeoutMs, timeoutMs * 2) };
  const resolver = resolverFor(config);
  // Spam traps are a front's business: a command's message has no envelope to trap.
  const authentication = authenticatorFor(config, resolver, log);
  const bayesStore = new BayesStore(localReputationPath(config));
  const bayes = new BayesClassifier(bayesStore);
  const scanner = new Scanner({ policy, lookups, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, dnsLists: dnsListsFor(config, resolver, log), authentication, bayes, log });
  return {
    scanner,
    local,
    feedback,
    authentication,
    participating: client !== null,
    async close() {
      client?.close();
      resolver.close();
      bayesStore.close();
      await local.close();
    },
  };
}
