import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkMessages, formatTable, splitMessages } from '../src/commands/check.js';
import { message, picture, prose } from '../fixtures/fingerprint/factory.js';

const root = join(import.meta.dirname, '..');

function nimbus(args: string[], stdin?: Buffer): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx', 'src/cli.ts', ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? Buffer.alloc(0));
  });
}

test('check --json prints one object per file with file, fingerprints, verdict, score and report', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nimbus-check-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'one.eml');
  await writeFile(file, message({ parts: [{ type: 'text/html', content: `<p>${prose(40, 1)}</p><a href="https://x.example.com/">go</a>`, encoding: '7bit' }, { type: 'image/png', content: await picture(64, 64, 1), filename: 'p.png' }] }));
  const { code, stdout } = await nimbus(['check', '--json', file]);
  t.is(code, 0);
  const lines = stdout.trim().split('\n');
  t.is(lines.length, 1);
  const object = JSON.parse(lines[0]!) as { file: string; fingerprints: string[]; verdict: string; score: number; report: unknown[] };
  t.is(object.file, file);
  t.is(object.verdict, 'unknown');
  t.is(object.score, 0);
  t.deepEqual(object.report, []);
  for (const kind of ['ip:sha256:', 'net:sha256:', 'body:minhash64:', 'url:domain:example.com', 'image:sha256:', 'image:phash256:']) {
    t.true(object.fingerprints.some((f) => f.startsWith(kind)), kind);
  }
});

test('check reads stdin when no file is named and prints a table', async (t) => {
  const { code, stdout } = await nimbus(['check'], message({ parts: [{ type: 'text/plain', content: prose(40, 2), encoding: '7bit' }] }));
  t.is(code, 0);
  t.regex(stdout, /^-: verdict unknown, score 0\nkind\s+algorithm\s+value\s+label\n/);
  t.regex(stdout, /\nip\s+sha256\s+[0-9a-f]{64}\s+198\.51\.100\.23\n/);
});

test('an mbox file is split into its messages', async (t) => {
  const one = message({ parts: [{ type: 'text/plain', content: prose(40, 3), encoding: '7bit' }] });
  const two = message({ parts: [{ type: 'text/plain', content: prose(40, 4), encoding: '7bit' }] });
  const mbox = Buffer.concat([Buffer.from('From a@example.net  Mon Nov 23 07:00:00 2026\n'), one, Buffer.from('\n\nFrom b@example.net  Mon Nov 23 07:01:00 2026\n'), two]);
  t.is(splitMessages(mbox).length, 2);
  const results = await checkMessages('box.mbox', mbox);
  t.deepEqual(results.map((r) => r.file), ['box.mbox#1', 'box.mbox#2']);
  t.not(results[0]!.fingerprints.find((f) => f.kind === 'body')!.text, results[1]!.fingerprints.find((f) => f.kind === 'body')!.text);
  t.regex(formatTable(results[0]!), /^box\.mbox#1: verdict unknown/);
});

test('an unreadable file is reported with its name and a non-zero exit, the others are still checked', async (t) => {
  const { code, stderr } = await nimbus(['check', '/nonexistent/nimbus.eml']);
  t.is(code, 66);
  t.regex(stderr, /cannot read \/nonexistent\/nimbus\.eml/);
});

test('a body line starting with "From " without a preceding empty line does not split an mbox message', (t) => {
  const mbox = Buffer.from('From a@example.net  Mon Nov 23 07:00:00 2026\nSubject: x\n\nhello\nFrom me to you, 2 lines\nbye\n');
  t.is(splitMessages(mbox).length, 1);
});
