/**
 * Failure paths of statistics through a running `nimbus gateway` (WORKERS processes) and a real
 * `nimbus reputation`: a kill -9 of the whole gateway under load with uploads unacknowledged, and a
 * key the service rejects with 401.
 */
import { join } from 'node:path';
import test from 'ava';
import { startGatewayProcess } from './helpers/nimbus.js';
import { freePort } from './helpers/ports.js';
import { sendOne, startSmtpSink } from './helpers/smtp.js';
import { everyWorker, killHard, messagesIn, smtpSource, startRecorder, startServiceProcess, statsJson, WORKERS, writeEnvFile } from './helpers/stats-gateway.js';
import { testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const SENDERS = 4;
/** Replies of 250 the senders must have seen before the kill. */
const ACKED_BEFORE_KILL = 150;

test('kill -9 under load with uploads unacknowledged: every 250 has its record, and after a restart the service counts each record exactly once', async (t) => {
  const [service, sink] = await Promise.all([startServiceProcess(t), startSmtpSink()]);
  const recorder = await startRecorder(service.url);
  const dir = testDir(t, 'nimbus-crash-');
  const dataDir = join(dir, 'data');
  const envFile = join(dir, 'nimbus.env');
  writeEnvFile(envFile, {
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: recorder.url,
    NIMBUS_REPUTATION_KEY: service.token,
    NIMBUS_UPLOAD_BATCH_SIZE: '20',
  });
  const env = { NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`, NIMBUS_ENV_FILE: envFile, NIMBUS_DATA_DIR: dataDir, NIMBUS_WORKERS: String(WORKERS) };
  const cliEnv = { NIMBUS_DATA_DIR: dataDir, NIMBUS_ENV_FILE: envFile };
  // The service ingests every upload but no acknowledgement gets back: at the kill, batches are
  // at the service and still in the gateway's outbox.
  recorder.policy = (request) => (request.path === '/v1/reports' ? 'hold-response' : 'forward');
  const first = await startGatewayProcess(t, env);
  const second: { stop(): Promise<void> }[] = [];
  t.teardown(async () => {
    await first.stop();
    for (const gateway of second) await gateway.stop();
    await Promise.all([recorder.close(), service.stop(), sink.stop()]);
  });

  let acked = 0;
  let running = true;
  const senders = Array.from({ length: SENDERS }, async (_, sender) => {
    for (let i = 0; running; i++) {
      const reply = await sendOne(first.port, `Subject: load ${sender}/${i}\n\nmessage ${sender}/${i}\n`);
      if (reply === null) return;
      if (reply.startsWith('250')) acked++;
    }
  });
  await waitFor(`${ACKED_BEFORE_KILL} messages accepted and uploads in flight`, () => acked >= ACKED_BEFORE_KILL && recorder.reports().some((r) => r.request.status === 200), 60_000);
  await killHard(first.child);
  running = false;
  await Promise.all(senders);
  t.deepEqual(first.events('process.signal'), [], 'no worker stopped gracefully: a crash');
  const ingestedAtKill = await service.ingested();
  t.true(ingestedAtKill > 0, 'batches reached the service before the kill');
  t.deepEqual(first.events('stats.upload.batch'), [], 'and none of them was acknowledged to the gateway');

  const local = messagesIn(await statsJson(cliEnv));
  t.true(local >= acked, `every 250 has a record: ${local} records for ${acked} replies of 250`);
  t.true(local <= acked + SENDERS, `at most the messages in flight at the kill are recorded without their 250 (${local - acked})`);

  recorder.policy = () => 'forward';
  const restarted = await startGatewayProcess(t, env);
  second.push(restarted);
  await waitFor('the backlog uploaded', async () => (await service.ingested()) >= local, 30_000);
  await waitFor('the outbox empty', () => restarted.events('stats.upload.batch').some((line) => line.backlog === 0), 10_000);
  t.is(await service.ingested(), local, 'each record counted once by the service');
  const after = await statsJson(cliEnv);
  t.is(after.backlog, 0);
  t.is(messagesIn(after), local);

  const uploads = recorder.reports();
  const heldIds = new Set(uploads.filter((u) => u.request.policy === 'hold-response').map((u) => u.batch.batchId));
  for (const id of heldIds) {
    const resends = uploads.filter((u) => u.batch.batchId === id && u.request.policy === 'forward');
    t.is(resends.length, 1, 'an unacknowledged batch is resent once after the restart, with its id');
    t.regex(resends[0]!.request.responseBody ?? '', /"duplicate":true/, 'and the service recognises it');
  }
  t.is(new Set(uploads.flatMap((u) => u.batch.records.map((r) => r.id as string))).size, local, 'no record in two batches');
});

test('a key the service rejects (401): logged clearly once per worker, mail keeps flowing, records kept; SIGHUP with the right key uploads them', async (t) => {
  const [service, sink] = await Promise.all([startServiceProcess(t), startSmtpSink()]);
  const recorder = await startRecorder(service.url);
  const envFile = join(testDir(t, 'nimbus-401-'), 'nimbus.env');
  const participating = {
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: recorder.url,
  };
  const wrongKey = `${service.token.slice(0, -4)}xxxx`;
  writeEnvFile(envFile, { ...participating, NIMBUS_REPUTATION_KEY: wrongKey });
  const metricsPort = await freePort();
  const gateway = await startGatewayProcess(t, {
    NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`,
    NIMBUS_ENV_FILE: envFile,
    NIMBUS_WORKERS: String(WORKERS),
    NIMBUS_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
  });
  t.teardown(async () => {
    await gateway.stop();
    await Promise.all([recorder.close(), service.stop(), sink.stop()]);
  });
  const metric = async (pattern: RegExp): Promise<number> => {
    const match = pattern.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    return match ? Number(match[1]) : Number.NaN;
  };
  const cliEnv = { NIMBUS_DATA_DIR: gateway.dataDir, NIMBUS_ENV_FILE: envFile };

  const sent = await smtpSource(gateway.port, 30, 4);
  t.is(sent.code, 0, `every message accepted: ${sent.stderr}`);
  await waitFor('uploads refused', () => gateway.events('stats.upload.auth_rejected').length > 0, 15_000);
  const more = await smtpSource(gateway.port, 20, 4);
  t.is(more.code, 0, more.stderr);
  await waitFor('50 messages at the next hop', () => sink.files().length >= 50, 15_000);

  const refused = recorder.reports();
  t.true(refused.length >= 1 && refused.every((u) => u.request.status === 401), 'the service refused the key');
  t.true(refused.length <= WORKERS, `uploads stop at the 401: ${refused.length} attempts for 50 messages`);
  const rejected = gateway.events('stats.upload.auth_rejected');
  t.true(rejected.length <= WORKERS, 'one error line per uploader, not per message');
  t.regex(String(rejected[0]!.msg), /NIMBUS_REPUTATION_KEY \(401\).*fix the key and reload \(SIGHUP\)/);
  t.true(gateway.events('lookup.auth_rejected').length <= WORKERS, 'lookups say it once per worker too');
  const during = await statsJson(cliEnv);
  t.is(messagesIn(during), 50);
  t.is(during.backlog, 50, 'every record kept locally');
  t.regex(during.lastError ?? '', /401/);
  t.is(await service.ingested(), 0);
  t.is(await metric(/^nimbus_stats_backlog_records (\d+)/m), 50, 'the backlog gauge agrees');
  t.true((await metric(/^nimbus_stats_upload_errors_total\{kind="auth"\} (\d+)/m)) >= 1, 'the 401 is counted');

  writeEnvFile(envFile, { ...participating, NIMBUS_REPUTATION_KEY: service.token });
  const fixed = Date.now();
  gateway.child.kill('SIGHUP');
  await waitFor('every worker restarted its uploads', () => everyWorker(gateway, 'stats.upload.started', fixed), 10_000);
  await waitFor('the kept records uploaded', async () => (await service.ingested()) >= 50, 20_000);
  const after = await statsJson(cliEnv);
  t.is(await service.ingested(), 50);
  t.is(after.backlog, 0);
  t.is(after.lastError, null);
  t.is(await metric(/^nimbus_stats_backlog_records (\d+)/m), 0, 'every worker reports the shared outbox, not its own last value');
  t.is(await metric(/^nimbus_stats_uploaded_records_total (\d+)/m), 50);
});
