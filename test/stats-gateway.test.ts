/**
 * What leaves the host, proven through a running `nimbus gateway` (WORKERS processes): the same
 * messages go through a gateway in each participation mode, and every byte the gateway sends towards the real
 * `nimbus reputation` passes an HTTP recorder that forwards it (the real service answers).
 * The messages carry distinctive addresses, HELO, subject, text, client IP, a link with a personal
 * token and a named attachment; the captured bytes are searched for each of them.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startGatewayProcess, type GatewayProcess } from './helpers/nimbus.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp.js';
import { messagesIn, smtpSource, startRecorder, startServiceProcess, statsJson, WORKERS, type Recorder, type ServiceProcess } from './helpers/stats-gateway.js';
import { swaks } from './helpers/swaks.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const MESSAGES = 3;
const LOAD = 500;
const PRIVATE = {
  sender: 'eve.sender@sender-private.test',
  recipient: 'dora.recipient@inbox-private.test',
  helo: 'helo-private.test',
  ip: '198.51.100.77',
  subject: 'Quarterly-Subject-Marker-7Q',
  text: 'BodyTextMarker plaintext words only the reader should see',
  urlPath: 'unsub-token-5f3a9c',
  fileName: 'secret-plan-q3.bin',
} as const;
const LINK_HOST = 'links.nimbus-probe.test';
/** Link domains are sent as registrable domains. */
const LINK_DOMAIN = 'nimbus-probe.test';
const URL_FULL = `https://${LINK_HOST}/${PRIVATE.urlPath}?u=dora`;
const ATTACHMENT_TYPE = 'application/x-nimbus-probe';
const ATTACHMENT = Buffer.from('nimbus attachment probe '.repeat(40));

const MESSAGE = [
  `From: Eve <${PRIVATE.sender}>`,
  `To: Dora <${PRIVATE.recipient}>`,
  `Subject: ${PRIVATE.subject}`,
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=utf-8',
  '',
  PRIVATE.text,
  `Read more: ${URL_FULL}`,
  '',
  '--b1',
  `Content-Type: ${ATTACHMENT_TYPE}; name="${PRIVATE.fileName}"`,
  `Content-Disposition: attachment; filename="${PRIVATE.fileName}"`,
  'Content-Transfer-Encoding: base64',
  '',
  ...(ATTACHMENT.toString('base64').match(/.{1,76}/g) ?? []),
  '--b1--',
  '',
].join('\r\n');

