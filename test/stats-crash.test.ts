import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createLogger } from '../src/log.js';
import { openStatistics } from '../src/stats/index.js';
import { sampleInput, statsConfig, tempDataDir } from './helpers/stats-records.js';
import { startCuttingProxy, startRealService } from './helpers/stats-service.js';
import { waitFor } from './helpers/wait.js';

const DOMAIN = 'url:domain:example.biz';

function child(env: Record<string, string>): { process: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, ['--import=tsx', 'test/helpers/stats-child.ts'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { process: proc, output: () => out, exited };
}

const title = 'kill -9 while uploading to the real service (a batch ingested, its acknowledgement never arrived) and while recording, then a restart: every durable record is counted exactly once';

test(title, async (t) => {
  const data = tempDataDir();
  const service = await startRealService(data.dir);
  const proxy = await startCuttingProxy(service.url);
  const running: ChildProcess[] = [];
  t.teardown(async () => {
    for (const proc of running) if (proc.exitCode === null) proc.kill('SIGKILL');
    await proxy.close();
    await service.close();
    data.remove();
  });
  // A backlog gathered while off.
  const off = openStatistics(statsConfig(data.dir), createLogger('silent'));
  for (let i = 0; i < 1000; i++) await off.record(sampleInput(i));
  await off.close();

  // The engine ingests the third batch; its acknowledgement is held until the gateway dies.
  let held = false;
  proxy.decide = (n) => {
    if (n !== 3) return 'forward';
    held = true;
    return 'hold';
  };
  const env = {
    NIMBUS_DATA_DIR: data.dir,
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: proxy.url,
    NIMBUS_REPUTATION_KEY: service.token,
    NIMBUS_UPLOAD_BATCH_SIZE: '100',
    NIMBUS_LOG_LEVEL: 'silent',
  };
  const first = child({ ...env, STATS_RECORDS: '3000', STATS_FROM: '5000' });
  running.push(first.process);
  // The third answer reached the proxy: the service has ingested that batch, the child waits.
  await waitFor('the third acknowledgement held', () => held, 60_000);
  first.process.kill('SIGKILL');
  await first.exited;
  proxy.decide = () => 'forward';

  const second = child({ ...env, STATS_RECORDS: '0' });
  running.push(second.process);
  t.is(await second.exited, 0, second.output());
  t.regex(second.output(), /drained/);

  const db = new Database(join(data.dir, 'nimbus.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const local = (db.prepare('SELECT count(*) AS n FROM stats').get() as { n: number }).n;
  const recorded = [...first.output().matchAll(/recorded (\d+)/g)].map((m) => Number(m[1]));
  const lastRecorded = recorded.at(-1) ?? 0;
  t.true(local >= 1000 + lastRecorded, 'every record() that resolved before the kill is on disk');
  t.is((db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n, 0);
  t.is(await service.seen(DOMAIN), local, 'each local record counted once by the service');
  t.true(proxy.requests > 10);
});
