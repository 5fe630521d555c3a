/**
 * `nimbus console` as a process: opens what the pages read (the history, statistics, the
 * gateway's embedded engine, the quarantine; the service when an admin key is set) beside a
 * running gateway, and serves them on NIMBUS_CONSOLE_LISTEN. It only reads what the gateway
 * writes, apart from the changes an admin makes; a crash here never touches mail flow.
 *   SIGTERM/SIGINT: stop accepting, finish requests, close the stores, exit 0.
 */
import type { Config } from '../config/index.js';
import { createLogger } from '../log.js';
import { runUntilStopped } from '../process-stop.js';
import { Quarantine, quarantineDir } from '../quarantine/store.js';
import { maskUrl } from '../redact.js';
import { openLocalReputation } from '../scan/runtime.js';
import { HistoryStore } from '../stats/history-store.js';
import { openStatistics } from '../stats/index.js';
import type { ConsoleContext } from './context.js';
import { buildConsole } from './server.js';
import { ServiceAdmin } from './service-admin.js';
import { LoginThrottle, Sessions } from './sessions.js';
import { ConsoleUsers } from './users.js';

export async function serveConsole(config: Config): Promise<number> {
  const log = createLogger(config.logLevel, { service: 'console' });
  const local = await openLocalReputation(config);
  const history = new HistoryStore(config.dataDir);
  const stats = openStatistics(config, log.child({ component: 'stats' }), { upload: false });
  const service = config.reputationUrl !== null && config.consoleAdminKey !== null ? new ServiceAdmin(config.reputationUrl, config.consoleAdminKey) : null;
  const users = new ConsoleUsers(config.dataDir);
  const context: ConsoleContext = {
    config,
    history,
    stats,
    local,
    quarantine: new Quarantine(quarantineDir(config)),
    service,
    users,
    sessions: new Sessions({ keysPage: service !== null }),
    throttle: new LoginThrottle(),
    log,
  };
  const app = buildConsole(context);
  const closeStores = async (): Promise<void> => {
    history.close();
    await stats.close();
    await local.close();
  };
  let address: string;
  try {
    address = await app.listen({ host: config.consoleListen.host, port: config.consoleListen.port });
  } catch (error) {
    await closeStores();
    throw error;
  }
  const port = app.server.address() !== null && typeof app.server.address() === 'object' ? (app.server.address() as { port: number }).port : config.consoleListen.port;
  if (users.names().length === 0) {
    log.warn({ event: 'console.no_users' }, 'no console user yet: nobody can log in until `nimbus console passwd USER` sets a password');
  }
  log.info({ event: 'console.listening', url: address, port, reputationService: service ? maskUrl(config.reputationUrl) : null }, `console listening on ${address}`);

  return runUntilStopped(log, {
    stoppingMessage: 'stopping the console',
    close: async () => {
      await app.close();
      await closeStores();
    },
    onHangup: () => log.warn({ event: 'process.reload_needs_restart', variable: 'all' }, 'the console reads its configuration at start: restart it to apply changes'),
  });
}
