/**
 * Statistics uploads against the REAL reputation service and engine (through a TCP proxy that
 * can cut or hold an acknowledgement). Listed as todo while src/reputation/open.ts is missing.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createLogger } from '../src/log.js';
import { openStatistics, type Statistics } from '../src/stats/index.js';
import { participating, sampleInput, statsConfig, tempDataDir } from './helpers/stats-records.js';
import { realServiceAvailable, startCuttingProxy, startRealService, type CuttingProxy, type RealService } from './helpers/stats-service.js';

const log = createLogger('silent');
const FAST = { backoffBaseMs: 20, backoffMaxMs: 200, idleMs: 100 } as const;
const DOMAIN = 'url:domain:example.biz';

function realTest(title: string, body: (t: ExecutionContext) => Promise<void>): void {
  if (realServiceAvailable()) test.serial(title, body);
  else test.todo(`${title} (needs the engine, src/reputation/open.ts)`);
}

async function setup(t: ExecutionContext): Promise<{ dir: string; service: RealService; proxy: CuttingProxy }> {
  const data = tempDataDir();
  const service = await startRealService(data.dir);
  const proxy = await startCuttingProxy(service.url);
  t.teardown(async () => {
    await proxy.close();
    await service.close();
    data.remove();
  });
  return { dir: data.dir, service, proxy };
}

async function recordMany(stats: Statistics, n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) await stats.record(sampleInput(i));
}

realTest('500 records gathered while off reach the real service exactly once after opting in, though an acknowledgement is cut', async (t) => {
  const { dir, service, proxy } = await setup(t);
  proxy.decide = (n) => (n === 2 ? 'cut' : 'forward');
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 500);
  t.is(proxy.requests, 0);
  stats.reload(participating(dir, proxy.url, 'standard', { NIMBUS_REPUTATION_KEY: service.token, NIMBUS_UPLOAD_BATCH_SIZE: '100' }));
  await proxy.waitFor(() => stats.summary().backlog === 0);
  t.true(proxy.requests >= 6, 'the cut batch was resent');
  t.is(await service.seen(DOMAIN), 500);
  const bytes = Buffer.concat(proxy.sent).toString('utf8');
  for (const word of ['alice', 'secret', '%40', '203.0.113.', 'mail1.example.net', 'application/pdf']) t.false(bytes.includes(word), word);
});

realTest('a wrong key gets a real 401: uploads stop, records stay, and a reload with the right key sends them', async (t) => {
  const { dir, service, proxy } = await setup(t);
  const stats = openStatistics(participating(dir, proxy.url, 'standard', { NIMBUS_REPUTATION_KEY: 'nmb_wrong_key' }), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 20);
  await proxy.waitFor(() => stats.summary().uploader === 'stopped-auth');
  const requests = proxy.requests;
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.is(proxy.requests, requests);
  t.is(stats.summary().backlog, 20);
  stats.reload(participating(dir, proxy.url, 'standard', { NIMBUS_REPUTATION_KEY: service.token }));
  await proxy.waitFor(() => stats.summary().backlog === 0);
  t.is(await service.seen(DOMAIN), 20);
});

realTest('switching off while a large backlog uploads to the real service: no request starts after the switch', async (t) => {
  const { dir, service, proxy } = await setup(t);
  proxy.decide = (n) => (n === 3 ? 'hold' : 'forward');
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 1000);
  stats.reload(participating(dir, proxy.url, 'standard', { NIMBUS_REPUTATION_KEY: service.token, NIMBUS_UPLOAD_BATCH_SIZE: '100' }));
  await proxy.waitFor(() => proxy.requests >= 3);
  stats.reload(statsConfig(dir));
  const atSwitch = proxy.requests;
  await recordMany(stats, 10, 2000);
  await new Promise((resolve) => setTimeout(resolve, 800));
  t.is(proxy.requests, atSwitch);
  t.is(stats.summary().backlog, 1010 - 200, 'two acknowledged batches left the outbox, the held one stays');
});

realTest('kill -9 while uploading to the real service, restart: every local record is counted once', async (t) => {
  const { dir, service, proxy } = await setup(t);
  const off = openStatistics(statsConfig(dir), log);
  await recordMany(off, 600);
  await off.close();
  proxy.decide = (n) => (n === 3 ? 'hold' : 'forward');
  const env = {
    PATH: process.env.PATH ?? '',
    NIMBUS_DATA_DIR: dir,
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: proxy.url,
    NIMBUS_REPUTATION_KEY: service.token,
    NIMBUS_UPLOAD_BATCH_SIZE: '100',
    NIMBUS_LOG_LEVEL: 'silent',
  };
  const first = spawn(process.execPath, ['--import=tsx', 'test/helpers/stats-child.ts'], { env: { ...env, STATS_RECORDS: '0' }, stdio: 'ignore' });
  t.teardown(() => void first.kill('SIGKILL'));
  await proxy.waitFor(() => proxy.requests >= 3);
  // The engine has the third batch; its acknowledgement is held when the gateway dies.
  await new Promise((resolve) => setTimeout(resolve, 300));
  first.kill('SIGKILL');
  await new Promise((resolve) => first.once('exit', resolve));
  proxy.decide = () => 'forward';
  const second = spawn(process.execPath, ['--import=tsx', 'test/helpers/stats-child.ts'], { env: { ...env, STATS_RECORDS: '0' }, stdio: 'ignore' });
  t.teardown(() => void second.kill('SIGKILL'));
  t.is(await new Promise((resolve) => second.once('exit', resolve)), 0);
  const db = new Database(join(dir, 'nimbus.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  t.is((db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n, 0);
  t.is(await service.seen(DOMAIN), 600);
});
