/**
 * The network of the protection bench, all real processes on loopback: one `nimbus reputation`
 * (SQLite in its own data dir, or Redis: a redis-server of the bench's own on a free port) and K
 * `nimbus gateway` processes relaying to the in-process sink. Gateways hold admin keys (as the
 * eval's `split` mode), so their spam traps are trusted. With `proxy`, the gateways talk to a
 * private service (its own SQLite) whose upstream is the measured service.
 *
 * Reports come from people outside the gateways' data dirs (an admin's workstation, other
 * organisations' users): `nimbus report` with a data dir of its own, so no gateway learns the
 * verdict locally and every gateway must hear it from the network.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { baseEnv, cli, freePort, gatewayEnv, NetworkError, runCli, stopChild, tail, waitForPort, type RunningGateway } from '../eval/network.js';
import type { GatewayIdentity } from '../eval/plan.js';

export type Store = 'sqlite' | 'redis';
export type ReporterRole = 'admin' | 'reporter';

export interface ProtectionNetworkOptions {
  readonly root: string;
  readonly cli: string;
  readonly workDir: string;
  readonly store: Store;
  readonly proxy: boolean;
  readonly gateways: readonly GatewayIdentity[];
  readonly sinkPort: number;
  readonly lookupTimeoutMs: number;
  /** Distinct reporter keys made at the measured service (the "three voices"). */
  readonly reporterKeys: number;
  readonly logLevel?: string;
}

export interface ReportRun {
  readonly status: number;
  readonly output: string;
  /** performance.now() when the command said the service took the report (else when it ended). */
  readonly acceptedAt: number;
}

export interface ProtectionNetwork {
  readonly gateways: readonly RunningGateway[];
  /** The service the gateways talk to (the private one with `proxy`). */
  readonly serviceUrl: string;
  /** `nimbus report --spam FILE` by an admin of the measured service, or by reporter `index`. */
  report(role: ReporterRole, index: number, file: string): Promise<ReportRun>;
  /** The verdict `nimbus check` gives `file` asking the measured service afresh (no cache). */
  freshVerdict(file: string): Promise<string>;
  check(): void;
  stop(): Promise<void>;
}

/** Keys are not what the bench measures: no gateway is ever rate limited. */
const KEY_RATE = 100_000;

async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.setEncoding('utf8');
    socket.once('data', (data: string) => {
      socket.destroy();
      resolve(data.startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}

async function startRedis(dir: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const deadline = Date.now() + 20_000;
  while (!(await answersPing(port))) {
    if (child.exitCode !== null) throw new NetworkError('redis-server exited during start (is it installed?)');
    if (Date.now() > deadline) throw new NetworkError(`redis-server on 127.0.0.1:${port} did not answer PING`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `redis://127.0.0.1:${port}`, child };
}

/** Runs `nimbus report`, noting when its line `service: sent` appears (the service has the report). */
function reportWithTime(cliPath: string, root: string, file: string, env: NodeJS.ProcessEnv): Promise<ReportRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, 'report', '--spam', file], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let acceptedAt: number | null = null;
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (acceptedAt === null && output.includes('service: sent')) acceptedAt = performance.now();
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ status: code ?? 1, output, acceptedAt: acceptedAt ?? performance.now() }));
  });
}

