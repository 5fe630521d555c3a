/**
 * Nimbus as Postfix's after-queue content filter, end to end with a real Postfix and a real
 * Nimbus process:
 *
 *   swaks (from 127.0.0.2) ─▶ Postfix smtpd ─▶ queue ─▶ content_filter=scan:[127.0.0.1]:NIMBUS
 *     ─▶ Nimbus gateway ─▶ Postfix reinjection smtpd (content_filter=) ─▶ virtual ─▶ Maildir
 *
 * The main.cf/master.cf lines are the ones docs/admin/postfix.md shows.
 * swaks connects from 127.0.0.2 while Postfix talks to Nimbus from 127.0.0.1, so the address
 * Nimbus records can only be 127.0.0.2 if it took the client from Postfix's XFORWARD.
 */
import test, { type ExecutionContext } from 'ava';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runNimbus, startGatewayProcess, type GatewayProcess } from './helpers/nimbus.js';
import { freePort } from './helpers/ports.js';
import { startPostfix, type PostfixInstance } from './helpers/postfix.js';
import { swaks } from './helpers/swaks.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
const CLIENT_IP = '127.0.0.2';

interface Setup { postfix: PostfixInstance; nimbus: GatewayProcess; dir: string }

async function setUp(t: ExecutionContext): Promise<Setup> {
  const nimbusPort = await freePort();
  const postfix = await startPostfix({
    mailboxes: ['alice', 'bob'],
    main: { content_filter: `scan:[127.0.0.1]:${nimbusPort}` },
  });
  try {
    const nimbus = await startGatewayProcess(t, {
      NIMBUS_LISTEN: `127.0.0.1:${nimbusPort}`,
      NIMBUS_NEXT_HOP: `127.0.0.1:${postfix.reinjectPort}`,
      NIMBUS_RELAY_DOMAINS: postfix.domain,
    });
    return { postfix, nimbus, dir: tempDir('nimbus-cf-msg-') };
  } catch (error) {
    await postfix.stop();
    throw error;
  }
}

async function tearDown(setup: Setup): Promise<void> {
  await setup.nimbus.stop();
  await setup.postfix.stop();
  rmSync(setup.dir, { recursive: true, force: true });
}

/** Header block and body of a delivered file (LF line ends, as Postfix's virtual writes them). */
function split(message: Buffer): { headers: string[]; body: Buffer } {
  const end = message.indexOf('\n\n');
  if (end < 0) throw new Error('delivered message has no header/body separator');
  const block = message.subarray(0, end).toString('utf8');
  // Unfold into one entry per field so folded fields compare whole.
  const headers: string[] = [];
  for (const line of block.split('\n')) {
    if (/^[ \t]/.test(line) && headers.length > 0) headers[headers.length - 1] += `\n${line}`;
    else headers.push(line);
  }
  return { headers, body: message.subarray(end + 2) };
}

async function send(setup: Setup, to: string, file: string): Promise<void> {
  const result = await swaks(setup.postfix.smtpPort, ['--local-interface', CLIENT_IP,
    '--ehlo', 'client.remote.test', '--from', 'sender@remote.test', '--to', to, '--data', `@${file}`]);
  if (result.exitCode !== 0) throw new Error(`swaks failed (${result.exitCode}):\n${result.output}\n${setup.postfix.log()}`);
}

