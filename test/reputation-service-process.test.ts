import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import test from 'ava';
import { call, fingerprint, loadOpenReputation } from './helpers/service.js';

const engine = await loadOpenReputation();
const it = engine ? test : test.skip;
const cli = path.resolve('src/cli.ts');

function nimbus(args: string[], env: Record<string, string>) {
  return spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
}

it('a key added with nimbus keys is accepted by nimbus reputation, refused once revoked, a second nimbus reputation on the same data dir is refused in one line, and SIGTERM exits 0', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nimbus-rep-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = { NIMBUS_DATA_DIR: dir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'info' };
  const added = nimbus(['keys', 'add', '--role', 'sensor', '--label', 'test gateway', '--rate', '500'], env);
  t.is(added.status, 0, added.stderr);
  const token = added.stdout.trim();
  t.regex(token, /^nmb_[0-9a-f]+_\S+$/);
  const id = token.split('_')[1]!;
  const listed = nimbus(['keys', 'list'], env);
  t.regex(listed.stdout, new RegExp(`${id}\\tsensor\\t500/s`));
  t.false(listed.stdout.includes(token.split('_').slice(2).join('_')), 'the secret is never listed');

  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'reputation'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { event?: string; url?: string };
      if (entry.event === 'reputation.listening') resolve(entry.url!);
    });
    child.once('exit', (code) => reject(new Error(`nimbus reputation exited with ${code}`)));
  });
  const body = { items: [fingerprint()] };
  t.is((await call(url, 'POST', '/v1/lookup', token, body)).status, 200);
  t.is(nimbus(['keys', 'revoke', id], env).status, 0);
  let status = 200;
  for (let i = 0; i < 60 && status === 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    status = (await call(url, 'POST', '/v1/lookup', token, body)).status;
  }
  t.is(status, 401);
  // The running service writes its store behind a journal: a second one would undo its rows.
  const second = nimbus(['reputation'], env);
  t.is(second.status, 1);
  t.regex(second.stderr, /^nimbus reputation: .*reputation\.sqlite is already being written by another nimbus reputation.*\(STORE_LOCKED\)\n$/);
  child.kill('SIGHUP');
  t.is((await call(url, 'GET', '/healthz', null)).status, 200, 'SIGHUP reloads without stopping');
  child.kill('SIGTERM');
  t.is(await exited, 0);
});
