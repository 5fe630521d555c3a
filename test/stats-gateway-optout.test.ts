/**
 * Opting out through a running `nimbus gateway`: while a large backlog is uploading to the real
 * `nimbus reputation` (one upload held in the recorder, so it is in flight for sure), SIGHUP with
 * participation off (or acceptance withdrawn) aborts that upload and no request of any kind
 * reaches the service afterwards, while mail keeps flowing and records stay local.
 */
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startGatewayProcess, type GatewayProcess } from './helpers/nimbus.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp.js';
import { everyWorker, messagesIn, smtpSource, startRecorder, startServiceProcess, statsJson, WORKERS, writeEnvFile, type Recorder, type ServiceProcess } from './helpers/stats-gateway.js';
import { testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const BACKLOG = 300;
const BATCH = 100;

interface Setup {
  service: ServiceProcess;
  recorder: Recorder;
  sink: SmtpSink;
  gateway: GatewayProcess;
  envFile: string;
  participating: Record<string, string>;
  cliEnv: Record<string, string>;
}

/**
 * A gateway (WORKERS processes, one uploader each) that gathered BACKLOG records while off and
 * then opted in: the first batch is acknowledged, every later one is held by the recorder before
 * the service (in flight, unanswered), so each worker has an upload in flight.
 */
async function uploadingGateway(t: ExecutionContext): Promise<Setup> {
  const [service, sink] = await Promise.all([startServiceProcess(t), startSmtpSink()]);
  const recorder = await startRecorder(service.url);
  const envFile = join(testDir(t, 'nimbus-optout-'), 'nimbus.env');
  writeEnvFile(envFile, { NIMBUS_PARTICIPATION: 'off' });
  const gateway = await startGatewayProcess(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`, NIMBUS_ENV_FILE: envFile, NIMBUS_WORKERS: String(WORKERS) });
  t.teardown(async () => {
    await gateway.stop();
    await Promise.all([recorder.close(), service.stop(), sink.stop()]);
  });
  const sent = await smtpSource(gateway.port, BACKLOG, 10);
  if (sent.code !== 0) throw new Error(`smtp-source: ${sent.stderr}`);
  let reports = 0;
  recorder.policy = (request) => (request.path === '/v1/reports' && ++reports >= 2 ? 'hold-request' : 'forward');
  const participating = {
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: recorder.url,
    NIMBUS_REPUTATION_KEY: service.token,
    NIMBUS_UPLOAD_BATCH_SIZE: String(BATCH),
  };
  writeEnvFile(envFile, participating);
  gateway.child.kill('SIGHUP');
  await waitFor('an upload in flight in every worker', () => recorder.reports().length >= 1 + WORKERS && gateway.events('stats.upload.batch').length === 1, 20_000);
  return { service, recorder, sink, gateway, envFile, participating, cliEnv: { NIMBUS_DATA_DIR: gateway.dataDir, NIMBUS_ENV_FILE: envFile } };
}

/** SIGHUP with `values` in the env file; resolves once every worker stopped its uploads. */
async function switchOff(setup: Setup, values: Record<string, string>): Promise<number> {
  writeEnvFile(setup.envFile, values);
  const switched = Date.now();
  setup.gateway.child.kill('SIGHUP');
  await waitFor('every worker stopped uploading', () => everyWorker(setup.gateway, 'stats.upload.stopped', switched), 10_000);
  return switched;
}

/**
 * Sends mail after the switch, then stops the gateway (SIGTERM: its workers finish and exit), and
 * returns the requests the recorder saw since the switch: all the gateway will ever send after it.
 */
async function requestsAfterSwitch(setup: Setup): Promise<string[]> {
  const seen = setup.recorder.requests.length;
  const more = await smtpSource(setup.gateway.port, 20, 2);
  if (more.code !== 0) throw new Error(`mail stopped flowing after the switch: ${more.stderr}`);
  await setup.gateway.stop();
  return setup.recorder.requests.slice(seen).map((r) => `${r.method} ${r.path}`);
}

test('opting out aborts the upload in flight at once and no request reaches the service afterwards', async (t) => {
  const setup = await uploadingGateway(t);
  const { recorder, service, gateway } = setup;
  const held = recorder.reports().slice(1).map((r) => r.request);
  t.true(held.every((r) => r.status === null), 'uploads in flight');
  t.is(await service.ingested(), BATCH);

  const switched = await switchOff(setup, { NIMBUS_PARTICIPATION: 'off' });
  await waitFor('the gateway to drop the held uploads', () => held.every((r) => r.clientGaveUp !== null), 5000);
  const slowest = Math.max(...held.map((r) => r.clientGaveUp! - switched));
  t.true(slowest < 2000, `the uploads in flight were aborted within ${slowest} ms of SIGHUP`);
  t.deepEqual(await requestsAfterSwitch(setup), [], 'no lookup, no upload, no resend after opting out');

  t.is(await service.ingested(), BATCH, 'only the batch acknowledged before the switch');
  const summary = await statsJson(setup.cliEnv);
  t.is(summary.participation, 'off');
  t.is(messagesIn(summary), BACKLOG + 20, 'mail kept flowing and being recorded');
  t.is(summary.backlog, BACKLOG - BATCH + 20, 'the aborted batches and the new records stay local');
});

test('opting in again resends the aborted batch under its own id; the service ends with every record once', async (t) => {
  const setup = await uploadingGateway(t);
  const { recorder, service, gateway } = setup;
  const abortedIds = recorder.reports().slice(1).map((r) => r.batch.batchId);
  await switchOff(setup, { NIMBUS_PARTICIPATION: 'off' });
  recorder.policy = () => 'forward';
  writeEnvFile(setup.envFile, setup.participating);
  gateway.child.kill('SIGHUP');
  await waitFor('every record ingested', async () => (await service.ingested()) >= BACKLOG, 20_000);
  await waitFor('the outbox empty', () => gateway.events('stats.upload.batch').some((line) => line.backlog === 0), 10_000);
  t.is(await service.ingested(), BACKLOG);
  for (const id of abortedIds) {
    const sends = recorder.reports().filter((u) => u.batch.batchId === id);
    t.is(sends.length, 2, 'an aborted batch is sent again once, with the same id');
    t.is(sends[1]!.request.status, 200);
  }
  const after = await statsJson(setup.cliEnv);
  t.is(after.backlog, 0);
  t.is(after.uploaded, BACKLOG, 'each record counted once as uploaded although two workers uploaded');
});

/*
 * NIMBUS_PARTICIPATION=standard with NIMBUS_ACCEPT_STATEMENT=no would refuse to start; on a
 * running gateway the reload applies it as off (loadConfigForReload) instead of keeping the old,
 * consenting configuration.
 */
test('withdrawing acceptance (NIMBUS_ACCEPT_STATEMENT=no, mode unchanged) stops every exchange at once too', async (t) => {
  const setup = await uploadingGateway(t);
  const { recorder, gateway } = setup;
  const held = recorder.reports().slice(1).map((r) => r.request);
  writeEnvFile(setup.envFile, { ...setup.participating, NIMBUS_ACCEPT_STATEMENT: 'no' });
  const switched = Date.now();
  gateway.child.kill('SIGHUP');
  await waitFor('the reload handled', () => everyWorker(gateway, 'stats.upload.stopped', switched) || everyWorker(gateway, 'process.reload_failed', switched), 10_000);
  // Looked at before the gateway is stopped: stopping it would end the held uploads too.
  await waitFor('the gateway to drop the held uploads', () => held.every((r) => r.clientGaveUp !== null), 5000).catch(() => undefined);
  const abortedWhileRunning = held.every((r) => r.clientGaveUp !== null);
  t.deepEqual(await requestsAfterSwitch(setup), [], 'no request after acceptance was withdrawn');
  t.true(abortedWhileRunning, 'the uploads in flight were aborted');
});
