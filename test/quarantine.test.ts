import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { GTUBE } from '../src/scan/gtube.js';
import { startGateway } from '../src/gateway/server.js';
import { createLogger } from '../src/log.js';
import { Quarantine, QuarantineError, quarantineDir, type QuarantineInput, type QuarantineMeta } from '../src/quarantine/store.js';
import { prose } from '../fixtures/fingerprint/factory.js';
import { runNimbus, startReputationProcess } from './helpers/nimbus.js';
import { lf, sinkMessage, startScriptedServer, startSmtpSink } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { tempDir, testDir } from './helpers/temp.js';
import { dataFile } from './helpers/verdict.js';
import { waitFor, waitForFiles } from './helpers/wait.js';

/** `nimbus quarantine ARGS` in its own process, stdout as bytes (async: the next hops of these tests run in this process). */
async function nimbus(args: readonly string[], env: Record<string, string>): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const { code, stdoutBytes, stderr } = await runNimbus(['quarantine', ...args], { NIMBUS_NEXT_HOP: '', NIMBUS_LOG_LEVEL: 'silent', ...env });
  return { code, stdout: stdoutBytes, stderr };
}

/** A message as the gateway would have relayed it: its Received and verdict fields on top, CRLF. */
function relayedMessage(marker: string): Buffer {
  return Buffer.from(
    [
      'Received: from mx.example.org (mx.example.org [192.0.2.7])',
      '\tby gw.nimbus.test (Nimbus) with ESMTP id 0123456789AB',
      '\tfor <bob@example.com>; Mon, 1 Jan 2025 12:00:00 +0000',
      'X-Nimbus-Verdict: spam; score=17.5; required=5.0',
      'X-Spam-Flag: YES',
      'From: Mallory <mallory@example.org>',
      'To: bob@example.com',
      `Subject: ${marker}`,
      '',
      'Cheap pills.',
      '.a line that starts with a dot survives the round trip',
      '..and so does this one',
      '',
    ].join('\r\n'),
  );
}

function request(envelope: { mailFrom: string; rcptTo: string[] }, bytes: Buffer, spamtrapHits: string[] = []): QuarantineInput {
  return {
    queueId: '0123456789AB',
    clientIp: '192.0.2.7',
    clientHelo: 'mx.example.org',
    trustedClient: false,
    envelope,
    spamtrapHits,
    size: bytes.length,
  };
}

/** The envelope smtp-sink recorded: MAIL argument and every RCPT argument. */
function sinkEnvelope(dump: Buffer): { mailFrom: string; rcptTo: string[] } {
  const lines = dump.toString('latin1').split('\n');
  const mail = lines.find((line) => line.startsWith('X-Mail-Args: '))!.slice('X-Mail-Args: '.length).split(' ')[0]!;
  const rcpts = lines.filter((line) => line.startsWith('X-Rcpt-Args: ')).map((line) => line.slice('X-Rcpt-Args: '.length).split(' ')[0]!);
  return { mailFrom: mail, rcptTo: rcpts };
}

/** The message in an smtp-sink dump: smtp-sink ends each dump with one empty line of its own. */
function sunk(dump: Buffer): Buffer {
  const message = sinkMessage(dump);
  return message.at(-1) === 0x0a && message.at(-2) === 0x0a ? message.subarray(0, -1) : message;
}

async function stored(): Promise<{ dataDir: string; quarantine: Quarantine; id: string; bytes: Buffer }> {
  const dataDir = tempDir('nimbus-quarantine-');
  const quarantine = new Quarantine(quarantineDir({ dataDir }));
  const bytes = relayedMessage('quarantined');
  const id = await quarantine.store(request({ mailFrom: '', rcptTo: ['bob@example.com', 'carol@example.com'] }, bytes), bytes);
  return { dataDir, quarantine, id, bytes };
}

