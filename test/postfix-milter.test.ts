/**
 * `nimbus milter` behind a real Postfix, with the main.cf lines docs/admin/postfix.md gives
 * (smtpd_milters, non_smtpd_milters, milter_default_action = accept, milter_protocol = 6,
 * milter_mail_macros), swaks as the sender and Postfix's own delivery into Maildirs:
 *
 *   swaks / sendmail ─▶ Postfix ──milter──▶ nimbus milter
 *                         └──▶ Maildir (alice, bob, trap)
 *
 * One Postfix and one milter for the whole file (each start costs seconds); the spam action is
 * changed between tests through the env file and SIGHUP, as an admin would change it. The milter
 * checks SPF, DKIM and DMARC (NIMBUS_AUTH_CHECKS=on) against a DNS server on loopback that
 * publishes the key of a domain whose mail the tests sign.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../src/config/index.js';
import { Quarantine, quarantineDir } from '../src/quarantine/store.js';
import { startDnsServer, type TestDnsServer } from './helpers/dns-server.js';
import { dkimKey, dkimSigned } from './helpers/mail-auth.js';
import { runNimbus, startNimbus, type NimbusProcess } from './helpers/nimbus.js';
import { startPostfix, type PostfixInstance } from './helpers/postfix.js';
import { smtpDialogue } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { dataFile, header } from './helpers/verdict.js';
import { waitFor } from './helpers/wait.js';

const run = promisify(execFile);
const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
const HOSTNAME = 'mx.nimbus.test';
const KEY = dkimKey('signed.test');

interface Shared {
  dir: string;
  dns: TestDnsServer;
  envFile: string;
  milter: NimbusProcess;
  port: number;
  postfix: PostfixInstance;
}
let shared: Shared | null = null;

/** The main.cf lines of docs/admin/postfix.md ("As a milter"), with the test's port. */
function milterLines(port: number): Record<string, string> {
  return {
    smtpd_milters: `inet:127.0.0.1:${port}`,
    non_smtpd_milters: '$smtpd_milters',
    milter_default_action: 'accept',
    milter_protocol: '6',
    milter_mail_macros: 'i {mail_addr} {client_addr} {client_name} {auth_authen}',
  };
}

function writeEnv(envFile: string, action: string, extra: Record<string, string> = {}): void {
  const lines = { NIMBUS_SPAM_ACTION: action, NIMBUS_SUBJECT_TAG: '[SPAM]', NIMBUS_SPAMTRAPS: 'trap@example.test', ...extra };
  writeFileSync(envFile, Object.entries(lines).map(([key, value]) => `${key}=${value}`).join('\n') + '\n');
}

async function reloadWith(s: Shared, action: string, extra: Record<string, string> = {}): Promise<void> {
  writeEnv(s.envFile, action, extra);
  const before = s.milter.events('milter.reloaded').length;
  process.kill(s.milter.pid, 'SIGHUP');
  await s.milter.waitForLog('the reload', () => s.milter.events('milter.reloaded').length > before);
}

test.before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-milter-pf-'));
  const envFile = join(dir, 'nimbus.env');
  writeEnv(envFile, 'tag');
  const dns = await startDnsServer(null, [{ name: 'signed.test', records: { 'signed.test': { TXT: [['v=spf1 ip4:127.0.0.0/8 -all']] }, [KEY.name]: KEY.record, '_dmarc.signed.test': { TXT: [['v=DMARC1; p=reject']] } } }]);
  const milter = await startNimbus(null, ['milter'], {
    NIMBUS_MILTER_LISTEN: '127.0.0.1:0', NIMBUS_DATA_DIR: join(dir, 'data'), NIMBUS_ENV_FILE: envFile, NIMBUS_WORKERS: '1',
    // Postfix and swaks are both on 127.0.0.1: no client is trusted, so forged verdicts go.
    NIMBUS_TRUSTED_NETWORKS: '', NIMBUS_LOG_LEVEL: 'info',
    NIMBUS_AUTH_CHECKS: 'on', NIMBUS_DNS_SERVERS: dns.address, NIMBUS_HOSTNAME: HOSTNAME,
  }, { ready: 'milter.listening' });
  const port = Number(milter.events('milter.listening')[0]!.port);
  const postfix = await startPostfix({ mailboxes: ['alice', 'bob', 'trap'], main: milterLines(port) });
  shared = { dir, dns, envFile, milter, port, postfix };
});

test.after.always(async () => {
  await shared?.milter.stop();
  await shared?.postfix.stop();
  await shared?.dns.stop();
  if (shared) rmSync(shared.dir, { recursive: true, force: true });
});

