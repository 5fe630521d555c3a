/**
 * What the sender, the next hop and the admin see for each spam action, through `nimbus gateway`
 * as a real process with its full verdict pipeline (embedded engine, scoring, recorder,
 * quarantine), smtp-sink as next hop and swaks as the sending MTA. The Quarantine class and its
 * commands are covered in quarantine.test.ts; here only the gateway's path into it.
 */
import { readFileSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { GTUBE } from '../src/scan/gtube.js';
import type { QuarantineMeta } from '../src/quarantine/store.js';
import { firstRun, nextRun } from '../fixtures/verdict/variants.js';
import { runNimbus } from './helpers/nimbus.js';
import { lf, startSmtpSink, type SmtpSink } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { testDir } from './helpers/temp.js';
import { dataFile, gateway, header, relayedMessage } from './helpers/verdict.js';
import { waitForFiles } from './helpers/wait.js';

const SPAM_LINK = 'http://uahernad.com/micro/64';
const SPAM_SENDER_IP = '82.81.145.134';
/** An image spam's first run: a GIF linked to the spammer's site, word salad around it, sent from SPAM_SENDER_IP. */
const imageSpam = () => firstRun(SPAM_LINK, SPAM_SENDER_IP);

/** A message whose body is GTUBE, which always scores as spam. */
function gtubeMessage(subject: string): Buffer {
  return Buffer.from(
    [`From: Mallory <mallory@spam-sender.example>`, 'To: bob@example.com', `Subject: ${subject}`, `Message-ID: <${subject.replace(/\W+/g, '-')}@spam-sender.example>`, '', 'Cheap pills, best prices.', GTUBE, ''].join('\r\n'),
    'latin1',
  );
}

async function gatewayWithSink(t: ExecutionContext, env: Record<string, string>): Promise<{ sink: SmtpSink; gw: Awaited<ReturnType<typeof gateway>> }> {
  const sink = await startSmtpSink();
  t.teardown(() => sink.stop());
  const gw = await gateway(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`, NIMBUS_RELAY_DOMAINS: 'example.com', ...env });
  return { sink, gw };
}

/** The reply the sender got to its final dot (the one after 354). */
function endOfDataReply(replies: readonly string[]): string | undefined {
  const data = replies.findIndex((reply) => reply.startsWith('354'));
  return data < 0 ? undefined : replies[data + 1];
}

/** The server's reply to the first command swaks sent that starts with `command`. */
function replyTo(output: string, command: string): string | undefined {
  const lines = output.split('\n');
  const sent = lines.findIndex((line) => line.trimStart().startsWith(`-> ${command}`));
  const reply = lines.slice(sent + 1).find((line) => /^\s*<(-|\*\*)\s/.test(line));
  return sent < 0 ? undefined : reply?.replace(/^\s*<(-|\*\*)\s+/, '').trimEnd();
}

test('tag: a spam is relayed with X-Spam-Flag and NIMBUS_SUBJECT_TAG in front of its subject, once even when the subject already carries it', async (t) => {
  const { sink, gw } = await gatewayWithSink(t, { NIMBUS_SPAM_ACTION: 'tag', NIMBUS_SUBJECT_TAG: '[SPAM]' });
  const work = testDir(t, 'nimbus-verdict-work-');
  for (const subject of ['Cheap pills', '[SPAM] Re: Cheap pills']) {
    const sent = await swaks(gw.port, ['--from', 'mallory@spam-sender.example', '--to', 'bob@example.com', '--data', `@${dataFile(work, 'gtube.eml', gtubeMessage(subject))}`]);
    t.regex(endOfDataReply(sent.replies) ?? '', /^250 /, sent.output);
  }
  const dumps = (await waitForFiles(sink.dir, 2)).map((file) => relayedMessage(readFileSync(file)));
  const subjects = dumps.map((message) => header(message, 'Subject')).sort();
  t.deepEqual(subjects, [['[SPAM] Cheap pills'], ['[SPAM] Re: Cheap pills']]);
  for (const message of dumps) {
    t.deepEqual(header(message, 'X-Spam-Flag'), ['YES']);
    t.regex(header(message, 'X-Spam-Status')[0] ?? '', /^Yes, score=1000\.0 required=5\.0 tests=NIMBUS_GTUBE/);
    t.true(message.includes(lf(Buffer.from(`\r\n\r\nCheap pills, best prices.\r\n${GTUBE}\r\n`))), 'the body is untouched');
  }
});

test('reject: a message reported with nimbus report --spam is refused with 550 5.7.1 at the end of DATA and never reaches the next hop', async (t) => {
  const { sink, gw } = await gatewayWithSink(t, { NIMBUS_SPAM_ACTION: 'reject' });
  const work = testDir(t, 'nimbus-verdict-work-');
  const spamFile = dataFile(work, 'spam.eml', await imageSpam());
  const report = await runNimbus(['report', '--spam', spamFile], { NIMBUS_DATA_DIR: gw.dataDir });
  t.is(report.code, 0, report.stderr);

  const sent = await swaks(gw.port, ['--xclient', `ADDR=${SPAM_SENDER_IP}`, '--from', 'sccywmjiy@bezeqint.net', '--to', 'bob@example.com', '--data', `@${spamFile}`]);
  t.is(endOfDataReply(sent.replies), '550 5.7.1 Message rejected as spam', sent.output);
  t.regex(replyTo(sent.output, 'RCPT TO') ?? '', /^250 /, 'RCPT was accepted: the refusal is for the content');
  t.deepEqual(sink.files(), [], 'nothing reached the next hop');
  const processed = gw.logLines().find((line) => line.event === 'gateway.message');
  t.like(processed, { action: 'reject', verdict: 'spam' });
  t.true(Number(processed?.score) >= 15, `score ${String(processed?.score)} reaches NIMBUS_REJECT_SCORE from reputation alone`);
});

test('quarantine: the sender gets 250, the next hop nothing, nimbus quarantine list shows it and release delivers it without the verdict fields and the subject tag', async (t) => {
  const { sink, gw } = await gatewayWithSink(t, { NIMBUS_SPAM_ACTION: 'quarantine', NIMBUS_SUBJECT_TAG: '[SPAM]' });
  const work = testDir(t, 'nimbus-verdict-work-');
  const message = gtubeMessage('Quarantine me');
  const sent = await swaks(gw.port, ['--xclient', 'ADDR=198.51.100.61', '--from', 'mallory@spam-sender.example', '--to', 'bob@example.com', '--data', `@${dataFile(work, 'gtube.eml', message)}`]);
  t.regex(endOfDataReply(sent.replies) ?? '', /^250 2\.6\.0 Ok: queued as [0-9A-F]{12}$/, sent.output);
  t.deepEqual(sink.files(), [], 'nothing reached the next hop');

  const env = { NIMBUS_DATA_DIR: gw.dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`, NIMBUS_LOG_LEVEL: 'silent' };
  const listed = await runNimbus(['quarantine', 'list', '--json'], env);
  t.is(listed.code, 0, listed.stderr);
  const entries = JSON.parse(listed.stdout) as QuarantineMeta[];
  t.is(entries.length, 1);
  t.like(entries[0], { mailFrom: 'mallory@spam-sender.example', rcptTo: ['bob@example.com'], clientIp: '198.51.100.61', verdict: 'spam' });
  const stored = (await runNimbus(['quarantine', 'show', '--raw', entries[0]!.id], env)).stdoutBytes;
  t.regex(stored.toString('latin1'), /^Received: from [^]*\r\nX-Nimbus-Verdict: spam; score=1000\.0[^]*\r\nSubject: \[SPAM\] Quarantine me\r\n/, 'stored as it would have been relayed');

  const released = await runNimbus(['quarantine', 'release', entries[0]!.id], env);
  t.is(released.code, 0, released.stderr);
  const [dump] = await waitForFiles(sink.dir, 1);
  const delivered = relayedMessage(readFileSync(dump!));
  const received = stored.subarray(0, stored.indexOf('\r\nX-Nimbus-Verdict:') + 2);
  t.true(delivered.equals(lf(Buffer.concat([received, message]))), `the gateway's Received field, then the original message byte for byte:\n${delivered.toString('latin1')}`);
  t.deepEqual(header(delivered, 'X-Spam-Flag'), []);
  t.deepEqual(header(delivered, 'Subject'), ['Quarantine me']);
  t.deepEqual(JSON.parse((await runNimbus(['quarantine', 'list', '--json'], env)).stdout), []);
});

