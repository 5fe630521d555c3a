import test from 'ava';
import { createLogger } from '../src/log.js';
import { createGatewayMetrics, openStatistics, startMetricsServer, type Statistics } from '../src/stats/index.js';
import { startReportsPeer, type ReportsPeer } from './helpers/stats-peer.js';
import { participating, sampleInput, statsConfig, tempDataDir } from './helpers/stats-records.js';

const log = createLogger('silent');
const FAST = { backoffBaseMs: 20, backoffMaxMs: 200, idleMs: 100 } as const;

async function setup(t: import('ava').ExecutionContext): Promise<{ dir: string; peer: ReportsPeer }> {
  const data = tempDataDir();
  const peer = await startReportsPeer();
  t.teardown(async () => {
    await peer.close();
    data.remove();
  });
  return { dir: data.dir, peer };
}

async function recordMany(stats: Statistics, n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) await stats.record(sampleInput(i));
}

function uniqueIds(peer: ReportsPeer): { total: number; unique: number } {
  const ids = peer.records().map((r) => r.id);
  return { total: ids.length, unique: new Set(ids).size };
}

test('off sends no byte: records stay local and no request reaches the service', async (t) => {
  const { dir, peer } = await setup(t);
  const stats = openStatistics(statsConfig(dir, { NIMBUS_REPUTATION_URL: peer.url }), log, FAST);
  await recordMany(stats, 20);
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.is(stats.summary().backlog, 20);
  await stats.close();
  t.is(peer.started, 0);
});

test('opting in by reload uploads the backlog gathered while off, exactly once, and empties the outbox', async (t) => {
  const { dir, peer } = await setup(t);
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 500);
  t.is(peer.started, 0);
  stats.reload(participating(dir, peer.url, 'standard', { NIMBUS_UPLOAD_BATCH_SIZE: '120' }));
  await peer.waitFor(() => peer.records().length >= 500);
  await peer.waitFor(() => stats.summary().backlog === 0);
  t.deepEqual(uniqueIds(peer), { total: 500, unique: 500 });
  t.is(peer.batches.size, 5, 'batches of NIMBUS_UPLOAD_BATCH_SIZE');
  t.is(stats.summary().uploaded, 500);
  t.truthy(stats.summary().lastUpload);
});

test('NIMBUS_UPLOAD_BACKLOG=no drops what was gathered while off from the outbox at opt-in, keeps it in local stats, and uploads only newer records', async (t) => {
  const { dir, peer } = await setup(t);
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 30);
  stats.reload(participating(dir, peer.url, 'standard', { NIMBUS_UPLOAD_BACKLOG: 'no' }));
  t.is(stats.summary().backlog, 0);
  await recordMany(stats, 4, 100);
  await peer.waitFor(() => peer.records().length >= 4);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.is(peer.records().length, 4);
  t.is(stats.summary().perDay.reduce((n, d) => n + d.messages, 0), 34);
});

test('a batch whose acknowledgement is lost (connection cut) is resent with the same id and counts once', async (t) => {
  const { dir, peer } = await setup(t);
  peer.reply = (n) => (n === 2 ? 'cut' : 'ok');
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 500);
  stats.reload(participating(dir, peer.url, 'standard', { NIMBUS_UPLOAD_BATCH_SIZE: '100' }));
  await peer.waitFor(() => stats.summary().backlog === 0);
  t.true(peer.duplicates >= 1, 'the cut batch was resent');
  const ids = peer.bodies.map((b) => (JSON.parse(b) as { batchId: string }).batchId);
  t.is(ids[1], ids[2], 'the resend carries the batch id fixed at creation');
  t.deepEqual(uniqueIds(peer), { total: 500, unique: 500 });
});

test('opting out aborts the batch in flight at once and no request starts after', async (t) => {
  const { dir, peer } = await setup(t);
  peer.reply = () => 'hold';
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 300);
  stats.reload(participating(dir, peer.url, 'standard', { NIMBUS_UPLOAD_BATCH_SIZE: '50' }));
  await peer.waitFor(() => peer.bodies.length >= 1);
  stats.reload(statsConfig(dir, { NIMBUS_REPUTATION_URL: peer.url }));
  await peer.waitFor(() => peer.clientAborts === 1, 10_000);
  const startedAtSwitch = peer.started;
  peer.reply = () => 'ok';
  peer.release();
  await recordMany(stats, 10, 1000);
  await new Promise((resolve) => setTimeout(resolve, 800));
  t.is(peer.started, startedAtSwitch, 'no request after the switch');
  t.is(stats.summary().backlog, 310, 'the unacknowledged batch stays local');
});

