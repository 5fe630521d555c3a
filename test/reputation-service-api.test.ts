import { request as httpRequest } from 'node:http';
import test from 'ava';
import { pino } from 'pino';
import { message, picture, prose } from '../fixtures/fingerprint/factory.js';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { FINGERPRINT_FORMS } from '../src/fingerprint/forms.js';
import { authFingerprints } from '../src/scan/auth-policy.js';
import { call, fingerprint, record, startTestService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

test('a sensor key looks up fingerprints and gets one result per item, in order', async (t) => {
  const s = await startTestService(t);
  const items = [fingerprint(), fingerprint('attachment')];
  const r = await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items });
  t.is(r.status, 200);
  t.deepEqual(
    r.body.results.map((x: { item: string }) => x.item),
    items,
  );
  t.is(r.body.results[0].verdict, 'unknown');
});

test('a missing, malformed, wrong or revoked key gets 401 and an error code', async (t) => {
  const s = await startTestService(t);
  const body = { items: [fingerprint()] };
  t.is((await call(s.url, 'POST', '/v1/lookup', null, body)).status, 401);
  t.is((await call(s.url, 'POST', '/v1/lookup', 'not-a-key', body)).status, 401);
  const wrong = s.tokens.sensor.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a'));
  const r = await call(s.url, 'POST', '/v1/lookup', wrong, body);
  t.is(r.status, 401);
  t.is(r.body.error, 'AUTH_REJECTED');
  const { id, token } = await s.addKey('sensor');
  t.is((await call(s.url, 'POST', '/v1/lookup', token, body)).status, 200);
  t.true(await s.opened.keys.revokeKey(id));
  // Keys are cached up to 5 s; a revoked key must be refused within seconds.
  let status = 200;
  const refused = async () => (status = (await call(s.url, 'POST', '/v1/lookup', token, body)).status) !== 200;
  // On timeout the assertion below names the status the key still got.
  await waitFor('the revoked key to be refused', refused, 10_000).catch(() => undefined);
  t.is(status, 401);
});

test('a key with too small a role gets 403', async (t) => {
  const s = await startTestService(t);
  const r = await call(s.url, 'POST', '/v1/feedback', s.tokens.sensor, { label: 'spam', items: [fingerprint()] });
  t.is(r.status, 403);
  t.is(r.body.error, 'FORBIDDEN');
  const item = fingerprint();
  t.is((await call(s.url, 'PUT', `/v1/verdicts/${encodeURIComponent(item)}`, s.tokens.reporter, { verdict: 'spam' })).status, 403);
  // Roles nest: an admin key may also look up.
  t.is((await call(s.url, 'POST', '/v1/lookup', s.tokens.admin, { items: [item] })).status, 200);
});

test('a bad body gets 400 naming the field, and changes nothing', async (t) => {
  const s = await startTestService(t);
  const good = fingerprint();
  const batch = { batchId: 'batch-bad-0001', records: [record('r1', [good]), { ...record('r2', [good]), verdict: 'maybe' }] };
  const r = await call(s.url, 'POST', '/v1/reports', s.tokens.sensor, batch);
  t.is(r.status, 400);
  t.is(r.body.error, 'BAD_REQUEST');
  t.regex(r.body.message, /records\.1\.verdict/);
  const [after] = await s.opened.engine.lookup([good]);
  t.is(after!.counters.seen, 0);
  // The same batch id, now valid, is not taken for a duplicate of the refused one.
  const ok = await call(s.url, 'POST', '/v1/reports', s.tokens.sensor, { batchId: batch.batchId, records: [record('r1', [good])] });
  t.deepEqual(ok.body, { accepted: 1, duplicate: false });
  const bad = await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items: ['nonsense'] });
  t.is(bad.status, 400);
  t.regex(bad.body.message, /items\.0/);
  t.is((await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, '{not json')).status, 400);
});