test('quarantine release --as-ham: a reported message quarantined as spam is delivered, learnt as ham, and its next copy goes through untouched', async (t) => {
  const { sink, gw } = await gatewayWithSink(t, { NIMBUS_SPAM_ACTION: 'quarantine' });
  const work = testDir(t, 'nimbus-verdict-work-');
  const spamFile = dataFile(work, 'spam.eml', await imageSpam());
  const env = { NIMBUS_DATA_DIR: gw.dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`, NIMBUS_LOG_LEVEL: 'silent' };
  t.is((await runNimbus(['report', '--spam', spamFile], env)).code, 0);
  const send = () => swaks(gw.port, ['--xclient', `ADDR=${SPAM_SENDER_IP}`, '--from', 'sccywmjiy@bezeqint.net', '--to', 'bob@example.com', '--data', `@${spamFile}`]);

  t.regex(endOfDataReply((await send()).replies) ?? '', /^250 /);
  const [entry] = JSON.parse((await runNimbus(['quarantine', 'list', '--json'], env)).stdout) as QuarantineMeta[];
  t.like(entry, { verdict: 'spam' });
  const released = await runNimbus(['quarantine', 'release', '--as-ham', entry!.id], env);
  t.is(released.code, 0, released.stderr);
  const lines = released.stdout.trimEnd().split('\n');
  t.regex(lines[0]!, new RegExp(`^released ${entry!.id}: 250 `));
  t.regex(lines[1]!, new RegExp(`^${entry!.id}: reported as ham: [1-9]\\d* fingerprints learnt locally; service: disabled$`));
  const [releasedFile] = await waitForFiles(sink.dir, 1);

  t.regex(endOfDataReply((await send()).replies) ?? '', /^250 /);
  const second = (await waitForFiles(sink.dir, 2)).find((file) => file !== releasedFile)!;
  t.deepEqual(header(relayedMessage(readFileSync(second)), 'X-Spam-Flag'), [], 'the next copy is not flagged');
  t.deepEqual(JSON.parse((await runNimbus(['quarantine', 'list', '--json'], env)).stdout), [], 'nor quarantined');
  const verdicts = gw.events('gateway.message').map((line) => [line.action, line.verdict]);
  t.deepEqual(verdicts[0], ['quarantine', 'spam']);
  t.notDeepEqual(verdicts[1]?.[1], 'spam');
});

test('discard: the sender gets 250, nothing is delivered, and nimbus stats counts the message as spam', async (t) => {
  const { sink, gw } = await gatewayWithSink(t, { NIMBUS_SPAM_ACTION: 'discard' });
  const work = testDir(t, 'nimbus-verdict-work-');
  const sent = await swaks(gw.port, ['--xclient', 'ADDR=198.51.100.62', '--from', 'mallory@spam-sender.example', '--to', 'bob@example.com', '--data', `@${dataFile(work, 'gtube.eml', gtubeMessage('Discard me'))}`]);
  t.regex(endOfDataReply(sent.replies) ?? '', /^250 2\.6\.0 Ok: queued as [0-9A-F]{12}$/, sent.output);
  t.deepEqual(sink.files(), []);
  const stats = await runNimbus(['stats', '--json'], { NIMBUS_DATA_DIR: gw.dataDir });
  t.is(stats.code, 0, stats.stderr);
  const summary = JSON.parse(stats.stdout) as { perDay: { day: string; messages: number; spam: number }[]; topIps: { item: string; count: number }[] };
  t.like(summary.perDay.find((day) => day.day === new Date().toISOString().slice(0, 10)), { messages: 1, spam: 1 });
  t.deepEqual(summary.topIps.map((ip) => ip.item), ['198.51.100.62']);
  t.deepEqual(sink.files(), [], 'still nothing, later either');
});

test('spam trap: mail to NIMBUS_SPAMTRAPS gets 250 and is never delivered, and teaches the gateway: the next copy to a real user is tagged', async (t) => {
  const { sink, gw } = await gatewayWithSink(t, { NIMBUS_SPAMTRAPS: 'trap@example.org', NIMBUS_RELAY_DOMAINS: 'example.com,example.org' });
  const work = testDir(t, 'nimbus-verdict-work-');
  const spam = await imageSpam();
  const trapped = await swaks(gw.port, ['--xclient', `ADDR=${SPAM_SENDER_IP}`, '--from', 'sccywmjiy@bezeqint.net', '--to', 'trap@example.org', '--data', `@${dataFile(work, 'spam.eml', spam)}`]);
  t.regex(endOfDataReply(trapped.replies) ?? '', /^250 /, trapped.output);
  t.deepEqual(sink.files(), [], 'a trap never gets mail');

  // The next run: re-encoded picture, another greeting, another sender address and network.
  const { message } = await nextRun(spam, SPAM_LINK);
  const next = await swaks(gw.port, ['--xclient', 'ADDR=190.65.69.185', '--from', 'care@offers-mail.example', '--to', 'bob@example.com', '--data', `@${dataFile(work, 'next.eml', message)}`]);
  t.regex(endOfDataReply(next.replies) ?? '', /^250 /, next.output);
  const [dump] = await waitForFiles(sink.dir, 1);
  const relayed = relayedMessage(readFileSync(dump!));
  t.deepEqual(header(relayed, 'X-Spam-Flag'), ['YES']);
  t.regex(header(relayed, 'X-Nimbus-Report')[0] ?? '', /image:phash256:[0-9a-f]{12}\.\.\.=spam\(/);
  t.is(sink.files().length, 1);
});

test('spam trap beside a real recipient: the trap gets nothing, the real recipient gets the message tagged as spam (never silently dropped)', async (t) => {
  const { sink, gw } = await gatewayWithSink(t, { NIMBUS_SPAMTRAPS: 'trap@example.org', NIMBUS_RELAY_DOMAINS: 'example.com,example.org' });
  const work = testDir(t, 'nimbus-verdict-work-');
  const message = Buffer.from(['From: Someone <someone@sender.example>', 'To: trap@example.org, bob@example.com', 'Subject: Hello both', '', 'A message to two addresses, one of them a spam trap that nobody reads.', ''].join('\r\n'));
  const sent = await swaks(gw.port, ['--from', 'someone@sender.example', '--to', 'trap@example.org,bob@example.com', '--data', `@${dataFile(work, 'mixed.eml', message)}`]);
  t.regex(endOfDataReply(sent.replies) ?? '', /^250 /, sent.output);
  const [dump] = await waitForFiles(sink.dir, 1, 10_000);
  const raw = readFileSync(dump!).toString('latin1');
  t.deepEqual(raw.split('\n').filter((line) => line.startsWith('X-Rcpt-Args: ')), ['X-Rcpt-Args: <bob@example.com>']);
  const relayed = relayedMessage(readFileSync(dump!));
  t.deepEqual(header(relayed, 'X-Spam-Flag'), ['YES']);
  t.regex(header(relayed, 'X-Spam-Status')[0] ?? '', /tests=.*NIMBUS_SPAMTRAP/);
});

test('forged verdict fields from an untrusted client are removed by the full pipeline: a forged "No" on GTUBE leaves only the gateway\'s "Yes"', async (t) => {
  const { sink, gw } = await gatewayWithSink(t, { NIMBUS_TRUSTED_NETWORKS: '127.0.0.1/32' });
  const work = testDir(t, 'nimbus-verdict-work-');
  const forged = Buffer.from(
    [
      'From: Mallory <m@example.net>',
      'To: bob@example.com',
      'Subject: Forged verdict',
      'X-Spam-Flag: NO',
      'X-Spam-Status: No, score=-100.0',
      '  required=5.0 tests=ALL_TRUSTED',
      'X-Nimbus-Verdict: ham; score=0.0; required=5.0',
      'X-Keep-Me: yes',
      '',
      GTUBE,
      '',
    ].join('\r\n'),
  );
  const sent = await swaks(gw.port, ['--local-interface', '127.0.0.2', '--from', 'm@example.net', '--to', 'bob@example.com', '--data', `@${dataFile(work, 'forged.eml', forged)}`]);
  t.regex(endOfDataReply(sent.replies) ?? '', /^250 /, sent.output);
  const [dump] = await waitForFiles(sink.dir, 1);
  const relayed = relayedMessage(readFileSync(dump!));
  t.deepEqual(header(relayed, 'X-Spam-Flag'), ['YES']);
  t.deepEqual(header(relayed, 'X-Nimbus-Verdict').map((v) => v.split(';')[0]), ['spam']);
  t.is(header(relayed, 'X-Spam-Status').length, 1);
  t.false(relayed.includes('ALL_TRUSTED'));
  t.deepEqual(header(relayed, 'X-Keep-Me'), ['yes']);
});
