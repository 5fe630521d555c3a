/**
 * Attachment samples through a running `nimbus gateway` and a real `nimbus reputation`, with an
 * HTTP recorder between them that keeps every byte the gateway sends (helpers/stats-gateway.ts).
 * Each message carries a mix: an unknown executable, an executable the service already knows, one
 * over NIMBUS_SAMPLE_MAX_BYTES, a harmless attachment and a PDF; a second message is spam (GTUBE)
 * and carries another PDF. Extended samples exactly the unknown executable and the PDF in spam;
 * standard and off send no attachment bytes at all, and opting in later sends none from before.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startGatewayProcess, type GatewayProcess } from './helpers/nimbus.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp.js';
import { everyWorker, startRecorder, startServiceProcess, statsJson, WORKERS, writeEnvFile, type Recorder, type ServiceProcess } from './helpers/stats-gateway.js';
import { swaks } from './helpers/swaks.js';
import { tempDir, testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
const MAX_BYTES = 16 * 1024;
const PRIVATE = { sender: 'eve.sender@sender-private.test', recipient: 'dora.recipient@inbox-private.test', subject: 'Sample-Subject-Marker-3K' } as const;

interface Part {
  readonly name: string;
  readonly type: string;
  readonly bytes: Buffer;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
/** Distinct bytes per call, so every run and every test has attachments nobody knows yet. */
const exe = (size = 3000): Buffer => Buffer.concat([Buffer.from('MZ'), randomBytes(size - 2)]);
const pdf = (): Buffer => Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(3000)]);

/** The attachments of the first message, fresh for each test. */
function mix() {
  return {
    unknownExe: { name: 'update-tool.exe', type: 'application/octet-stream', bytes: exe() },
    knownExe: { name: 'installer-known.exe', type: 'application/x-msdownload', bytes: exe() },
    bigExe: { name: 'big-setup.exe', type: 'application/octet-stream', bytes: exe(MAX_BYTES + 4096) },
    harmless: { name: 'notes-private.txt', type: 'text/plain', bytes: Buffer.from('meeting notes, nothing to run here\n'.repeat(20)) },
    pdfInHam: { name: 'invoice-private.pdf', type: 'application/pdf', bytes: pdf() },
    pdfInSpam: { name: 'offer-private.pdf', type: 'application/pdf', bytes: pdf() },
  } satisfies Record<string, Part>;
}

function message(parts: readonly Part[], text: string): string {
  const lines = [
    `From: Eve <${PRIVATE.sender}>`,
    `To: Dora <${PRIVATE.recipient}>`,
    `Subject: ${PRIVATE.subject}`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    text,
    '',
  ];
  for (const part of parts) {
    lines.push(
      '--b1',
      `Content-Type: ${part.type}; name="${part.name}"`,
      `Content-Disposition: attachment; filename="${part.name}"`,
      'Content-Transfer-Encoding: base64',
      '',
      ...(part.bytes.toString('base64').match(/.{1,76}/g) ?? []),
    );
  }
  lines.push('--b1--', '');
  return lines.join('\r\n');
}

let sink: SmtpSink;
test.before(async () => {
  sink = await startSmtpSink();
});
test.after.always(async () => {
  await sink?.stop();
});

interface Setup {
  readonly service: ServiceProcess;
  readonly recorder: Recorder;
  readonly gateway: GatewayProcess;
  readonly envFile: string;
  readonly cliEnv: Record<string, string>;
}

