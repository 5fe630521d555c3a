/**
 * `nimbus milter` over a real socket: Debian's miltertest (libmilter's own peer) for negotiation,
 * macros, ABORT and the verdict's edits; a raw client for what no MTA would send (hostile packets)
 * and for each verdict's answer; the failure policy with a scanner that fails.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../src/config/index.js';
import { createLogger } from '../src/log.js';
import { COMMANDS, encodePacket, strings } from '../src/milter/codec.js';
import { startMilter, type RunningMilter } from '../src/milter/server.js';
import { Quarantine, quarantineDir } from '../src/quarantine/store.js';
import { Scanner } from '../src/scan/scanner.js';
import type { MessageObserver, ProcessedMessage } from '../src/scan/recorder.js';
import type { MessageScanner } from '../src/scan/types.js';
import { createGatewayMetrics } from '../src/stats/index.js';
import { Peer } from './helpers/milter-peer.js';
import { testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

interface Started {
  milter: RunningMilter;
  logs: Record<string, unknown>[];
  config: Config;
  metrics: ReturnType<typeof createGatewayMetrics>;
}

async function start(t: ExecutionContext, env: Record<string, string> = {}, scanner?: MessageScanner, progressIntervalMs?: number, observer: MessageObserver | null = null): Promise<Started> {
  const dir = testDir(t, 'nimbus-milter-');
  const config = loadConfig({ NIMBUS_DATA_DIR: dir, NIMBUS_MILTER_LISTEN: '127.0.0.1:0', NIMBUS_TRUSTED_NETWORKS: '', NIMBUS_SPAMTRAPS: 'trap@example.com', NIMBUS_SUBJECT_TAG: '[SPAM]', ...env });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk: Buffer, _encoding, done) { for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>); done(); } });
  const log = createLogger('debug', {}, sink);
  const metrics = createGatewayMetrics({ defaultMetrics: false });
  const hooks = {
    scanner: scanner ?? new Scanner({ policy: config, lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, log }),
    observer,
    quarantine: new Quarantine(quarantineDir(config)),
    metrics,
    ...(progressIntervalMs ? { progressIntervalMs } : {}),
  };
  const milter = await startMilter(config, log, hooks);
  t.teardown(() => milter.close());
  return { milter, logs, config, metrics };
}

test('miltertest, a real libmilter peer: negotiation, macros, ABORT, then verdict headers at the top, forged ones deleted, subject tagged and the trap recipient removed', async (t) => {
  const { milter, logs } = await start(t);
  const result = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile('miltertest', ['-s', join(import.meta.dirname, '..', 'fixtures', 'milter', 'verdict.lua')], { env: { ...process.env, MILTER: `inet:${milter.port}@127.0.0.1` }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr }));
  });
  t.is(result.code, 0, result.output);
  t.regex(result.output, /verdict spam; score=\d+\.\d; required=5\.0/);
  const messages = await waitFor('the message line', () => (logs.some((line) => line.event === 'milter.message') ? logs.filter((line) => line.event === 'milter.message') : undefined));
  t.is(messages.length, 1, 'the aborted message is not scanned');
  t.like(messages[0], { queueId: 'SECOND2', clientIp: '192.0.2.7', helo: 'client.test', from: 'sender@example.org', rcptCount: 2, daemon: 'smtpd', verdict: 'spam', trapHits: 1, authenticated: false });
});

test('an MTA without reply-less steps gets SMFIR_CONTINUE for each step, and the verdict at the end', async (t) => {
  const { milter } = await start(t);
  const peer = new Peer(milter.port!);
  const negotiated = await peer.negotiate({ version: 6, actions: 0x3f, protocol: 0 });
  t.is(negotiated.command, 'O');
  peer.sendMessage('plain text\r\n');
  const replies: string[] = [];
  for (let i = 0; i < 7; i++) replies.push((await peer.next()).command);
  t.deepEqual(replies, ['c', 'c', 'c', 'c', 'c', 'c', 'c'], 'connect, helo, mail, rcpt, header, eoh, body');
  const answer = await peer.answer();
  t.is(answer.at(-1)!.command, 'a');
  t.true(answer.some((packet) => packet.command === 'i' && packet.data.includes('X-Nimbus-Verdict')));
});

for (const [action, reply, detail] of [['reject', 'y', '550 5.7.1 Message rejected as spam'], ['discard', 'd', ''], ['quarantine', 'a', 'Nimbus: spam']] as const) {
  test(`NIMBUS_SPAM_ACTION=${action}: GTUBE is answered with SMFIR_${reply === 'y' ? 'REPLYCODE' : reply === 'd' ? 'DISCARD' : 'QUARANTINE and accept'}`, async (t) => {
    const { milter } = await start(t, { NIMBUS_SPAM_ACTION: action });
    const peer = new Peer(milter.port!);
    await peer.negotiate();
    peer.sendMessage(`${GTUBE}\r\n`);
    const answer = await peer.answer();
    t.is(answer.at(-1)!.command, reply);
    if (action === 'reject') t.is(answer.at(-1)!.data.toString('utf8'), `${detail}\0`);
    if (action === 'quarantine') t.true(answer.some((packet) => packet.command === 'q' && packet.data.toString('utf8').startsWith(detail)));
  });
}

test('the milter hands the recorder what the message history keeps: the envelope, and the subject only under NIMBUS_HISTORY_SUBJECTS=yes', async (t) => {
  for (const [subjects, expected] of [['yes', 'History =?UTF-8?Q?K=C3=B6ln?='], ['no', null]] as const) {
    const seen: ProcessedMessage[] = [];
    const { milter } = await start(t, { NIMBUS_HISTORY_SUBJECTS: subjects }, undefined, undefined, { processed: async (message) => void seen.push(message) });
    const peer = new Peer(milter.port!);
    await peer.negotiate();
    peer.sendMessage('hello\r\n', ['<alice@example.com>', '<bob@example.com>'], [['Subject', expected ?? 'History =?UTF-8?Q?K=C3=B6ln?=']]);
    await peer.answer();
    const message = await waitFor('the processed message', () => seen[0]);
    t.deepEqual(message.envelope, { mailFrom: 'sender@example.org', rcptTo: ['alice@example.com', 'bob@example.com'] });
    t.is(message.subject, expected === null ? null : 'History Köln');
    peer.socket.destroy();
  }
});

test('NIMBUS_MILTER_QUARANTINE=store keeps the message in Nimbus\'s quarantine, with the verdict fields, and tells the MTA to discard it', async (t) => {
  const { milter, config } = await start(t, { NIMBUS_SPAM_ACTION: 'quarantine', NIMBUS_MILTER_QUARANTINE: 'store' });
  const peer = new Peer(milter.port!);
  await peer.negotiate();
  peer.sendMessage(`${GTUBE}\r\n`);
  const answer = await peer.answer();
  t.deepEqual(answer.map((packet) => packet.command), ['d']);
  const entries = await new Quarantine(quarantineDir(config)).list();
  t.is(entries.length, 1);
  t.deepEqual(entries[0]!.rcptTo, ['alice@example.com']);
  t.is(entries[0]!.verdict, 'spam');
});

test('a scan that fails is answered accept with verdict unknown, logged and counted; with NIMBUS_MILTER_ON_ERROR=tempfail, tempfail', async (t) => {
  const failing: MessageScanner = { scan: () => Promise.reject(new Error('analysis bug')) };
  for (const [onError, final] of [['accept', 'a'], ['tempfail', 't']] as const) {
    const { milter, logs, metrics } = await start(t, { NIMBUS_MILTER_ON_ERROR: onError }, failing);
    const peer = new Peer(milter.port!);
    await peer.negotiate();
    peer.sendMessage('hello\r\n');
    const answer = await peer.answer();
    t.is(answer.at(-1)!.command, final, onError);
    if (onError === 'accept') t.true(answer.some((packet) => packet.command === 'i' && packet.data.includes('unknown; score=0.0')));
    t.true(logs.some((line) => line.event === 'scan.failed'));
    t.is((await metrics.milterFailures.get()).values.find((value) => value.labels.reason === 'scan-failed')?.value, 1);
  }
});

test('a long scan sends SMFIR_PROGRESS packets before its answer, so the MTA does not time out', async (t) => {
  const base = new Scanner({ policy: loadConfig({ NIMBUS_DATA_DIR: testDir(t) }), lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, log: createLogger('silent') });
  const slow: MessageScanner = { scan: async (request) => { await new Promise((resolve) => setTimeout(resolve, 600)); return base.scan(request); } };
  const { milter } = await start(t, {}, slow, 100);
  const peer = new Peer(milter.port!);
  await peer.negotiate();
  peer.sendMessage('hello\r\n');
  const answer = await peer.answer();
  t.true(answer.filter((packet) => packet.command === 'p').length >= 2, answer.map((packet) => packet.command).join(' '));
  t.is(answer.at(-1)!.command, 'a');
});

test('hostile packets close only their own connection, with a log line naming what was wrong, while another connection is answered', async (t) => {
  const { milter, logs } = await start(t);
  const oversized = Buffer.alloc(4);
  oversized.writeUInt32BE(0x7fffffff, 0);
  const cases: [string, (peer: Peer) => Promise<void> | void, RegExp][] = [
    ['oversized', (peer) => void peer.socket.write(oversized), /over the 1048576-byte limit/],
    ['garbage', (peer) => void peer.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /over the .*-byte limit/],
    ['before negotiation', (peer) => peer.send(COMMANDS.HELO, strings('x')), /before option negotiation/],
    ['body outside a message', async (peer) => { await peer.negotiate(); peer.send(COMMANDS.BODY, Buffer.from('x')); }, /outside a message/],
    ['unknown command', async (peer) => { await peer.negotiate(); peer.send('Z'); }, /unknown command "Z"/],
    ['truncated', (peer) => void peer.socket.end(encodePacket(COMMANDS.HELO, strings('client.test')).subarray(0, 8)), /ended inside a packet \(8 bytes/],
  ];
  const good = new Peer(milter.port!);
  await good.negotiate();
  for (const [name, act, problem] of cases) {
    const peer = new Peer(milter.port!);
    await act(peer);
    await waitFor(`${name}: the connection closed`, () => peer.closed || undefined);
    await waitFor(`${name}: the log line`, () => logs.some((line) => line.event === 'milter.protocol_error' && problem.test(String(line.problem))) || undefined);
    t.pass(name);
  }
  good.sendMessage('still here\r\n');
  t.is((await good.answer()).at(-1)!.command, 'a');
});

test('a connection that stalls past NIMBUS_SOCKET_TIMEOUT_MS is closed with a log line saying so', async (t) => {
  const { milter, logs } = await start(t, { NIMBUS_SOCKET_TIMEOUT_MS: '1000' });
  const peer = new Peer(milter.port!);
  await peer.negotiate();
  await waitFor('the stalled connection to close', () => peer.closed || undefined, 15_000);
  t.true(logs.some((line) => line.event === 'milter.protocol_error' && /stalled/.test(String(line.problem))));
});

test('stopping (SIGTERM) waits for the message being scanned, answers it, then closes the connections', async (t) => {
  const base = new Scanner({ policy: loadConfig({ NIMBUS_DATA_DIR: testDir(t) }), lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, log: createLogger('silent') });
  let scanning: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (scanning = resolve));
  const slow: MessageScanner = { scan: async (request) => { scanning(); await new Promise((resolve) => setTimeout(resolve, 500)); return base.scan(request); } };
  const { milter } = await start(t, {}, slow);
  const peer = new Peer(milter.port!);
  await peer.negotiate();
  peer.sendMessage('hello\r\n');
  await started;
  const closed = milter.close();
  t.is((await peer.answer()).at(-1)!.command, 'a');
  await closed;
  await waitFor('the connection to close', () => peer.closed || undefined);
});

test('QUIT_NC keeps the connection for another SMTP session, nothing of the last one carried over; QUIT closes it', async (t) => {
  const { milter, logs } = await start(t);
  const peer = new Peer(milter.port!);
  await peer.negotiate();
  peer.sendMessage(`${GTUBE}\r\n`);
  t.is((await peer.answer()).at(-1)!.command, 'a');
  peer.send(COMMANDS.QUIT_NC);
  peer.sendMessage('a second session\r\n', ['<bob@example.com>']);
  const answer = await peer.answer();
  t.true(answer.some((packet) => packet.command === 'i' && !packet.data.includes('spam;') && packet.data.includes('X-Nimbus-Verdict')));
  peer.send(COMMANDS.QUIT);
  await waitFor('the connection to close', () => peer.closed || undefined);
  t.is(logs.filter((line) => line.event === 'milter.message').length, 2);
});

test('a message over NIMBUS_MAX_MESSAGE_SIZE is scanned as far as it fits, spooled to disk past the threshold, and answered', async (t) => {
  const { milter, logs } = await start(t, { NIMBUS_MAX_MESSAGE_SIZE: '64KB', NIMBUS_SPOOL_THRESHOLD: '16KB' });
  const peer = new Peer(milter.port!);
  await peer.negotiate();
  peer.sendMessage(`${GTUBE}\r\n${'x'.repeat(70).concat('\r\n').repeat(2000)}`);
  const answer = await peer.answer();
  t.is(answer.at(-1)!.command, 'a');
  t.true(answer.some((packet) => packet.command === 'i' && packet.data.includes('X-Spam-Flag')));
  t.like(logs.find((line) => line.event === 'milter.message'), { truncated: true, spooled: true, verdict: 'spam' });
});

test('unix:/path listens on a socket of mode 0660, replacing a stale socket file left behind', async (t) => {
  const dir = testDir(t, 'nimbus-milter-sock-');
  const path = join(dir, 'milter.sock');
  // A socket file whose process died without removing it (bind, then exit).
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  t.true(statSync(path).isSocket());
  const { milter } = await start(t, { NIMBUS_MILTER_LISTEN: `unix:${path}` });
  t.is(milter.address, `unix:${path}`);
  t.is(statSync(path).mode & 0o777, 0o660);
  const peer = new Peer(path);
  t.is((await peer.negotiate()).command, 'O');
});
