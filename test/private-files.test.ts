/**
 * What Nimbus creates on disk is its user's alone, whatever the umask: SQLite files (and the
 * -wal, -shm files SQLite makes beside them) 0600, directories 0700. The umask here is the usual
 * one outside systemd, 022, which used to give 0644 files and 0755 directories; child processes
 * inherit it.
 */
import test from 'ava';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { makePrivateDir, openPrivateDatabase } from '../src/private-files.js';
import { runNimbus, startGatewayProcess, startReputationProcess } from './helpers/nimbus.js';
import { sendOne } from './helpers/smtp.js';
import { tempDir } from './helpers/temp.js';
import { waitForFiles } from './helpers/wait.js';

process.umask(0o022);

/** Every directory and file under `root` (itself included) with its permission bits, e.g. `data/nimbus.sqlite 600`. */
function modes(root: string): Record<string, string> {
  const found: Record<string, string> = {};
  const walk = (path: string): void => {
    const stat = statSync(path);
    found[relative(join(root, '..'), path)] = (stat.mode & 0o777).toString(8);
    if (stat.isDirectory()) for (const entry of readdirSync(path)) walk(join(path, entry));
  };
  walk(root);
  return found;
}

function notPrivate(found: Record<string, string>, root: string): string[] {
  return Object.entries(found)
    .filter(([path, mode]) => mode !== (statSync(join(root, '..', path)).isDirectory() ? '700' : '600'))
    .map(([path, mode]) => `${path} ${mode}`);
}

test('with umask 022 a gateway creates its data dir 0700 and its SQLite files with their -wal and -shm, Maildir and spool owner-only', async (t) => {
  const base = tempDir('nimbus-private-gw-');
  // Two levels that do not exist yet: both are created by the gateway.
  const dataDir = join(base, 'fresh', 'data');
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const gateway = await startGatewayProcess(t, { NIMBUS_DATA_DIR: dataDir, NIMBUS_WORKERS: '1', NIMBUS_SPOOL_THRESHOLD: '1KB', NIMBUS_NEXT_HOP: '' });

  // Over the spool threshold, delivered into the Maildir (no next hop).
  const reply = await sendOne(gateway.port, `From: a@source.test\nTo: rcpt@relay.test\nSubject: big\n\n${'line of text\n'.repeat(200)}`);
  t.regex(reply ?? '', /^250 /);
  await waitForFiles(join(dataDir, 'maildir', 'new'), 1);

  // Looked at while the gateway runs: the -wal and -shm files exist only while a database is open.
  const found = modes(join(base, 'fresh'));
  for (const expected of ['nimbus.sqlite', 'nimbus.sqlite-wal', 'nimbus.sqlite-shm', 'local-reputation.sqlite', 'local-reputation.sqlite-wal', 'sample-outbox.sqlite', 'maildir/new', 'spool']) {
    t.true(join('fresh', 'data', expected) in found, `${expected} not created: ${JSON.stringify(found)}`);
  }
  t.deepEqual(notPrivate(found, join(base, 'fresh')), []);
});

test('with umask 022 nimbus keys and the reputation service create reputation.sqlite, its side files, the writer lock and the samples store owner-only', async (t) => {
  const base = tempDir('nimbus-private-svc-');
  const dataDir = join(base, 'data');
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const env = { NIMBUS_DATA_DIR: dataDir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'info' };
  const added = await runNimbus(['keys', 'add', '--role', 'sensor', '--label', 'modes'], env);
  t.is(added.code, 0, added.stderr);

  await startReputationProcess(t, env);

  const found = modes(dataDir);
  for (const expected of ['reputation.sqlite', 'reputation.sqlite-wal', 'reputation.sqlite-shm', 'reputation.sqlite-writer', 'reputation-samples.sqlite']) {
    t.true(join('data', expected) in found, `${expected} not created: ${JSON.stringify(found)}`);
  }
  t.deepEqual(notPrivate(found, dataDir), []);
});

test('a directory or database that already exists keeps the mode its administrator gave it', (t) => {
  const base = tempDir('nimbus-private-existing-');
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const shared = join(base, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o750);
  const file = join(shared, 'nimbus.sqlite');
  closeSync(openSync(file, 'w'));
  chmodSync(file, 0o640);

  makePrivateDir(shared);
  const db = openPrivateDatabase(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (x)');
  t.is(statSync(shared).mode & 0o777, 0o750);
  t.is(statSync(file).mode & 0o777, 0o640);
  // SQLite's side files follow the database file, whatever its mode.
  t.true(existsSync(`${file}-wal`));
  t.is(statSync(`${file}-wal`).mode & 0o777, 0o640);
  db.close();
});
