/**
 * `startMilter`: the listener (TCP, or a unix socket of mode 0660) and its sessions. No
 * process-wide state: one per worker process, or several in one process (tests).
 */
import { chmodSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Config, ListenAddress } from '../config/index.js';
import type { Logger } from '../log.js';
import type { MilterContext } from './finish.js';
import { newMessageId } from './message.js';
import { MilterSession } from './session.js';
import { UNIX_SOCKET_MODE, removeStaleSocket } from './socket-file.js';

export interface RunningMilter {
  /** `host:port` or `unix:/path`, as listening. */
  readonly address: string;
  readonly port: number | null;
  /** Stops accepting, lets every message in progress get its answer, then ends the connections. */
  close(): Promise<void>;
  reload(config: Config): void;
}

export type MilterHooks = Omit<MilterContext, 'config'>;

export async function startMilter(config: Config, log: Logger, hooks: MilterHooks, options: { ownsSocket: boolean } = { ownsSocket: true }): Promise<RunningMilter> {
  let current = config;
  const context: MilterContext = { ...hooks, config: () => current };
  const sessions = new Set<MilterSession>();
  const server = createServer((socket: Socket) => {
    const session = new MilterSession(socket, context, log.child({ cid: newMessageId(), client: socket.remoteAddress ?? 'unix' }));
    sessions.add(session);
    // Bound, not an arrow made per connection (whose optimised code V8 drops at each full GC).
    socket.once('close', sessions.delete.bind(sessions, session));
  });
  server.on('error', (error) => log.warn({ event: 'milter.listen_error', err: error }, 'milter listener error'));
  const listen = config.milterListen;
  // Only the process that owns the socket may clear a stale one: a worker would remove the file
  // of the socket its supervisor just opened for all of them.
  if (listen.kind === 'unix' && options.ownsSocket) removeStaleSocket(listen.path);
  await listenOn(server, listen);
  const bound = server.address();
  const port = bound && typeof bound === 'object' ? bound.port : null;
  const address = listen.kind === 'unix' ? `unix:${listen.path}` : `${bound && typeof bound === 'object' ? bound.address : listen.host}:${port}`;
  log.info({ event: 'milter.listening', address, port }, 'milter listening');

  return {
    address,
    port,
    async close() {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...sessions].map((session) => session.idle()));
      for (const session of sessions) session.close();
      await stopped;
      log.info({ event: 'milter.closed' }, 'milter closed');
    },
    reload(next) {
      const needsRestart = JSON.stringify(next.milterListen) !== JSON.stringify(current.milterListen) ? ['NIMBUS_MILTER_LISTEN'] : [];
      current = next;
      log.info({ event: 'milter.reloaded', needsRestart }, needsRestart.length > 0 ? 'configuration reloaded; restart needed for NIMBUS_MILTER_LISTEN' : 'configuration reloaded');
    },
  };
}

async function listenOn(server: Server, listen: ListenAddress): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (listen.kind === 'unix') server.listen(listen.path, done);
    else server.listen(listen.port, listen.host, done);
  });
  if (listen.kind === 'unix') chmodSync(listen.path, UNIX_SOCKET_MODE);
}