test('docs/admin/postfix.md gives exactly the main.cf lines this file runs Postfix with (its port as 11332)', (t) => {
  const page = readFileSync(join(import.meta.dirname, '..', 'docs', 'admin', 'postfix.md'), 'utf8');
  const lines = Object.entries(milterLines(11332)).map(([key, value]) => `${key} = ${value}`).join('\n');
  t.true(page.includes(`\`\`\`\n${lines}\n\`\`\``), lines);
});

function send(s: Shared, to: string[], body: string, headers: string[] = []) {
  return swaks(s.postfix.smtpPort, ['--from', 'sender@remote.test', '--to', to.join(','), '--header', 'Subject: a test', ...headers.flatMap((header) => ['--add-header', header]), '--body', body]);
}

test.serial('tag: GTUBE arrives tagged with the verdict fields, forged ones gone, and the trap recipient removed while the other receives; two messages on one connection each get their own verdict, and nimbus stats counts them', async (t) => {
  const s = shared!;
  const messageWith = (subject: string, body: string): string => `From: <sender@remote.test>\r\nTo: <alice@example.test>\r\nSubject: ${subject}\r\nX-Spam-Flag: NO\r\nX-Nimbus-Verdict: ham; score=0.0; required=5.0\r\n\r\n${body}\r\n.`;
  const replies = await smtpDialogue(s.postfix.smtpPort, [
    'EHLO client.test',
    'MAIL FROM:<sender@remote.test>', 'RCPT TO:<alice@example.test>', 'RCPT TO:<trap@example.test>', 'DATA', messageWith('first', GTUBE),
    'MAIL FROM:<sender@remote.test>', 'RCPT TO:<alice@example.test>', 'DATA', messageWith('second', 'Just a note about lunch.'),
    'QUIT',
  ]);
  t.regex(replies[6]!, /^250 /, replies.join('\n'));
  t.regex(replies[10]!, /^250 /, replies.join('\n'));
  const delivered = (await s.postfix.waitForMail('alice', 2)).map((mail) => mail.toString('utf8'));
  // Both may be delivered within one second: told apart by subject, not by Maildir order.
  const spamText = delivered.find((text) => /^Subject: .*first$/m.test(text))!;
  const hamText = delivered.find((text) => /^Subject: second$/m.test(text))!;
  // At the top: above Postfix's own Received line.
  t.regex(spamText, /^X-Nimbus-Verdict: spam; score=\d+\.\d; required=5\.0\n([ \tXA][^\n]*\n)*Received: /m);
  t.regex(spamText, /^X-Spam-Flag: YES$/m);
  t.regex(spamText, /^Subject: \[SPAM\] first$/m);
  t.notRegex(spamText, /X-Spam-Flag: NO|ham; score=0\.0/);
  t.regex(hamText, /^X-Nimbus-Verdict: (ham|unknown); score=/m);
  t.notRegex(hamText, /X-Spam-Flag|ham; score=0\.0; required=5\.0/);
  await s.postfix.waitSettled();
  t.is(s.postfix.maildir('trap').length, 0, 'the trap recipient was removed');
  const lines = s.milter.events('milter.message');
  t.is(lines.length, 2);
  t.like(lines[0], { verdict: 'spam', action: 'tag', trapHits: 1, clientIp: '127.0.0.1' });
  t.not(lines[0]!.queueId, lines[1]!.queueId, "each message logged with Postfix's own queue id");
  const stats = await runNimbus(['stats', '--json'], { NIMBUS_DATA_DIR: join(s.dir, 'data') });
  const today = (JSON.parse(stats.stdout) as { perDay: { messages: number; spam: number }[] }).perDay.at(-1)!;
  t.like(today, { messages: 2, spam: 1 }, 'nimbus stats counts milter traffic');
});

test.serial("a mail submitted with Postfix's sendmail command goes through non_smtpd_milters", async (t) => {
  const s = shared!;
  const before = s.postfix.maildir('bob').length;
  const child = execFile('/usr/sbin/sendmail', ['-C', s.postfix.configDir, '-f', 'local@postfix.test', 'bob@example.test']);
  child.stdin!.end(`Subject: local\n\n${GTUBE}\n`);
  await new Promise((resolve) => child.once('exit', resolve));
  const mail = await s.postfix.waitForMail('bob', before + 1);
  t.regex(mail[before]!.toString('utf8'), /^X-Nimbus-Verdict: spam;/m);
});

