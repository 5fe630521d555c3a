import test, { type ExecutionContext } from 'ava';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGatewayProcess, type GatewayProcess } from './helpers/nimbus.js';
import { freePort } from './helpers/ports.js';
import { startScriptedServer } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';
import { WORKER_SEMI_SPACE_MB, workerExecArgv } from '../src/gateway/supervisor.js';

/** `nimbus gateway` with NIMBUS_WORKERS=2, waited for until every worker listens (unless `waitReady` is false). */
async function startWorkers(t: ExecutionContext, env: Record<string, string>, options: { waitReady?: boolean } = {}): Promise<GatewayProcess> {
  return startGatewayProcess(t, { NIMBUS_WORKERS: '2', ...env }, options);
}

const send = (port: number, args: readonly string[] = []) => swaks(port, ['--to', 'bob@example.com', '--from', 'a@example.org', ...args]);

/** Distinct pids of the processes that logged a processed message. */
const messagePids = (gateway: GatewayProcess): Set<unknown> => new Set(gateway.events('gateway.message').map((line) => line.pid));

/**
 * Sends rounds of 4 concurrent messages until both workers have relayed some (at most 10 rounds):
 * the workers accept from the shared socket themselves (SCHED_NONE), so which one takes a given
 * connection is the kernel's choice; concurrent connections reach both. Returns the results.
 */
async function sendUntilBothWorkers(gateway: GatewayProcess, sendOne: () => ReturnType<typeof swaks>) {
  const results: Awaited<ReturnType<typeof swaks>>[] = [];
  for (let round = 0; round < 10 && messagePids(gateway).size < 2; round++) {
    results.push(...(await Promise.all(Array.from({ length: 4 }, sendOne))));
    await waitFor('the log lines of this round', () => gateway.events('gateway.message').length >= results.length, 10_000).catch(() => undefined);
  }
  return results;
}

test.serial('with NIMBUS_WORKERS=2 messages are relayed by two different worker processes, not by the primary', async (t) => {
  const hop = await startScriptedServer();
  const gateway = await startWorkers(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`, NIMBUS_RELAY_DOMAINS: 'example.com' });
  try {
    const results = await sendUntilBothWorkers(gateway, () => send(gateway.port));
    for (const result of results) t.is(result.exitCode, 0, result.output);
    t.is(hop.messages.length, results.length);
    const pids = messagePids(gateway);
    t.is(pids.size, 2, gateway.output());
    t.false(pids.has(gateway.child.pid));
    // Each worker runs with the smaller young generation (WORKER_SEMI_SPACE_MB), the primary's own flags kept.
    for (const pid of pids) {
      const args = readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8').split('\0');
      t.true(args.includes(`--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`), args.join(' '));
      t.true(args.includes('tsx'), args.join(' '));
    }
  } finally {
    await gateway.stop();
    await hop.stop();
  }
});

test.serial('SIGHUP to the primary reloads every worker: a relay domain added to the env file is accepted by both', async (t) => {
  const hop = await startScriptedServer();
  const port = await freePort();
  const dir = tempDir('nimbus-gw-workers-env-');
  const envFile = join(dir, 'nimbus.env');
  const envText = (domains: string) =>
    `NIMBUS_LISTEN=127.0.0.1:${port}\nNIMBUS_NEXT_HOP=127.0.0.1:${hop.port}\nNIMBUS_RELAY_DOMAINS=${domains}\nNIMBUS_TRUSTED_NETWORKS=127.0.0.1/32\nNIMBUS_WORKERS=2\n`;
  writeFileSync(envFile, envText('example.com'));
  const gateway = await startWorkers(t, { NIMBUS_ENV_FILE: envFile });
  // From 127.0.0.2: not a trusted network, so only NIMBUS_RELAY_DOMAINS decides.
  const toOther = ['--local-interface', '127.0.0.2', '--to', 'x@other.example', '--from', 'a@example.net'];
  try {
    const before = await swaks(port, [...toOther, '--quit-after', 'RCPT']);
    t.true(before.replies.includes('550 5.7.1 Relay access denied'), before.output);
    writeFileSync(envFile, envText('example.com,other.example'));
    gateway.child.kill('SIGHUP');
    await waitFor('both workers to reload', () => new Set(gateway.events('gateway.reloaded').map((line) => line.pid)).size === 2, 30_000);
    const results = await sendUntilBothWorkers(gateway, () => swaks(port, toOther));
    for (const after of results) t.is(after.exitCode, 0, after.output);
    t.is(hop.messages.length, results.length);
    t.is(messagePids(gateway).size, 2, gateway.output());
    t.is(gateway.child.exitCode, null);
  } finally {
    await gateway.stop();
    await hop.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('SIGTERM to the primary: both workers finish their messages in flight with 250, then it exits 0', async (t) => {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  let arrived = 0;
  const hop = await startScriptedServer({
    data: async () => {
      arrived++;
      await released;
      return 'accept' as const;
    },
  });
  // Round-robin here so that each worker surely holds two of the messages when SIGTERM comes
  // (with the default, the kernel picks the worker); stopping does not depend on the policy.
  const gateway = await startWorkers(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`, NIMBUS_RELAY_DOMAINS: 'example.com', NODE_CLUSTER_SCHED_POLICY: 'rr' });
  try {
    // Connections go to the workers in turn: two messages held in each.
    const sending = Array.from({ length: 4 }, () => send(gateway.port));
    await waitFor('four messages at the next hop', () => arrived === 4, 60_000);
    gateway.child.kill('SIGTERM');
    await waitFor('both workers to get SIGTERM', () => gateway.events('process.signal').filter((line) => line.pid !== gateway.child.pid).length === 2, 30_000);
    release();
    const results = await Promise.all(sending);
    for (const result of results) t.true(result.replies.some((r) => r.startsWith('250 2.6.0 Ok: queued as')), result.output);
    t.is(await gateway.exited, 0, gateway.output());
    t.is(hop.messages.length, 4);
    t.is(messagePids(gateway).size, 2);
  } finally {
    release();
    await gateway.stop();
    await hop.stop();
  }
});

