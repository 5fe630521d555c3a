/**
 * The uploader against the REAL reputation service and engine (src/reputation/service.ts,
 * src/reputation/open.ts), reached through a TCP proxy that counts requests, captures every
 * byte, and can cut or hold an acknowledgement.
 */
import test, { type ExecutionContext } from 'ava';
import { createLogger } from '../src/log.js';
import { countMessage, createGatewayMetrics, lookupMetricsObserver, openStatistics, startMetricsServer, type Statistics } from '../src/stats/index.js';
import { participating, sampleInput, statsConfig, tempDataDir } from './helpers/stats-records.js';
import { startCuttingProxy, startRealService, type CuttingProxy, type RealService } from './helpers/stats-service.js';
import { waitFor } from './helpers/wait.js';

const log = createLogger('silent');
const FAST = { backoffBaseMs: 20, backoffMaxMs: 200, idleMs: 100 } as const;
/** Every sample record links to this domain: the engine's `seen` for it counts records. */
const DOMAIN = 'url:domain:example.biz';

async function setup(t: ExecutionContext): Promise<{ dir: string; service: RealService; proxy: CuttingProxy; on: (mode?: 'standard' | 'extended', env?: Record<string, string>) => ReturnType<typeof participating> }> {
  const data = tempDataDir();
  const service = await startRealService(data.dir);
  const proxy = await startCuttingProxy(service.url);
  t.teardown(async () => {
    await proxy.close();
    await service.close();
    data.remove();
  });
  const on = (mode: 'standard' | 'extended' = 'standard', env: Record<string, string> = {}) => participating(data.dir, proxy.url, mode, { NIMBUS_REPUTATION_KEY: service.token, ...env });
  return { dir: data.dir, service, proxy, on };
}

async function recordMany(stats: Statistics, n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) await stats.record(sampleInput(i));
}

test('off sends no byte: records stay local and no request reaches the service', async (t) => {
  const { dir, proxy } = await setup(t);
  const stats = openStatistics(statsConfig(dir, { NIMBUS_REPUTATION_URL: proxy.url }), log, FAST);
  // Each record would wake a running uploader at once (notify); once closed, the statistics
  // can send nothing more (close() waits for the uploader to end): what the proxy saw by then is all.
  await recordMany(stats, 20);
  t.is(stats.summary().backlog, 20);
  await stats.close();
  t.is(proxy.sent.length, 0);
});

test('opting in by reload uploads the backlog gathered while off in batches, exactly once, and empties the outbox', async (t) => {
  const { dir, service, proxy, on } = await setup(t);
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 500);
  t.is(proxy.requests, 0);
  stats.reload(on('standard', { NIMBUS_UPLOAD_BATCH_SIZE: '120' }));
  await waitFor('an empty outbox', () => stats.summary().backlog === 0, 60_000);
  t.is(proxy.requests, 5, 'batches of NIMBUS_UPLOAD_BATCH_SIZE');
  t.is(await service.seen(DOMAIN), 500);
  t.is(stats.summary().uploaded, 500);
  t.truthy(stats.summary().lastUpload);
});

test('NIMBUS_UPLOAD_BACKLOG=no drops what was gathered while off from the outbox at opt-in, keeps it in local stats, and uploads only newer records', async (t) => {
  const { dir, service, proxy, on } = await setup(t);
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 30);
  stats.reload(on('standard', { NIMBUS_UPLOAD_BACKLOG: 'no' }));
  t.is(stats.summary().backlog, 0);
  await recordMany(stats, 4, 100);
  // Empty: nothing is left that could still be uploaded (the old records left the outbox at the
  // reload), and the service ingests a batch before it acknowledges it.
  await waitFor('an empty outbox', () => stats.summary().backlog === 0, 60_000);
  t.is(await service.seen(DOMAIN), 4);
  t.is(stats.summary().perDay.reduce((n, d) => n + d.messages, 0), 34);
});

