/**
 * One gateway as a process: alone (NIMBUS_WORKERS=1) or as one worker of the supervisor
 * (supervisor.ts). Signals are handled here, not in startGateway, so the gateway itself stays
 * free of process-wide state (workers, tests).
 *   SIGTERM/SIGINT: stop accepting, finish what is in flight, flush statistics, exit 0.
 *   SIGHUP: reload the configuration (env file included) and apply what can change live,
 *   participation included (opting out stops every exchange at once).
 */
import cluster from 'node:cluster';
import { loadConfigForReload, type Config } from '../config/index.js';
import { createLogger } from '../log.js';
import { openScanRuntime } from '../scan/runtime.js';
import { answerPrimaryMetricsRequests } from '../stats/cluster-metrics.js';
import { READY_MESSAGE, reloadProblems } from './process-signals.js';
import { startGateway, type RunningGateway } from './server.js';

export type Role = 'single' | 'worker';

/** One gateway in this process: alone (NIMBUS_WORKERS=1) or as one worker of the primary. */
export async function serveGateway(config: Config, role: Role): Promise<number> {
  const log = createLogger(config.logLevel, { service: 'gateway', ...(role === 'worker' ? { worker: cluster.worker!.id } : {}) });
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

  // In a worker the metrics endpoint is the primary's (see the top of this file).
  const own = (c: Config): Config => (role === 'worker' ? { ...c, metricsListen: null } : c);
  const runtime = await openScanRuntime(own(config), log);
  let gateway: RunningGateway;
  try {
    gateway = await startGateway(config, log, { scanner: runtime.scanner, observer: runtime.recorder, quarantine: runtime.quarantine });
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
      log.info({ event: 'process.signal', signal }, 'stopping: finishing messages in flight');
      gateway
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
        gateway.reload(next);
        runtime.reload(own(next));
      } catch (error) {
        // A bad edit must not take a running gateway down: keep the old configuration.
        log.error({ event: 'process.reload_failed', problems: reloadProblems(error) }, 'configuration reload failed, keeping the running configuration');
      }
    };
    if (role === 'worker') process.send?.({ type: READY_MESSAGE });
    if (pendingReload) onReload();
    if (pendingStop !== null) onStop(pendingStop);
  });
}

