/**
 * The network under test, all real processes on loopback: one `nimbus reputation` (SQLite store
 * in its own data dir, one reporter key per gateway made with `nimbus keys add`) and K
 * `nimbus gateway` processes, each with its own data dir, relay domain and spam traps, relaying
 * to the in-process sink. `nimbus report` runs with a gateway's own environment, as that
 * organisation's admin would run it for its users.
 *
 * The product is compiled once per eval run into `.tmp/eval-dist` (git-ignored) from the tree as
 * it is, so the eval measures the code in the tree, and the many short `nimbus report` processes
 * start in a fraction of the time tsx needs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import type { GatewayIdentity } from './plan.js';

export type Participation = 'standard' | 'off';
export type KeyRole = 'reporter' | 'admin' | 'split';

export interface NetworkOptions {
  readonly root: string;
  /** The compiled CLI (buildProduct). */
  readonly cli: string;
  /**
   * Keys at the service: `reporter` (a shared network: every voice is one voice), `admin` (one
   * organisation's private service: the gateways' trap hits and `nimbus report` are trusted), or
   * `split` (gateways hold admin keys, so their spam traps are trusted, while `nimbus report` for
   * users runs with a reporter key of the same organisation).
   */
  readonly keyRole: KeyRole;
  /** Extra NIMBUS_* settings for every gateway (experiments); applied last. */
  readonly gatewayEnv?: Readonly<Record<string, string>>;
  readonly workDir: string;
  readonly gateways: readonly GatewayIdentity[];
  readonly participation: Participation;
  readonly sinkPort: number;
  /**
   * Lookup budget of the gateways. All processes of the eval share one small machine, so the
   * product's 300 ms default would measure CPU contention of the harness, not the network.
   */
  readonly lookupTimeoutMs: number;
  readonly logLevel?: string;
  /** An embedded engine file each gateway starts with (a copy each): the day-one eval's learnt history. */
  readonly localReputation?: string;
}

export interface RunningGateway {
  readonly identity: GatewayIdentity;
  readonly port: number;
  readonly env: NodeJS.ProcessEnv;
  readonly log: string;
}

export interface Network {
  readonly gateways: readonly RunningGateway[];
  readonly serviceUrl: string | null;
  /** `nimbus report --LABEL FILE…` as gateway `index`'s admin; resolves with the exit status and output. */
  report(index: number, label: 'spam' | 'ham', files: readonly string[]): Promise<{ status: number; output: string }>;
  /** Throws when a process of the network has died (with the end of its log). */
  check(): void;
  stop(): Promise<void>;
}

export class NetworkError extends Error {
  override readonly name = 'NetworkError';
}