test.serial('a worker that is killed is replaced by a new one and mail keeps flowing', async (t) => {
  const hop = await startScriptedServer();
  const gateway = await startWorkers(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`, NIMBUS_RELAY_DOMAINS: 'example.com' });
  try {
    // The primary's workers_ready can reach the pipe before a worker's own line.
    const first = await waitFor('both workers to log gateway_listening', () => {
      const pids = gateway.events('gateway.listening').map((line) => line.pid as number);
      return pids.length === 2 ? pids : undefined;
    });
    process.kill(first[0]!, 'SIGKILL');
    const replacement = await waitFor(
      'a replacement worker to listen',
      () => gateway.events('gateway.listening').map((line) => line.pid as number).find((pid) => !first.includes(pid)),
      60_000,
    );
    const exited = gateway.events('supervisor.worker_exited');
    t.is(exited.length, 1);
    t.is(exited[0]!.pid, first[0]);
    t.is(exited[0]!.signal, 'SIGKILL');
    // No message was sent before the kill: the two pids now are the survivor and the replacement.
    const results = await sendUntilBothWorkers(gateway, () => send(gateway.port));
    for (const result of results) t.is(result.exitCode, 0, result.output);
    t.is(hop.messages.length, results.length);
    t.true(messagePids(gateway).has(replacement));
    t.false(messagePids(gateway).has(first[0]));
  } finally {
    await gateway.stop();
    await hop.stop();
  }
});

test.serial('the primary serves NIMBUS_METRICS_LISTEN and counts the messages of every worker', async (t) => {
  const hop = await startScriptedServer();
  const metricsPort = await freePort();
  const gateway = await startWorkers(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`, NIMBUS_RELAY_DOMAINS: 'example.com', NIMBUS_METRICS_LISTEN: `127.0.0.1:${metricsPort}` });
  try {
    const results = await sendUntilBothWorkers(gateway, () => send(gateway.port));
    for (const result of results) t.is(result.exitCode, 0, result.output);
    t.is(messagePids(gateway).size, 2);
    const body = await new Promise<string>((resolve, reject) => {
      get(`http://127.0.0.1:${metricsPort}/metrics`, (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve(text));
      }).on('error', reject);
    });
    const total = body
      .split('\n')
      .filter((line) => line.startsWith('nimbus_messages_total{'))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    t.is(total, results.length, body);
  } finally {
    await gateway.stop();
    await hop.stop();
  }
});

test.serial('a worker that cannot start (port taken) stops the gateway with a non-zero exit code', async (t) => {
  const blocker = createServer();
  const port = await freePort();
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', () => resolve()));
  const gateway = await startWorkers(t, { NIMBUS_LISTEN: `127.0.0.1:${port}` }, { waitReady: false });
  try {
    const code = await Promise.race([gateway.exited, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 90_000))]);
    t.not(code, 'timeout');
    t.not(code, 0);
    t.is(gateway.events('supervisor.worker_start_failed').length >= 1, true, gateway.output());
  } finally {
    await gateway.stop();
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }
});

test("workers get the smaller young generation unless the admin set a semi-space size on node's command line or in NODE_OPTIONS", (t) => {
  t.deepEqual(workerExecArgv(['--import', 'tsx'], ''), ['--import', 'tsx', `--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`]);
  t.deepEqual(workerExecArgv(['--max-semi-space-size=16'], ''), ['--max-semi-space-size=16']);
  t.deepEqual(workerExecArgv([], '--max_semi_space_size=8 --enable-source-maps'), []);
});
