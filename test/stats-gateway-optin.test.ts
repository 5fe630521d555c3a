/**
 * Opting in through a running `nimbus gateway` (WORKERS processes sharing one outbox, an uploader
 * each): records gathered while off are uploaded to the real `nimbus reputation` after the env
 * file is edited and SIGHUP sent, exactly once even when an acknowledgement is lost and the batch
 * is resent, and no batch is sent by two workers; with NIMBUS_UPLOAD_BACKLOG=no they stay local.
 */
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startGatewayProcess, type GatewayProcess } from './helpers/nimbus.js';
import { startSmtpSink } from './helpers/smtp.js';
import { everyWorker, messagesIn, smtpSource, startRecorder, startServiceProcess, statsJson, WORKERS, writeEnvFile, type Recorder, type ServiceProcess } from './helpers/stats-gateway.js';
import { testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

interface Setup {
  service: ServiceProcess;
  recorder: Recorder;
  gateway: GatewayProcess;
  envFile: string;
  /** What `nimbus stats` needs to read the gateway's data dir with the gateway's configuration. */
  cliEnv: Record<string, string>;
}

/** A service, a recorder in front of it, a sink, and a gateway started with participation off. */
async function offGateway(t: ExecutionContext): Promise<Setup> {
  const [service, sink] = await Promise.all([startServiceProcess(t), startSmtpSink()]);
  const recorder = await startRecorder(service.url);
  const dir = testDir(t, 'nimbus-optin-');
  const envFile = join(dir, 'nimbus.env');
  writeEnvFile(envFile, { NIMBUS_PARTICIPATION: 'off' });
  const gateway = await startGatewayProcess(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`, NIMBUS_ENV_FILE: envFile, NIMBUS_WORKERS: String(WORKERS) });
  t.teardown(async () => {
    await gateway.stop();
    await Promise.all([recorder.close(), service.stop(), sink.stop()]);
  });
  return { service, recorder, gateway, envFile, cliEnv: { NIMBUS_DATA_DIR: gateway.dataDir, NIMBUS_ENV_FILE: envFile } };
}

function optIn(setup: Setup, extra: Record<string, string> = {}): void {
  writeEnvFile(setup.envFile, {
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: setup.recorder.url,
    NIMBUS_REPUTATION_KEY: setup.service.token,
    ...extra,
  });
  setup.gateway.child.kill('SIGHUP');
}

test('opting in by SIGHUP uploads the 500 records gathered while off, each batch by one worker, exactly once although one acknowledgement is lost', async (t) => {
  const setup = await offGateway(t);
  const { recorder, service, gateway } = setup;
  const sent = await smtpSource(gateway.port, 500, 10);
  t.is(sent.code, 0, sent.stderr);
  const before = await statsJson(setup.cliEnv);
  t.is(messagesIn(before), 500);
  t.is(before.backlog, 500);
  t.is(before.participation, 'off');
  t.is(recorder.requests.length, 0, 'nothing was sent while off');

  // The second upload reaches the service, but its answer never comes back.
  let reports = 0;
  recorder.policy = (request) => (request.path === '/v1/reports' && ++reports === 2 ? 'cut-response' : 'forward');
  optIn(setup, { NIMBUS_UPLOAD_BATCH_SIZE: '200' });
  await waitFor('500 records ingested', async () => (await service.ingested()) >= 500);
  await waitFor('the last batch acknowledged', () => gateway.events('stats.upload.batch').some((line) => line.backlog === 0), 10_000);

  t.is(await service.ingested(), 500, 'the service counted 500 records, the resent batch once');
  const uploads = recorder.reports();
  const ids = uploads.map((u) => u.batch.batchId);
  t.is(new Set(ids).size, 3, 'batches of 200, 200, 100');
  t.is(uploads.length, 4, 'one of them sent twice, the others once: no two workers send the same batch');
  const resent = uploads.filter((u) => u.batch.batchId === uploads[1]!.batch.batchId);
  t.is(resent.length, 2, 'the batch whose answer was lost is the one resent, with the same id');
  t.deepEqual(resent[0]!.batch.records, resent[1]!.batch.records, 'with the same records');
  t.regex(resent[1]!.request.responseBody ?? '', /"duplicate":true/);
  t.is(new Set(uploads.flatMap((u) => u.batch.records.map((r) => r.id as string))).size, 500);

  const after = await statsJson(setup.cliEnv);
  t.is(after.backlog, 0);
  t.is(after.uploaded, 500);
  t.is(after.participation, 'standard');
  t.not(after.lastUpload, null);
  t.is(after.lastError, null, 'the cut is forgotten once a batch went through');
  t.deepEqual(gateway.events('stats.upload.crashed'), [], 'no uploader died on the shared store');
});

test('with NIMBUS_UPLOAD_BACKLOG=no, opting in sends none of the records gathered while off, only new ones', async (t) => {
  const setup = await offGateway(t);
  const { recorder, service, gateway } = setup;
  const sent = await smtpSource(gateway.port, 50, 5);
  t.is(sent.code, 0, sent.stderr);
  optIn(setup, { NIMBUS_UPLOAD_BACKLOG: 'no' });
  await waitFor('every worker discarded the backlog', () => everyWorker(gateway, 'stats.backlog.discarded'), 10_000);
  const discarded = gateway.events('stats.backlog.discarded').reduce((sum, line) => sum + (line.records as number), 0);
  t.is(discarded, 50, 'between them, the workers discarded the 50 records gathered while off');
  const between = await statsJson(setup.cliEnv);
  t.is(between.backlog, 0);
  t.is(messagesIn(between), 50, 'the records stay in the local statistics');

  const more = await smtpSource(gateway.port, 5, 1);
  t.is(more.code, 0, more.stderr);
  await waitFor('the 5 new records ingested', async () => (await service.ingested()) >= 5, 20_000);
  // Any late upload of the old backlog would show up here: once the gateway has stopped
  // (SIGTERM: its workers finish and exit), nothing more can come.
  await gateway.stop();
  t.is(await service.ingested(), 5);
  t.is(recorder.reports().reduce((sum, u) => sum + u.batch.records.length, 0), 5);
  const after = await statsJson(setup.cliEnv);
  t.is(messagesIn(after), 55);
  t.is(after.backlog, 0);
});
