/**
 * The gateway's supervisor (node:cluster primary) for NIMBUS_WORKERS > 1 (`nimbus milter` uses it
 * too, each worker then a whole milter: src/milter/process.ts): it forks the workers,
 * forwards signals and replaces dead workers. Each worker is a whole gateway (process.ts: SMTP
 * server, embedded engine, statistics) and they share the listening socket, each accepting
 * connections from it itself (cluster's SCHED_NONE: about 9% less CPU per message than the
 * primary accepting and handing every connection over, with mail spread evenly in
 * `npm run bench -- relay`; NODE_CLUSTER_SCHED_POLICY=rr restores round-robin). A connection and
 * all its messages stay in one worker. The SQLite files are shared by all workers (WAL,
 * busy_timeout, IMMEDIATE write transactions).
 *   - systemd signals the primary (ExecReload, KillSignal): it forwards SIGTERM and SIGHUP to its
 *     workers, and after SIGTERM exits 0 once every worker has finished its messages in flight.
 *   - A worker that dies unexpectedly is replaced, after 1 s, doubled for every further early
 *     death up to 30 s; the delay is back to 1 s after a worker that ran a minute.
 *   - A worker that fails during the first start (port taken, bad data dir) stops the whole
 *     gateway with its exit code: restarting would fail the same way, and systemd should see it.
 *   - NIMBUS_METRICS_LISTEN is served by the primary only: on each scrape it asks every worker
 *     for its registry (prom-client's AggregatorRegistry) and sums the counters.
 *
 * The primary loads only this module's imports: not the SMTP stack, sharp or SQLite (process.ts
 * imports them), which would cost it as much memory as a worker, nor prom-client unless metrics
 * are on.
 */
import cluster, { type Worker } from 'node:cluster';
import { loadConfigForReload, reloadProblems, type Config } from '../config/index.js';
import { createLogger } from '../log.js';
import type { MetricsServer } from '../stats/metrics.js';
import { READY_MESSAGE } from './process-signals.js';

/**
 * V8's young generation for the workers (MB per semi-space; node's default is 16). Buffers that
 * carried a message are freed by the next young-generation collection, so a smaller one frees
 * them sooner: `npm run bench -- relay` measured 200 concurrent 1 MB messages at 462-507 MB
 * instead of 541-599 MB, one 50 MB message at 286-289 instead of 295-300, with no measurable
 * change of CPU per message on the text or image mix (alternating runs of both settings).
 * An admin's own --max-semi-space-size (command line or NODE_OPTIONS) wins.
 */
export const WORKER_SEMI_SPACE_MB = 4;

/** Delay before a dead worker is replaced; doubled per consecutive early death. */
export const RESTART_BASE_MS = 1_000;
export const RESTART_MAX_MS = 30_000;
/** A worker that ran this long had nothing wrong at start: its replacement waits RESTART_BASE_MS. */
export const STABLE_AFTER_MS = 60_000;

interface Slot {
  readonly index: number;
  worker: Worker | null;
  ready: boolean;
  startedAt: number;
  restartDelayMs: number;
  restartTimer: NodeJS.Timeout | null;
  /** A SIGHUP that came while this worker was starting: delivered once it is ready. */
  reloadWhenReady: boolean;
}

/** The primary's node flags for its workers, with WORKER_SEMI_SPACE_MB unless a semi-space size is set already. */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string): string[] {
  const chosen = [...execArgv, nodeOptions].some((flag) => /--max[-_]semi[-_]space[-_]size/.test(flag));
  return chosen ? [...execArgv] : [...execArgv, `--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`];
}

