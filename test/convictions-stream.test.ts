/**
 * GET /v1/convictions with real processes: `nimbus reputation` (SQLite, or Redis of the test's
 * own), `nimbus gateway` with one worker, swaks as the sending MTA. Gateways keep `unknown`
 * answers an hour here (NIMBUS_UNKNOWN_CACHE_MS), so only the stream can explain a copy being
 * caught right after a conviction.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { fuzzySchemeFor } from '../src/fingerprint/fuzzy.js';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { startReputationProcess, type ReputationProcess } from './helpers/nimbus.js';
import { freePort } from './helpers/ports.js';
import { startOwnRedis } from './helpers/redis-server.js';
import { call, fingerprint } from './helpers/service.js';
import { swaks } from './helpers/swaks.js';
import { testDir } from './helpers/temp.js';
import { dataFile, gateway, header } from './helpers/verdict.js';
import { waitForFiles } from './helpers/wait.js';

const SENDER_IP = '82.81.145.134';

function participating(service: { url: string }, key: string): Record<string, string> {
  return {
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: service.url,
    NIMBUS_REPUTATION_KEY: key,
    NIMBUS_RELAY_DOMAINS: 'example.com',
    NIMBUS_LOOKUP_TIMEOUT_MS: '5000',
    NIMBUS_UNKNOWN_CACHE_MS: '3600000',
    NIMBUS_LOG_LEVEL: 'debug',
  };
}

/** The campaign's message; `to` and `claim` personalise a copy (its body minhash stays near the others'). */
function campaignMessage(to = 'customer', claim = '5521'): Buffer {
  return Buffer.from(
    [
      'From: "Prize Office" <claims@winners-desk.example>',
      'To: alice@example.com',
      `Subject: Your claim number ${claim} is waiting`,
      `Message-ID: <claim-${claim}@winners-desk.example>`,
      'Date: Mon, 07 Dec 2026 10:00:00 +0000',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      `Dear ${to}, you have been selected to receive a cash prize of 950,000 dollars in our`,
      'annual international lottery draw. To release the funds, confirm your claim number and',
      `banking details today at http://claims.winners-desk.example/release?id=${claim} before the`,
      'offer expires. Our agents process every claim within two working days of confirmation.',
      '',
    ].join('\r\n'),
  );
}

async function bodyMinhash(message: Buffer): Promise<string> {
  const { fingerprints } = await fingerprintMessage(message);
  const found = fingerprints.find((f) => f.kind === 'body' && f.algorithm === 'minhash64');
  if (found === undefined) throw new Error('the campaign message has no body minhash');
  return found.text;
}

async function sendThrough(port: number, file: string, maildir: string, count: number): Promise<Buffer> {
  const sent = await swaks(port, ['--xclient', `ADDR=${SENDER_IP}`, '--from', 'claims@winners-desk.example', '--to', 'alice@example.com', '--data', `@${file}`]);
  if (sent.exitCode !== 0) throw new Error(sent.output);
  const files = await waitForFiles(maildir, count);
  return readFileSync(files.sort().at(-1)!);
}

test('a conviction made at the service reaches a connected gateway at once: the next copy is caught though the gateway had cached unknown', async (t) => {
  const service = await startReputationProcess(t);
  const [admin, sensor] = await Promise.all([service.addKey('admin'), service.addKey('sensor')]);
  const gw = await gateway(t, participating(service, sensor.token));
  await gw.waitForLog('the convictions stream', (line) => line.event === 'lookup.convictions_up');
  const work = testDir(t, 'nimbus-convictions-');
  const message = campaignMessage();
  const file = dataFile(work, 'campaign.eml', message);
  const maildir = join(gw.dataDir, 'maildir', 'new');

  const first = await sendThrough(gw.port, file, maildir, 1);
  t.deepEqual(header(first, 'X-Spam-Flag'), [], 'nobody knows the campaign yet');

  const convicted = await call(service.url, 'POST', '/v1/feedback', admin.token, { label: 'spam', message: message.toString('latin1') });
  t.is(convicted.status, 200);
  await gw.waitForLog('the dropped answers', (line) => line.event === 'lookup.convictions_dropped');

  const second = await sendThrough(gw.port, file, maildir, 2);
  t.deepEqual(header(second, 'X-Spam-Flag'), ['YES'], 'the next copy is caught at once');
});

test('a gateway that cached unknown for a personalised copy catches that copy at once after a near-neighbour copy is convicted', async (t) => {
  const service = await startReputationProcess(t);
  const [admin, sensor] = await Promise.all([service.addKey('admin'), service.addKey('sensor')]);
  const gw = await gateway(t, participating(service, sensor.token));
  await gw.waitForLog('the convictions stream', (line) => line.event === 'lookup.convictions_up');
  const work = testDir(t, 'nimbus-convictions-near-');
  const ours = campaignMessage('Alice Martin', '7730');
  const convicted = campaignMessage('Bob Jones', '4418');
  const [oursBody, convictedBody] = await Promise.all([bodyMinhash(ours), bodyMinhash(convicted)]);
  t.not(oursBody, convictedBody, 'the copies differ');
  t.true(fuzzySchemeFor('body', 'minhash64')!.isNear(oursBody.split(':')[2]!, convictedBody.split(':')[2]!), 'but are near neighbours');
  const file = dataFile(work, 'ours.eml', ours);
  const maildir = join(gw.dataDir, 'maildir', 'new');

  const first = await sendThrough(gw.port, file, maildir, 1);
  t.deepEqual(header(first, 'X-Spam-Flag'), [], 'nobody knows the campaign yet: the gateway caches unknown for this copy');

  // Only the other copy's body is convicted: the stream names it, not ours.
  t.is((await call(service.url, 'PUT', `/v1/verdicts/${encodeURIComponent(convictedBody)}`, admin.token, { verdict: 'spam' })).status, 200);
  const dropped = await gw.waitForLog('the dropped answers', (line) => line.event === 'lookup.convictions_dropped' && (line.items as string[]).includes(convictedBody));

  const second = await sendThrough(gw.port, file, maildir, 2);
  t.deepEqual(header(second, 'X-Spam-Flag'), ['YES'], 'the same copy is caught at once');
  t.deepEqual(dropped.neighbours, [oursBody], 'because its cached answer was dropped as a near neighbour');
});

