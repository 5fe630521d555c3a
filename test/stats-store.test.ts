import test from 'ava';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createLogger } from '../src/log.js';
import { openStatistics } from '../src/stats/index.js';
import { StatsStore } from '../src/stats/store.js';
import { recordId, toStatsRow } from '../src/stats/store-row.js';
import type { LocalRecord, StatsInput } from '../src/stats/types.js';
import type { Fingerprint } from '../src/fingerprint/types.js';
import { runNimbus } from './helpers/nimbus.js';
import { sampleInput, statsConfig, tempDataDir } from './helpers/stats-records.js';

const log = createLogger('silent');

test('a record is on disk when record() resolves: a second connection sees it, with the IP kept locally', async (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const stats = openStatistics(statsConfig(data.dir), log);
  t.teardown(() => stats.close());
  await stats.record(sampleInput(7));
  const other = new Database(join(data.dir, 'nimbus.sqlite'), { readonly: true });
  t.teardown(() => other.close());
  const row = other.prepare('SELECT client_ip, helo, verdict FROM stats').get() as { client_ip: string; helo: string; verdict: string };
  t.deepEqual(row, { client_ip: '203.0.113.7', helo: 'mail7.example.net', verdict: 'ham' });
  t.is((other.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n, 1);
  t.is(other.pragma('journal_mode', { simple: true }), 'wal');
});

test('the outbox copy holds neither the client IP nor the HELO nor fingerprint labels', async (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const stats = openStatistics(statsConfig(data.dir), log);
  await stats.record(sampleInput(9));
  await stats.close();
  const db = new Database(join(data.dir, 'nimbus.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const { record } = db.prepare('SELECT record FROM outbox').get() as { record: string };
  t.false(record.includes('203.0.113.9'));
  t.false(record.includes('mail9.example.net'));
  t.false(record.includes('"label"'));
});

test('an overflowing outbox drops the oldest records first and counts them; local stats keep all', async (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const stats = openStatistics(statsConfig(data.dir, { NIMBUS_OUTBOX_MAX_RECORDS: '5' }), log);
  t.teardown(() => stats.close());
  for (let i = 0; i < 8; i++) await stats.record(sampleInput(i, { size: i }));
  const summary = stats.summary();
  t.is(summary.backlog, 5);
  t.is(summary.dropped, 3);
  t.is(summary.perDay.reduce((n, d) => n + d.messages, 0), 8);
  const db = new Database(join(data.dir, 'nimbus.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const sizes = (db.prepare('SELECT record FROM outbox ORDER BY seq').all() as { record: string }[]).map((r) => (JSON.parse(r.record) as { size: number }).size);
  t.deepEqual(sizes, [3, 4, 5, 6, 7]);
});

test('outbox records older than the age bound are dropped and counted on open', async (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const first = openStatistics(statsConfig(data.dir), log);
  await first.record(sampleInput(1, { time: new Date(Date.now() - 3 * 86_400_000) }));
  await first.record(sampleInput(2));
  await first.close();
  const stats = openStatistics(statsConfig(data.dir, { NIMBUS_OUTBOX_MAX_AGE_DAYS: '2' }), log);
  t.teardown(() => stats.close());
  t.is(stats.summary().backlog, 1);
  t.is(stats.summary().dropped, 1);
});

test('the summary counts messages and spam per day and ranks spam IPs, networks and domains', async (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const stats = openStatistics(statsConfig(data.dir), log);
  t.teardown(() => stats.close());
  for (let i = 0; i < 6; i++) await stats.record(sampleInput(i % 3 === 0 ? 4 : i));
  const s = stats.summary();
  const today = new Date().toISOString().slice(0, 10);
  t.deepEqual(s.perDay, [{ day: today, messages: 6, spam: 4 }]);
  t.deepEqual(s.topIps[0], { item: '203.0.113.4', count: 3 });
  t.is(s.topDomains[0]?.item, 'url:domain:example.biz');
  t.is(s.topDomains[0]?.count, 4);
  t.true(s.topNetworks[0]!.item.startsWith('net:sha256:'));
  t.is(s.topNetworks[0]?.label, '203.0.113.0/24');
  t.is(s.participation, 'off');
  t.false(s.statementAccepted);
});

test('nimbus stats --json reports the records, backlog and participation state of the data dir', async (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const stats = openStatistics(statsConfig(data.dir), log);
  for (let i = 0; i < 4; i++) await stats.record(sampleInput(i));
  await stats.close();
  const result = await runNimbus(['stats', '--json'], { NIMBUS_DATA_DIR: data.dir });
  if (result.code !== 0) throw new Error(`nimbus stats exited ${result.code}: ${result.stderr}`);
  const { stdout } = result;
  const summary = JSON.parse(stdout) as { backlog: number; participation: string; statementAccepted: boolean; perDay: { messages: number }[]; topIps: unknown[]; lastUpload: null; dropped: number };
  t.is(summary.backlog, 4);
  t.is(summary.participation, 'off');
  t.false(summary.statementAccepted);
  t.is(summary.perDay[0]?.messages, 4);
  t.is(summary.topIps.length, 2);
  t.is(summary.lastUpload, null);
  t.is(summary.dropped, 0);
});

/** Two stores on one file stand for two gateway workers (each its own connection and uploader). */
function sharedStores(dir: string): { a: StatsStore; b: StatsStore; close(): void } {
  const bounds = { dataDir: dir, outboxMaxRecords: 1_000_000, outboxMaxAgeDays: 30, statsRetentionDays: 90 };
  const a = new StatsStore(bounds);
  const b = new StatsStore(bounds);
  return { a, b, close: () => (a.close(), b.close()) };
}

test('two workers on one outbox never get the same batch while its uploader is alive; a released or orphaned batch is taken over with its id', (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const { a, b, close } = sharedStores(data.dir);
  t.teardown(close);
  for (let i = 0; i < 30; i++) (i % 2 ? a : b).insert(sampleInput(i), false);
  const first = a.nextBatch('standard', 10, `${process.pid}/worker-a`)!;
  const second = b.nextBatch('standard', 10, `${process.pid}/worker-b`)!;
  t.not(first.id, second.id, 'worker b does not get the batch worker a is sending');
  t.is(new Set([...first.batch.records, ...second.batch.records].map((r) => r.id)).size, 20, 'disjoint records');
  t.is(a.nextBatch('standard', 10, `${process.pid}/worker-a`)!.id, first.id, 'a retry of worker a sends its batch again');

  a.releaseClaims(`${process.pid}/worker-a`);
  t.is(b.nextBatch('standard', 10, `${process.pid}/worker-b`)!.id, first.id, 'released (a stopped): the oldest batch first, same id');

  t.is(b.acknowledge(first.id), 10);
  t.is(b.acknowledge(second.id), 10);

  // A worker killed with -9 leaves its claim behind: a pid that is not running.
  const dead = `${2 ** 22 + 12345}/killed-worker`;
  const third = a.nextBatch('standard', 10, dead)!;
  t.is(b.nextBatch('standard', 10, `${process.pid}/worker-b`)!.id, third.id, 'orphaned by a dead process: taken over');

  t.is(a.acknowledge(third.id), 10);
  t.is(b.acknowledge(third.id), 0, 'acknowledged twice (two senders): counted once');
  t.is(Number(a.meta('uploaded')), 30);
  t.is(a.outboxSize(), 0);
});

test('the outbox size is exact for every process sharing the file, without counting rows', (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const { a, b, close } = sharedStores(data.dir);
  t.teardown(close);
  for (let i = 0; i < 12; i++) (i % 3 ? a : b).insert(sampleInput(i), i < 5);
  t.is(a.outboxSize(), 12);
  t.is(b.outboxSize(), 12);
  t.is(b.discardGatheredWhileOff(), 5);
  const batch = b.nextBatch('standard', 4, `${process.pid}/b`)!;
  a.acknowledge(batch.id);
  t.is(a.outboxSize(), 3);
  t.is(b.outboxSize(), a.backlog());
});

test('a data dir from before batch claims (schema 1) opens with its outbox counted and its batch still sent with its id', (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const old = new Database(join(data.dir, 'nimbus.sqlite'));
  old.exec(`CREATE TABLE stats (id TEXT PRIMARY KEY, time INTEGER NOT NULL, client_ip TEXT NOT NULL, helo TEXT, verdict TEXT NOT NULL, score REAL NOT NULL, action TEXT NOT NULL, size INTEGER NOT NULL, next_hop TEXT, fingerprints TEXT NOT NULL);
    CREATE INDEX stats_time ON stats(time);
    CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, gathered_off INTEGER NOT NULL, batch_id TEXT, record TEXT NOT NULL);
    CREATE INDEX outbox_batch ON outbox(batch_id);
    CREATE TABLE batches (id TEXT PRIMARY KEY, created INTEGER NOT NULL, mode TEXT NOT NULL, body TEXT NOT NULL);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    PRAGMA user_version = 1;`);
  const record = JSON.stringify({ id: 'r1', time: Date.now(), fingerprints: [], verdict: 'ham', score: 0, action: 'deliver', size: 1 });
  old.prepare("INSERT INTO outbox (time, gathered_off, batch_id, record) VALUES (?, 0, 'b-old', ?), (?, 1, NULL, ?)").run(Date.now(), record, Date.now(), record);
  old.prepare("INSERT INTO batches VALUES ('b-old', ?, 'standard', ?)").run(Date.now(), JSON.stringify({ batchId: 'b-old', records: [] }));
  old.close();
  const { a, close } = sharedStores(data.dir);
  t.teardown(close);
  t.is(a.outboxSize(), 2);
  t.is(a.nextBatch('standard', 10, `${process.pid}/a`)!.id, 'b-old');
});

test('record ids are distinct UUIDs (version 7) that sort in the order the records were made, so the id index only grows at its end', (t) => {
  const made = Array.from({ length: 2000 }, (_, i) => recordId(1_790_000_000_000 + Math.floor(i / 10)));
  t.is(new Set(made).size, made.length, 'no id repeats, even within one millisecond');
  for (const id of made) t.regex(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const byTime = made.filter((_, i) => i % 10 === 0);
  t.deepEqual([...byTime].sort(), byTime, 'a later millisecond sorts after an earlier one');
});

test('the uploaded copy of a record keeps the fields the uploader reads, with the id the local row has', async (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const stats = openStatistics(statsConfig(data.dir), log);
  const time = new Date('2026-12-01T10:00:00.000Z');
  await stats.record(sampleInput(4, { time, shared: { verdict: 'unknown', score: 1.5 } }));
  await stats.close();
  const db = new Database(join(data.dir, 'nimbus.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const local = db.prepare('SELECT id, time, verdict, score, fingerprints FROM stats').get() as { id: string; time: number; verdict: string; score: number; fingerprints: string };
  const { record } = db.prepare('SELECT record FROM outbox').get() as { record: string };
  const input = sampleInput(4);
  t.deepEqual(JSON.parse(record), {
    id: local.id,
    time: time.getTime(),
    fingerprints: input.fingerprints.map((f) => ({ text: f.text })),
    verdict: 'unknown',
    score: 1.5,
    action: 'tag',
    size: 1004,
    urls: input.urls,
    attachments: input.attachments,
  });
  t.deepEqual([local.time, local.verdict, local.score], [time.getTime(), 'spam', 12], 'the local row keeps the verdict the gateway decided');
  t.deepEqual(JSON.parse(local.fingerprints), input.fingerprints.map((f) => (f.label === undefined ? { text: f.text } : { text: f.text, label: f.label })));
});

test('the rows of a record hold, byte for byte, the JSON of the record objects the store has always written', (t) => {
  const odd: Fingerprint = { kind: 'url', algorithm: 'domain', value: 'xn--bcher-kva.example', text: 'url:domain:xn--bcher-kva.example', label: 'bücher "quoted" \\ \u2028 \ud800 line\nbreak' };
  const body: Fingerprint = { kind: 'body', algorithm: 'minhash64', value: 'ab12'.repeat(64), text: `body:minhash64:${'ab12'.repeat(64)}` };
  const inputs: StatsInput[] = [
    sampleInput(2),
    sampleInput(3, { shared: { verdict: 'unknown', score: 1.5 }, time: new Date('2026-12-01T10:00:00.000Z') }),
    sampleInput(4, { fingerprints: [odd, body], score: Number.NaN, urls: [], attachments: [] }),
    { clientIp: '192.0.2.1', fingerprints: [], verdict: 'unknown', score: Number.POSITIVE_INFINITY, action: 'deliver', size: 0, nextHop: null },
  ];
  for (const input of inputs) {
    const [id, time, , , , , , , , fingerprints, , outbox] = toStatsRow(input, false);
    t.is(fingerprints, JSON.stringify(input.fingerprints.map((f) => (f.label === undefined ? { text: f.text } : { text: f.text, label: f.label }))));
    const record: LocalRecord = {
      id,
      time,
      fingerprints: input.fingerprints.map((f) => ({ text: f.text })),
      verdict: input.shared?.verdict ?? input.verdict,
      score: input.shared?.score ?? input.score,
      action: input.action,
      size: input.size,
      ...(input.urls ? { urls: [...input.urls] } : {}),
      ...(input.attachments ? { attachments: input.attachments.map((a) => ({ sha256: a.sha256, type: a.type, size: a.size })) } : {}),
    };
    t.is(outbox, JSON.stringify(record));
  }
});
