/**
 * A throwaway redis-server of a test's own on a free loopback port, for tests that kill,
 * restart or configure Redis (never the shared one on 6379). Stopped by its PID, and at teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

export interface OwnRedis {
  readonly port: number;
  readonly url: string;
  /** The running server's PID (a new one after restart). */
  readonly pid: number;
  /** SIGKILL by PID, resolved once the process has exited. */
  kill(): Promise<void>;
  /** Starts redis-server again on the same port and directory, with the same arguments. */
  restart(): Promise<void>;
}

/** True when a PING on the port gets +PONG (the server accepts commands). */
async function answersPing(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.setEncoding('utf8');
    socket.once('data', (data: string) => {
      socket.destroy();
      resolve(data.startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts redis-server with `args` (e.g. `['--appendonly', 'yes']`); killed at the test's teardown. */
export async function startOwnRedis(t: ExecutionContext, args: readonly string[] = []): Promise<OwnRedis> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nimbus-own-redis-'));
  const port = await freePort();
  let child: ChildProcess | null = null;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', ...args], { stdio: 'ignore' });
    await waitFor(`redis-server on 127.0.0.1:${port} to answer PING`, () => answersPing(port), 20_000);
  };
  const kill = async () => {
    const running = child;
    if (running === null || running.exitCode !== null || running.signalCode !== null || running.pid === undefined) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    process.kill(running.pid, 'SIGKILL');
    await exited;
  };
  t.teardown(async () => {
    await kill();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid ?? 0;
    },
    kill,
    async restart() {
      await kill();
      await start();
    },
  };
}
