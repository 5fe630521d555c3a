/**
 * POST /v1/samples and GET /v1/samples/{sha256} of a real `nimbus reputation` on loopback, and the
 * sample store contract on both stores the service runs on (SQLite, the real Redis at
 * 127.0.0.1:6379 under a unique prefix whose keys are deleted after).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { Redis } from 'ioredis';
import { RedisSampleStore, SqliteSampleStore, type SampleStore } from '../src/reputation/service/samples.js';
import { call, startTestService } from './helpers/service.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A distinct executable-looking attachment per call. */
function attachment(size = 2048): Buffer {
  return Buffer.concat([Buffer.from('MZ'), randomBytes(size - 2)]);
}

function upload(bytes: Buffer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sha256: sha256(bytes), type: 'application/x-msdownload', size: bytes.length, content: bytes.toString('base64'), ...extra };
}

async function fetchSample(url: string, hash: string, token: string | null): Promise<{ status: number; headers: Headers; bytes: Buffer }> {
  const response = await fetch(`${url}/v1/samples/${hash}`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  return { status: response.status, headers: response.headers, bytes: Buffer.from(await response.arrayBuffer()) };
}

test('a reporter key stores a sample once, and an admin key gets back exactly its bytes, never under the declared type', async (t) => {
  const s = await startTestService(t);
  const bytes = attachment();
  const first = await call(s.url, 'POST', '/v1/samples', s.tokens.reporter, upload(bytes, { type: 'text/html' }));
  t.is(first.status, 200, JSON.stringify(first.body));
  t.deepEqual(first.body, { sha256: sha256(bytes), duplicate: false });
  const again = await call(s.url, 'POST', '/v1/samples', s.tokens.admin, upload(bytes));
  t.deepEqual(again.body, { sha256: sha256(bytes), duplicate: true }, 'a resend is recognised and stored once');
  const got = await fetchSample(s.url, sha256(bytes), s.tokens.admin);
  t.is(got.status, 200);
  t.true(got.bytes.equals(bytes));
  t.is(got.headers.get('content-type'), 'application/octet-stream');
  t.is(got.headers.get('x-content-type-options'), 'nosniff');
  t.is(decodeURIComponent(got.headers.get('x-nimbus-sample-type') ?? ''), 'text/html', 'the first upload is what is kept');
});

test('a sensor key may not upload samples (403), only an admin key may read them (401, 403)', async (t) => {
  const s = await startTestService(t);
  const bytes = attachment();
  const sensor = await call(s.url, 'POST', '/v1/samples', s.tokens.sensor, upload(bytes));
  t.is(sensor.status, 403);
  t.is(sensor.body.error, 'FORBIDDEN');
  t.is((await call(s.url, 'POST', '/v1/samples', null, upload(bytes))).status, 401);
  t.is((await call(s.url, 'POST', '/v1/samples', s.tokens.reporter, upload(bytes))).status, 200);
  t.is((await fetchSample(s.url, sha256(bytes), null)).status, 401);
  t.is((await fetchSample(s.url, sha256(bytes), s.tokens.sensor)).status, 403);
  t.is((await fetchSample(s.url, sha256(bytes), s.tokens.reporter)).status, 403);
  t.is((await fetchSample(s.url, sha256(bytes), s.tokens.admin)).status, 200);
});

test('a bad sample body gets 400 naming the field, and nothing is stored', async (t) => {
  const s = await startTestService(t);
  const bytes = attachment();
  const cases: [Record<string, unknown>, RegExp][] = [
    [upload(bytes, { sha256: 'ABC' }), /body\.sha256/],
    [upload(bytes, { content: 'not base64!' }), /body\.content/],
    [upload(bytes, { type: '' }), /body\.type/],
    [upload(bytes, { size: -1 }), /body\.size/],
    [upload(bytes, { size: bytes.length - 1 }), /body\.size/],
    // Bytes that are not what the hash says: never stored under someone else's hash.
    [upload(bytes, { sha256: sha256(attachment()) }), /body\.sha256: does not match/],
  ];
  for (const [body, field] of cases) {
    const r = await call(s.url, 'POST', '/v1/samples', s.tokens.reporter, body);
    t.is(r.status, 400, JSON.stringify(r.body));
    t.is(r.body.error, 'BAD_REQUEST');
    t.regex(r.body.message, field);
  }
  t.is((await fetchSample(s.url, sha256(bytes), s.tokens.admin)).status, 404);
});

test('a sample over NIMBUS_SAMPLE_MAX_BYTES gets 413 and is not stored; 0 refuses every sample', async (t) => {
  const s = await startTestService(t, { NIMBUS_SAMPLE_MAX_BYTES: '4KB' });
  const fits = attachment(4096);
  const over = attachment(4097);
  t.is((await call(s.url, 'POST', '/v1/samples', s.tokens.reporter, upload(fits))).status, 200);
  const refused = await call(s.url, 'POST', '/v1/samples', s.tokens.reporter, upload(over));
  t.is(refused.status, 413);
  t.is(refused.body.error, 'TOO_LARGE');
  t.is((await fetchSample(s.url, sha256(over), s.tokens.admin)).status, 404);
  // A body far over the limit is refused while it is read, before any parsing.
  const huge = await call(s.url, 'POST', '/v1/samples', s.tokens.reporter, upload(attachment(64 * 1024)));
  t.is(huge.status, 413);

  const none = await startTestService(t, { NIMBUS_SAMPLE_MAX_BYTES: '0' });
  const r = await call(none.url, 'POST', '/v1/samples', none.tokens.reporter, upload(attachment(100)));
  t.is(r.status, 413);
  t.regex(r.body.message, /NIMBUS_SAMPLE_MAX_BYTES=0/);
});

test('GET of an unknown sample is 404, of a malformed hash 400', async (t) => {
  const s = await startTestService(t);
  t.is((await fetchSample(s.url, sha256(attachment()), s.tokens.admin)).status, 404);
  const bad = await fetchSample(s.url, 'not-a-hash', s.tokens.admin);
  t.is(bad.status, 400);
  t.regex(bad.bytes.toString('utf8'), /params\.sha256/);
});

const stores: { name: string; open(t: { teardown(fn: () => Promise<void> | void): void }): Promise<SampleStore> }[] = [
  {
    name: 'sqlite',
    async open(t) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'nimbus-samples-'));
      const store = new SqliteSampleStore(path.join(dir, 'reputation-samples.sqlite'));
      t.teardown(async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      });
      return store;
    },
  },
  {
    name: 'redis',
    async open(t) {
      const prefix = `nimbus-test-${process.pid}-${randomBytes(4).toString('hex')}:`;
      const store = new RedisSampleStore(new Redis('redis://127.0.0.1:6379'), prefix);
      t.teardown(async () => {
        const redis = new Redis('redis://127.0.0.1:6379');
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length > 0) await redis.del(...keys);
        redis.disconnect();
        await store.close();
      });
      return store;
    },
  },
];

for (const { name, open } of stores) {
  test(`${name}: a stored sample comes back byte for byte, is stored once by its hash, and an unknown hash is null`, async (t) => {
    const store = await open(t);
    const content = Buffer.concat([Buffer.from([0, 255, 13, 10]), attachment(5000)]);
    const sample = { sha256: sha256(content), type: 'application/pdf', size: content.length, reporter: 'k1', received: new Date().toISOString(), content };
    t.deepEqual(await store.put(sample), { duplicate: false });
    t.deepEqual(await store.put({ ...sample, reporter: 'k2', type: 'text/plain' }), { duplicate: true });
    const got = await store.get(sample.sha256);
    t.truthy(got);
    t.true(got!.content.equals(content));
    t.deepEqual({ ...got!, content: null }, { ...sample, content: null }, 'the first sender and type are kept');
    t.is(await store.get(sha256(attachment())), null);
  });
}
