/**
 * One milter as a process: alone (NIMBUS_WORKERS=1) or as one worker of the gateway's supervisor
 * (src/gateway/supervisor.ts), exactly as the relay runs (src/gateway/process.ts):
 *   SIGTERM/SIGINT: stop accepting, answer every message in progress, flush statistics, exit 0.
 *   SIGHUP: reload the configuration (env file included), participation included.
 */
import cluster from 'node:cluster';
import { loadConfigForReload, type Config } from '../config/index.js';
import { READY_MESSAGE, reloadProblems } from '../gateway/process-signals.js';
import { createLogger } from '../log.js';
import { openScanRuntime } from '../scan/runtime.js';
import { answerPrimaryMetricsRequests } from '../stats/cluster-metrics.js';
import { startMilter, type RunningMilter } from './server.js';

export async function serveMilter(config: Config, role: 'single' | 'worker'): Promise<number> {
  const log = createLogger(config.logLevel, { service: 'milter', ...(role === 'worker' ? { worker: cluster.worker!.id } : {}) });
  // Handlers first: a SIGHUP while the runtime opens must not kill the process (its default action).
  let pendingStop: string | null = null;
  let pendingReload = false;
  let onStop = (signal: string): void => void (pendingStop ??= signal);
  let onReload = (): void => void (pendingReload = true);
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => onReload());
  if (role === 'worker') process.on('disconnect', () => onStop('primary-gone'));

  const own = (c: Config): Config => (role === 'worker' ? { ...c, metricsListen: null } : c);
  const runtime = await openScanRuntime(own(config), log);
  let milter: RunningMilter;
  try {
    const hooks = { scanner: runtime.scanner, observer: runtime.recorder, quarantine: runtime.quarantine, metrics: runtime.metrics };
    milter = await startMilter(config, log, hooks, { ownsSocket: role === 'single' });
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
      log.info({ event: 'process.signal', signal }, 'stopping: answering messages in progress');
      milter
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
        const next = loadConfigForReload().config;
        milter.reload(next);
        runtime.reload(own(next));
      } catch (error) {
        log.error({ event: 'process.reload_failed', problems: reloadProblems(error) }, 'configuration reload failed, keeping the running configuration');
      }
    };
    if (role === 'worker') process.send?.({ type: READY_MESSAGE });
    if (pendingReload) onReload();
    if (pendingStop !== null) onStop(pendingStop);
  });
}
