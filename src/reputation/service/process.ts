/**
 * `nimbus reputation` as a process. Signals are handled here, not in startReputationService, so
 * the service stays free of process-wide state (tests run several in one process).
 *   SIGTERM/SIGINT: stop accepting, finish requests in flight, close the store, exit 0.
 *   SIGHUP: reload the configuration; upstream and participation apply live.
 */
import { loadConfig, reloadProblems, type Config } from '../../config/index.js';
import { createLogger } from '../../log.js';
import { runUntilStopped } from '../../process-stop.js';
import { startReputationService } from '../service.js';

/** Runs until SIGTERM or SIGINT; resolves with the exit code. */
export async function serveReputation(config: Config): Promise<number> {
  const log = createLogger(config.logLevel, { service: 'reputation' });
  const service = await startReputationService(config, log);
  return runUntilStopped(log, {
    stoppingMessage: 'stopping: finishing requests in flight',
    close: () => service.close(),
    onHangup: () => {
      try {
        service.reload(loadConfig());
      } catch (error) {
        log.error({ event: 'process.reload_failed', problems: reloadProblems(error) }, 'configuration reload failed, keeping the running configuration');
      }
    },
  });
}
