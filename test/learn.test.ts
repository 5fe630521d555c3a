/**
 * `nimbus learn` on mail as admins keep it, generated per test: message files, an mbox, a Maildir
 * (cur/, new/, tmp/, the IMAP server's bookkeeping, a `.Junk` subfolder) and files that are not
 * mail; against the real local store of a temp data dir.
 */
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { message, prose } from '../fixtures/fingerprint/factory.js';
import { runNimbus, runNimbusOnTerminal } from './helpers/nimbus.js';

const SENDER = '203.0.113.45';
const RELAY = '198.51.100.30';

/** A Junk folder message as fetchmail left it: the site's own POP relay above the real sender. */
function junk(seed: number): Buffer {
  return message({
    subject: `offer ${seed}`,
    received: [
      `from pop.isp.example (pop.isp.example [${RELAY}]) by localhost with POP3 (fetchmail-6.4) for <jim@localhost>; Mon, 7 Dec 2026 10:00:09 +0000`,
      `from bot${seed}.dialup.example (bot${seed}.dialup.example [${SENDER}]) by pop.isp.example with ESMTP id ${seed}; Mon, 7 Dec 2026 10:00:01 +0000`,
    ],
    parts: [{ type: 'text/plain', content: prose(40, 100 + seed), encoding: '7bit' }],
  });
}

/** Different Message-IDs too, so each message has its own digest. */
function distinct(seed: number): Buffer {
  return Buffer.from(junk(seed).toString('latin1').replace('<fixture@example.net>', `<m${seed}@example.net>`), 'latin1');
}

function mbox(messages: readonly Buffer[]): Buffer {
  return Buffer.concat(messages.map((m) => Buffer.concat([Buffer.from('From sender@example.net Mon Dec  7 10:00:00 2026\n'), m, Buffer.from('\n')])));
}