test('a body over the limit gets 413', async (t) => {
  const s = await startTestService(t);
  const huge = JSON.stringify({ items: ['x'.repeat(11 * 1024 * 1024)] });
  const r = await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, huge);
  t.is(r.status, 413);
  t.is(r.body.error, 'TOO_LARGE');
});

test('a key over its rate gets 429 with Retry-After', async (t) => {
  const s = await startTestService(t);
  const { token } = await s.addKey('sensor', 1);
  const body = { items: [fingerprint()] };
  const answers = await Promise.all(Array.from({ length: 10 }, () => call(s.url, 'POST', '/v1/lookup', token, body)));
  const limited = answers.filter((a) => a.status === 429);
  t.true(limited.length > 0);
  t.is(limited[0]!.body.error, 'RATE_LIMITED');
  t.true(Number(limited[0]!.headers.get('retry-after')) >= 1);
  // Other keys are not affected.
  t.is((await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, body)).status, 200);
});

test('a resent report batch counts once', async (t) => {
  const s = await startTestService(t);
  const item = fingerprint();
  const batch = { batchId: 'batch-idem-0001', records: [record('a', [item]), record('b', [item])] };
  const first = await call(s.url, 'POST', '/v1/reports', s.tokens.sensor, batch);
  t.deepEqual(first.body, { accepted: 2, duplicate: false });
  const again = await call(s.url, 'POST', '/v1/reports', s.tokens.sensor, batch);
  t.is(again.status, 200);
  t.deepEqual(again.body, { accepted: 0, duplicate: true });
  const [result] = (await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items: [item] })).body.results;
  t.is(Math.round(result.counters.seen), 2);
});

test('1,000 spam reports from one key do not make spam; reports from 5 distinct keys do', async (t) => {
  const s = await startTestService(t);
  const item = fingerprint();
  for (let wave = 0; wave < 100; wave++) {
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => call(s.url, 'POST', '/v1/feedback', s.tokens.reporter, { label: 'spam', items: [item] })),
    );
    t.true(answers.every((a) => a.status === 200));
  }
  const lookup = async () => (await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items: [item] })).body.results[0];
  t.not((await lookup()).verdict, 'spam');
  const other = fingerprint();
  for (let i = 0; i < 5; i++) {
    const { token } = await s.addKey('reporter');
    t.is((await call(s.url, 'POST', '/v1/feedback', token, { label: 'spam', items: [other] })).status, 200);
  }
  const [result] = (await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items: [other] })).body.results;
  t.is(result.verdict, 'spam');
});

test('one spam report from an admin key marks a fingerprint; the same from a reporter key does not', async (t) => {
  const s = await startTestService(t);
  const byReporter = fingerprint();
  const byAdmin = fingerprint();
  t.is((await call(s.url, 'POST', '/v1/feedback', s.tokens.reporter, { label: 'spam', items: [byReporter] })).status, 200);
  t.is((await call(s.url, 'POST', '/v1/feedback', s.tokens.admin, { label: 'spam', items: [byAdmin] })).status, 200);
  const r = await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items: [byReporter, byAdmin] });
  t.is(r.body.results[0].verdict, 'unknown');
  t.is(r.body.results[1].verdict, 'spam');
});

test('an admin verdict is set with PUT, wins, and is removed with DELETE', async (t) => {
  const s = await startTestService(t);
  const item = fingerprint();
  const path = `/v1/verdicts/${encodeURIComponent(item)}`;
  t.is((await call(s.url, 'PUT', path, s.tokens.admin, { verdict: 'spam', reason: 'test' })).status, 200);
  const lookup = async () => (await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items: [item] })).body.results[0];
  t.is((await lookup()).verdict, 'spam');
  t.is((await lookup()).counters.adminVerdict, 'spam');
  const bad = await call(s.url, 'PUT', path, s.tokens.admin, { verdict: 'unknown' });
  t.is(bad.status, 400);
  t.regex(bad.body.message, /verdict/);
  const removed = await call(s.url, 'DELETE', path, s.tokens.admin);
  t.deepEqual(removed.body, { item, removed: true });
  t.is((await lookup()).verdict, 'unknown');
  t.false((await call(s.url, 'DELETE', path, s.tokens.admin)).body.removed);
});