test('a batch whose acknowledgement is lost (connection cut) is resent with the same id and counts once', async (t) => {
  const { dir, service, proxy, on } = await setup(t);
  proxy.decide = (n) => (n === 2 ? 'cut' : 'forward');
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 500);
  stats.reload(on('standard', { NIMBUS_UPLOAD_BATCH_SIZE: '100' }));
  await waitFor('an empty outbox', () => stats.summary().backlog === 0, 60_000);
  const ids = [...proxy.sentText().matchAll(/"batchId":"([^"]+)"/g)].map((m) => m[1]);
  t.is(ids.length, 6);
  t.is(ids[1], ids[2], 'the resend carries the batch id fixed at creation');
  t.is(await service.seen(DOMAIN), 500);
  // Every byte that left in standard: no address, token, IP, HELO or extended field.
  const bytes = proxy.sentText();
  for (const word of ['alice', 'secret', '%40', '203.0.113.', '.example.net', 'application/pdf', '"urls"', '"size"', 'url:sha256:']) t.false(bytes.includes(word), word);
});

test('opting out aborts the batch in flight at once and no request starts after', async (t) => {
  const { dir, proxy, on } = await setup(t);
  proxy.decide = () => 'hold';
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 300);
  stats.reload(on('standard', { NIMBUS_UPLOAD_BATCH_SIZE: '50' }));
  await waitFor('an upload in flight', () => proxy.requests >= 1, 60_000);
  stats.reload(statsConfig(dir, { NIMBUS_REPUTATION_URL: proxy.url }));
  await waitFor('the upload in flight aborted', () => proxy.clientAborts === 1, 10_000);
  const atSwitch = proxy.requests;
  proxy.decide = () => 'forward';
  // Each new record would wake a running uploader at once; once closed (close() waits for the
  // uploader to end) the statistics can send nothing more.
  await recordMany(stats, 10, 1000);
  const backlog = stats.summary().backlog;
  await stats.close();
  t.is(proxy.requests, atSwitch, 'no request after the switch');
  t.is(backlog, 310, 'the unacknowledged batch stays local');
});

test('withdrawing acceptance stops uploads like opting out', async (t) => {
  const { dir, proxy, on } = await setup(t);
  proxy.decide = () => 'hold';
  const stats = openStatistics(on(), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 5);
  await waitFor('an upload in flight', () => proxy.requests >= 1, 60_000);
  // loadConfig refuses participation without acceptance at start; a running process that is
  // handed such a config (as by a reload) must stop all the same.
  stats.reload({ ...on(), acceptStatement: false });
  await waitFor('the upload in flight aborted', () => proxy.clientAborts === 1, 10_000);
  const requests = proxy.requests;
  // As above: new records wake a running uploader at once, and after close() none runs.
  await recordMany(stats, 5, 10);
  const uploader = stats.summary().uploader;
  await stats.close();
  t.is(proxy.requests, requests);
  t.is(uploader, 'off');
});

test('a 401 stops uploads with one error line, keeps every record, and a reload with the right key resumes them', async (t) => {
  const { dir, service, proxy, on } = await setup(t);
  const lines: string[] = [];
  const base = createLogger('silent');
  const spy: typeof base = new Proxy(base, {
    get(target, prop, receiver) {
      if (prop === 'child') return () => spy;
      if (prop === 'error' || prop === 'warn' || prop === 'info') return (obj: unknown, msg?: string) => lines.push(`${String(prop)} ${msg ?? ''} ${JSON.stringify(obj)}`);
      return Reflect.get(target, prop, receiver);
    },
  });
  const stats = openStatistics(on('standard', { NIMBUS_REPUTATION_KEY: 'nmb_wrong_key' }), spy, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 20);
  await waitFor('uploads stopped by the 401', () => stats.summary().uploader === 'stopped-auth', 60_000);
  const requests = proxy.requests;
  await recordMany(stats, 5, 50);
  // Kept as a sleep: the statistics must stay open for the reload below, and an uploader that
  // retried after a 401 would do so after its backoff (FAST: at most 200 ms), an event that only
  // happens in the faulty case. 400 ms is two such backoffs.
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.is(proxy.requests, requests, 'no retry after a 401');
  const errors = lines.filter((l) => l.startsWith('error'));
  t.is(errors.length, 1);
  t.regex(errors[0]!, /NIMBUS_REPUTATION_KEY \(401\).*records kept/);
  t.is(stats.summary().backlog, 25);
  t.regex(stats.summary().lastError ?? '', /401/);
  stats.reload(on());
  await waitFor('an empty outbox', () => stats.summary().backlog === 0, 60_000);
  t.is(await service.seen(DOMAIN), 25);
});