test('a stored message is listed by the CLI newest first, with envelope, size and the verdict read from its header', async (t) => {
  const { dataDir, quarantine, id: first, bytes } = await stored();
  try {
    const second = await quarantine.store(request({ mailFrom: 'eve@example.net', rcptTo: ['dave@example.com'] }, bytes), bytes, { verdict: 'bulk', score: 6 });
    const json = await nimbus(['list', '--json'], { NIMBUS_DATA_DIR: dataDir });
    t.is(json.code, 0, json.stderr);
    const metas = JSON.parse(json.stdout.toString('utf8')) as QuarantineMeta[];
    t.deepEqual(metas.map((m) => m.id), [second, first]);
    t.like(metas[1], { mailFrom: '', rcptTo: ['bob@example.com', 'carol@example.com'], clientIp: '192.0.2.7', helo: 'mx.example.org', queueId: '0123456789AB', size: bytes.length, verdict: 'spam', score: 17.5 });
    t.like(metas[0], { mailFrom: 'eve@example.net', verdict: 'bulk', score: 6 });

    const table = await nimbus(['list'], { NIMBUS_DATA_DIR: dataDir });
    t.is(table.code, 0, table.stderr);
    const lines = table.stdout.toString('utf8').trimEnd().split('\n');
    t.regex(lines[0]!, /^ID\s+TIME\s+FROM\s+RECIPIENTS\s+SIZE\s+VERDICT$/);
    t.regex(lines[2]!, new RegExp(`^${first}\\s+\\S+Z\\s+<>\\s+bob@example\\.com \\(\\+1\\)\\s+${bytes.length}\\s+spam \\(17\\.5\\)$`));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('show prints the metadata, then the stored message byte for byte; --raw prints only the message', async (t) => {
  const { dataDir, id, bytes } = await stored();
  try {
    const shown = await nimbus(['show', id], { NIMBUS_DATA_DIR: dataDir });
    t.is(shown.code, 0, shown.stderr);
    const split = shown.stdout.indexOf('\n\n');
    const head = shown.stdout.subarray(0, split).toString('utf8');
    t.regex(head, new RegExp(`^Id: ${id}$`, 'm'));
    t.regex(head, /^Mail-From: <>$/m);
    t.regex(head, /^Rcpt-To: <bob@example\.com>, <carol@example\.com>$/m);
    t.true(shown.stdout.subarray(split + 2).equals(bytes));
    const raw = await nimbus(['show', '--raw', id], { NIMBUS_DATA_DIR: dataDir });
    t.true(raw.stdout.equals(bytes));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('release relays the stored bytes to the next hop with the null sender and every recipient, then the entry is gone', async (t) => {
  const { dataDir, id, bytes } = await stored();
  const sink = await startSmtpSink();
  try {
    const released = await nimbus(['release', id], { NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` });
    t.is(released.code, 0, released.stderr);
    t.regex(released.stdout.toString('utf8'), new RegExp(`^released ${id}: 250 .*\\(to 127\\.0\\.0\\.1:${sink.port}\\)\\n$`));
    const [file] = await waitForFiles(sink.dir, 1);
    const dump = readFileSync(file!);
    t.deepEqual(sinkEnvelope(dump), { mailFrom: '<>', rcptTo: ['<bob@example.com>', '<carol@example.com>'] });
    t.true(sunk(dump).equals(lf(bytes)), sunk(dump).toString('latin1'));
    const after = await nimbus(['list', '--json'], { NIMBUS_DATA_DIR: dataDir });
    t.deepEqual(JSON.parse(after.stdout.toString('utf8')), []);
    t.deepEqual(readdirSync(join(quarantineDir({ dataDir }), 'messages')), []);
  } finally {
    await sink.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a release the next hop answers with 4xx keeps the entry, reports the reply and exits non-zero', async (t) => {
  const { dataDir, quarantine, id } = await stored();
  const hop = await startScriptedServer({ data: () => ({ code: 451, text: '4.3.0 Try again later' }) });
  try {
    const released = await nimbus(['release', id], { NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}` });
    t.not(released.code, 0);
    t.regex(released.stderr, new RegExp(`${id}: next hop 127\\.0\\.0\\.1:${hop.port} refused the message: 451 4\\.3\\.0 Try again later`));
    t.is(hop.messages.length, 0);
    t.deepEqual((await quarantine.list()).map((m) => m.id), [id]);
    t.false(existsSync(join(quarantine.root, 'messages', `${id}.lock`)), 'no lock is left behind');
  } finally {
    await hop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a recipient the next hop refuses aborts the whole release: nobody gets the message and the entry stays', async (t) => {
  const { dataDir, quarantine, id } = await stored();
  const hop = await startScriptedServer({ rcpt: (address) => (address === 'carol@example.com' ? { code: 550, text: '5.1.1 No such user' } : null) });
  try {
    const released = await nimbus(['release', id], { NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}` });
    t.is(released.code, 1);
    t.regex(released.stderr, /refused RCPT TO:<carol@example\.com>: 550 5\.1\.1 No such user/);
    t.is(hop.dataStarted, 0);
    t.is((await quarantine.list()).length, 1);
  } finally {
    await hop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a message being released by one process is not released again by another; a lock left by a dead process is taken over', async (t) => {
  const { dataDir, quarantine, id } = await stored();
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const hop = await startScriptedServer({ data: async () => { await gate; return 'accept' as const; } });
  const env = { NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}` };
  try {
    const first = nimbus(['release', id], env);
    await waitFor('the first release to send DATA', () => hop.dataStarted === 1);
    const second = await nimbus(['release', id], env);
    t.is(second.code, 1);
    t.regex(second.stderr, new RegExp(`${id}: quarantined message ${id} is being released or deleted by another process \\(pid \\d+\\)`));
    open();
    t.is((await first).code, 0);
    t.is(hop.messages.length, 1);

    const bytes = relayedMessage('stale lock');
    const next = await quarantine.store(request({ mailFrom: 'a@example.org', rcptTo: ['bob@example.com'] }, bytes), bytes);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(join(quarantine.root, 'messages', `${next}.lock`), `${dead}\n`);
    const released = await nimbus(['release', next], env);
    t.is(released.code, 0, released.stderr);
    t.is(hop.messages.length, 2);
  } finally {
    open();
    await hop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('without a next hop, release delivers the stored bytes into the Maildir', async (t) => {
  const { dataDir, quarantine, id, bytes } = await stored();
  try {
    const released = await nimbus(['release', id], { NIMBUS_DATA_DIR: dataDir });
    t.is(released.code, 0, released.stderr);
    t.regex(released.stdout.toString('utf8'), new RegExp(`^released ${id}: 250 delivered into the Maildir as \\S+ \\(to maildir\\)`));
    const [file] = await waitForFiles(join(dataDir, 'maildir', 'new'), 1);
    t.true(readFileSync(file!).equals(bytes));
    t.deepEqual(await quarantine.list(), []);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('delete removes the entry; an unknown id is an error naming the id and the quarantine directory', async (t) => {
  const { dataDir, quarantine, id } = await stored();
  try {
    const deleted = await nimbus(['delete', id], { NIMBUS_DATA_DIR: dataDir });
    t.is(deleted.code, 0, deleted.stderr);
    t.is(deleted.stdout.toString('utf8'), `deleted ${id}\n`);
    t.deepEqual(await quarantine.list(), []);
    for (const sub of ['show', 'release', 'delete']) {
      const again = await nimbus([sub, id], { NIMBUS_DATA_DIR: dataDir });
      t.is(again.code, 1, sub);
      t.true(again.stderr.includes(`no quarantined message "${id}" in ${quarantine.root}`), again.stderr);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('an id with a path separator is refused by every command and by the class, and nothing outside is touched', async (t) => {
  const { dataDir, quarantine } = await stored();
  // What `../x` would reach from quarantine/messages if it were used as a path.
  const outside = join(quarantine.root, 'x.json');
  writeFileSync(outside, '{}');
  try {
    for (const sub of ['show', 'release', 'delete']) {
      const result = await nimbus([sub, '../x'], { NIMBUS_DATA_DIR: dataDir });
      t.is(result.code, 64, sub);
      t.regex(result.stderr, /invalid quarantine id "\.\.\/x": ids never contain path separators/);
    }
    await t.throwsAsync(quarantine.delete('../x'), { instanceOf: QuarantineError, message: /path separators/ });
    await t.throwsAsync(quarantine.get('..'), { instanceOf: QuarantineError, message: /invalid quarantine id/ });
    t.true(existsSync(outside));
    t.is((await quarantine.list()).length, 1);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('usage errors exit 64 and do nothing', async (t) => {
  const { dataDir, quarantine, id } = await stored();
  try {
    for (const args of [[], ['purge'], ['show'], ['release'], ['delete', '--force', id], ['list', id]]) {
      const result = await nimbus(args, { NIMBUS_DATA_DIR: dataDir });
      t.is(result.code, 64, args.join(' '));
      t.regex(result.stderr + result.stdout.toString('utf8'), /usage: nimbus quarantine list/);
    }
    t.is((await quarantine.list()).length, 1);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a spam-trap recipient is recorded but a release never delivers to it', async (t) => {
  const dataDir = tempDir('nimbus-quarantine-');
  const hop = await startScriptedServer();
  try {
    const quarantine = new Quarantine(quarantineDir({ dataDir }));
    const bytes = relayedMessage('trap');
    const id = await quarantine.store(request({ mailFrom: 'x@example.net', rcptTo: ['bob@example.com', 'trap@example.com'] }, bytes, ['trap@example.com']), bytes);
    t.like((await quarantine.get(id)).meta, { rcptTo: ['bob@example.com'], spamtrapHits: ['trap@example.com'] });
    const released = await nimbus(['release', id], { NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}` });
    t.is(released.code, 0, released.stderr);
    t.deepEqual(hop.messages[0]!.rcptTo, ['bob@example.com']);
    t.true(hop.messages[0]!.bytes.equals(bytes));
  } finally {
    await hop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

/** The gateway's prepended verdict fields (the run under its Received field) taken out of a stored message. */
function withoutPrependedVerdict(stored: Buffer): Buffer {
  return Buffer.from(stored.toString('latin1').replace(/\r\n(?:X-(?:Nimbus|Spam)-[^\r]*\r\n(?:[ \t][^\r]*\r\n)*)+/, '\r\n'), 'latin1');
}

test('with NIMBUS_SPAM_ACTION=quarantine a GTUBE message gets 250, never reaches the next hop, and a release delivers it without the verdict fields', async (t) => {
  const sink = await startSmtpSink();
  const dataDir = tempDir('nimbus-quarantine-gw-');
  const env = { NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` };
  const config = loadConfig({ ...env, NIMBUS_LISTEN: '127.0.0.1:0', NIMBUS_RELAY_DOMAINS: 'example.com', NIMBUS_SPAM_ACTION: 'quarantine', NIMBUS_HOSTNAME: 'gw.nimbus.test' });
  const gw = await startGateway(config, createLogger('silent'), { quarantine: new Quarantine(quarantineDir(config)) });
  try {
    const sent = await swaks(gw.address.port, ['--from', '<>', '--to', 'bob@example.com,carol@example.com', '--body', GTUBE]);
    t.is(sent.exitCode, 0, sent.output);
    t.regex(sent.replies.at(-2) ?? '', /^250 2\.6\.0 Ok: queued as [0-9A-F]{12}$/);
    t.deepEqual(sink.files(), [], 'nothing reached the next hop');

    const listed = await nimbus(['list', '--json'], env);
    const [meta, ...others] = JSON.parse(listed.stdout.toString('utf8')) as QuarantineMeta[];
    t.is(others.length, 0);
    t.like(meta, { mailFrom: '', rcptTo: ['bob@example.com', 'carol@example.com'], clientIp: '127.0.0.1', verdict: 'spam', score: 1000 });
    const raw = await nimbus(['show', '--raw', meta!.id], env);
    t.regex(raw.stdout.toString('latin1'), /^Received: from .*\r\n\tby gw\.nimbus\.test \(Nimbus\)[^]*\r\nX-Nimbus-Verdict: spam; score=1000\.0; required=5\.0\r\n/);
    t.true(raw.stdout.includes(GTUBE));

    const released = await nimbus(['release', meta!.id], env);
    t.is(released.code, 0, released.stderr);
    const [file] = await waitForFiles(sink.dir, 1);
    const dump = readFileSync(file!);
    t.deepEqual(sinkEnvelope(dump), { mailFrom: '<>', rcptTo: ['<bob@example.com>', '<carol@example.com>'] });
    t.true(sunk(dump).equals(lf(withoutPrependedVerdict(raw.stdout))), sunk(dump).toString('latin1'));
    t.false(sunk(dump).includes('X-Nimbus-') || sunk(dump).includes('X-Spam-'));
    const after = await nimbus(['list', '--json'], env);
    t.deepEqual(JSON.parse(after.stdout.toString('utf8')), []);
  } finally {
    await gw.close();
    await sink.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("a release takes out only what the gateway added: a trusted MTA's own X-Spam fields stay, an outsider's forged ones stay out, the subject loses the tag", async (t) => {
  const sink = await startSmtpSink();
  const dataDir = testDir(t, 'nimbus-quarantine-gw-');
  t.teardown(() => sink.stop());
  const env = { NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` };
  const config = loadConfig({ ...env, NIMBUS_LISTEN: '127.0.0.1:0', NIMBUS_RELAY_DOMAINS: 'example.com', NIMBUS_SPAM_ACTION: 'quarantine', NIMBUS_SUBJECT_TAG: '[SPAM]' });
  const gw = await startGateway(config, createLogger('silent'), { quarantine: new Quarantine(quarantineDir(config)) });
  t.teardown(() => gw.close());
  const message = (from: string, subject: string): Buffer =>
    Buffer.from([`From: <${from}>`, 'To: bob@example.com', `Subject:  ${subject}`, 'X-Spam-Status: No, score=0.3', '  tests=UPSTREAM_FILTER', 'X-Nimbus-Verdict: ham; score=0.0', 'X-Keep-Me: yes', '', GTUBE, ''].join('\r\n'), 'latin1');
  const work = testDir(t, 'nimbus-quarantine-msg-');
  const fromTrusted = message('mta@example.org', 'from a trusted MTA');
  const fromOutside = message('mallory@example.net', 'from outside');
  for (const [name, bytes, client] of [['trusted.eml', fromTrusted, []], ['outside.eml', fromOutside, ['--xclient', 'ADDR=198.51.100.7']]] as const) {
    const path = dataFile(work, name, bytes);
    const sender = bytes === fromTrusted ? 'mta@example.org' : 'mallory@example.net';
    const sent = await swaks(gw.address.port, [...client, '--from', sender, '--to', 'bob@example.com', '--data', `@${path}`]);
    t.is(sent.exitCode, 0, sent.output);
  }
  const metas = JSON.parse((await nimbus(['list', '--json'], env)).stdout.toString('utf8')) as QuarantineMeta[];
  const idOf = (sender: string): string => metas.find((meta) => meta.mailFrom === sender)!.id;
  const storedTrusted = (await nimbus(['show', '--raw', idOf('mta@example.org')], env)).stdout;
  t.true(storedTrusted.includes('\r\nSubject: [SPAM] from a trusted MTA\r\nX-Spam-Status: No, score=0.3\r\n'), storedTrusted.toString('latin1'));

  for (const sender of ['mta@example.org', 'mallory@example.net']) {
    const released = await nimbus(['release', idOf(sender)], env);
    t.is(released.code, 0, released.stderr);
  }
  const delivered = (await waitForFiles(sink.dir, 2)).map((file) => sunk(readFileSync(file)));
  const trusted = delivered.find((bytes) => bytes.includes('mta@example.org'))!;
  const outside = delivered.find((bytes) => bytes.includes('mallory@example.net'))!;
  const receivedOf = (bytes: Buffer): Buffer => bytes.subarray(0, bytes.indexOf('\nFrom: ') + 1);
  t.true(trusted.equals(Buffer.concat([receivedOf(trusted), lf(fromTrusted)])), `the trusted MTA's message as it came, under the gateway's Received field:\n${trusted.toString('latin1')}`);
  const outsiderWithoutForgeries = Buffer.from(lf(fromOutside).toString('latin1').replace(/X-Spam-Status:.*\n  tests=UPSTREAM_FILTER\nX-Nimbus-Verdict:.*\n/, ''), 'latin1');
  t.true(outside.equals(Buffer.concat([receivedOf(outside), outsiderWithoutForgeries])), `the outsider's message without the fields it forged:\n${outside.toString('latin1')}`);
});

test('a stored message that no longer holds what its metadata says the gateway added is not released', async (t) => {
  const dataDir = testDir(t, 'nimbus-quarantine-');
  const hop = await startScriptedServer();
  t.teardown(() => hop.stop());
  const quarantine = new Quarantine(quarantineDir({ dataDir }));
  const bytes = relayedMessage('edited');
  const verdictAt = bytes.indexOf('X-Nimbus-Verdict:');
  const fields = 'X-Nimbus-Verdict: spam; score=17.5; required=5.0\r\nX-Spam-Flag: YES\r\n';
  const id = await quarantine.store({ ...request({ mailFrom: 'a@example.org', rcptTo: ['bob@example.com'] }, bytes), added: [{ at: verdictAt, text: fields, replaced: '' }] }, bytes);
  const { path } = await quarantine.get(id);
  writeFileSync(path, Buffer.concat([Buffer.from('X-Edited: by hand\r\n'), bytes]));
  const released = await nimbus(['release', id], { NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}` });
  t.is(released.code, 1);
  t.regex(released.stderr, new RegExp(`${id}: quarantined message ${id} does not hold the verdict fields its metadata records`));
  t.is(hop.messages.length, 0);
  t.is((await quarantine.list()).length, 1, 'the entry stays');

  writeFileSync(path, bytes);
  t.is((await nimbus(['release', id], { NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}` })).code, 0);
  t.true(hop.messages[0]!.bytes.equals(Buffer.concat([bytes.subarray(0, verdictAt), bytes.subarray(verdictAt + fields.length)])));
});

test("release --as-ham tells the reputation service too when participating, in this gateway's key's voice", async (t) => {
  const reputation = await startReputationProcess(t);
  const [reporter, admin] = await Promise.all([reputation.addKey('reporter'), reputation.addKey('admin')]);
  const hop = await startScriptedServer();
  t.teardown(() => hop.stop());
  const dataDir = testDir(t, 'nimbus-quarantine-');
  const quarantine = new Quarantine(quarantineDir({ dataDir }));
  const bytes = Buffer.concat([relayedMessage('newsletter').subarray(0, -2), Buffer.from(`Read the whole issue at https://news.example-letters.org/issue/7 and ${prose(60, 7)}\r\n`)]);
  const id = await quarantine.store(request({ mailFrom: 'news@example-letters.org', rcptTo: ['bob@example.com'] }, bytes), bytes);
  const env = {
    NIMBUS_DATA_DIR: dataDir,
    NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`,
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: reputation.url,
    NIMBUS_REPUTATION_KEY: reporter.token,
    NIMBUS_LOG_LEVEL: 'silent',
  };
  const released = await runNimbus(['quarantine', 'release', '--as-ham', id], env);
  t.is(released.code, 0, released.stderr);
  t.regex(released.stdout, new RegExp(`^released ${id}: 250 .*\n${id}: reported as ham: \\d+ fingerprints learnt locally; service: sent\n$`));
  const response = await fetch(`${reputation.url}/v1/fingerprints/${encodeURIComponent('url:domain:example-letters.org')}`, { headers: { authorization: `Bearer ${admin.token}` } });
  t.is(response.status, 200);
  const explained = (await response.json()) as { result: { counters: { ham: number; spam: number } }; reporters: { id: string }[] };
  t.like(explained.result.counters, { ham: 1, spam: 0 });
  t.deepEqual(explained.reporters.map((r) => r.id), [reporter.id], "the ham is this gateway's key's voice");
});

test('when the quarantine cannot store the message the sender gets 451 and nothing is relayed', async (t) => {
  const sink = await startSmtpSink();
  const dataDir = tempDir('nimbus-quarantine-gw-');
  // A regular file where the quarantine directory would be created.
  const blocked = join(dataDir, 'not-a-directory');
  writeFileSync(blocked, '');
  const config = loadConfig({ NIMBUS_DATA_DIR: dataDir, NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`, NIMBUS_LISTEN: '127.0.0.1:0', NIMBUS_RELAY_DOMAINS: 'example.com', NIMBUS_SPAM_ACTION: 'quarantine' });
  const gw = await startGateway(config, createLogger('silent'), { quarantine: new Quarantine(join(blocked, 'quarantine')) });
  try {
    const sent = await swaks(gw.address.port, ['--from', 'a@example.org', '--to', 'bob@example.com', '--body', GTUBE]);
    t.not(sent.exitCode, 0);
    t.true(sent.replies.includes('451 4.3.0 Local error in processing, try again later'), sent.output);
    t.deepEqual(sink.files(), []);
  } finally {
    await gw.close();
    await sink.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