export async function startProtectionNetwork(options: ProtectionNetworkOptions): Promise<ProtectionNetwork> {
  const children: { child: ChildProcess; what: string; log: string }[] = [];
  const logLevel = options.logLevel ?? 'warn';
  let redis: ChildProcess | null = null;
  const stopAll = async (): Promise<void> => {
    const gatewaysFirst = children.filter(({ what }) => what.startsWith('nimbus gateway'));
    await Promise.all(gatewaysFirst.map(({ child }) => stopChild(child)));
    // The private service before its upstream, the upstream before its store.
    for (const { child } of [...children].reverse()) await stopChild(child);
    if (redis) await stopChild(redis, 5000);
  };
  try {
    interface ServiceProcess {
      readonly url: string;
      addKey(role: string, label: string): Promise<string>;
      start(): Promise<void>;
    }
    /** A service's data dir, store and keys; `start` runs it once its keys are made. */
    const prepareService = async (name: string, store: Store, extra: NodeJS.ProcessEnv): Promise<ServiceProcess> => {
      const dataDir = join(options.workDir, name);
      mkdirSync(dataDir, { recursive: true });
      let redisUrl: string | null = null;
      if (store === 'redis') {
        const started = await startRedis(dataDir);
        redis = started.child;
        redisUrl = started.url;
      }
      const port = await freePort();
      const env = {
        ...baseEnv(),
        NIMBUS_DATA_DIR: dataDir,
        NIMBUS_STORE: store,
        ...(redisUrl ? { NIMBUS_REDIS_URL: redisUrl } : {}),
        NIMBUS_HTTP_LISTEN: `127.0.0.1:${port}`,
        NIMBUS_LOG_LEVEL: logLevel,
        ...extra,
      };
      const log = join(options.workDir, `${name}.log`);
      return {
        url: `http://127.0.0.1:${port}`,
        async addKey(role, label) {
          const made = await runCli(options.cli, options.root, ['keys', 'add', '--role', role, '--label', label, '--rate', String(KEY_RATE)], env);
          const token = made.stdout.trim().split('\n').pop() ?? '';
          if (made.status !== 0 || !token.startsWith('nmb_')) throw new NetworkError(`nimbus keys add (${name}) failed (${made.status}): ${made.stderr.trim()}`);
          return token;
        },
        async start() {
          const child = cli(options.cli, options.root, ['reputation'], env, log);
          children.push({ child, what: `nimbus reputation (${name})`, log });
          await waitForPort(port, child, log, `nimbus reputation (${name})`);
        },
      };
    };

    const measured = await prepareService('service', options.store, {});
    const adminKey = await measured.addKey('admin', 'admin workstation');
    const reporterKeys: string[] = [];
    for (let i = 0; i < options.reporterKeys; i++) reporterKeys.push(await measured.addKey('reporter', `reporter ${i + 1}`));
    let front = measured;
    const gatewayKeys: string[] = [];
    if (options.proxy) {
      const proxyKey = await measured.addKey('reporter', 'private service');
      await measured.start();
      const privateService = await prepareService('private', 'sqlite', {
        NIMBUS_UPSTREAM_URL: measured.url,
        NIMBUS_UPSTREAM_KEY: proxyKey,
        NIMBUS_REPUTATION_URL: measured.url,
        NIMBUS_REPUTATION_KEY: proxyKey,
        // As the gateways': the product's 300 ms would measure this machine's load, not the network.
        NIMBUS_LOOKUP_TIMEOUT_MS: String(options.lookupTimeoutMs),
        NIMBUS_PARTICIPATION: 'standard',
        NIMBUS_ACCEPT_STATEMENT: 'yes',
      });
      for (const gateway of options.gateways) gatewayKeys.push(await privateService.addKey('admin', gateway.domain));
      await privateService.start();
      front = privateService;
    } else {
      for (const gateway of options.gateways) gatewayKeys.push(await measured.addKey('admin', gateway.domain));
      await measured.start();
    }

    const gateways: RunningGateway[] = [];
    const gatewayChildren: ChildProcess[] = [];
    for (const identity of options.gateways) {
      const port = await freePort();
      const dataDir = join(options.workDir, `gateway-${identity.index + 1}`);
      mkdirSync(dataDir, { recursive: true });
      const env: NodeJS.ProcessEnv = {
        ...gatewayEnv(identity, { port, dataDir, sinkPort: options.sinkPort, lookupTimeoutMs: options.lookupTimeoutMs, logLevel }),
        NIMBUS_PARTICIPATION: 'standard',
        NIMBUS_ACCEPT_STATEMENT: 'yes',
        NIMBUS_REPUTATION_URL: front.url,
        NIMBUS_REPUTATION_KEY: gatewayKeys[identity.index]!,
      };
      const log = join(options.workDir, `gateway-${identity.index + 1}.log`);
      const child = cli(options.cli, options.root, ['gateway'], env, log);
      children.push({ child, what: `nimbus gateway ${identity.index + 1}`, log });
      gatewayChildren.push(child);
      gateways.push({ identity, port, env, log });
    }
    await Promise.all(gateways.map((gateway, i) => waitForPort(gateway.port, gatewayChildren[i]!, gateway.log, `nimbus gateway ${i + 1}`)));

    const reporterEnv = (name: string, key: string): NodeJS.ProcessEnv => {
      const dataDir = join(options.workDir, name);
      mkdirSync(dataDir, { recursive: true });
      return {
        ...baseEnv(),
        NIMBUS_DATA_DIR: dataDir,
        NIMBUS_LOG_LEVEL: logLevel,
        NIMBUS_PARTICIPATION: 'standard',
        NIMBUS_ACCEPT_STATEMENT: 'yes',
        NIMBUS_REPUTATION_URL: measured.url,
        NIMBUS_REPUTATION_KEY: key,
      };
    };
    return {
      gateways,
      serviceUrl: front.url,
      report(role, index, file) {
        const env = role === 'admin' ? reporterEnv('admin-workstation', adminKey) : reporterEnv(`reporter-${index + 1}`, reporterKeys[index]!);
        return reportWithTime(options.cli, options.root, file, env);
      },
      async freshVerdict(file) {
        const checked = await runCli(options.cli, options.root, ['check', '--json', file], reporterEnv('checker', adminKey));
        try {
          return String((JSON.parse(checked.stdout.trim().split('\n')[0] ?? '{}') as { verdict?: unknown }).verdict ?? 'none');
        } catch {
          return `none (${checked.status}: ${checked.stderr.trim().slice(0, 200)})`;
        }
      },
      check() {
        for (const { child, what, log } of children) {
          if (child.exitCode !== null || child.signalCode !== null) throw new NetworkError(`${what} died (${child.exitCode ?? child.signalCode}):\n${tail(log)}`);
        }
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