test('/healthz answers without a key and /metrics counts requests, lookups and ingested records', async (t) => {
  const s = await startTestService(t);
  t.is((await call(s.url, 'GET', '/healthz', null)).status, 200);
  await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items: [fingerprint(), fingerprint()] });
  await call(s.url, 'POST', '/v1/reports', s.tokens.sensor, { batchId: 'batch-metrics-1', records: [record('m', [fingerprint()])] });
  const r = await call(s.url, 'GET', '/metrics', null);
  t.is(r.status, 200);
  t.regex(r.body, /nimbus_reputation_lookups_total 2/);
  t.regex(r.body, /nimbus_reputation_records_ingested_total 1/);
  t.regex(r.body, /nimbus_reputation_requests_total\{route="\/v1\/lookup",method="POST",status="200"\} 1/);
  t.regex(r.body, /nimbus_reputation_request_seconds_bucket/);
});

test('/readyz on SQLite answers 200 without a key and names the store (a file cannot become unreachable)', async (t) => {
  const s = await startTestService(t);
  const r = await call(s.url, 'GET', '/readyz', null);
  t.is(r.status, 200);
  t.deepEqual(r.body, { ok: true, store: 'sqlite' });
});

/**
 * Sends the headers of a POST that announces `declared` bytes of body and writes only `sent` of
 * them, never finishing; resolves with the status and body of the answer, or rejects when none
 * comes within `withinMs` (the service waiting for the rest of the body).
 */
function partialPost(url: string, pathname: string, token: string | null, declared: number, sent: number, withinMs = 5000): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': declared };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const request = httpRequest(`${url}${pathname}`, { method: 'POST', headers });
    const timer = setTimeout(() => {
      request.destroy();
      reject(new Error(`no answer within ${withinMs} ms: the service is reading the body before checking the key`));
    }, withinMs);
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        clearTimeout(timer);
        request.destroy();
        resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) });
      });
    });
    request.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    request.write(`{"items":["${'a'.repeat(sent)}`);
  });
}

test('a request without a key, or with a wrong one, gets 401 before its body is read: the answer comes while the body is still being sent', async (t) => {
  const s = await startTestService(t);
  const declared = 9 * 1024 * 1024;
  const keyless = await partialPost(s.url, '/v1/lookup', null, declared, 64 * 1024);
  t.is(keyless.status, 401);
  t.is(keyless.body.error, 'AUTH_REJECTED');
  const wrong = s.tokens.sensor.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a'));
  for (const [path, token] of [['/v1/reports', wrong], ['/v1/feedback', 'not-a-key'], ['/v1/samples', null]] as const) {
    const r = await partialPost(s.url, path, token, declared, 64 * 1024);
    t.is(r.status, 401, path);
  }
  // A key with too small a role is refused as early: 403.
  const forbidden = await partialPost(s.url, '/v1/feedback', s.tokens.sensor, declared, 64 * 1024);
  t.is(forbidden.status, 403);
  t.is(forbidden.body.error, 'FORBIDDEN');
});

