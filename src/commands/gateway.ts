/**
 * `nimbus gateway`: the SMTP relay as a process. Signals are handled here, not in startGateway,
 * so the gateway itself stays free of process-wide state (workers, tests).
 *   SIGTERM/SIGINT: stop accepting, finish what is in flight, flush statistics, exit 0.
 *   SIGHUP: reload the configuration (env file included) and apply what can change live,
 *   participation included (opting out stops every exchange at once).
 */
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { startGateway } from '../gateway/server.js';
import { openGatewayRuntime } from '../verdict/runtime.js';

export async function run(_args: string[]): Promise<number> {
  const config = loadConfig();
  const log = createLogger(config.logLevel, { service: 'gateway' });
  const runtime = await openGatewayRuntime(config, log);
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway(config, log, runtime.hooks);
  } catch (error) {
    await runtime.close();
    throw error;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'signal', signal }, 'stopping: finishing messages in flight');
      gateway
        .close()
        .then(() => runtime.close())
        .then(
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
        const next = loadConfig();
        gateway.reload(next);
        runtime.reload(next);
      } catch (error) {
        // A bad edit must not take a running gateway down: keep the old configuration.
        const problems = error instanceof ConfigError ? error.problems : [String(error)];
        log.error({ event: 'reload_failed', problems }, 'configuration reload failed, keeping the running configuration');
      }
    });
  });
}
