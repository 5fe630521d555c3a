import test from 'ava';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../src/config/index.js';
import { startReputationService } from '../src/reputation/service.js';
import { call, fingerprint, record, startTestService } from './helpers/service.js';
import { tempDir } from './helpers/temp.js';

async function pair(t: Parameters<typeof startTestService>[0], participation: 'off' | 'standard') {
  const upstream = await startTestService(t);
  const proxyKey = await upstream.addKey('reporter');
  const env: Record<string, string> = { NIMBUS_UPSTREAM_URL: upstream.url, NIMBUS_UPSTREAM_KEY: proxyKey.token, NIMBUS_LOOKUP_TIMEOUT_MS: '10000' };
  if (participation !== 'off') Object.assign(env, { NIMBUS_PARTICIPATION: participation, NIMBUS_ACCEPT_STATEMENT: 'yes', NIMBUS_REPUTATION_URL: upstream.url });
  const downstream = await startTestService(t, env);
  return { upstream, downstream, proxyKeyId: proxyKey.id, proxyToken: proxyKey.token };
}

test('a proxy answers what it does not know from upstream, and local verdicts first', async (t) => {
  const { upstream, downstream } = await pair(t, 'off');
  const known = fingerprint();
  const local = fingerprint();
  const neither = fingerprint();
  t.is((await call(upstream.url, 'PUT', `/v1/verdicts/${encodeURIComponent(known)}`, upstream.tokens.admin, { verdict: 'spam' })).status, 200);
  t.is((await call(upstream.url, 'PUT', `/v1/verdicts/${encodeURIComponent(local)}`, upstream.tokens.admin, { verdict: 'spam' })).status, 200);
  t.is((await call(downstream.url, 'PUT', `/v1/verdicts/${encodeURIComponent(local)}`, downstream.tokens.admin, { verdict: 'ham' })).status, 200);
  const r = await call(downstream.url, 'POST', '/v1/lookup', downstream.tokens.sensor, { items: [known, local, neither] });
  t.is(r.status, 200);
  t.deepEqual(
    r.body.results.map((x: { verdict: string }) => x.verdict),
    ['spam', 'ham', 'unknown'],
  );
  // The upstream answer is cached: still answered after upstream is gone.
  await upstream.service.close();
  const again = await call(downstream.url, 'POST', '/v1/lookup', downstream.tokens.sensor, { items: [known, neither] });
  t.is(again.status, 200);
  t.deepEqual(
    again.body.results.map((x: { verdict: string }) => x.verdict),
    ['spam', 'unknown'],
  );
});

test('a proxy whose upstream is down answers from local data', async (t) => {
  const dead = await startTestService(t);
  const url = dead.url;
  await dead.service.close();
  const downstream = await startTestService(t, { NIMBUS_UPSTREAM_URL: url, NIMBUS_UPSTREAM_KEY: dead.tokens.sensor });
  const item = fingerprint();
  const r = await call(downstream.url, 'POST', '/v1/lookup', downstream.tokens.sensor, { items: [item] });
  t.is(r.status, 200);
  t.is(r.body.results[0].verdict, 'unknown');
  const metrics = await call(downstream.url, 'GET', '/metrics', null);
  t.regex(metrics.body, /nimbus_reputation_upstream_failures_total 1/);
});

test('a proxy with participation off keeps reports and feedback local', async (t) => {
  const { upstream, downstream } = await pair(t, 'off');
  const item = fingerprint();
  const batch = { batchId: 'proxy-off-batch-1', records: [record('p1', [item])] };
  t.is((await call(downstream.url, 'POST', '/v1/reports', downstream.tokens.sensor, batch)).body.accepted, 1);
  t.is((await call(downstream.url, 'POST', '/v1/feedback', downstream.tokens.reporter, { label: 'spam', items: [item] })).status, 200);
  const [local] = await downstream.opened.engine.lookup([item]);
  t.true(local!.counters.seen >= 1);
  const [remote] = await upstream.opened.engine.lookup([item]);
  t.is(remote!.counters.seen, 0);
  t.is(remote!.counters.reporters, 0);
});

test('a proxy with standard participation forwards reports (same batch id) and feedback upstream', async (t) => {
  const { upstream, downstream, proxyToken } = await pair(t, 'standard');
  const item = fingerprint();
  const batch = { batchId: 'proxy-std-batch-1', records: [{ ...record('p1', [item]), urls: ['https://example.com/x'], size: 100 }] };
  t.deepEqual((await call(downstream.url, 'POST', '/v1/reports', downstream.tokens.sensor, batch)).body, { accepted: 1, duplicate: false });
  const [remote] = await upstream.opened.engine.lookup([item]);
  t.is(Math.round(remote!.counters.seen), 1);
  // Upstream is idempotent by the forwarded batch id (per key: the proxy's key resending it).
  t.deepEqual((await call(upstream.url, 'POST', '/v1/reports', proxyToken, batch)).body, { accepted: 0, duplicate: true });
  const fed = fingerprint();
  t.is((await call(downstream.url, 'POST', '/v1/feedback', downstream.tokens.reporter, { label: 'spam', items: [fed] })).status, 200);
  const [after] = await upstream.opened.engine.lookup([fed]);
  t.true(after!.counters.spam > 0);
});

test('a service started from its configuration alone opens the configured SQLite store', async (t) => {
  const dir = tempDir('nimbus-rep-own-');
  const config = loadConfig({ NIMBUS_DATA_DIR: dir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0' });
  const service = await startReputationService(config, pino({ level: 'silent' }));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.is((await call(service.url, 'GET', '/healthz', null)).status, 200);
  t.true(existsSync(join(dir, 'reputation.sqlite')));
  await service.close();
});
