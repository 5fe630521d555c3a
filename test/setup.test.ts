/**
 * `nimbus setup`: asked on a real pseudo-terminal and unattended with flags; the env file it
 * writes loads with loadConfig and starts a gateway that behaves as answered; bad answers are
 * refused with the config table's own words; a second run offers the first run's answers.
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { GTUBE } from '../src/scan/gtube.js';
import { writeEnvFile } from '../src/setup/env-file.js';
import { postfixLines, WAY_NAMES } from '../src/setup/ways.js';
import { PROJECT_ROOT, runNimbus, runNimbusOnTerminal, startGatewayProcess } from './helpers/nimbus.js';
import { freePort } from './helpers/ports.js';
import { startSmtpSink } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { testDir } from './helpers/temp.js';
import { dataFile, header, relayedMessage } from './helpers/verdict.js';
import { waitForFiles } from './helpers/wait.js';

/** `NAME=value` lines of an env file, in order (comments and blank lines left out). */
function assignments(text: string): string[] {
  return text.split('\n').filter((line) => /^[A-Z_]+=/.test(line));
}

const BRIEF = ['--participation', 'off', '--relay-domains', 'example.org', '--next-hop', '127.0.0.1:10026', '--yes'];

/** The brief's unattended command with some flags' values replaced or added. */
function briefWith(overrides: Record<string, string>): string[] {
  const flags = new Map<string, string>([['--participation', 'off'], ['--relay-domains', 'example.org'], ['--next-hop', '127.0.0.1:10026'], ...Object.entries(overrides)]);
  return [...[...flags].flat(), '--yes'];
}

test('answered on a terminal, setup writes an env file that starts a gateway relaying for the answered domain, refusing another and rejecting spam', async (t) => {
  const dir = testDir(t, 'nimbus-setup-');
  const envFile = join(dir, 'nimbus.env');
  const sink = await startSmtpSink();
  t.teardown(() => sink.stop());
  const port = await freePort();

  const session = runNimbusOnTerminal(t, ['setup', '--env-path', envFile], {});
  await session.expect('How is Nimbus plugged in', 'sideways');
  await session.expect('expected one of front-mx, before-queue, after-queue');
  await session.expect('How is Nimbus plugged in', 'before-queue');
  await session.expect('Relay domains [(empty)]: ', 'example.org');
  await session.expect('Listen on [127.0.0.1:2525]: ', `127.0.0.1:${port}`);
  await session.expect('Next hop (host:port; - for the Maildir) [127.0.0.1:10026]: ', 'nowhere');
  await session.expect('expected host:port');
  await session.expect('Next hop', `127.0.0.1:${sink.port}`);
  await session.expect('Participation (off, standard, extended) [off]: ', '');
  await session.expect('docs/admin/dns-lists.md');
  await session.expect('Public DNS lists (- for none) [(empty)]: ', '');
  await session.expect('docs/admin/authentication.md');
  await session.expect('SPF, DKIM, DMARC and ARC checks (yes, no) [no]: ', 'maybe');
  await session.expect('expected yes or no');
  await session.expect('SPF, DKIM, DMARC and ARC checks (yes, no) [no]: ', 'on');
  await session.expect('Spam action (tag, reject, quarantine, discard) [tag]: ', 'reject');
  await session.expect('Tag score [5]: ', '');
  await session.expect('Score for the spam action [15]: ', '4');
  await session.expect('expected a number >= the tag score (5)');
  await session.expect('Score for the spam action [15]: ', '10');
  await session.expect('Subject tag (- for none) [(empty)]: ', '');
  await session.expect('smtpd_proxy_filter=127.0.0.1:');
  t.is(await session.exited, 0, session.screen());

  const config = loadConfig({ NIMBUS_ENV_FILE: envFile });
  t.like(config, { relayDomains: ['example.org'], listen: { host: '127.0.0.1', port }, nextHop: { host: '127.0.0.1', port: sink.port }, participation: 'off', authChecks: true, spamAction: 'reject', tagScore: 5, rejectScore: 10 });
  t.is(statSync(envFile).mode & 0o777, 0o600);

  const gateway = await startGatewayProcess(t, { NIMBUS_ENV_FILE: envFile, NIMBUS_WORKERS: '1' });
  t.is(gateway.port, port, 'the answered address, from the file');
  // As Postfix's proxy passes them on: the outside client's address, with XFORWARD (here XCLIENT).
  const outside = ['--xclient', 'ADDR=198.51.100.7', '--from', 'a@example.net'];
  const accepted = await swaks(port, [...outside, '--to', 'bob@example.org', '--body', 'hello']);
  t.is(accepted.exitCode, 0, accepted.output);
  const refused = await swaks(port, [...outside, '--to', 'bob@elsewhere.test', '--body', 'hello']);
  t.true(refused.replies.some((reply) => reply.startsWith('550 5.7.1')), refused.output);
  const spam = await swaks(port, [...outside, '--to', 'bob@example.org', '--body', GTUBE]);
  t.true(spam.replies.includes('550 5.7.1 Message rejected as spam'), spam.output);
  await waitForFiles(sink.dir, 1);
  t.is(sink.files().length, 1, 'only the accepted message reached the next hop');
});

