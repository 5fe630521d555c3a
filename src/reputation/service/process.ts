/**
 * `nimbus reputation` as a process. Signals are handled here, not in startReputationService, so
 * the service stays free of process-wide state (tests run several in one process).
 *   SIGTERM/SIGINT: stop accepting, finish requests in flight, close the store, exit 0.
 *   SIGHUP: reload the configuration; upstream and participation apply live.
 */
import { ConfigError, loadConfig, type Config } from '../../config/index.js';
import { createLogger } from '../../log.js';
import { startReputationService } from '../service.js';

/** Runs until SIGTERM or SIGINT; resolves with the exit code. */
export async function serveReputation(config: Config): Promise<number> {
  const log = createLogger(config.logLevel, { service: 'reputation' });
  const service = await startReputationService(config, log);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'process.signal', signal }, 'stopping: finishing requests in flight');
      service.close().then(
        () => resolve(0),
        (error: unknown) => {
          log.error({ event: 'process.close_failed', err: error }, 'closing failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      try {
        service.reload(loadConfig());
      } catch (error) {
        const problems = error instanceof ConfigError ? error.problems : [String(error)];
        log.error({ event: 'process.reload_failed', problems }, 'configuration reload failed, keeping the running configuration');
      }
    });
  });
}
