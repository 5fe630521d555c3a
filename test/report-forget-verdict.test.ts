/**
 * Undo and overrides from the command line, against the real local store (a temp data dir) and
 * a real `nimbus reputation` process: `nimbus report --forget`, `nimbus verdict`.
 */
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { message, prose } from '../fixtures/fingerprint/factory.js';
import { runNimbus, startReputationProcess } from './helpers/nimbus.js';

interface Checked {
  fingerprints: string[];
  verdict: string;
  report: string[];
}

async function workspace(t: { teardown(fn: () => Promise<void>): void }): Promise<{ dir: string; env: Record<string, string> }> {
  const dir = await mkdtemp(join(tmpdir(), 'nimbus-forget-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return { dir, env: { NIMBUS_DATA_DIR: join(dir, 'data'), NIMBUS_PARTICIPATION: 'off' } };
}

/** A spam message of its own text linking to a domain it may share with others. */
function spam(seed: number, domain: string): Buffer {
  return message({ subject: `offer ${seed}`, parts: [{ type: 'text/html', content: `<p>${prose(40, seed)}</p><a href="https://${domain}/x">buy</a>`, encoding: '7bit' }] });
}

async function check(file: string, env: Record<string, string>): Promise<Checked> {
  const result = await runNimbus(['check', '--json', file], env);
  return JSON.parse(result.stdout) as Checked;
}

const entry = (checked: Checked, prefix: string): string => checked.report.find((e) => e.startsWith(prefix)) ?? `${prefix}: none`;

test('report --forget takes back one mistaken report and keeps what other reported messages hold', async (t) => {
  const { dir, env } = await workspace(t);
  // A link domain needs two reported messages (one report is not a conviction of shared
  // infrastructure): three are reported, so two remain when a is forgotten.
  const [a, b, c] = [join(dir, 'a.eml'), join(dir, 'b.eml'), join(dir, 'c.eml')];
  await writeFile(a, spam(31, 'shop.shared.example'));
  await writeFile(b, spam(32, 'shop.shared.example'));
  await writeFile(c, spam(33, 'shop.shared.example'));
  for (const file of [a, b, c]) t.is((await runNimbus(['report', '--spam', file], env)).code, 0);

  const forgot = await runNimbus(['report', '--forget', a], env);
  t.is(forgot.code, 0, forgot.stderr);
  t.regex(forgot.stdout, /a\.eml: forgotten \(reported as spam\): the local evidence of \d+ fingerprints withdrawn/);
  const afterA = await check(a, env);
  t.is(afterA.verdict, 'unknown', afterA.report.join(' '));
  t.regex(entry(afterA, 'body:'), /=unknown\(/);
  // b and c still hold the link domain: forgetting a must not forget it.
  t.regex(entry(afterA, 'url:domain:shared.example'), /=spam\(/);
  t.is((await check(b, env)).verdict, 'spam');

  t.is((await runNimbus(['report', '--forget', b], env)).code, 0);
  t.regex(entry(await check(b, env), 'url:domain:shared.example'), /=unknown\(/, 'one reported message left: not a conviction');
});

test('report --forget of a message never reported withdraws nothing another reported message holds', async (t) => {
  const { dir, env } = await workspace(t);
  const [reported, other] = [join(dir, 'reported.eml'), join(dir, 'other.eml')];
  await writeFile(reported, spam(41, 'x.kept.example'));
  await writeFile(other, spam(42, 'x.kept.example'));
  t.is((await runNimbus(['report', '--spam', reported], env)).code, 0);
  const forgot = await runNimbus(['report', '--forget', other], env);
  t.is(forgot.code, 0);
  t.regex(forgot.stdout, /not in the record of reported messages/);
  t.is((await check(reported, env)).verdict, 'spam');
});

test('verdict spam, show and clear on the local engine: an override with its audit trail', async (t) => {
  const { env } = await workspace(t);
  const item = 'url:domain:override.example';
  const usage = await runNimbus(['verdict', 'spam', 'not-a-fingerprint'], env);
  t.is(usage.code, 64);
  t.regex(usage.stderr, /is not a fingerprint/);
  t.is((await runNimbus(['verdict', 'show', item], env)).code, 1);

  const set = await runNimbus(['verdict', 'spam', item, '--reason', 'phishing kit'], env);
  t.is(set.code, 0, set.stderr);
  const shown = await runNimbus(['verdict', 'show', item], env);
  t.is(shown.code, 0);
  t.regex(shown.stdout, /: spam, score 1,/);
  t.regex(shown.stdout, /override: spam \(phishing kit\)/);
  t.regex(shown.stdout, /audit: \S+ local: none -> spam \(phishing kit\)/);

  t.is((await runNimbus(['verdict', 'clear', item], env)).code, 0);
  const json = JSON.parse((await runNimbus(['verdict', 'show', '--json', item], env)).stdout) as { override: unknown; audit: unknown[] };
  t.is(json.override, null);
  t.is(json.audit.length, 2);
  const again = await runNimbus(['verdict', 'clear', item], env);
  t.is(again.code, 1);
  t.regex(again.stdout, /had no override/);
});

test('verdict --service sets, shows and clears an override at a real reputation service with an admin key', async (t) => {
  const service = await startReputationProcess(t);
  const { env } = await workspace(t);
  const admin = { ...env, NIMBUS_REPUTATION_URL: service.url, NIMBUS_REPUTATION_KEY: (await service.addKey('admin')).token };
  const item = 'url:domain:service-override.example';
  t.is((await runNimbus(['verdict', 'show', '--service', item], admin)).code, 1);
  const set = await runNimbus(['verdict', 'ham', item, '--service', '--reason', 'our partner'], admin);
  t.is(set.code, 0, set.stderr);
  t.regex(set.stdout, /ham at the reputation service/);
  const shown = await runNimbus(['verdict', 'show', item, '--service'], admin);
  t.regex(shown.stdout, /override: ham \(our partner\)/);
  // The local engine is another store: it knows nothing of the service's override.
  t.is((await runNimbus(['verdict', 'show', item], admin)).code, 1);
  t.is((await runNimbus(['verdict', 'clear', item, '--service'], admin)).code, 0);

  const reporter = { ...admin, NIMBUS_REPUTATION_KEY: (await service.addKey('reporter')).token };
  const refused = await runNimbus(['verdict', 'spam', item, '--service'], reporter);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /403/);
  const missing = await runNimbus(['verdict', 'show', item, '--service'], env);
  t.is(missing.code, 64);
  t.regex(missing.stderr, /NIMBUS_REPUTATION_URL/);
});