/** A service (the gateway's key has `role`), a recorder in front of it, and a gateway configured by `env`. */
async function setup(t: ExecutionContext, role: 'sensor' | 'reporter', env: Record<string, string>): Promise<Setup> {
  const service = await startServiceProcess(t, { role });
  const recorder = await startRecorder(service.url);
  const envFile = join(testDir(t, 'nimbus-samples-'), 'nimbus.env');
  writeEnvFile(envFile, {
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: recorder.url,
    NIMBUS_REPUTATION_KEY: service.token,
    NIMBUS_SAMPLE_MAX_BYTES: String(MAX_BYTES),
    // An attachment is sampled when the service did not answer in time, too (samples.ts): with
    // the default 300 ms budget a first lookup from a fresh worker under the whole suite on two
    // cores sometimes ran out, and a checksum the service knew was sampled. These tests are about
    // what is chosen from the service's answers, so they give it time to answer.
    NIMBUS_LOOKUP_TIMEOUT_MS: '5000',
    ...env,
  });
  const gateway = await startGatewayProcess(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`, NIMBUS_ENV_FILE: envFile, NIMBUS_WORKERS: String(WORKERS) });
  t.teardown(async () => {
    await gateway.stop();
    await Promise.all([recorder.close(), service.stop()]);
  });
  return { service, recorder, gateway, envFile, cliEnv: { NIMBUS_DATA_DIR: gateway.dataDir, NIMBUS_ENV_FILE: envFile } };
}

async function send(gateway: GatewayProcess, text: string): Promise<void> {
  const dir = tempDir('nimbus-samples-msg-');
  writeFileSync(join(dir, 'message.eml'), text);
  const result = await swaks(gateway.port, ['--from', PRIVATE.sender, '--to', PRIVATE.recipient, '--data', `@${join(dir, 'message.eml')}`]);
  rmSync(dir, { recursive: true, force: true });
  if (result.exitCode !== 0) throw new Error(`swaks failed:\n${result.output}`);
}

/** The two messages: the mix as ordinary mail, and the PDF in spam. */
async function sendMix(gateway: GatewayProcess, parts: ReturnType<typeof mix>): Promise<void> {
  await send(gateway, message([parts.unknownExe, parts.knownExe, parts.bigExe, parts.harmless, parts.pdfInHam], 'Here are the files you asked for.'));
  await send(gateway, message([parts.pdfInSpam], `Buy now ${GTUBE}`));
}

function sampleRequests(recorder: Recorder) {
  return recorder.requests.filter((r) => r.path.startsWith('/v1/samples'));
}

function recordsUploaded(recorder: Recorder): number {
  return recorder.reports().filter((r) => r.request.status === 200).reduce((sum, r) => sum + r.batch.records.length, 0);
}

/** No attachment bytes in any request: neither raw, nor base64 (at any alignment), nor a file name. */
function assertNoAttachmentBytes(t: ExecutionContext, recorder: Recorder, parts: readonly Part[]): void {
  const captured = Buffer.concat(recorder.requests.map((r) => r.body));
  const text = recorder.text();
  for (const part of parts) {
    const chunk = part.bytes.subarray(100, 160);
    t.false(captured.includes(chunk), `raw bytes of ${part.name}`);
    for (let shift = 0; shift < 3; shift++) {
      const base64 = part.bytes.subarray(100 + shift, 160 + shift).toString('base64').slice(4, 60);
      t.false(text.includes(base64), `base64 of ${part.name}`);
    }
    t.false(text.includes(part.name), `file name ${part.name}`);
  }
}

test('extended sends exactly the unknown executable and the PDF in spam, once each, byte for byte, and nothing personal', async (t) => {
  const s = await setup(t, 'reporter', { NIMBUS_PARTICIPATION: 'extended' });
  const parts = mix();
  const { token: admin } = await s.service.addKey('admin');
  // Known to the service before the mail comes: an admin verdict on its checksum.
  const known = await fetch(`${s.service.url}/v1/verdicts/${encodeURIComponent(`attachment:sha256:${sha256(parts.knownExe.bytes)}`)}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ verdict: 'ham', reason: 'our own installer' }),
  });
  t.is(known.status, 200);
  await sendMix(s.gateway, parts);
  // A second copy of the ordinary mail: its executable is not sampled again.
  await send(s.gateway, message([parts.unknownExe, parts.harmless], 'Sending it again.'));

  await waitFor('the records uploaded', () => recordsUploaded(s.recorder) >= 3, 30_000);
  await waitFor('no sample waiting', async () => (await statsJson(s.cliEnv)).samples.waiting === 0 && sampleRequests(s.recorder).length >= 2);
  const sent = sampleRequests(s.recorder).map((r) => ({ status: r.status, body: JSON.parse(r.body.toString('utf8')) as Record<string, unknown> }));
  const expected = [parts.unknownExe, parts.pdfInSpam];
  t.deepEqual(sent.map((r) => r.body.sha256).sort(), expected.map((p) => sha256(p.bytes)).sort(), 'exactly these two samples, each once');
  for (const request of sent) {
    t.is(request.status, 200);
    t.deepEqual(Object.keys(request.body).sort(), ['content', 'sha256', 'size', 'type']);
    const original = expected.find((p) => sha256(p.bytes) === request.body.sha256)!;
    t.true(Buffer.from(request.body.content as string, 'base64').equals(original.bytes), 'the bytes of the attachment itself');
    t.is(request.body.size, original.bytes.length);
    t.is(request.body.type, original.type);
  }
  const text = s.recorder.text();
  for (const leak of [PRIVATE.sender, PRIVATE.recipient, PRIVATE.subject, 'private.pdf', 'update-tool.exe', 'notes-private']) {
    t.false(text.includes(leak), leak);
  }
  const summary = await statsJson(s.cliEnv);
  t.is(summary.samples.uploaded, 2);

  // The service keeps them for its admin; nothing of the others.
  const get = async (bytes: Buffer) => fetch(`${s.service.url}/v1/samples/${sha256(bytes)}`, { headers: { authorization: `Bearer ${admin}` } });
  const stored = await get(parts.unknownExe.bytes);
  t.is(stored.status, 200);
  t.true(Buffer.from(await stored.arrayBuffer()).equals(parts.unknownExe.bytes));
  for (const part of [parts.knownExe, parts.bigExe, parts.harmless, parts.pdfInHam]) t.is((await get(part.bytes)).status, 404, part.name);
});