test('failed uploads (connections cut) are retried with backoff until the service answers, then counted once', async (t) => {
  const { dir, service, proxy, on } = await setup(t);
  proxy.decide = (n) => (n <= 3 ? 'cut' : 'forward');
  const metrics = createGatewayMetrics({ defaultMetrics: false });
  const stats = openStatistics(statsConfig(dir), log, { ...FAST, metrics });
  t.teardown(() => stats.close());
  await recordMany(stats, 10);
  stats.reload(on());
  await waitFor('an empty outbox', () => stats.summary().backlog === 0, 60_000);
  t.is(proxy.requests, 4);
  t.is(await service.seen(DOMAIN), 10);
  const text = await metrics.registry.metrics();
  t.regex(text, /nimbus_stats_upload_errors_total\{kind="network"\} 3/);
  t.regex(text, /nimbus_stats_uploaded_records_total 10/);
  t.regex(text, /nimbus_stats_backlog_records 0/);
});

test('narrowing extended to standard aborts an extended batch in flight and resends it without extended fields', async (t) => {
  const { dir, proxy, on } = await setup(t);
  let answered = 0;
  proxy.decide = (n) => {
    answered = n;
    return n === 1 ? 'hold' : 'forward';
  };
  const stats = openStatistics(statsConfig(dir), log, FAST);
  t.teardown(() => stats.close());
  await recordMany(stats, 30);
  stats.reload(on('extended'));
  await waitFor('an extended batch sent', () => proxy.sentText().includes('"urls"'), 60_000);
  // The proxy numbers responses as they come back: if the service answered the first request only
  // after the abort (a busy machine), the resend's answer would be number 1 and be held.
  await waitFor('the first answer at the proxy', () => answered >= 1, 60_000);
  const before = proxy.sentText().length;
  stats.reload(on('standard'));
  await waitFor('the upload in flight aborted', () => proxy.clientAborts === 1, 10_000);
  await waitFor('an empty outbox', () => stats.summary().backlog === 0, 60_000);
  const after = proxy.sentText().slice(before);
  t.true(after.includes('"batchId"'));
  t.false(after.includes('"urls"'));
  t.false(after.includes('url:sha256:'));
});

test('the metrics server answers GET /metrics with messages, lookup latency, cache hits, breaker state, backlog and dropped records', async (t) => {
  const data = tempDataDir();
  t.teardown(data.remove);
  const metrics = createGatewayMetrics();
  const stats = openStatistics(statsConfig(data.dir, { NIMBUS_OUTBOX_MAX_RECORDS: '2' }), log, { metrics });
  t.teardown(() => stats.close());
  await recordMany(stats, 5);
  countMessage(metrics, 'spam', 'tag');
  const lookups = lookupMetricsObserver(metrics);
  lookups.remoteLookup('ok', 12);
  lookups.cacheHits(3, 1);
  lookups.breakerState('open');
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics.registry);
  t.teardown(() => server.close());
  const response = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
  t.is(response.status, 200);
  const text = await response.text();
  t.regex(text, /nimbus_stats_dropped_records_total 3/);
  t.regex(text, /nimbus_stats_backlog_records 2/);
  t.regex(text, /nimbus_messages_total\{verdict="spam",action="tag"\} 1/);
  t.regex(text, /nimbus_lookup_duration_seconds_count\{outcome="ok"\} 1/);
  t.regex(text, /nimbus_lookup_cache_total\{result="hit"\} 3/);
  t.regex(text, /nimbus_lookup_breaker_state 2/);
  t.is((await fetch(`http://127.0.0.1:${server.address.port}/other`)).status, 404);
});
