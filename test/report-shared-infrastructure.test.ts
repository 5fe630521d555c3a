/**
 * One reported newsletter must not convict its email service provider: `nimbus report --spam`
 * convicts the message's content at once, but the provider's link domain and sending address
 * only from a second reported message (docs/design/reputation-engine.md). Real CLI, real local
 * store, no service.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNimbus } from './helpers/nimbus.js';

const ESP_IP = '149.72.10.20';

/** A newsletter relayed by the same provider: its link domain and sending address, a text of its own. */
function newsletter(subject: string, paragraphs: readonly string[]): string {
  return [
    `Received: from o1.mailer-esp.net (o1.mailer-esp.net [${ESP_IP}]) by mx.example.org with ESMTPS id 4F2a; Mon, 7 Dec 2026 10:00:00 +0000`,
    'From: News <news@shop.example.com>',
    'To: reader@example.org',
    `Subject: ${subject}`,
    'Date: Mon, 7 Dec 2026 10:00:00 +0000',
    `Message-ID: <${subject.replace(/\W+/g, '.')}@shop.example.com>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    ...paragraphs,
    '',
    `Read more: https://click.mailer-esp.net/ls/click?upn=${subject.length}abc`,
    'Unsubscribe: https://click.mailer-esp.net/unsubscribe',
    '',
  ].join('\r\n');
}

const UNWANTED = newsletter('Miracle pills at half price', [
  'Our miracle pills melt away the pounds while you sleep, doctors hate this one weird trick.',
  'Order three boxes today and the fourth is free, shipping discreetly to any address worldwide.',
  'Hurry, the offer ends at midnight and stocks of the original formula are running very low.',
]);
const ALSO_UNWANTED = newsletter('Casino bonus waiting for you', [
  'A welcome bonus of five hundred euros is waiting in your casino account, claim it now.',
  'Spin the wheel tonight for free spins on every slot machine, no deposit needed to start.',
  'Winners are paid within the hour, join the thousands of players who cashed out this week.',
]);
const WANTED = newsletter('Your library books are due', [
  'The two books you borrowed from the city library are due back on Friday the eleventh.',
  'You can renew them online from your account page or at any branch desk during opening hours.',
  'The reading group meets on Tuesday evening in the upstairs room to discuss the winter novel.',
]);

interface Checked {
  readonly verdict: string;
  readonly score: number;
  readonly report: readonly string[];
}

test('one reported newsletter leaves the same provider\'s clean newsletter unknown; a second reported message convicts the link domain', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-shared-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = { NIMBUS_DATA_DIR: join(dir, 'data'), NIMBUS_PARTICIPATION: 'off' };
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const unwanted = file('unwanted.eml', UNWANTED);
  const alsoUnwanted = file('also-unwanted.eml', ALSO_UNWANTED);
  const wanted = file('wanted.eml', WANTED);
  const check = async (path: string): Promise<Checked> => {
    const result = await runNimbus(['check', '--json', path], env);
    t.is(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as Checked;
  };
  const domainEntry = (checked: Checked): string | undefined => checked.report.find((entry) => entry.startsWith('url:domain:'));

  const first = await runNimbus(['report', '--spam', unwanted], env);
  t.is(first.code, 0, first.stderr);
  const reported = await check(unwanted);
  t.is(reported.verdict, 'spam', 'the reported message itself is convicted by its content');
  const clean = await check(wanted);
  t.is(clean.score, 0, JSON.stringify(clean));
  t.not(clean.verdict, 'spam');
  t.regex(domainEntry(clean) ?? '', /=unknown/, 'the provider\'s link domain is not convicted by one report');
  t.false(clean.report.some((entry) => /^(ip|net):.*=spam/.test(entry)), 'nor its sending address or network');

  const second = await runNimbus(['report', '--spam', alsoUnwanted], env);
  t.is(second.code, 0, second.stderr);
  t.regex(domainEntry(await check(wanted)) ?? '', /=spam/, 'two distinct reported messages convict the link domain they share');
});
