import test from 'ava';
import { runNimbus, startReputationProcess } from './helpers/nimbus.js';
import { call, fingerprint } from './helpers/service.js';
import { testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

test('a key added with nimbus keys is accepted by nimbus reputation, refused once revoked, a second nimbus reputation on the same data dir is refused in one line, and SIGTERM exits 0', async (t) => {
  const dir = testDir(t, 'nimbus-rep-proc-');
  const env = { NIMBUS_DATA_DIR: dir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'info' };
  const added = await runNimbus(['keys', 'add', '--role', 'sensor', '--label', 'test gateway', '--rate', '500'], env);
  t.is(added.code, 0, added.stderr);
  const token = added.stdout.trim();
  t.regex(token, /^nmb_[0-9a-f]+_\S+$/);
  const id = token.split('_')[1]!;
  const listed = await runNimbus(['keys', 'list'], env);
  t.regex(listed.stdout, new RegExp(`${id}\\tsensor\\t500/s`));
  t.false(listed.stdout.includes(token.split('_').slice(2).join('_')), 'the secret is never listed');

  const service = await startReputationProcess(t, env);
  const { url } = service;
  const body = { items: [fingerprint()] };
  t.is((await call(url, 'POST', '/v1/lookup', token, body)).status, 200);
  t.is((await runNimbus(['keys', 'revoke', id], env)).code, 0);
  let status = 200;
  const refused = async () => (status = (await call(url, 'POST', '/v1/lookup', token, body)).status) !== 200;
  // On timeout the assertion below names the status the key still got.
  await waitFor('the revoked key to be refused', refused, 15_000).catch(() => undefined);
  t.is(status, 401);
  // The running service writes its store behind a journal: a second one would undo its rows.
  const second = await runNimbus(['reputation'], env);
  t.is(second.code, 1);
  t.regex(second.stderr, /^nimbus reputation: .*reputation\.sqlite is already being written by another nimbus reputation.*\(STORE_LOCKED\)\n$/);
  service.child.kill('SIGHUP');
  t.is((await call(url, 'GET', '/healthz', null)).status, 200, 'SIGHUP reloads without stopping');
  service.child.kill('SIGTERM');
  t.is(await service.exited, 0);
});