test('every state-changing request is logged at info with key id, route, status and duration, lookups only at debug, and no token appears in the log', async (t) => {
  const lines: Record<string, any>[] = [];
  const text: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => { text.push(line); lines.push(JSON.parse(line)); } });
  const s = await startTestService(t, {}, log);
  const admin = await s.addKey('admin');
  const item = fingerprint();
  t.is((await call(s.url, 'PUT', `/v1/verdicts/${encodeURIComponent(item)}`, admin.token, { verdict: 'spam' })).status, 200);
  t.is((await call(s.url, 'POST', '/v1/reports', admin.token, { batchId: 'batch-log-0001', records: [record('r', [item])] })).status, 200);
  t.is((await call(s.url, 'POST', '/v1/reports', 'nmb_0badc0de_not-the-secret', { batchId: 'batch-log-0002', records: [record('r', [item])] })).status, 401);
  t.is((await call(s.url, 'POST', '/v1/lookup', admin.token, { items: [item] })).status, 200);
  const requests = lines.filter((line) => line.event === 'reputation.request');
  const put = requests.find((line) => line.method === 'PUT');
  t.like(put, { level: 30, route: '/v1/verdicts/:fingerprint', status: 200, key: admin.id });
  t.true(typeof put?.ms === 'number' && put.ms >= 0);
  t.like(requests.find((line) => line.route === '/v1/reports' && line.status === 200), { level: 30, method: 'POST', key: admin.id });
  t.like(requests.find((line) => line.route === '/v1/reports' && line.status === 401), { level: 30, key: null });
  t.like(requests.find((line) => line.route === '/v1/lookup'), { level: 20, status: 200, key: admin.id }, 'the hot path only at debug');
  const secret = admin.token.split('_').slice(2).join('_');
  t.false(text.join('').includes(secret), 'no secret in the log');
  t.false(text.join('').includes('not-the-secret'), 'not even a wrong one');
});

test('a fingerprint whose value is not of its algorithm\'s form, or of an unknown kind or algorithm, gets 400 naming the item and what is wrong, in every route that takes fingerprints', async (t) => {
  const s = await startTestService(t);
  const hex64 = 'ab'.repeat(32);
  const cases: [string, RegExp][] = [
    ['image:phash256:nothex', /: the value of image:phash256 must be 64 lower-case hex digits/],
    [`url:sha256:${hex64.slice(2)}\u0000\u0000`, /ab\\u0000\\u0000": the value of url:sha256 must be 64 lower-case hex digits/],
    [`ip:sha256:${hex64.slice(1)}`, /the value of ip:sha256 must be 64 lower-case hex digits/],
    [`attachment:sha256:${hex64.toUpperCase()}`, /the value of attachment:sha256 must be 64 lower-case hex digits/],
    [`body:minhash64:${hex64}`, /the value of body:minhash64 must be 256 lower-case hex digits/],
    ['url:domain:example.biz/path?u=1', /the value of url:domain must be a lower-case host name/],
    ['url:domain:Example.BIZ', /the value of url:domain must be a lower-case host name/],
    ['domain:dkim:203.0.113.7', /the value of domain:dkim must be a lower-case domain name/],
    ['domain:spf:localhost', /the value of domain:spf must be a lower-case domain name/],
    [`domain:md5:${hex64}`, /unknown algorithm "domain:md5"; known for domain are domain:dkim, domain:spf, domain:dmarc/],
    [`image:md5:${hex64}`, /unknown algorithm "image:md5"; known for image are image:sha256, image:phash256, image:dhash64/],
    [`mail:sha256:${hex64}`, /unknown kind "mail"; known kinds are ip, net, attachment, image, body, url, domain/],
    ['nonsense', /is not kind:algorithm:value/],
  ];
  const good = fingerprint();
  for (const [bad, why] of cases) {
    const lookup = await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items: [good, bad] });
    t.is(lookup.status, 400, bad);
    t.is(lookup.body.error, 'BAD_REQUEST');
    t.true(lookup.body.message.startsWith(`body.items.1: ${JSON.stringify(bad)}`), lookup.body.message);
    t.regex(lookup.body.message, why);
  }
  const [bad, why] = cases[0]!;
  const report = await call(s.url, 'POST', '/v1/reports', s.tokens.sensor, { batchId: 'batch-forms-01', records: [record('r1', [good]), record('r2', [good, bad])] });
  t.is(report.status, 400);
  t.true(report.body.message.startsWith(`body.records.1.fingerprints.1: ${JSON.stringify(bad)}`), report.body.message);
  t.regex(report.body.message, why);
  const feedback = await call(s.url, 'POST', '/v1/feedback', s.tokens.reporter, { label: 'spam', items: [bad] });
  t.is(feedback.status, 400);
  t.regex(feedback.body.message, why);
  const verdict = await call(s.url, 'PUT', `/v1/verdicts/${encodeURIComponent(bad)}`, s.tokens.admin, { verdict: 'spam' });
  t.is(verdict.status, 400);
  t.true(verdict.body.message.startsWith(`params.fingerprint: ${JSON.stringify(bad)}`), verdict.body.message);
  t.regex(verdict.body.message, why);
  const [after] = await s.opened.engine.lookup([good]);
  t.is(after!.counters.seen, 0, 'nothing of the refused batch was stored');
});

