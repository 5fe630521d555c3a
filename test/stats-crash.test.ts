import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createLogger } from '../src/log.js';
import { openStatistics } from '../src/stats/index.js';
import { startReportsPeer } from './helpers/stats-peer.js';
import { sampleInput, statsConfig, tempDataDir } from './helpers/stats-records.js';

function child(env: Record<string, string>): { process: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, ['--import=tsx', 'test/helpers/stats-child.ts'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { process: proc, output: () => out, exited };
}

test('kill -9 while uploading, then a restart: every durable record reaches the service exactly once', async (t) => {
  const data = tempDataDir();
  const peer = await startReportsPeer();
  const running: ChildProcess[] = [];
  t.teardown(async () => {
    for (const proc of running) if (proc.exitCode === null) proc.kill('SIGKILL');
    await peer.close();
    data.remove();
  });
  // A backlog gathered while off.
  const off = openStatistics(statsConfig(data.dir), createLogger('silent'));
  for (let i = 0; i < 1000; i++) await off.record(sampleInput(i));
  await off.close();

  // The service stores the third batch but the gateway dies before the acknowledgement.
  peer.reply = (n) => (n === 3 ? 'hold' : 'ok');
  const env = {
    NIMBUS_DATA_DIR: data.dir,
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: peer.url,
    NIMBUS_REPUTATION_KEY: 'sensor-key',
    NIMBUS_UPLOAD_BATCH_SIZE: '100',
    NIMBUS_LOG_LEVEL: 'silent',
  };
  const first = child({ ...env, STATS_RECORDS: '300', STATS_FROM: '5000' });
  running.push(first.process);
  await peer.waitFor(() => peer.batches.size >= 3, 60_000);
  first.process.kill('SIGKILL');
  await first.exited;
  peer.reply = () => 'ok';
  peer.release();

  const second = child({ ...env, STATS_RECORDS: '0' });
  running.push(second.process);
  t.is(await second.exited, 0, second.output());
  t.regex(second.output(), /drained/);

  const db = new Database(join(data.dir, 'nimbus.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const local = (db.prepare('SELECT id FROM stats').all() as { id: string }[]).map((r) => r.id).sort();
  const recordedByFirst = Number(/recorded (\d+)\n(?![\s\S]*recorded)/.exec(first.output())?.[1] ?? 0);
  t.true(local.length >= 1000 + recordedByFirst, 'every record() that resolved before the kill is on disk');
  const sent = peer.records().map((r) => r.id);
  t.is(new Set(sent).size, sent.length, 'no record counted twice');
  t.deepEqual([...sent].sort(), local, 'every local record reached the service');
  t.true(peer.duplicates >= 1, 'the unacknowledged batch was resent with its id after the restart');
});