test.serial("DKIM through Postfix: a signed message (simple canonicalisation, `Subject:` without a space) arrives with this host's dkim=pass Authentication-Results at the top, the forged one in this host's name gone and another host's kept", async (t) => {
  const s = shared!;
  const before = s.postfix.maildir('alice').length;
  const signed = await dkimSigned(Buffer.from(['From: Billing <billing@signed.test>', 'To: alice@example.test', 'Subject:Your invoice', 'Date: Mon, 07 Dec 2026 10:00:00 +0000', 'Message-ID: <invoice@signed.test>', '', 'Your invoice is ready.', ''].join('\r\n')), KEY, 'simple/simple');
  const message = Buffer.concat([Buffer.from(`Authentication-Results: ${HOSTNAME}; dkim=pass header.d=forged.test\r\nAuthentication-Results: upstream.example; spf=pass smtp.mailfrom=signed.test\r\n`), signed]);
  const result = await swaks(s.postfix.smtpPort, ['--from', 'billing@signed.test', '--to', 'alice@example.test', '--data', `@${dataFile(s.dir, 'signed.eml', message)}`]);
  t.is(result.exitCode, 0, result.output);
  const delivered = (await s.postfix.waitForMail('alice', before + 1))[before]!;
  const text = delivered.toString('utf8');
  const results = header(delivered, 'Authentication-Results');
  t.is(results.length, 2, text);
  t.regex(results[0]!, /^mx\.nimbus\.test; (spf=\w+ [^;]*; )?dkim=pass .*header\.i=@signed\.test.*dmarc=pass /s, text);
  t.is(results[1], 'upstream.example; spf=pass smtp.mailfrom=signed.test');
  t.notRegex(text, /forged\.test/);
  // At the top: above Postfix's own Received line.
  t.regex(text, /^Authentication-Results: mx\.nimbus\.test;[^]*\nReceived: [^]*\nAuthentication-Results: upstream\.example;/m);
  t.regex(text, /^Subject:Your invoice$/m, 'the signed field is delivered as signed');
  t.like(s.milter.events('milter.message').at(-1), { exactHeaders: true });
});

test.serial('reject: the sender gets 550 5.7.1 with the relay\'s text and nothing is delivered', async (t) => {
  const s = shared!;
  await reloadWith(s, 'reject');
  const before = s.postfix.maildir('alice').length;
  const result = await send(s, ['alice@example.test'], GTUBE);
  t.not(result.exitCode, 0);
  t.regex(result.output, /<\*\* +550 5\.7\.1 Message rejected as spam/, result.output);
  await s.postfix.waitSettled();
  t.is(s.postfix.maildir('alice').length, before);
});

test.serial("quarantine: the message lands in Postfix's hold queue (postqueue -j), or with NIMBUS_MILTER_QUARANTINE=store in Nimbus's quarantine and nowhere else", async (t) => {
  const s = shared!;
  await reloadWith(s, 'quarantine');
  const held = await send(s, ['alice@example.test'], GTUBE);
  t.is(held.exitCode, 0, held.output);
  const hold = await waitFor('a message in the hold queue', async () => {
    const { stdout } = await run('/usr/sbin/postqueue', ['-c', s.postfix.configDir, '-j']);
    const entries = stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { queue_name: string; recipients: { address: string }[] });
    return entries.find((entry) => entry.queue_name === 'hold');
  });
  t.deepEqual(hold.recipients.map((recipient) => recipient.address), ['alice@example.test']);
  await run('/usr/sbin/postsuper', ['-c', s.postfix.configDir, '-d', 'ALL', 'hold']);

  await reloadWith(s, 'quarantine', { NIMBUS_MILTER_QUARANTINE: 'store' });
  const before = s.postfix.maildir('alice').length;
  const stored = await send(s, ['alice@example.test'], GTUBE);
  t.is(stored.exitCode, 0, stored.output);
  await s.postfix.waitSettled();
  t.is(s.postfix.maildir('alice').length, before, 'discarded by Postfix');
  const entries = await new Quarantine(quarantineDir(loadConfig({ NIMBUS_DATA_DIR: join(s.dir, 'data') }))).list();
  t.is(entries.length, 1);
  t.deepEqual(entries[0]!.rcptTo, ['alice@example.test']);
});

test.serial('discard: the sender gets 250 and nothing is delivered', async (t) => {
  const s = shared!;
  await reloadWith(s, 'discard');
  const before = s.postfix.maildir('alice').length;
  const result = await send(s, ['alice@example.test'], GTUBE);
  t.is(result.exitCode, 0, result.output);
  await s.postfix.waitSettled();
  t.is(s.postfix.maildir('alice').length, before);
});

test.serial('a stopped nimbus milter lets mail through under milter_default_action = accept', async (t) => {
  const s = shared!;
  await s.milter.stop();
  const before = s.postfix.maildir('alice').length;
  const result = await send(s, ['alice@example.test'], 'while the milter is down');
  t.is(result.exitCode, 0, result.output);
  const mail = await s.postfix.waitForMail('alice', before + 1);
  t.notRegex(mail[before]!.toString('utf8'), /X-Nimbus-Verdict/);
});