test('run again on a terminal, setup offers the answers in the file as defaults, keeps the variables it does not ask about, and Ctrl-C writes nothing', async (t) => {
  const dir = testDir(t, 'nimbus-setup-');
  const envFile = join(dir, 'nimbus.env');
  const first = await runNimbus(['setup', '--env-path', envFile, '--plug-in', 'after-queue', '--relay-domains', 'example.org,example.net', '--auth-checks', 'on', '--subject-tag', '[SPAM]', '--tag-score', '6', '--yes'], {});
  t.is(first.code, 0, first.stderr);
  writeFileSync(envFile, `${readFileSync(envFile, 'utf8')}NIMBUS_HOSTNAME=gw.example.org\n`);
  const before = assignments(readFileSync(envFile, 'utf8'));

  const session = runNimbusOnTerminal(t, ['setup', '--env-path', envFile], {});
  for (const prompt of ['[after-queue]: ', '[example.org,example.net]: ', '[127.0.0.1:2525]: ', '[127.0.0.1:10026]: ', '[off]: ', 'Public DNS lists (- for none) [(empty)]: ', 'ARC checks (yes, no) [yes]: ', '[tag]: ', 'Tag score [6]: ', '[15]: ', '[[SPAM]]: ']) {
    await session.expect(prompt, '');
  }
  t.is(await session.exited, 0, session.screen());
  t.deepEqual(assignments(readFileSync(envFile, 'utf8')), before, 'the same answers, NIMBUS_HOSTNAME kept');
  t.regex(readFileSync(envFile, 'utf8'), /# name in the greeting and the Received: line\nNIMBUS_HOSTNAME=gw\.example\.org\n/);

  const written = readFileSync(envFile);
  const abandoned = runNimbusOnTerminal(t, ['setup', '--env-path', envFile], {});
  await abandoned.expect('How is Nimbus plugged in', 'front-mx');
  await abandoned.expect('Relay domains');
  abandoned.type('\x03');
  t.is(await abandoned.exited, 130, abandoned.screen());
  t.true(readFileSync(envFile).equals(written), 'nothing written');
  t.deepEqual(readdirSync(dir), ['nimbus.env'], 'no temp file left');
});

test("unattended with flags, setup asks nothing and writes every answer under its table doc; the file loads with loadConfig", async (t) => {
  const dir = testDir(t, 'nimbus-setup-');
  const envFile = join(dir, 'etc', 'nimbus.env');
  const result = await runNimbus(['setup', '--env-path', envFile, ...BRIEF], {});
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /^Wrote .*nimbus\.env \(mode 0600\)\./);
  t.regex(result.stdout, /systemctl enable --now nimbus-gateway/);
  const text = readFileSync(envFile, 'utf8');
  const lines = text.split('\n');
  for (const [index, line] of lines.entries()) {
    if (/^[A-Z_]+=/.test(line)) t.regex(lines[index - 1]!, /^# \S/, `${line} has its comment`);
  }
  t.true(text.includes('# recipient domains accepted from anyone (comma-separated); others get 550 5.7.1\nNIMBUS_RELAY_DOMAINS=example.org\n'));
  t.true(text.includes('NIMBUS_DNS_LISTS=\n'), 'the public lists question is written, empty by default');
  t.true(text.includes('NIMBUS_AUTH_CHECKS=no\n'), 'the authentication checks are off unless asked for');
  const config = loadConfig({ NIMBUS_ENV_FILE: envFile });
  t.like(config, { relayDomains: ['example.org'], nextHop: { host: '127.0.0.1', port: 10026 }, participation: 'off', listen: { host: '0.0.0.0', port: 25 }, spamAction: 'tag' });
});

test('participation by flags: standard needs --accept-statement yes; with it, the URL and key are written, and the key is never printed', async (t) => {
  const dir = testDir(t, 'nimbus-setup-');
  const envFile = join(dir, 'nimbus.env');
  const key = 'nmb_k1a2b3_s3cretpartofthekey';
  const flags = briefWith({ '--participation': 'standard', '--reputation-url': 'https://reputation.example.net', '--reputation-key': key });
  const refused = await runNimbus(['setup', '--env-path', envFile, ...flags], {});
  t.is(refused.code, 64);
  t.regex(refused.stderr, /--participation standard needs --accept-statement yes/);
  t.false(existsSync(envFile));

  const accepted = await runNimbus(['setup', '--env-path', envFile, ...flags, '--accept-statement', 'yes'], {});
  t.is(accepted.code, 0, accepted.stderr);
  t.false((accepted.stdout + accepted.stderr).includes('s3cret'));
  const config = loadConfig({ NIMBUS_ENV_FILE: envFile });
  t.like(config, { participation: 'standard', acceptStatement: true, reputationUrl: 'https://reputation.example.net', reputationKey: key });
});

test('setup refuses unknown flags and bad values with the config table\'s words, and writes nothing', async (t) => {
  const dir = testDir(t, 'nimbus-setup-');
  const envFile = join(dir, 'nimbus.env');
  const cases: [string[], RegExp][] = [
    [[...BRIEF, '--relay-domain', 'example.org'], /unknown option "--relay-domain"/],
    [[...BRIEF, '--next-hop'], /--next-hop needs a value/],
    [briefWith({ '--next-hop': 'nowhere' }), /--next-hop "nowhere": expected host:port \(e\.g\. 127\.0\.0\.1:2525 or \[::1\]:2525\)/],
    [briefWith({ '--participation': 'sometimes' }), /--participation "sometimes": expected one of off, standard, extended/],
    [briefWith({ '--tag-score': 'high' }), /--tag-score "high": expected a number >= 0/],
    [briefWith({ '--auth-checks': 'sometimes' }), /--auth-checks "sometimes": expected yes or no/],
    [briefWith({ '--dns-lists': 'zen' }), /--dns-lists "zen": .*list 1 \("zen"\): zone "": expected a DNS zone/],
    [briefWith({ '--tag-score': '8', '--reject-score': '6' }), /--reject-score "6": expected a number >= the tag score \(8\)/],
    [briefWith({ '--plug-in': 'after-queue', '--spam-action': 'reject' }), /after-queue: Postfix has queued the mail already, so rejecting would make it bounce/],
    [briefWith({ '--plug-in': 'before-queue', '--relay-domains': '' }), /--relay-domains "\(empty\)": before-queue: mail from outside is refused/],
    [briefWith({ '--participation': 'standard', '--accept-statement': 'yes', '--reputation-url': 'https://user:pw@reputation.example.net' }), /--reputation-url "https:\/\/user:\*\*\*@reputation\.example\.net\/?": credentials in the URL are not used/],
  ];
  for (const [args, expected] of cases) {
    const result = await runNimbus(['setup', '--env-path', envFile, ...args], {});
    t.is(result.code, 64, `${args.join(' ')}: ${result.stderr}`);
    t.regex(result.stderr, expected, args.join(' '));
    t.false(result.stderr.includes('pw@'), 'no password echoed');
  }
  const noTerminal = await runNimbus(['setup', '--env-path', envFile, '--relay-domains', 'example.org'], {});
  t.is(noTerminal.code, 64);
  t.regex(noTerminal.stderr, /--plug-in is missing: without a terminal every answer is a flag/);
  t.false(existsSync(envFile));
});

test('the env file is replaced whole: 0640 and of the given group when a group may read it, 0600 otherwise, no temp file left', async (t) => {
  const dir = testDir(t, 'nimbus-setup-');
  const path = join(dir, 'nimbus.env');
  const gid = process.getgid!();
  t.is(await writeEnvFile(path, 'NIMBUS_RELAY_DOMAINS=a.example\n', gid), 0o640);
  t.is(statSync(path).mode & 0o777, 0o640);
  t.is(statSync(path).gid, gid);
  t.is(await writeEnvFile(path, 'NIMBUS_RELAY_DOMAINS=b.example\n', null), 0o600);
  t.is(statSync(path).mode & 0o777, 0o600);
  t.is(readFileSync(path, 'utf8'), 'NIMBUS_RELAY_DOMAINS=b.example\n');
  t.deepEqual(readdirSync(dir), ['nimbus.env']);
});

test('the Postfix lines setup prints for each way are those of docs/admin/postfix.md, with its addresses', (t) => {
  const page = readFileSync(join(PROJECT_ROOT, 'docs', 'admin', 'postfix.md'), 'utf8');
  const blocks = [...page.matchAll(/```\n([^]*?)```/g)].map((match) => match[1]!);
  const listen = { host: '127.0.0.1', port: 2525 };
  const reinjection = { host: '127.0.0.1', port: 10026 };
  for (const way of WAY_NAMES) {
    const groups = way === 'front-mx' ? postfixLines(way, { host: '0.0.0.0', port: 25 }, { host: '10.0.0.5', port: 25 }, '10.0.0.4') : postfixLines(way, listen, reinjection);
    for (const { file, lines } of groups) {
      t.true(blocks.some((block) => block.includes(`${lines.join('\n')}\n`)), `${way}, ${file}:\n${lines.join('\n')}`);
    }
  }
});

test('a gateway tags as answered: with the subject tag given to setup, a spam through the gateway carries it', async (t) => {
  const dir = testDir(t, 'nimbus-setup-');
  const envFile = join(dir, 'nimbus.env');
  const sink = await startSmtpSink();
  t.teardown(() => sink.stop());
  const port = await freePort();
  const written = await runNimbus(['setup', '--env-path', envFile, '--plug-in', 'after-queue', '--listen', `127.0.0.1:${port}`, '--next-hop', `127.0.0.1:${sink.port}`, '--subject-tag', '[SPAM]', '--yes'], {});
  t.is(written.code, 0, written.stderr);
  const gateway = await startGatewayProcess(t, { NIMBUS_ENV_FILE: envFile, NIMBUS_WORKERS: '1' });
  const work = testDir(t, 'nimbus-setup-msg-');
  const message = Buffer.from(['From: a@example.net', 'To: bob@example.org', 'Subject: Cheap pills', '', GTUBE, ''].join('\r\n'));
  const sent = await swaks(gateway.port, ['--from', 'a@example.net', '--to', 'bob@example.org', '--data', `@${dataFile(work, 'spam.eml', message)}`]);
  t.is(sent.exitCode, 0, sent.output);
  const [file] = await waitForFiles(sink.dir, 1);
  t.deepEqual(header(relayedMessage(readFileSync(file!)), 'Subject'), ['[SPAM] Cheap pills']);
});