/** The node:cluster primary: forks, forwards signals, replaces dead workers. */
export async function superviseGateway(config: Config, service: 'gateway' | 'milter' = 'gateway'): Promise<number> {
  const log = createLogger(config.logLevel, { service, role: 'primary' });
  const workersOf = (c: Config): number => (service === 'milter' ? c.milterWorkers : c.workers);
  const workers = workersOf(config);
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS ?? '') });
  let current = config;
  let metricsServer: MetricsServer | null = null;
  if (config.metricsListen) {
    // Loaded only when metrics are on: prom-client is most of what the primary would otherwise carry.
    const { startClusterMetricsServer } = await import('../stats/cluster-metrics.js');
    metricsServer = await startClusterMetricsServer(config.metricsListen);
  }
  log.info({ event: 'supervisor.workers_starting', workers, metrics: metricsServer?.address ?? null }, `starting ${workers} ${service} workers`);

  return new Promise<number>((resolve) => {
    const slots: Slot[] = Array.from({ length: workers }, (_, index) => ({
      index,
      worker: null,
      ready: false,
      startedAt: 0,
      restartDelayMs: RESTART_BASE_MS,
      restartTimer: null,
      reloadWhenReady: false,
    }));
    let allStarted = false;
    let stopping = false;
    let exitCode = 0;

    const finishIfDone = (): void => {
      if (!stopping || slots.some((slot) => slot.worker !== null)) return;
      void (metricsServer?.close() ?? Promise.resolve()).then(() => {
        log.info({ event: 'supervisor.stopped', exitCode }, 'all workers finished');
        resolve(exitCode);
      });
    };

    const stop = (signal: string, code = 0): void => {
      if (stopping) return;
      stopping = true;
      exitCode = code;
      log.info({ event: 'process.signal', signal }, 'stopping: workers finish their messages in flight');
      for (const slot of slots) {
        if (slot.restartTimer) clearTimeout(slot.restartTimer);
        slot.restartTimer = null;
        slot.worker?.process.kill('SIGTERM');
      }
      finishIfDone();
    };

    const fork = (slot: Slot): void => {
      slot.restartTimer = null;
      const worker = cluster.fork();
      slot.worker = worker;
      slot.ready = false;
      slot.startedAt = Date.now();
      worker.on('message', (message: unknown) => {
        if ((message as { type?: unknown } | null)?.type !== READY_MESSAGE) return;
        slot.ready = true;
        if (slot.reloadWhenReady) {
          slot.reloadWhenReady = false;
          worker.process.kill('SIGHUP');
        }
        if (!allStarted && slots.every((s) => s.ready)) {
          allStarted = true;
          log.info({ event: 'supervisor.workers_ready', workers: slots.map((s) => s.worker?.process.pid) }, `all ${service} workers listening`);
        }
      });
      worker.on('exit', (code: number | null, signal: string | null) => {
        const wasReady = slot.ready;
        slot.worker = null;
        slot.ready = false;
        const pid = worker.process.pid;
        if (stopping) {
          // A worker still starting has nothing in flight: SIGTERM's default action is fine there.
          if (wasReady && code !== 0) exitCode = 1;
          finishIfDone();
          return;
        }
        if (!allStarted) {
          log.error({ event: 'supervisor.worker_start_failed', pid, code, signal }, `a ${service} worker failed to start: stopping`);
          stop('worker-start-failed', code !== null && code !== 0 ? code : 1);
          return;
        }
        if (Date.now() - slot.startedAt >= STABLE_AFTER_MS) slot.restartDelayMs = RESTART_BASE_MS;
        const delay = slot.restartDelayMs;
        slot.restartDelayMs = Math.min(delay * 2, RESTART_MAX_MS);
        log.error({ event: 'supervisor.worker_exited', pid, code, signal, restartInMs: delay }, `${service} worker ${pid} died, replacing it in ${delay} ms`);
        slot.restartTimer = setTimeout(() => fork(slot), delay);
      });
    };

    const reload = (): void => {
      let next: Config;
      try {
        const reloaded = loadConfigForReload();
        next = reloaded.config;
        if (reloaded.consentWithdrawn) {
          log.warn({ event: 'process.consent_withdrawn' }, 'NIMBUS_ACCEPT_STATEMENT is no longer yes: participation stops now (off); nothing more is sent to the reputation service');
        }
      } catch (error) {
        // Checked here once, not N times in the workers; they keep their configuration.
        log.error({ event: 'process.reload_failed', problems: reloadProblems(error) }, 'configuration reload failed, keeping the running configuration');
        return;
      }
      const needsRestart: string[] = [];
      if (workersOf(next) !== workersOf(current)) needsRestart.push('NIMBUS_WORKERS');
      if (JSON.stringify(next.metricsListen) !== JSON.stringify(current.metricsListen)) needsRestart.push('NIMBUS_METRICS_LISTEN');
      current = next;
      log.info({ event: 'supervisor.reload_forwarded', needsRestart }, needsRestart.length > 0 ? `reloading workers; restart needed for ${needsRestart.join(', ')}` : 'reloading workers');
      for (const slot of slots) {
        if (slot.worker && slot.ready) slot.worker.process.kill('SIGHUP');
        else if (slot.worker) slot.reloadWhenReady = true;
        // A slot waiting for its restart forks a worker that reads the new configuration itself.
      }
    };

    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', reload);
    for (const slot of slots) fork(slot);
  });
}

