/**
 * Starts a throwaway three-master Redis Cluster on free loopback ports for the contract tests,
 * and stops exactly the processes it started (by PID).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, portIsFree } from './ports.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

export interface RedisClusterHandle {
  readonly urls: string[];
  stop(): Promise<void>;
}

/** A free port whose cluster bus port (port + 10000) is also free. */
async function freePortPair(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await freePort();
    if (port + 10000 > 65535 || taken.has(port) || taken.has(port + 10000)) continue;
    if (await portIsFree(port + 10000)) {
      taken.add(port);
      taken.add(port + 10000);
      return port;
    }
  }
  throw new Error('no free loopback port pair (port, port + 10000) found for the Redis Cluster');
}

/** The output of redis-cli, or '' when it fails (the server is not up yet). */
const redisCli = async (...args: string[]): Promise<string> => (await run('redis-cli', args).catch(() => ({ stdout: '' }))).stdout;

/** With `password`, every node requires it (requirepass, masterauth) and the URLs carry it. */
export async function startRedisCluster(options: { password?: string } = {}): Promise<RedisClusterHandle> {
  const auth = options.password === undefined ? [] : ['-a', options.password, '--no-auth-warning'];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nimbus-redis-cluster-'));
  const taken = new Set<number>();
  const ports = [await freePortPair(taken), await freePortPair(taken), await freePortPair(taken)];
  const children: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.pid === undefined) return resolve();
            child.once('exit', () => resolve());
            try {
              process.kill(child.pid, 'SIGTERM');
            } catch {
              resolve();
            }
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...(options.password === undefined ? [] : ['--requirepass', options.password, '--masterauth', options.password])],
        { stdio: 'ignore' },
      );
      children.push(child);
    }
    for (const port of ports) {
      await waitFor(`redis-server on ${port}`, async () => (await redisCli(...auth, '-p', String(port), 'ping')).trim() === 'PONG');
    }
    await run('redis-cli', [...auth, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 60_000 });
    for (const port of ports) {
      await waitFor(`cluster_state:ok on ${port}`, async () => (await redisCli(...auth, '-p', String(port), 'cluster', 'info')).includes('cluster_state:ok'));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const userInfo = options.password === undefined ? '' : `default:${encodeURIComponent(options.password)}@`;
  return { urls: ports.map((p) => `redis://${userInfo}127.0.0.1:${p}`), stop };
}
