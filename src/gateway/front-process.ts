/**
 * One front (the relay or the milter) as a process: alone (NIMBUS_WORKERS=1) or as one worker of
 * the supervisor (supervisor.ts). Both fronts run the same way, so signals are handled once, here,
 * not in the servers, which stay free of process-wide state (workers, tests).
 *   SIGTERM/SIGINT: stop accepting, finish what is in flight, flush statistics, exit 0.
 *   SIGHUP: reload the configuration (env file included) and apply what can change live,
 *   participation included (opting out stops every exchange at once).
 */
import cluster from 'node:cluster';
import { loadConfigForReload, reloadProblems, type Config } from '../config/index.js';
import { createLogger, type Logger } from '../log.js';
import { openScanRuntime, type ScanRuntime } from '../scan/runtime.js';
import { answerPrimaryMetricsRequests } from '../stats/cluster-metrics.js';
import { READY_MESSAGE } from './process-signals.js';

export type Role = 'single' | 'worker';

export interface RunningFront {
  close(): Promise<void>;
  reload(config: Config): void;
}

export interface Front {
  readonly service: 'gateway' | 'milter';
  /** What the log says the front does with its work when asked to stop. */
  readonly stopping: string;
  start(config: Config, log: Logger, runtime: ScanRuntime, role: Role): Promise<RunningFront>;
}

/** Runs one front in this process until a stop signal; resolves with the exit code. */
export async function serveFront(front: Front, config: Config, role: Role): Promise<number> {
  const log = createLogger(config.logLevel, { service: front.service, ...(role === 'worker' ? { worker: cluster.worker!.id } : {}) });
  // Handlers go in before anything slow: a SIGHUP while the runtime opens must not kill the
  // process (its default action), and a SIGTERM then must still stop it once it is up.
  let pendingStop: string | null = null;
  let pendingReload = false;
  let onStop = (signal: string): void => void (pendingStop ??= signal);
  let onReload = (): void => void (pendingReload = true);
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => onReload());
  // A worker whose primary is gone gets no connections any more (the primary holds the socket).
  if (role === 'worker') process.on('disconnect', () => onStop('primary-gone'));

  // In a worker the metrics endpoint is the primary's (stats/cluster-metrics.ts).
  const own = (c: Config): Config => (role === 'worker' ? { ...c, metricsListen: null } : c);
  const runtime = await openScanRuntime(own(config), log);
  let running: RunningFront;
  try {
    running = await front.start(config, log, runtime, role);
  } catch (error) {
    await runtime.close();
    throw error;
  }
  if (role === 'worker') answerPrimaryMetricsRequests(runtime.metrics.registry);

  return new Promise<number>((resolve) => {
    let stopping = false;
    onStop = (signal) => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'process.signal', signal }, `stopping: ${front.stopping}`);
      running
        .close()
        .then(() => runtime.close())
        .then(
          () => resolve(0),
          (error: unknown) => {
            log.error({ event: 'process.close_failed', err: error }, 'closing failed');
            resolve(1);
          },
        );
    };
    onReload = () => {
      try {
        const reloaded = loadConfigForReload();
        const next = reloaded.config;
        if (reloaded.consentWithdrawn && role === 'single') {
          log.warn({ event: 'process.consent_withdrawn' }, 'NIMBUS_ACCEPT_STATEMENT is no longer yes: participation stops now (off); nothing more is sent to the reputation service');
        }
        running.reload(next);
        runtime.reload(own(next));
      } catch (error) {
        // A bad edit must not take a running front down: keep the old configuration.
        log.error({ event: 'process.reload_failed', problems: reloadProblems(error) }, 'configuration reload failed, keeping the running configuration');
      }
    };
    if (role === 'worker') process.send?.({ type: READY_MESSAGE });
    if (pendingReload) onReload();
    if (pendingStop !== null) onStop(pendingStop);
  });
}
