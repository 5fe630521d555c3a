import net from 'node:net';
import test from 'ava';
import { createReputationClient, ReputationServiceError } from '../src/reputation/client.js';
import { fingerprint, record, startTestService } from './helpers/service.js';

test('a service that accepts but never answers costs the client its time budget, as UNAVAILABLE with status 0', async (t) => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const { port } = silent.address() as net.AddressInfo;
  const client = createReputationClient({ url: `http://127.0.0.1:${port}`, key: 'nmb_00_x', timeoutMs: 300 });
  t.teardown(() => client.close());
  const error = await t.throwsAsync(client.lookup([fingerprint()]), { instanceOf: ReputationServiceError });
  t.is(error!.code, 'UNAVAILABLE');
  t.is(error!.status, 0);
  t.regex(error!.message, /300 ms/);
});

test("the caller's abort signal ends a call at once", async (t) => {
  const silent = net.createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => silent.close());
  const { port } = silent.address() as net.AddressInfo;
  const client = createReputationClient({ url: `http://127.0.0.1:${port}`, key: 'nmb_00_x', timeoutMs: 60_000 });
  t.teardown(() => client.close());
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  const error = await t.throwsAsync(client.lookup([fingerprint()], controller.signal), { instanceOf: ReputationServiceError });
  t.is(error!.code, 'UNAVAILABLE');
  t.regex(error!.message, /aborted by the caller/);
});

test('the client looks up, reports idempotently, gives feedback and sets and clears verdicts', async (t) => {
  const s = await startTestService(t);
  const sensor = createReputationClient({ url: s.url, key: s.tokens.sensor, timeoutMs: 10_000 });
  const admin = createReputationClient({ url: s.url, key: s.tokens.admin, timeoutMs: 10_000 });
  t.teardown(() => {
    sensor.close();
    admin.close();
  });
  const item = fingerprint();
  t.deepEqual(await sensor.report({ batchId: 'client-batch-1', records: [record('c1', [item])] }), { accepted: 1, duplicate: false });
  t.deepEqual(await sensor.report({ batchId: 'client-batch-1', records: [record('c1', [item])] }), { accepted: 0, duplicate: true });
  t.deepEqual(await admin.feedback({ label: 'ham', items: [item] }), { accepted: 1 });
  await admin.setVerdict(item, { verdict: 'bulk' });
  t.is((await sensor.lookup([item]))[0]!.verdict, 'bulk');
  t.true(await admin.clearVerdict(item));
  t.false(await admin.clearVerdict(item));
});

test('the client maps 401, 403 and 400 to typed errors', async (t) => {
  const s = await startTestService(t);
  const wrong = createReputationClient({ url: s.url, key: 'nmb_0123456789abcdef_wrongsecret', timeoutMs: 10_000 });
  const sensor = createReputationClient({ url: s.url, key: s.tokens.sensor, timeoutMs: 10_000 });
  t.teardown(() => {
    wrong.close();
    sensor.close();
  });
  const e401 = await t.throwsAsync(wrong.lookup([fingerprint()]), { instanceOf: ReputationServiceError });
  t.like(e401, { status: 401, code: 'AUTH_REJECTED' });
  const e403 = await t.throwsAsync(sensor.feedback({ label: 'spam', items: [fingerprint()] }), { instanceOf: ReputationServiceError });
  t.like(e403, { status: 403, code: 'FORBIDDEN' });
  const e400 = await t.throwsAsync(sensor.lookup(['not a fingerprint']), { instanceOf: ReputationServiceError });
  t.like(e400, { status: 400, code: 'BAD_REQUEST' });
  t.regex(e400!.message, /items\.0/);
});
