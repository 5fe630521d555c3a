/**
 * No password and no API key secret is printed or logged: `nimbus config` as a process, a gateway
 * whose service URL carries credentials (only a hand-made configuration can: loadConfig refuses
 * them), and `nimbus reputation` against a real redis-server that wants a password.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { loadConfig, VARIABLES } from '../src/config/index.js';
import { startGateway } from '../src/gateway/server.js';
import { createLogger } from '../src/log.js';
import { openScanRuntime } from '../src/scan/runtime.js';
import { runNimbus, startReputationProcess } from './helpers/nimbus.js';
import { freePort } from './helpers/ports.js';
import { stopProcess } from './helpers/processes.js';
import { fingerprint } from './helpers/service.js';
import { sendOne } from './helpers/smtp.js';
import { tempDir, testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const run = promisify(execFile);
const KEY_SECRET = 'keySecretXyz123';
const UPSTREAM_KEY_SECRET = 'upstreamKeySecret456';
const REPUTATION_KEY = `nmb_0123456789abcdef_${KEY_SECRET}`;
const UPSTREAM_KEY = `nmb_fedcba9876543210_${UPSTREAM_KEY_SECRET}`;

/** Every kind of secret a configuration holds: passwords in Redis URLs (a Cluster list), API keys. */
const SECRETS_ENV = {
  NIMBUS_REDIS_URL: 'redis://u:secret@127.0.0.1:6379,rediss://:secret2@127.0.0.1:6380',
  NIMBUS_REPUTATION_URL: 'http://127.0.0.1:8787',
  NIMBUS_REPUTATION_KEY: REPUTATION_KEY,
  NIMBUS_UPSTREAM_URL: 'http://127.0.0.1:1/',
  NIMBUS_UPSTREAM_KEY: UPSTREAM_KEY,
};

function assertNoSecret(t: ExecutionContext, output: string, secrets: readonly string[]): void {
  for (const secret of secrets) t.false(output.includes(secret), `${secret} appears in:\n${output}`);
}

test('nimbus config --json prints Redis URLs without their passwords and keys without their secrets', async (t) => {
  const result = await runNimbus(['config', '--json'], SECRETS_ENV);
  t.is(result.code, 0, result.stderr);
  assertNoSecret(t, result.stdout + result.stderr, [':secret@', 'secret2', KEY_SECRET, UPSTREAM_KEY_SECRET]);
  const printed = JSON.parse(result.stdout) as Record<string, unknown>;
  t.deepEqual(printed.redisUrls, ['redis://u:***@127.0.0.1:6379', 'rediss://:***@127.0.0.1:6380']);
  t.is(printed.reputationKey, 'nmb_0123456789abcdef_***');
  t.is(printed.upstreamKey, 'nmb_fedcba9876543210_***');
});

test('nimbus config prints NAME=value per variable in the table\'s order, Redis passwords and key secrets masked', async (t) => {
  const result = await runNimbus(['config'], SECRETS_ENV);
  t.is(result.code, 0, result.stderr);
  assertNoSecret(t, result.stdout + result.stderr, [':secret@', 'secret2', KEY_SECRET, UPSTREAM_KEY_SECRET]);
  const lines = result.stdout.trimEnd().split('\n');
  t.deepEqual(
    lines.map((line) => line.slice(0, line.indexOf('='))),
    Object.keys(VARIABLES),
  );
  t.true(lines.includes('NIMBUS_REDIS_URL=redis://u:***@127.0.0.1:6379,rediss://:***@127.0.0.1:6380'));
  t.true(lines.includes('NIMBUS_REPUTATION_KEY=nmb_0123456789abcdef_***'));
  t.true(lines.includes('NIMBUS_UPSTREAM_KEY=nmb_fedcba9876543210_***'));
  t.true(lines.includes('NIMBUS_UPSTREAM_URL=http://127.0.0.1:1'));
});

