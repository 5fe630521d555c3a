/**
 * `nimbus gateway`: the SMTP relay as a process. Signals are handled here, not in startGateway,
 * so the gateway itself stays free of process-wide state (workers, tests).
 *   SIGTERM/SIGINT: stop accepting, finish what is in flight, exit 0.
 *   SIGHUP: reload the configuration (env file included) and apply what can change live.
 */
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { startGateway } from '../gateway/server.js';

export async function run(_args: string[]): Promise<number> {
  const config = loadConfig();
  const log = createLogger(config.logLevel, { service: 'gateway' });
  const gateway = await startGateway(config, log);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'signal', signal }, 'stopping: finishing messages in flight');
      gateway.close().then(
        () => resolve(0),
        (error: unknown) => {
          log.error({ event: 'close_failed', err: error }, 'closing failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      try {
        gateway.reload(loadConfig());
      } catch (error) {
        // A bad edit must not take a running gateway down: keep the old configuration.
        const problems = error instanceof ConfigError ? error.problems : [String(error)];
        log.error({ event: 'reload_failed', problems }, 'configuration reload failed, keeping the running configuration');
      }
    });
  });
}