test('the stream reconnects after the service restarts and resumes from Last-Event-ID, with what another instance on the same Redis convicted meanwhile', async (t) => {
  const redis = await startOwnRedis(t);
  const port = await freePort();
  const env = { NIMBUS_STORE: 'redis', NIMBUS_REDIS_URL: redis.url, NIMBUS_HTTP_LISTEN: `127.0.0.1:${port}` };
  const first = await startReputationProcess(t, env);
  const [admin, sensor] = await Promise.all([first.addKey('admin'), first.addKey('sensor')]);
  const gw = await gateway(t, participating(first, sensor.token));
  await gw.waitForLog('the convictions stream', (line) => line.event === 'lookup.convictions_up');

  const before = fingerprint();
  t.is((await call(first.url, 'PUT', `/v1/verdicts/${encodeURIComponent(before)}`, admin.token, { verdict: 'spam' })).status, 200);
  const heard = await gw.waitForLog('the first conviction', (line) => line.event === 'lookup.convictions_dropped' && (line.items as string[]).includes(before));
  const lastEventId = String(heard.lastEventId);

  await first.stop();
  await gw.waitForLog('the stream going down', (line) => line.event === 'lookup.convictions_down');
  // Convicted while the gateway's service is down, at another instance on the same Redis.
  const other: ReputationProcess = await startReputationProcess(t, { ...env, NIMBUS_HTTP_LISTEN: '127.0.0.1:0' });
  const meanwhile = fingerprint();
  t.is((await call(other.url, 'PUT', `/v1/verdicts/${encodeURIComponent(meanwhile)}`, admin.token, { verdict: 'spam' })).status, 200);

  const restarted = await startReputationProcess(t, { ...env, NIMBUS_DATA_DIR: first.dataDir });
  const resumed = await restarted.waitForLog('the gateway reconnecting', (line) => line.event === 'reputation.convictions_connected');
  t.is(resumed.lastEventId, lastEventId, 'the gateway says what it saw last');
  await gw.waitForLog('the missed conviction', (line) => line.event === 'lookup.convictions_dropped' && (line.items as string[]).includes(meanwhile));
  t.pass();
});

test('a revoked key closes the stream, its reconnect gets 401, and the gateway says so once as it does for lookups', async (t) => {
  const service = await startReputationProcess(t);
  const sensor = await service.addKey('sensor');
  const gw = await gateway(t, participating(service, sensor.token));
  await gw.waitForLog('the convictions stream', (line) => line.event === 'lookup.convictions_up');
  await service.revokeKey(sensor.id);
  await service.waitForLog('the stream closed', (line) => line.event === 'reputation.convictions_key_refused');
  const said = await gw.waitForLog('the refused key', (line) => line.event === 'lookup.convictions_auth_rejected');
  t.is(said.level, 50, 'an error, as lookups log a refused key');
  t.regex(String(said.msg), /NIMBUS_REPUTATION_KEY \(401\)/);
  t.is(gw.events('lookup.convictions_auth_rejected').length, 1);
});

test('no stream is opened when participation is off', async (t) => {
  const service = await startReputationProcess(t);
  const sensor = await service.addKey('sensor');
  const gw = await gateway(t, { ...participating(service, sensor.token), NIMBUS_PARTICIPATION: 'off' });
  const work = testDir(t, 'nimbus-convictions-off-');
  // A message through the gateway: its runtime, which would have opened the stream, is long running.
  await sendThrough(gw.port, dataFile(work, 'campaign.eml', campaignMessage()), join(gw.dataDir, 'maildir', 'new'), 1);
  const metrics = await (await fetch(`${service.url}/metrics`)).text();
  t.regex(metrics, /^nimbus_reputation_conviction_streams 0$/m);
  t.deepEqual(service.events('reputation.convictions_connected'), []);
  t.deepEqual(gw.events('lookup.convictions_up'), []);
});

test('after a restart of a SQLite service, which keeps its event log in memory, a reconnecting gateway is told to drop every cached answer', async (t) => {
  const port = await freePort();
  const env = { NIMBUS_HTTP_LISTEN: `127.0.0.1:${port}` };
  const first = await startReputationProcess(t, env);
  const [admin, sensor] = await Promise.all([first.addKey('admin'), first.addKey('sensor')]);
  const gw = await gateway(t, participating(first, sensor.token));
  await gw.waitForLog('the convictions stream', (line) => line.event === 'lookup.convictions_up');
  const item = fingerprint();
  t.is((await call(first.url, 'PUT', `/v1/verdicts/${encodeURIComponent(item)}`, admin.token, { verdict: 'spam' })).status, 200);
  await gw.waitForLog('the conviction', (line) => line.event === 'lookup.convictions_dropped' && (line.items as string[]).includes(item));

  await first.stop();
  const restarted = await startReputationProcess(t, { ...env, NIMBUS_DATA_DIR: first.dataDir });
  const resumed = await restarted.waitForLog('the gateway reconnecting', (line) => line.event === 'reputation.convictions_connected');
  t.is(resumed.missed, 1, 'one reset, since the events of the previous run are gone');
  await gw.waitForLog('the reset', (line) => line.event === 'lookup.convictions_reset');
  t.pass();
});