test('withdrawing acceptance stops uploads like opting out', async (t) => {
  const { dir, peer } = await setup(t);
  peer.reply = () => 'hold';
  const stats = openStatistics(participating(dir, peer.url), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 5);
  await peer.waitFor(() => peer.started >= 1);
  // NIMBUS_ACCEPT_STATEMENT=no with participation still on is refused by loadConfig, so the
  // running process sees it as a config object the way a reload would hand it over.
  stats.reload({ ...participating(dir, peer.url), acceptStatement: false });
  const started = peer.started;
  peer.release();
  await recordMany(stats, 5, 10);
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.is(peer.started, started);
  t.is(stats.summary().uploader, 'off');
});

test('a 401 stops uploads with one error, keeps every record, and a reload resumes them', async (t) => {
  const { dir, peer } = await setup(t);
  peer.reply = () => 401;
  const lines: string[] = [];
  const capture = createLogger('info');
  const logger = Object.assign(Object.create(capture), {}) as typeof capture;
  const spy = new Proxy(logger, {
    get(target, prop, receiver) {
      if (prop === 'child') return () => spy;
      if (prop === 'error' || prop === 'warn' || prop === 'info') return (obj: unknown, msg?: string) => lines.push(`${String(prop)} ${msg ?? ''} ${JSON.stringify(obj)}`);
      return Reflect.get(target, prop, receiver);
    },
  });
  const stats = openStatistics(participating(dir, peer.url), spy, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 20);
  await peer.waitFor(() => stats.summary().uploader === 'stopped-auth');
  await recordMany(stats, 5, 50);
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.is(peer.started, 1, 'no retry after a 401');
  t.is(lines.filter((l) => l.startsWith('error')).length, 1);
  t.regex(lines.find((l) => l.startsWith('error'))!, /401.*NIMBUS_REPUTATION_KEY|NIMBUS_REPUTATION_KEY.*401/);
  t.is(stats.summary().backlog, 25);
  t.regex(stats.summary().lastError ?? '', /401/);
  peer.reply = () => 'ok';
  stats.reload(participating(dir, peer.url));
  await peer.waitFor(() => stats.summary().backlog === 0);
  t.deepEqual(uniqueIds(peer), { total: 25, unique: 25 });
});

test('failed uploads are retried with backoff until the service answers, then counted once', async (t) => {
  const { dir, peer } = await setup(t);
  peer.reply = (n) => (n <= 3 ? 503 : 'ok');
  const metrics = createGatewayMetrics({ defaultMetrics: false });
  const stats = openStatistics(statsConfig(dir), log, { ...FAST, metrics });
  t.teardown(() => stats.close());
  await recordMany(stats, 10);
  stats.reload(participating(dir, peer.url));
  await peer.waitFor(() => stats.summary().backlog === 0);
  t.is(peer.started, 4);
  t.deepEqual(uniqueIds(peer), { total: 10, unique: 10 });
  const text = await metrics.registry.metrics();
  t.regex(text, /nimbus_stats_upload_errors_total\{kind="http"\} 3/);
  t.regex(text, /nimbus_stats_uploaded_records_total 10/);
  t.regex(text, /nimbus_stats_backlog_records 0/);
});

test('the metrics server answers GET /metrics with the registry, including dropped records', async (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const metrics = createGatewayMetrics();
  const stats = openStatistics(statsConfig(data.dir, { NIMBUS_OUTBOX_MAX_RECORDS: '2' }), log, { metrics });
  t.teardown(() => stats.close());
  await recordMany(stats, 5);
  metrics.messages.inc({ verdict: 'spam', action: 'tag' });
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics.registry);
  t.teardown(() => server.close());
  const response = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
  t.is(response.status, 200);
  const text = await response.text();
  t.regex(text, /nimbus_stats_dropped_records_total 3/);
  t.regex(text, /nimbus_stats_backlog_records 2/);
  t.regex(text, /nimbus_messages_total\{verdict="spam",action="tag"\} 1/);
  t.regex(text, /# TYPE nimbus_lookup_duration_seconds histogram/);
  t.is((await fetch(`http://127.0.0.1:${server.address.port}/other`)).status, 404);
});

test('narrowing extended to standard aborts an extended batch in flight and resends it without extended fields', async (t) => {
  const { dir, peer } = await setup(t);
  peer.reply = (n) => (n === 1 ? 'hold' : 'ok');
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 30);
  stats.reload(participating(dir, peer.url, 'extended'));
  await peer.waitFor(() => peer.bodies.length >= 1);
  t.true(peer.bodies[0]!.includes('"urls"'));
  stats.reload(participating(dir, peer.url, 'standard'));
  await peer.waitFor(() => peer.clientAborts === 1, 10_000);
  await peer.waitFor(() => stats.summary().backlog === 0);
  const later = peer.bodies.slice(1);
  t.true(later.length >= 1);
  for (const body of later) {
    t.false(body.includes('"urls"'));
    t.false(body.includes('url:sha256:'));
  }
});