/** Keys are not what the eval measures: high enough that no gateway is ever rate limited. */
const KEY_RATE = 100_000;
const START_TIMEOUT_MS = 60_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function waitForPort(port: number, child: ChildProcess, log: string, what: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new NetworkError(`${what} exited during start:\n${tail(log)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new NetworkError(`${what}: nothing listens on 127.0.0.1:${port} after ${START_TIMEOUT_MS} ms:\n${tail(log)}`);
    await sleep(100);
  }
}

export function tail(log: string, lines = 15): string {
  try {
    return readFileSync(log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Compiles src/ into `.tmp/eval-dist` (inside the repository, so that node_modules resolve) and
 * returns the path of its cli.js. Type errors are reported but do not stop the eval: tsc still
 * emits, as `npm run build` would.
 */
export async function buildProduct(root: string): Promise<string> {
  const outDir = join(root, '.tmp', 'eval-dist');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await new Promise<{ status: number; output: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--outDir', outDir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ status: code ?? 1, output }));
  });
  const cliPath = join(outDir, 'cli.js');
  if (!existsSync(cliPath)) throw new NetworkError(`building the product failed:\n${result.output.slice(0, 2000)}`);
  if (result.status !== 0) process.stderr.write(`eval: tsc reported problems (built anyway):\n${result.output.slice(0, 1000)}\n`);
  return cliPath;
}

export function cli(cliPath: string, root: string, args: readonly string[], env: NodeJS.ProcessEnv, log: string): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    return spawn(process.execPath, [cliPath, ...args], { cwd: root, env, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
}

/** Runs a CLI command to its end; stdout and stderr are returned. */
export function runCli(cliPath: string, root: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ status: code ?? 1, stdout, stderr }));
  });
}

export async function stopChild(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Only what the eval sets: the parent's NIMBUS_* must not leak into the network's processes. */
export function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('NIMBUS_')) env[key] = value;
  return env;
}

/**
 * What every benchmark gateway runs with (the eval's and the protection bench's): one site with
 * its own domain and traps, tagging only, one worker, relaying to the sink; the network part
 * (participation, service, keys) is the caller's.
 */
export function gatewayEnv(identity: GatewayIdentity, at: { port: number; dataDir: string; sinkPort: number; lookupTimeoutMs: number; logLevel: string }): NodeJS.ProcessEnv {
  return {
    ...baseEnv(),
    NIMBUS_LISTEN: `127.0.0.1:${at.port}`,
    NIMBUS_NEXT_HOP: `127.0.0.1:${at.sinkPort}`,
    NIMBUS_RELAY_DOMAINS: identity.domain,
    NIMBUS_TRUSTED_NETWORKS: '127.0.0.0/8',
    NIMBUS_DATA_DIR: at.dataDir,
    NIMBUS_SPAMTRAPS: identity.traps.join(','),
    NIMBUS_SPAM_ACTION: 'tag',
    NIMBUS_HOSTNAME: `mx.${identity.domain}`,
    NIMBUS_WORKERS: '1',
    NIMBUS_LOOKUP_TIMEOUT_MS: String(at.lookupTimeoutMs),
    NIMBUS_LOG_LEVEL: at.logLevel,
  };
}

export async function startNetwork(options: NetworkOptions): Promise<Network> {
  const children: { child: ChildProcess; what: string; log: string }[] = [];
  const logLevel = options.logLevel ?? 'warn';
  let serviceUrl: string | null = null;
  const keys: string[] = [];
  const reportKeys: string[] = [];
  try {
    if (options.participation === 'standard') {
      const dataDir = join(options.workDir, 'service');
      mkdirSync(dataDir, { recursive: true });
      const port = await freePort();
      const env = { ...baseEnv(), NIMBUS_DATA_DIR: dataDir, NIMBUS_STORE: 'sqlite', NIMBUS_HTTP_LISTEN: `127.0.0.1:${port}`, NIMBUS_LOG_LEVEL: logLevel };
      const addKey = async (role: string, label: string): Promise<string> => {
        const made = await runCli(options.cli, options.root, ['keys', 'add', '--role', role, '--label', label, '--rate', String(KEY_RATE)], env);
        const token = made.stdout.trim().split('\n').pop() ?? '';
        if (made.status !== 0 || !token.startsWith('nmb_')) throw new NetworkError(`nimbus keys add failed (${made.status}): ${made.stderr.trim()}`);
        return token;
      };
      for (const gateway of options.gateways) {
        keys.push(await addKey(options.keyRole === 'reporter' ? 'reporter' : 'admin', gateway.domain));
        reportKeys.push(options.keyRole === 'split' ? await addKey('reporter', `${gateway.domain} users`) : keys[keys.length - 1]!);
      }
      const log = join(options.workDir, 'service.log');
      const child = cli(options.cli, options.root, ['reputation'], env, log);
      children.push({ child, what: 'nimbus reputation', log });
      await waitForPort(port, child, log, 'nimbus reputation');
      serviceUrl = `http://127.0.0.1:${port}`;
    }
    const gateways: RunningGateway[] = [];
    for (const identity of options.gateways) {
      const port = await freePort();
      const dataDir = join(options.workDir, `gateway-${identity.index + 1}`);
      mkdirSync(dataDir, { recursive: true });
      if (options.localReputation !== undefined) copyFileSync(options.localReputation, join(dataDir, 'local-reputation.sqlite'));
      const env: NodeJS.ProcessEnv = {
        ...gatewayEnv(identity, { port, dataDir, sinkPort: options.sinkPort, lookupTimeoutMs: options.lookupTimeoutMs, logLevel }),
        NIMBUS_PARTICIPATION: options.participation,
        ...(serviceUrl
          ? { NIMBUS_ACCEPT_STATEMENT: 'yes', NIMBUS_REPUTATION_URL: serviceUrl, NIMBUS_REPUTATION_KEY: keys[identity.index]! }
          : {}),
        ...options.gatewayEnv,
      };
      const log = join(options.workDir, `gateway-${identity.index + 1}.log`);
      const child = cli(options.cli, options.root, ['gateway'], env, log);
      children.push({ child, what: `nimbus gateway ${identity.index + 1}`, log });
      gateways.push({ identity, port, env, log });
    }
    await Promise.all(gateways.map((gateway, i) => waitForPort(gateway.port, children[children.length - gateways.length + i]!.child, gateway.log, `nimbus gateway ${i + 1}`)));
    return {
      gateways,
      serviceUrl,
      async report(index, label, files) {
        const env = { ...gateways[index]!.env, ...(reportKeys[index] ? { NIMBUS_REPUTATION_KEY: reportKeys[index] } : {}) };
        const result = await runCli(options.cli, options.root, ['report', `--${label}`, ...files], env);
        return { status: result.status, output: `${result.stdout}${result.stderr}` };
      },
      check() {
        for (const { child, what, log } of children) {
          if (child.exitCode !== null || child.signalCode !== null) throw new NetworkError(`${what} died (${child.exitCode ?? child.signalCode}):\n${tail(log)}`);
        }
      },
      async stop() {
        // Gateways first: they flush their statistics to the service on the way out.
        await Promise.all(children.filter(({ what }) => what.startsWith('nimbus gateway')).map(({ child }) => stopChild(child)));
        await Promise.all(children.map(({ child }) => stopChild(child)));
      },
    };
  } catch (error) {
    await Promise.all(children.map(({ child }) => stopChild(child)));
    throw error;
  }
}