async function history(t: { teardown(fn: () => Promise<void>): void }): Promise<{ dir: string; env: Record<string, string> }> {
  const dir = await mkdtemp(join(tmpdir(), 'nimbus-learn-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const mail = join(dir, 'mail');
  for (const sub of ['Maildir/cur', 'Maildir/new', 'Maildir/tmp', 'Maildir/.Junk/cur', 'Maildir/.Junk/new', 'archive']) await mkdir(join(mail, sub), { recursive: true });
  await writeFile(join(mail, 'Maildir/cur/1.host:2,S'), distinct(1));
  await writeFile(join(mail, 'Maildir/new/2.host'), distinct(2));
  await writeFile(join(mail, 'Maildir/tmp/3.host'), distinct(3)); // being delivered: not a message yet
  await writeFile(join(mail, 'Maildir/dovecot-uidlist'), '3 V1 N4\n');
  await writeFile(join(mail, 'Maildir/.Junk/cur/4.host:2,S'), distinct(4));
  // The same message as Maildir/cur/1 in another folder, with the flags mail stores add: learnt once.
  await writeFile(join(mail, 'Maildir/.Junk/new/1-copy.host'), Buffer.concat([Buffer.from('Status: RO\r\n'), distinct(1)]));
  const cut = distinct(7).toString('latin1').replace(/\r\n/g, '\n');
  const truncated = `${cut.slice(0, cut.indexOf('\n\n'))}\nContent-Type: multipart/mixed; boundary="zz"\n\n--zz\nContent-Type: text/plain\n\n${prose(30, 7)}`;
  await writeFile(join(mail, 'archive/2026.mbox'), Buffer.concat([mbox([distinct(5), distinct(6)]), Buffer.from(`From sender@example.net Mon Dec  7 10:00:00 2026\n${truncated}`)]));
  await writeFile(join(mail, 'archive/notes.txt'), 'shopping list: milk, eggs\n');
  await writeFile(join(mail, 'archive/single.eml'), distinct(8));
  return { dir, env: { NIMBUS_DATA_DIR: join(dir, 'data'), NIMBUS_PARTICIPATION: 'off' } };
}

test('learn takes messages, mboxes, Maildirs and trees, names what is not mail, and counts a message learnt twice once', async (t) => {
  const { dir, env } = await history(t);
  const mail = join(dir, 'mail');
  const first = await runNimbus(['learn', '--spam', mail], env);
  t.is(first.code, 1, first.stderr);
  t.regex(first.stdout, /^learnt as spam: 6 messages$/m);
  t.regex(first.stdout, /^already known: 1$/m);
  t.regex(first.stdout, /^unreadable: 2$/m);
  t.true(first.stdout.includes(`${join(mail, 'archive/2026.mbox')}#3: truncated: the multipart body never closes`), first.stdout);
  t.true(first.stdout.includes(`${join(mail, 'archive/notes.txt')}: not mail`), first.stdout);
  t.notRegex(first.stdout, /Maildir\/tmp|dovecot/);

  const again = await runNimbus(['learn', '--spam', mail], env);
  t.regex(again.stdout, /^learnt as spam: 0 messages$/m);
  t.regex(again.stdout, /^already known: 7$/m);

  const checked = JSON.parse((await runNimbus(['check', '--json', join(mail, 'archive/single.eml')], env)).stdout) as { verdict: string; report: string[] };
  t.is(checked.verdict, 'spam');
  // Learnt with the Received rule: the sender, not the site's own POP relay.
  t.true(checked.report.some((entry) => entry.startsWith(`ip=${SENDER}=spam`)), checked.report.join(' '));
  t.false(checked.report.some((entry) => entry.startsWith(`ip=${RELAY}=`)));
});

test('learning a message as ham that was learnt as spam takes its spam evidence back; report --forget undoes a learnt message', async (t) => {
  const { dir, env } = await history(t);
  const file = join(dir, 'mail/archive/single.eml');
  t.is((await runNimbus(['learn', '--spam', file], env)).code, 0);
  const relearnt = await runNimbus(['learn', '--ham', file], env);
  t.regex(relearnt.stdout, /learnt as ham: 1 messages \(1 of them learnt before with the other label\)/);
  const body = async (): Promise<string> => {
    const checked = JSON.parse((await runNimbus(['check', '--json', file], env)).stdout) as { report: string[] };
    return checked.report.find((entry) => entry.startsWith('body:')) ?? 'no body entry';
  };
  t.regex(await body(), /=ham\(/);
  t.is((await runNimbus(['report', '--forget', file], env)).code, 0);
  t.regex(await body(), /=unknown\(/);
});

test('on a terminal learn draws a progress bar with the count, the rate and the ETA', async (t) => {
  const { dir, env } = await history(t);
  const session = runNimbusOnTerminal(t, ['learn', '--ham', join(dir, 'mail/Maildir')], env);
  await session.expect('100% 4 messages');
  await session.expect('/s ETA 0:00');
  await session.expect('learnt as ham: 3 messages');
  t.is(await session.exited, 0);
});

test('learn refuses to run without exactly one of --spam or --ham and a path', async (t) => {
  const { env } = await history(t);
  const none = await runNimbus(['learn', '/nowhere'], env);
  t.is(none.code, 64);
  t.regex(none.stderr, /exactly one of --spam or --ham/);
  const missing = await runNimbus(['learn', '--spam', '/nowhere/at/all'], env);
  t.is(missing.code, 1);
  t.regex(missing.stdout, /\/nowhere\/at\/all: ENOENT/);
});

/** Spam whose text is its own but whose link goes to one shop, as a campaign's copies do. */
function linking(seed: number): Buffer {
  return message({
    subject: `deal ${seed}`,
    parts: [{ type: 'text/plain', content: `${prose(40, 300 + seed)}\nhttp://www.promo-shop.example/deal?id=${seed}\n`, encoding: '7bit' }],
  });
}

async function domainVerdict(env: Record<string, string>): Promise<string> {
  const shown = await runNimbus(['verdict', 'show', '--json', 'url:domain:promo-shop.example'], env);
  return shown.code === 0 ? (JSON.parse(shown.stdout) as { result: { verdict: string } }).result.verdict : 'not stored';
}

test('one learnt message does not convict its link domain, a second distinct one does, and forgetting one takes the domain back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nimbus-learn-shared-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env = { NIMBUS_DATA_DIR: join(dir, 'data'), NIMBUS_PARTICIPATION: 'off' };
  await writeFile(join(dir, 'a.eml'), Buffer.from(linking(1).toString('latin1').replace('<fixture@example.net>', '<a@example.net>'), 'latin1'));
  await writeFile(join(dir, 'b.eml'), Buffer.from(linking(2).toString('latin1').replace('<fixture@example.net>', '<b@example.net>'), 'latin1'));

  t.is((await runNimbus(['learn', '--spam', join(dir, 'a.eml')], env)).code, 0);
  t.not(await domainVerdict(env), 'spam', 'one message is not a conviction of the shop it links to');
  t.is((await runNimbus(['learn', '--spam', join(dir, 'b.eml')], env)).code, 0);
  t.is(await domainVerdict(env), 'spam', 'two distinct messages convict the link domain');
  t.is((await runNimbus(['report', '--forget', join(dir, 'b.eml')], env)).code, 0);
  t.not(await domainVerdict(env), 'spam', 'forgetting one of the two leaves one message: not a conviction');
});

test('an address learnt from twelve distinct spam messages and no ham tags its next message on its own; one learnt ham message takes that back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nimbus-learn-sender-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env = { NIMBUS_DATA_DIR: join(dir, 'data'), NIMBUS_PARTICIPATION: 'off' };
  await mkdir(join(dir, 'junk'));
  for (let seed = 1; seed <= 12; seed++) await writeFile(join(dir, 'junk', `${seed}.eml`), distinct(seed));
  await writeFile(join(dir, 'next.eml'), distinct(20));
  await writeFile(join(dir, 'wanted.eml'), distinct(30));
  const check = async (): Promise<{ verdict: string; report: string[] }> => JSON.parse((await runNimbus(['check', '--json', join(dir, 'next.eml')], env)).stdout) as { verdict: string; report: string[] };

  t.is((await runNimbus(['learn', '--spam', join(dir, 'junk')], env)).code, 0);
  const fromSpammer = await check();
  t.is(fromSpammer.verdict, 'spam');
  t.true(fromSpammer.report.includes(`ip=${SENDER}=spam(0.97)`), fromSpammer.report.join(' '));
  t.regex(fromSpammer.report.find((entry) => entry.startsWith('body:')) ?? '', /=unknown\(/, 'its text is new: the address alone tagged it');

  t.is((await runNimbus(['learn', '--ham', join(dir, 'wanted.eml')], env)).code, 0);
  const afterHam = await check();
  t.not(afterHam.verdict, 'spam', 'the admin has wanted mail from it too: a tie-breaker again');
  t.true(afterHam.report.some((entry) => entry.startsWith(`ip=${SENDER}=`)), afterHam.report.join(' '));
});
