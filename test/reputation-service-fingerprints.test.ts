/**
 * Who stands behind a fingerprint's verdict, over HTTP, on SQLite and on the real Redis at
 * 127.0.0.1:6379 (a unique prefix, its keys deleted after): what a key's trap records weigh by
 * its role, and GET /v1/fingerprints/{fingerprint} with the overrides' audit trail.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { loadConfig } from '../src/config/index.js';
import type { KeyRole, ReportRecord } from '../src/reputation/api.js';
import type { OpenedReputation } from '../src/reputation/engine-types.js';
import { openReputation } from '../src/reputation/open.js';
import { startReputationService } from '../src/reputation/service.js';
import { call, fingerprint } from './helpers/service.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const redisPrefix = `nimbus-test-fp-${process.pid}-${randomBytes(4).toString('hex')}:`;

test.after.always(async () => {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
});

const stores: { name: string; open(dir: string): Promise<OpenedReputation> }[] = [
  { name: 'sqlite', open: (dir) => openReputation({ store: 'sqlite', path: path.join(dir, 'reputation.sqlite'), writeBehind: true }) },
  { name: 'redis', open: () => openReputation({ store: 'redis', urls: [REDIS_URL], prefix: redisPrefix }) },
];

interface Service {
  readonly url: string;
  addKey(role: KeyRole): Promise<{ id: string; token: string }>;
}

async function startService(t: ExecutionContext, store: (typeof stores)[number]): Promise<Service> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nimbus-rep-fp-'));
  const opened = await store.open(dir);
  const config = loadConfig({ NIMBUS_DATA_DIR: dir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'silent' });
  const service = await startReputationService(config, pino({ level: 'silent' }), opened);
  t.teardown(async () => {
    await service.close();
    await opened.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    url: service.url,
    addKey: async (role) => {
      const { key, token } = await opened.keys.addKey(role, `test ${role}`, 100_000);
      return { id: key.id, token };
    },
  };
}

const trapRecord = (item: string): ReportRecord => ({ id: `trap-${randomBytes(4).toString('hex')}`, time: new Date().toISOString(), fingerprints: [item], verdict: 'spam', score: 9, action: 'trap' });
const batchId = () => `batch-${randomBytes(8).toString('hex')}`;

for (const store of stores) {
  test.serial(`[${store.name}] trap records from three or ten sensor keys do not convict; from three reporter keys, or one admin key, they do`, async (t) => {
    const s = await startService(t, store);
    const lookup = await s.addKey('sensor');
    const verdictOf = async (item: string) => (await call(s.url, 'POST', '/v1/lookup', lookup.token, { items: [item] })).body.results[0].verdict;
    const trappedBy = async (role: KeyRole, keys: number) => {
      const item = fingerprint();
      for (let i = 0; i < keys; i++) {
        const { token } = await s.addKey(role);
        const r = await call(s.url, 'POST', '/v1/reports', token, { batchId: batchId(), records: [trapRecord(item)] });
        t.deepEqual(r.body, { accepted: 1, duplicate: false });
      }
      return verdictOf(item);
    };
    t.is(await trappedBy('sensor', 3), 'unknown');
    t.is(await trappedBy('sensor', 10), 'unknown');
    t.is(await trappedBy('reporter', 3), 'spam');
    t.is(await trappedBy('admin', 1), 'spam');
  });

  test.serial(`[${store.name}] a PUT then a DELETE of an override leave two audit entries with the key id, times, before, after and reason, served by GET /v1/fingerprints`, async (t) => {
    const s = await startService(t, store);
    const first = await s.addKey('admin');
    const second = await s.addKey('admin');
    const item = fingerprint();
    const verdictPath = `/v1/verdicts/${encodeURIComponent(item)}`;
    const started = Date.now();
    t.is((await call(s.url, 'PUT', verdictPath, first.token, { verdict: 'spam', reason: 'phishing campaign' })).status, 200);
    t.deepEqual((await call(s.url, 'DELETE', `${verdictPath}?reason=${encodeURIComponent('sender fixed it')}`, second.token)).body, { item, removed: true });
    const ended = Date.now();
    const r = await call(s.url, 'GET', `/v1/fingerprints/${encodeURIComponent(item)}`, first.token);
    t.is(r.status, 200);
    t.is(r.body.item, item);
    t.is(r.body.override, null);
    t.is(r.body.result.verdict, 'unknown');
    t.like(r.body.audit, [
      { by: first.id, before: null, after: 'spam', reason: 'phishing campaign' },
      { by: second.id, before: 'spam', after: null, reason: 'sender fixed it' },
    ]);
    t.is(r.body.audit.length, 2);
    const times = r.body.audit.map((e: { at: string }) => Date.parse(e.at));
    t.true(started <= times[0] && times[0] <= times[1] && times[1] <= ended, JSON.stringify(r.body.audit));
  });

  test.serial(`[${store.name}] GET /v1/fingerprints lists the reporters behind the evidence with their roles and times, and the override in force`, async (t) => {
    const s = await startService(t, store);
    const admin = await s.addKey('admin');
    const reporter = await s.addKey('reporter');
    const sensor = await s.addKey('sensor');
    const item = fingerprint();
    const before = Date.now();
    t.is((await call(s.url, 'POST', '/v1/feedback', reporter.token, { label: 'spam', items: [item] })).status, 200);
    t.is((await call(s.url, 'POST', '/v1/reports', sensor.token, { batchId: batchId(), records: [{ ...trapRecord(item), action: 'deliver' }] })).status, 200);
    t.is((await call(s.url, 'PUT', `/v1/verdicts/${encodeURIComponent(item)}`, admin.token, { verdict: 'bulk', reason: 'a newsletter' })).status, 200);
    const after = Date.now();
    const r = await call(s.url, 'GET', `/v1/fingerprints/${encodeURIComponent(item)}`, admin.token);
    t.is(r.status, 200);
    t.deepEqual(r.body.override, { verdict: 'bulk', reason: 'a newsletter' });
    t.like(r.body.result, { verdict: 'bulk', counters: { reporters: 2, adminVerdict: 'bulk' } });
    t.is(r.body.reporterCount, 2);
    const byId = new Map(r.body.reporters.map((x: { id: string }) => [x.id, x]));
    t.like(byId.get(reporter.id), { role: 'reporter', spam: 1, sensor: 0 });
    t.like(byId.get(sensor.id), { role: 'sensor', sensor: 1, spam: 0, weak: 0.2 });
    for (const x of r.body.reporters) t.true(before <= Date.parse(x.lastReport) && Date.parse(x.lastReport) <= after, JSON.stringify(x));
    t.deepEqual(r.body.neighbours, []);
    t.is(r.body.audit.length, 1);
  });

  test.serial(`[${store.name}] GET /v1/fingerprints needs an admin key, names a bad fingerprint, and answers 404 for one never heard of`, async (t) => {
    const s = await startService(t, store);
    const admin = await s.addKey('admin');
    const item = fingerprint();
    t.is((await call(s.url, 'PUT', `/v1/verdicts/${encodeURIComponent(item)}`, admin.token, { verdict: 'spam' })).status, 200);
    for (const role of ['sensor', 'reporter'] as const) {
      const r = await call(s.url, 'GET', `/v1/fingerprints/${encodeURIComponent(item)}`, (await s.addKey(role)).token);
      t.is(r.status, 403, role);
      t.is(r.body.error, 'FORBIDDEN');
    }
    const bad = await call(s.url, 'GET', '/v1/fingerprints/nonsense', admin.token);
    t.is(bad.status, 400);
    t.regex(bad.body.message, /params\.fingerprint/);
    const unknown = fingerprint();
    const missing = await call(s.url, 'GET', `/v1/fingerprints/${encodeURIComponent(unknown)}`, admin.token);
    t.is(missing.status, 404);
    t.is(missing.body.error, 'NOT_FOUND');
    t.true(missing.body.message.includes(unknown));
  });
}
