import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatTable } from '../src/commands/check.js';
import { splitMessages } from '../src/scan/mbox.js';
import { checkMessages } from '../src/scan/offline.js';
import { message, picture, prose } from '../fixtures/fingerprint/factory.js';
import { runNimbus } from './helpers/nimbus.js';

// Each run gets its own data dir: check opens the embedded engine there, and must not touch ./data.
async function nimbus(args: string[], stdin?: Buffer, dataDir?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'nimbus-check-data-')));
  try {
    return await runNimbus(args, { NIMBUS_DATA_DIR: dir, NIMBUS_PARTICIPATION: 'off' }, { input: stdin ?? Buffer.alloc(0) });
  } finally {
    if (!dataDir) await rm(dir, { recursive: true, force: true });
  }
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
  // Every fingerprint is named in the report, as X-Nimbus-Report would; none is known yet.
  t.true(object.report.length >= 6);
  t.true(object.report.every((entry) => String(entry).endsWith('=unknown(0.00)')));
  for (const kind of ['ip:sha256:', 'net:sha256:', 'body:minhash64:', 'url:domain:example.com', 'image:sha256:', 'image:phash256:']) {
    t.true(object.fingerprints.some((f) => f.startsWith(kind)), kind);
  }
});

test('after report --spam, check says spam and names the reported fingerprints, in the same data dir only', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nimbus-report-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'spam.eml');
  await writeFile(file, message({ parts: [{ type: 'text/html', content: `<p>${prose(40, 9)}</p><a href="https://offer.example.biz/">buy</a>`, encoding: '7bit' }, { type: 'image/png', content: await picture(64, 64, 9), filename: 'p.png' }] }));
  const reported = await nimbus(['report', '--spam', file], undefined, join(dir, 'data'));
  t.is(reported.code, 0, reported.stderr);
  t.regex(reported.stdout, /reported as spam: \d+ fingerprints learnt locally; service: disabled/);
  const after = JSON.parse((await nimbus(['check', '--json', file], undefined, join(dir, 'data'))).stdout) as { verdict: string; score: number; report: string[] };
  t.is(after.verdict, 'spam');
  t.true(after.score >= 5);
  t.true(after.report.some((entry) => /^image:phash256:.*=spam\(/.test(entry)));
  const elsewhere = JSON.parse((await nimbus(['check', '--json', file])).stdout) as { verdict: string };
  t.is(elsewhere.verdict, 'unknown');
});

test('report refuses to run without exactly one of --spam, --ham or --forget', async (t) => {
  const both = await nimbus(['report', '--spam', '--ham', 'x.eml']);
  t.is(both.code, 64);
  t.regex(both.stderr, /exactly one of --spam, --ham or --forget/);
  const missing = await nimbus(['report', '--spam', '/nonexistent/x.eml']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /cannot read \/nonexistent\/x\.eml/);
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