test.serial('after-queue content_filter: the message comes back through Nimbus with verdict headers, the original header lines and a byte-identical body, and Nimbus records the XFORWARD client', async (t) => {
  const setup = await setUp(t);
  t.teardown(() => tearDown(setup));
  const originalHeaders = [
    'From: Sender <sender@remote.test>',
    `To: Alice <alice@${setup.postfix.domain}>`,
    'Subject: Quarterly report =?UTF-8?Q?=C3=A9t=C3=A9?=',
    'Date: Mon, 23 Nov 2026 08:00:00 +0000',
    'Message-ID: <content-filter-1@remote.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'X-Folded-Header: first part of a long value',
    '\tcontinued on a second line',
  ];
  // Bytes that break when a relay is careless: 8-bit UTF-8, a leading dot (dot-stuffing), trailing
  // whitespace, a line of 900 characters, an empty line and a line that looks like a header.
  const body = Buffer.from([
    'Bonjour Alice, voilà le rapport: 12 € — ünïcödé.',
    '.a line that starts with a dot',
    '..and one with two dots',
    'trailing spaces   ',
    'x'.repeat(900),
    '',
    'Subject: not a header, just body text',
    'See https://www.example.com/q3?x=1 for details.',
    '',
  ].join('\n'), 'utf8');
  const file = join(setup.dir, 'message.eml');
  writeFileSync(file, Buffer.concat([Buffer.from(`${originalHeaders.join('\n')}\n\n`, 'utf8'), body]));

  await send(setup, `alice@${setup.postfix.domain}`, file);
  const [delivered] = await setup.postfix.waitForMail('alice', 1);
  await setup.postfix.waitQueueEmpty();
  const { headers, body: deliveredBody } = split(delivered!);

  // swaks ends DATA with one more line end after the file's last line; that is what was sent.
  const sentBody = Buffer.concat([body, Buffer.from('\n')]);
  t.true(deliveredBody.equals(sentBody), `body differs:\n${JSON.stringify(deliveredBody.toString('utf8'))}`);
  const unfoldedOriginal = split(Buffer.from(`${originalHeaders.join('\n')}\n\n`)).headers;
  t.deepEqual(headers.slice(-unfoldedOriginal.length), unfoldedOriginal, 'the original header lines end the header block, unchanged');

  const verdict = headers.filter((h) => h.startsWith('X-Nimbus-Verdict:'));
  t.is(verdict.length, 1, headers.join('\n'));
  t.regex(verdict[0]!, /^X-Nimbus-Verdict: (spam|bulk|ham|unknown); score=\d+\.\d; required=\d+\.\d/);
  t.is(headers.filter((h) => h.startsWith('X-Spam-Status:')).length, 1);
  t.false(headers.some((h) => h.startsWith('X-Spam-Flag:')), 'an ordinary message is not flagged');

  // Nimbus's Received field names the client Postfix passed with XFORWARD, not Postfix itself.
  const nimbusReceived = headers.filter((h) => h.startsWith('Received:') && h.includes('(Nimbus)'));
  t.is(nimbusReceived.length, 1, headers.join('\n'));
  t.true(nimbusReceived[0]!.includes(`[${CLIENT_IP}]`), nimbusReceived[0]);
  // Order: Postfix's reinjection Received, then Nimbus's fields, then Postfix's first Received.
  const nimbusAt = headers.indexOf(nimbusReceived[0]!);
  const postfixFirst = headers.findIndex((h, i) => i > nimbusAt && h.startsWith('Received:') && h.includes(CLIENT_IP) && h.includes('postfix.test'));
  t.true(postfixFirst > nimbusAt, 'Postfix\'s own Received from the client comes after (below) Nimbus\'s');

  // What Nimbus records for the message: the statistics when that command works, else its log.
  const recorded = await recordedClients(setup.nimbus);
  t.true(recorded.includes(CLIENT_IP), `Nimbus recorded ${JSON.stringify(recorded)}, not the XFORWARD client ${CLIENT_IP}`);
  t.false(recorded.includes('127.0.0.1'), 'Postfix\'s own address must not be recorded as the client');
});

test.serial('after-queue content_filter: GTUBE through Postfix and Nimbus is delivered flagged X-Spam-Flag: YES', async (t) => {
  const setup = await setUp(t);
  t.teardown(() => tearDown(setup));
  const file = join(setup.dir, 'gtube.eml');
  writeFileSync(file, [
    'From: <sender@remote.test>', `To: <bob@${setup.postfix.domain}>`, 'Subject: GTUBE test',
    'Message-ID: <gtube-1@remote.test>', '', GTUBE, '',
  ].join('\n'));
  await send(setup, `bob@${setup.postfix.domain}`, file);
  const [delivered] = await setup.postfix.waitForMail('bob', 1);
  const { headers } = split(delivered!);
  t.true(headers.includes('X-Spam-Flag: YES'), headers.join('\n'));
  t.regex(headers.find((h) => h.startsWith('X-Nimbus-Verdict:')) ?? '', /^X-Nimbus-Verdict: spam;/);
  t.regex(headers.find((h) => h.startsWith('X-Spam-Status:')) ?? '', /^X-Spam-Status: Yes,/);
  await setup.postfix.waitQueueEmpty();
});

/**
 * Client addresses Nimbus recorded for its messages: `clientIp` of its per-message log line
 * (`event: "gateway.message"`), plus any client address in `nimbus stats --json` on its data dir once the
 * statistics store lists per-message records. (The connection's own peer, Postfix at 127.0.0.1,
 * is bound to the connection's logger as its remote address; that is not the recorded client.)
 */
async function recordedClients(nimbus: GatewayProcess): Promise<string[]> {
  const found = new Set<string>();
  const fromLog = () => {
    for (const line of nimbus.logLines()) {
      if (line.event === 'gateway.message' && typeof line.clientIp === 'string') found.add(line.clientIp);
    }
    return found.size > 0;
  };
  // Without a message line the assertions on what was found say so.
  await waitFor('a message log line naming the client', fromLog, 10_000).catch(() => undefined);
  const collect = (value: unknown, key = ''): void => {
    if (typeof value === 'string' && /^(clientIp|client_ip)$/.test(key)) found.add(value);
    else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) collect(v, k);
  };
  const stats = await runNimbus(['stats', '--json'], { NIMBUS_DATA_DIR: nimbus.dataDir, NIMBUS_LOG_LEVEL: 'silent' });
  // Statistics command not available: the log line decides.
  if (stats.code === 0) collect(JSON.parse(stats.stdout));
  return [...found];
}