let service: ServiceProcess;
let sink: SmtpSink;
let dir: string;
test.before(async () => {
  [service, sink] = await Promise.all([startServiceProcess(null), startSmtpSink()]);
  dir = tempDir('nimbus-privacy-');
  writeFileSync(join(dir, 'message.eml'), MESSAGE);
});
test.after.always(async () => {
  await Promise.all([service?.stop(), sink?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A gateway in `mode` whose service traffic goes through a fresh recorder. */
async function gatewayIn(t: ExecutionContext, mode: 'off' | 'standard' | 'extended'): Promise<{ gateway: GatewayProcess; recorder: Recorder }> {
  const recorder = await startRecorder(service.url);
  const gateway = await startGatewayProcess(t, {
    NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`,
    // After XCLIENT the client is 198.51.100.77, no longer trusted: the recipient domain is relayed.
    NIMBUS_RELAY_DOMAINS: 'inbox-private.test',
    NIMBUS_PARTICIPATION: mode,
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: recorder.url,
    NIMBUS_REPUTATION_KEY: service.token,
    NIMBUS_WORKERS: String(WORKERS),
  });
  t.teardown(async () => {
    await gateway.stop();
    await recorder.close();
  });
  return { gateway, recorder };
}

async function sendProbes(port: number): Promise<void> {
  for (let i = 0; i < MESSAGES; i++) {
    const result = await swaks(port, [
      '--xclient', `ADDR=${PRIVATE.ip} HELO=${PRIVATE.helo}`,
      '--ehlo', PRIVATE.helo,
      '--from', PRIVATE.sender,
      '--to', PRIVATE.recipient,
      '--data', `@${join(dir, 'message.eml')}`,
    ]);
    if (result.exitCode !== 0) throw new Error(`swaks failed:\n${result.output}`);
  }
}

function recordsUploaded(recorder: Recorder): number {
  return recorder.reports().filter((r) => r.request.status === 200).reduce((sum, r) => sum + r.batch.records.length, 0);
}

/** Strings that must never appear, in any mode. */
function assertNoPersonalData(t: { false(actual: boolean, message?: string): void }, captured: string): void {
  t.false(captured.includes(PRIVATE.sender), 'sender address');
  t.false(captured.includes('sender-private'), 'sender domain');
  t.false(captured.includes(PRIVATE.recipient), 'recipient address');
  t.false(captured.includes('inbox-private'), 'recipient domain');
  t.false(captured.includes(PRIVATE.helo), 'HELO name');
  t.false(captured.includes(PRIVATE.subject), 'subject');
  t.false(captured.includes('BodyTextMarker'), 'message text');
  t.false(captured.includes('198.51.100.'), 'client IP or its network in the clear');
  t.false(captured.includes(PRIVATE.fileName), 'attachment file name');
}

test('off: a participating-ready gateway set to off makes no request at all, and keeps every record locally', async (t) => {
  const { gateway, recorder } = await gatewayIn(t, 'off');
  await sendProbes(gateway.port);
  const env = { NIMBUS_DATA_DIR: gateway.dataDir };
  const summary = await statsJson(env);
  t.is(messagesIn(summary), MESSAGES);
  t.is(summary.backlog, MESSAGES, 'kept in the outbox for a later opt-in');
  // The uploader would have started at once on a new record. Once the gateway has stopped
  // (SIGTERM: its workers finish and exit) nothing more can come: what reached the service by
  // then is all it will ever send.
  await gateway.stop();
  t.deepEqual(recorder.requests.map((r) => `${r.method} ${r.path}`), [], 'nothing reached the service');
});

test('standard: lookups and uploads carry checksums and the link domain, no address, HELO, subject, text, IP, full URL or file name', async (t) => {
  const { gateway, recorder } = await gatewayIn(t, 'standard');
  await sendProbes(gateway.port);
  await waitFor('the records uploaded', () => recordsUploaded(recorder) >= MESSAGES, 20_000);
  const captured = recorder.text();
  t.true(recorder.requests.some((r) => r.path === '/v1/lookup'), 'lookups went through the recorder too');
  t.true(captured.includes(`url:domain:${LINK_DOMAIN}`), 'the link domain is sent (positive control)');
  assertNoPersonalData(t, captured);
  t.false(captured.includes(PRIVATE.urlPath), 'no full URL');
  t.false(captured.includes(LINK_HOST), 'not even the full host name');
  t.false(captured.includes('url:sha256:'), 'no checksum of a full URL');
  t.false(captured.includes(ATTACHMENT_TYPE), 'no attachment type');
  for (const { batch } of recorder.reports()) {
    for (const record of batch.records) {
      t.deepEqual(Object.keys(record).sort(), ['action', 'fingerprints', 'id', 'score', 'time', 'verdict'], 'exactly the standard fields');
    }
  }
  t.is(recordsUploaded(recorder), MESSAGES, 'one record per message');
});

test('extended: adds the full URLs, their checksums, attachment types and sizes and the message size, and still no personal data', async (t) => {
  const { gateway, recorder } = await gatewayIn(t, 'extended');
  await sendProbes(gateway.port);
  await waitFor('the records uploaded', () => recordsUploaded(recorder) >= MESSAGES, 20_000);
  const captured = recorder.text();
  assertNoPersonalData(t, captured);
  t.true(captured.includes(URL_FULL), 'the full URL');
  t.true(captured.includes('url:sha256:'), 'the checksum of the full URL');
  const records = recorder.reports().flatMap((r) => r.batch.records);
  t.is(records.length, MESSAGES);
  for (const record of records) {
    t.deepEqual(Object.keys(record).sort(), ['action', 'attachments', 'fingerprints', 'id', 'score', 'size', 'time', 'urls', 'verdict']);
    t.deepEqual(record.urls, [URL_FULL]);
    const attachments = record.attachments as { sha256: string; type: string; size: number }[];
    t.is(attachments.length, 1);
    t.is(attachments[0]!.type, ATTACHMENT_TYPE);
    t.is(attachments[0]!.size, ATTACHMENT.length);
    t.true((record.size as number) > ATTACHMENT.length);
  }
});

test('nimbus stats reads the data dir the gateway is writing, under load, without lock errors', async (t) => {
  const { gateway } = await gatewayIn(t, 'off');
  const env = { NIMBUS_DATA_DIR: gateway.dataDir };
  const load = smtpSource(gateway.port, LOAD, 8);
  const seen: number[] = [];
  let loading = true;
  void load.finally(() => (loading = false));
  while (loading || seen.length < 2) {
    const summary = await statsJson(env);
    seen.push(messagesIn(summary));
  }
  const sent = await load;
  t.is(sent.code, 0, sent.stderr);
  const final = await statsJson(env);
  t.is(messagesIn(final), LOAD);
  t.is(final.backlog, LOAD);
  t.deepEqual([...seen].sort((a, b) => a - b), seen, 'counts only grow');
  t.true(seen.some((n) => n > 0 && n < LOAD), `read while the gateway was writing (seen ${seen.join(', ')})`);
  const lines = gateway.logLines();
  const locked = lines.filter((line) => line.component === 'stats' && /SQLITE_BUSY|database is locked/i.test(JSON.stringify(line)));
  t.deepEqual(locked, [], 'the statistics never met a lock');
  t.deepEqual(lines.filter((line) => line.event === 'gateway.observer_failed'), [], 'every record was written');
  // Not statistics: the embedded engine's learning (local-reputation.sqlite) can still meet
  // SQLITE_BUSY between workers (a deferred read-then-write ingest transaction); reported.
  const engineLocked = lines.filter((line) => line.event === 'scan.local_learn_failed').length;
  if (engineLocked > 0) t.log(`embedded engine: ${engineLocked} local_learn_failed (database is locked)`);
});
