/**
 * The reputation service on a Redis store of the test's own (a redis-server on a free loopback
 * port, killed and restarted by PID; never the shared one on 6379): an unreachable store gets
 * a quick 503 with Retry-After and an honest /readyz, the service recovers without a restart,
 * and Redis's persistence settings are checked at start.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { loadConfig } from '../src/config/index.js';
import { openReputation } from '../src/reputation/open.js';
import { startReputationService, type RunningReputationService } from '../src/reputation/service.js';
import { startOwnRedis, type OwnRedis } from './helpers/redis-server.js';
import { waitFor } from './helpers/wait.js';
import { call, fingerprint, record } from './helpers/service.js';

/** Generous for a loaded 2-core machine; an outage used to hold each request 6 s and more. */
const FAIL_FAST_MS = 2000;

interface RedisService {
  readonly service: RunningReputationService;
  readonly logs: Record<string, unknown>[];
}

/** `nimbus reputation` in-process with NIMBUS_STORE=redis on `redis`, its log lines captured. */
async function startOnRedis(t: ExecutionContext, redis: OwnRedis): Promise<RedisService> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nimbus-rep-redis-'));
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const config = loadConfig({ NIMBUS_DATA_DIR: dir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_STORE: 'redis', NIMBUS_REDIS_URL: redis.url });
  const service = await startReputationService(config, log);
  t.teardown(async () => {
    await service.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { service, logs };
}

async function addKey(redis: OwnRedis, role: 'sensor' | 'admin'): Promise<string> {
  const opened = await openReputation({ store: 'redis', urls: [redis.url] });
  try {
    return (await opened.keys.addKey(role, `outage test ${role}`, 100_000)).token;
  } finally {
    await opened.close();
  }
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await run();
  return { value, ms: performance.now() - started };
}

test('with its Redis killed the service answers 503 with Retry-After at once, /readyz says why, /healthz stays up, and it recovers when Redis is back without a restart', async (t) => {
  // AOF with fsync always: the key written before the kill is there after the restart.
  const redis = await startOwnRedis(t, ['--appendonly', 'yes', '--appendfsync', 'always']);
  const { service, logs } = await startOnRedis(t, redis);
  const sensor = await addKey(redis, 'sensor');
  const lookup = () => call(service.url, 'POST', '/v1/lookup', sensor, { items: [fingerprint()] });
  t.is((await lookup()).status, 200);
  const ready = await call(service.url, 'GET', '/readyz', null);
  t.is(ready.status, 200);
  t.deepEqual(ready.body, { ok: true, store: 'redis' });

  await redis.kill();
  const down = [
    await timed(lookup),
    await timed(() => call(service.url, 'POST', '/v1/reports', sensor, { batchId: 'outage-batch-1', records: [record('r1', [fingerprint()])] })),
    // A key the service has not cached cannot be checked either: 503, not 401.
    await timed(() => call(service.url, 'POST', '/v1/lookup', 'nmb_00000000_never-seen-before', { items: [fingerprint()] })),
  ];
  for (const { value, ms } of down) {
    t.is(value.status, 503, JSON.stringify(value.body));
    t.is(value.body.error, 'STORE_UNAVAILABLE');
    t.true(Number(value.headers.get('retry-after')) >= 1, 'Retry-After in whole seconds');
    t.true(ms < FAIL_FAST_MS, `answered in ${Math.round(ms)} ms`);
  }
  t.log(`503 after ${down.map((d) => Math.round(d.ms)).join(', ')} ms`);
  const notReady = await timed(() => call(service.url, 'GET', '/readyz', null));
  t.is(notReady.value.status, 503);
  t.is(notReady.value.body.ok, false);
  t.is(notReady.value.body.store, 'redis');
  t.regex(notReady.value.body.reason, /redis/i);
  t.true(notReady.ms < FAIL_FAST_MS);
  t.deepEqual((await call(service.url, 'GET', '/healthz', null)).body, { ok: true }, 'the process is alive: a restart would not help');

  await redis.restart();
  // Reconnection backs off up to 2 s between attempts: ready again within a few seconds.
  let status = 0;
  const readyAgain = async () => (status = (await call(service.url, 'GET', '/readyz', null)).status) === 200;
  // On timeout the assertion below names the status /readyz still gave.
  await waitFor('/readyz to answer 200', readyAgain, 15_000).catch(() => undefined);
  t.is(status, 200, 'ready again once Redis is back');
  t.is((await lookup()).status, 200);
  const events = logs.map((line) => line.event);
  t.is(events.filter((event) => event === 'reputation.store_unavailable').length, 1, 'the outage is logged once, not per request');
  t.is(events.filter((event) => event === 'reputation.store_available').length, 1);
  t.false(events.includes('reputation.request_failed'), 'an unreachable store is no internal error');
});

const persistenceLines = (logs: Record<string, unknown>[]) => logs.filter((line) => String(line.event).startsWith('reputation.redis_persistence'));
const WARN = 40;
const INFO = 30;

test('on a Redis without AOF (appendonly no) the service warns at start, in one line naming appendonly and what a crash loses', async (t) => {
  const redis = await startOwnRedis(t, ['--appendonly', 'no']);
  const { logs } = await startOnRedis(t, redis);
  const lines = persistenceLines(logs);
  t.is(lines.length, 1, JSON.stringify(lines));
  t.like(lines[0], { level: WARN, event: 'reputation.redis_persistence_unsafe', setting: 'appendonly', appendonly: 'no', redis: `127.0.0.1:${redis.port}` });
  t.regex(String(lines[0]!.msg), /appendonly no: a crash or kill -9 of Redis loses .*report batches, verdicts and API keys/);
});

test('on a Redis whose AOF is written but fsynced by the OS (appendfsync no) the service warns, naming appendfsync', async (t) => {
  const redis = await startOwnRedis(t, ['--appendonly', 'yes', '--appendfsync', 'no']);
  const lines = persistenceLines((await startOnRedis(t, redis)).logs);
  t.is(lines.length, 1);
  t.like(lines[0], { level: WARN, event: 'reputation.redis_persistence_unsafe', setting: 'appendfsync', appendonly: 'yes', appendfsync: 'no' });
});

test('on a Redis with AOF (appendonly yes, appendfsync everysec) the service does not warn, and logs what a power cut could lose', async (t) => {
  const redis = await startOwnRedis(t, ['--appendonly', 'yes']);
  const lines = persistenceLines((await startOnRedis(t, redis)).logs);
  t.is(lines.length, 1);
  t.like(lines[0], { level: INFO, event: 'reputation.redis_persistence', appendonly: 'yes', appendfsync: 'everysec' });
  t.regex(String(lines[0]!.msg), /up to ~1 s/);
});

test('a Redis that refuses CONFIG (as managed ones may) leaves persistence unknown: an info line, no warning, and the service starts', async (t) => {
  const redis = await startOwnRedis(t, ['--appendonly', 'no', '--rename-command', 'CONFIG', '']);
  const { service, logs } = await startOnRedis(t, redis);
  const lines = persistenceLines(logs);
  t.is(lines.length, 1);
  t.like(lines[0], { level: INFO, event: 'reputation.redis_persistence', appendonly: null });
  t.regex(String(lines[0]!.msg), /persistence unknown \(CONFIG GET refused/);
  t.is((await call(service.url, 'GET', '/readyz', null)).status, 200);
});