test('nimbus config refuses service URLs with credentials (exit 78), says where keys go and echoes no password', async (t) => {
  const result = await runNimbus(['config'], {
    NIMBUS_REPUTATION_URL: 'http://gw:secret4@127.0.0.1:8787',
    NIMBUS_UPSTREAM_URL: 'http://u:secret3@127.0.0.1:1/',
    NIMBUS_UPSTREAM_KEY: UPSTREAM_KEY,
  });
  t.is(result.code, 78);
  t.is(result.stdout, '');
  t.regex(result.stderr, /NIMBUS_REPUTATION_URL="http:\/\/gw:\*\*\*@127\.0\.0\.1:8787\/": credentials in the URL are not used.*NIMBUS_REPUTATION_KEY/);
  t.regex(result.stderr, /NIMBUS_UPSTREAM_URL="http:\/\/u:\*\*\*@127\.0\.0\.1:1\/": credentials in the URL are not used.*NIMBUS_UPSTREAM_KEY/);
  assertNoSecret(t, result.stderr, ['secret3', 'secret4', UPSTREAM_KEY_SECRET]);
});

/** A Writable that keeps every log line, and waits for events. */
function logSink(): { stream: Writable; text(): string; lines(): Record<string, unknown>[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return {
    stream,
    text: () => text,
    lines: () => text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

test('a gateway whose service URL holds a password logs none of it, nor its key: runtime_ready, stats.upload.started, lookup.error, stats.upload.failed', async (t) => {
  const dataDir = tempDir('nimbus-secrets-gw-');
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const closedPort = await freePort();
  const config = {
    ...loadConfig({
      NIMBUS_DATA_DIR: dataDir,
      NIMBUS_LISTEN: '127.0.0.1:0',
      NIMBUS_PARTICIPATION: 'standard',
      NIMBUS_ACCEPT_STATEMENT: 'yes',
      NIMBUS_REPUTATION_URL: `http://127.0.0.1:${closedPort}`,
      NIMBUS_REPUTATION_KEY: REPUTATION_KEY,
      NIMBUS_WORKERS: '1',
    }),
    // What loadConfig refuses (see the test above): the log must stay clean even so.
    reputationUrl: `http://u:secret3@127.0.0.1:${closedPort}`,
  };
  const sink = logSink();
  const log = createLogger('info', { service: 'gateway' }, sink.stream);
  const runtime = await openScanRuntime(config, log);
  const gateway = await startGateway(config, log, { scanner: runtime.scanner, observer: runtime.recorder, quarantine: runtime.quarantine });
  t.teardown(async () => {
    await gateway.close();
    await runtime.close();
  });

  const reply = await sendOne(gateway.address.port, 'From: a@source.test\nTo: rcpt@relay.test\nSubject: offer\n\nBuy now at http://offers.example/buy\n');
  t.regex(reply ?? '', /^250 /);
  const seen = (event: string) => sink.lines().find((line) => line.event === event);
  const lookupError = await waitFor('lookup.error', () => seen('lookup.error'));
  const uploadFailed = await waitFor('stats.upload.failed', () => seen('stats.upload.failed'));

  t.is(seen('scan.runtime_ready')?.service, `http://u:***@127.0.0.1:${closedPort}`);
  t.is(seen('stats.upload.started')?.url, `http://u:***@127.0.0.1:${closedPort}`);
  // node-fetch refuses such a URL with a message that repeats it.
  t.regex(String(lookupError.err), /http:\/\/u:\*\*\*@127\.0\.0\.1:\d+\/v1\/lookup/);
  t.regex(String(uploadFailed.err), /http:\/\/u:\*\*\*@127\.0\.0\.1:\d+\/v1\/reports/);
  assertNoSecret(t, sink.text(), ['secret3', KEY_SECRET]);
});

interface RedisServer {
  readonly port: number;
  cli(...args: string[]): Promise<string>;
}

/** A redis-server of this test's own (its password is changed), on a free loopback port; stopped by PID. */
async function startRedis(t: ExecutionContext, password: string): Promise<RedisServer> {
  const port = await freePort();
  const dir = tempDir('nimbus-secrets-redis-');
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  t.teardown(async () => {
    await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
  });
  let current = password;
  const cli = async (...args: string[]): Promise<string> => (await run('redis-cli', ['-p', String(port), '-a', current, '--no-auth-warning', ...args])).stdout.trim();
  await waitFor(`redis-server on ${port} to answer PING`, async () => (await cli('PING').catch(() => '')) === 'PONG', 10_000);
  return {
    port,
    async cli(...args) {
      const out = await cli(...args);
      if (args[0]?.toUpperCase() === 'CONFIG' && args[2] === 'requirepass' && out === 'OK') current = args[3]!;
      return out;
    },
  };
}

test('nimbus reputation with a wrong Redis password stops saying why, without the password', async (t) => {
  const redis = await startRedis(t, 'right-password-1');
  const result = await runNimbus(['reputation'], {
    NIMBUS_STORE: 'redis',
    NIMBUS_REDIS_URL: `redis://default:wrong-secret@127.0.0.1:${redis.port}`,
    NIMBUS_HTTP_LISTEN: '127.0.0.1:0',
    NIMBUS_DATA_DIR: testDir(t, 'nimbus-secrets-svc-'),
  });
  t.is(result.code, 1);
  t.regex(result.stderr, new RegExp(`cannot connect to Redis at 127\\.0\\.0\\.1:${redis.port}: WRONGPASS`));
  assertNoSecret(t, result.stdout + result.stderr, ['wrong-secret', 'right-password-1']);
});

test('a running reputation service logs no Redis password and no key, also when Redis refuses its password', async (t) => {
  const password = 'redis-secret-2';
  const redis = await startRedis(t, password);
  const dataDir = testDir(t, 'nimbus-secrets-svc-');
  const env = { NIMBUS_STORE: 'redis', NIMBUS_REDIS_URL: `redis://default:${password}@127.0.0.1:${redis.port}`, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_DATA_DIR: dataDir, NIMBUS_LOG_LEVEL: 'info' };
  const added = await runNimbus(['keys', 'add', '--role', 'sensor', '--label', 'secrets test'], env);
  t.is(added.code, 0, added.stderr);
  const token = added.stdout.trim();
  const tokenSecret = token.split('_').slice(2).join('_');

  const service = await startReputationProcess(t, env);
  const output = () => service.output();
  const lines = () => service.logLines();
  const listening = service.events('reputation.listening')[0]!;
  t.deepEqual(listening.redis, [`redis://default:***@127.0.0.1:${redis.port}`]);
  const lookup = () =>
    fetch(`${String(listening.url)}/v1/lookup`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ items: [fingerprint('url')] }),
    });
  t.is((await lookup()).status, 200);

  // Redis now wants another password and drops every client: the service reconnects with the old
  // one, ioredis fails on HELLO … AUTH default <password>, and that error is what gets logged.
  await redis.cli('CONFIG', 'SET', 'requirepass', 'redis-secret-3');
  await redis.cli('CLIENT', 'KILL', 'TYPE', 'normal');
  const failed = await lookup();
  t.true(failed.status >= 500, `status ${failed.status}`);
  // The service says why (Redis's own reason) where anyone may ask, and logs the outage; no secret anywhere.
  const reason = async () => ((await (await fetch(`${String(listening.url)}/readyz`)).json()) as { reason?: string }).reason ?? '';
  let why = '';
  // On timeout the assertion below shows the last reason given.
  await waitFor('/readyz to give Redis\'s reason', async () => /WRONGPASS|NOAUTH/.test((why = await reason())), 30_000).catch(() => undefined);
  t.regex(why, /WRONGPASS|NOAUTH/);
  const logged = lines().find((line) => line.event === 'reputation.store_unavailable');
  t.truthy(logged);
  assertNoSecret(t, output(), [password, 'redis-secret-3', tokenSecret]);
});