test('standard and off never send attachment bytes, and keep no sample for later', async (t) => {
  const standard = await setup(t, 'reporter', { NIMBUS_PARTICIPATION: 'standard' });
  const off = await setup(t, 'reporter', { NIMBUS_PARTICIPATION: 'off' });
  const parts = mix();
  await Promise.all([sendMix(standard.gateway, parts), sendMix(off.gateway, parts)]);
  await waitFor('the standard records uploaded', () => recordsUploaded(standard.recorder) >= 2, 30_000);
  // Samples would take their turn right after a batch. Once both gateways have stopped (SIGTERM:
  // their workers finish and exit) no stray one can still come.
  await Promise.all([standard.gateway.stop(), off.gateway.stop()]);
  t.deepEqual(sampleRequests(standard.recorder).map((r) => r.path), [], 'no sample request in standard');
  assertNoAttachmentBytes(t, standard.recorder, Object.values(parts));
  t.deepEqual(off.recorder.requests.map((r) => `${r.method} ${r.path}`), [], 'nothing at all in off');
  for (const { cliEnv } of [standard, off]) t.deepEqual((await statsJson(cliEnv)).samples, { waiting: 0, waitingBytes: 0, uploaded: 0, dropped: 0 });
});

test('opting in to extended later sends no sample of mail processed in standard, only of mail after', async (t) => {
  const s = await setup(t, 'reporter', { NIMBUS_PARTICIPATION: 'standard' });
  const before = mix();
  await sendMix(s.gateway, before);
  await waitFor('the standard records uploaded', () => recordsUploaded(s.recorder) >= 2, 30_000);
  const reloaded = Date.now();
  writeEnvFile(s.envFile, {
    NIMBUS_PARTICIPATION: 'extended',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: s.recorder.url,
    NIMBUS_REPUTATION_KEY: s.service.token,
    NIMBUS_SAMPLE_MAX_BYTES: String(MAX_BYTES),
  });
  s.gateway.child.kill('SIGHUP');
  // Logged by each worker in the same step that applies the new configuration to its runtime.
  await waitFor('every worker reloaded', () => everyWorker(s.gateway, 'gateway.reloaded', reloaded), 30_000);
  // A new executable after opting in is sampled (the uploader does send samples now) ...
  const after = exe();
  await send(s.gateway, message([{ name: 'new-tool.exe', type: 'application/octet-stream', bytes: after }], 'A new one.'));
  await waitFor('the new executable sampled', async () => sampleRequests(s.recorder).some((r) => r.status === 200 && r.body.includes(sha256(after))));
  await waitFor('no sample waiting', async () => (await statsJson(s.cliEnv)).samples.waiting === 0);
  // ... and it is the only sample: nothing was kept from the mail processed in standard.
  const hashes = sampleRequests(s.recorder).map((r) => (JSON.parse(r.body.toString('utf8')) as { sha256: string }).sha256);
  t.deepEqual(hashes, [sha256(after)]);
  assertNoAttachmentBytes(t, s.recorder, Object.values(before));
});

test('with a sensor key the service refuses samples (403): logged once per worker, samples stay local, records still go', async (t) => {
  const s = await setup(t, 'sensor', { NIMBUS_PARTICIPATION: 'extended' });
  const parts = mix();
  await sendMix(s.gateway, parts);
  await waitFor('the records uploaded', () => recordsUploaded(s.recorder) >= 2, 30_000);
  await waitFor('a refused sample', () => sampleRequests(s.recorder).some((r) => r.status === 403), 30_000);
  // Records after the refusal still go; and after that batch a worker whose samples were not
  // refused for good would offer one again (samples take their turn after a batch).
  await send(s.gateway, message([parts.harmless], 'One more.'));
  await waitFor('the next record uploaded', () => recordsUploaded(s.recorder) >= 3, 30_000);
  // Stopped (SIGTERM: the workers finish and exit), the gateway can send nothing more: what the
  // recorder has is every sample request of its whole life.
  await s.gateway.stop();
  const requests = sampleRequests(s.recorder);
  t.true(requests.every((r) => r.status === 403));
  t.true(requests.length <= WORKERS, `one try per worker, then no more (${requests.length})`);
  t.true(s.gateway.events('stats.samples.forbidden').length <= WORKERS);
  // Without an admin verdict at this service the "known" executable is unknown too.
  t.is((await statsJson(s.cliEnv)).samples.waiting, 3, 'kept for a reload with a reporter key');
});