test('every fingerprint the fingerprint code produces (each kind and algorithm, IPv4 and IPv6 senders, IDN, IP-literal and underscore link hosts, authenticated sender domains) is accepted', async (t) => {
  const s = await startTestService(t);
  const links = ['https://shop.example.biz/offer?id=1', 'http://münchen.de/', 'http://203.0.113.9/p', 'http://[2001:db8::7]/q', 'http://intranet_host/x', 'http://foo.blogspot.com/'];
  const mail = message({
    parts: [
      { type: 'text/plain; charset=utf-8', content: `${prose(80, 7)}\r\n${links.join('\r\n')}\r\n`, encoding: '8bit' },
      { type: 'image/png', content: await picture(96, 64, 3), filename: 'offer.png' },
      { type: 'application/pdf', content: Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(4096, 7)]), filename: 'invoice.pdf' },
    ],
  });
  const texts = new Set<string>();
  for (const clientIp of ['198.51.100.23', '2a00:1450:4001:81b::200e']) {
    for (const f of (await fingerprintMessage(mail, { clientIp })).fingerprints) texts.add(f.text);
  }
  const verified = authFingerprints({
    spf: { result: 'pass', domain: 'bücher.example' },
    dkim: [{ result: 'pass', domain: 'mail_out.example.co.uk', selector: 's1', unsignedBytes: 0 }],
    dmarc: { result: 'pass', domain: 'news.example.co.uk', organisationalDomain: 'example.co.uk', policy: 'reject' },
    arc: null,
    resinfo: [],
  });
  for (const f of verified) texts.add(f.text);
  const produced = new Set([...texts].map((text) => text.split(':').slice(0, 2).join(':')));
  // Every form but the retired image:dhash64 is produced here: the test covers the table.
  t.deepEqual([...produced].sort(), [...FINGERPRINT_FORMS.keys()].filter((id) => id !== 'image:dhash64').sort());
  t.true(texts.has('url:domain:2001:db8::7') && texts.has('url:domain:intranet_host') && texts.has('url:domain:xn--mnchen-3ya.de'), [...texts].join(' '));
  t.true(texts.has('domain:spf:xn--bcher-kva.example') && texts.has('domain:dkim:mail_out.example.co.uk') && texts.has('domain:dmarc:example.co.uk'), [...texts].join(' '));
  const items = [...texts, `image:dhash64:${'0f'.repeat(8)}`];
  const r = await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items });
  t.is(r.status, 200, JSON.stringify(r.body));
  t.is(r.body.results.length, items.length);
  for (const item of texts) t.is((await call(s.url, 'PUT', `/v1/verdicts/${encodeURIComponent(item)}`, s.tokens.admin, { verdict: 'ham' })).status, 200, item);
});

test('feedback may carry a raw message: the service fingerprints it, and an admin key\'s report convicts those fingerprints', async (t) => {
  const s = await startTestService(t);
  const raw = message({ parts: [{ type: 'text/plain', content: prose(60, 91), encoding: '7bit' }] });
  const body = (await fingerprintMessage(raw, {})).fingerprints.find((f) => f.kind === 'body')!;
  const r = await call(s.url, 'POST', '/v1/feedback', s.tokens.admin, { label: 'spam', message: raw.toString('utf8') });
  t.is(r.status, 200, JSON.stringify(r.body));
  t.true(r.body.accepted >= 1);
  const looked = await call(s.url, 'POST', '/v1/lookup', s.tokens.sensor, { items: [body.text] });
  t.is(looked.body.results[0].verdict, 'spam');
});
