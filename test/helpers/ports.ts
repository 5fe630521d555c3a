/** Loopback ports for the peers tests start: the one free-port function, and waiting for a listener. */
import { connect, createServer } from 'node:net';
import { waitFor } from './wait.js';

/**
 * A TCP port free on 127.0.0.1 at the time of asking (bound to port 0, then released). Prefer
 * letting a server listen on port 0 itself; this is for peers that need their port up front
 * (Postfix's master.cf, smtp-sink, redis-server, an env file).
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** True when nothing listens on 127.0.0.1:port right now. */
export async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** True when something accepts a TCP connection on 127.0.0.1:port. */
export async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Resolves once something accepts TCP connections on 127.0.0.1:port; `failed` is asked first on
 * every round (e.g. "the process exited") and ends the wait with its message.
 */
export async function waitForPort(port: number, timeoutMs = 30_000, failed: () => string | null = () => null): Promise<void> {
  await waitFor(`a listener on 127.0.0.1:${port}`, async () => {
    const problem = failed();
    if (problem) throw new Error(problem);
    return accepts(port);
  }, timeoutMs);
}
