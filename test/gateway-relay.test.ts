import test from 'ava';
import { readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log.js';
import { startGateway, type RunningGateway } from '../src/gateway/server.js';
import { GTUBE } from '../src/scan/gtube.js';
import { freePort } from './helpers/ports.js';
import { lf, sinkMessage, smtpDialogue, startScriptedServer, startSmtpSink, type ScriptedServerOptions } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { tempDir, testDir } from './helpers/temp.js';
import { waitForFiles } from './helpers/wait.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'gateway');
const PLAIN = join(FIXTURES, 'plain-8bit.eml');
const FORGED = join(FIXTURES, 'forged-verdict.eml');

async function gateway(env: Record<string, string>): Promise<{ gw: RunningGateway; dataDir: string; stop(): Promise<void> }> {
  const dataDir = tempDir('nimbus-gw-');
  const config = loadConfig({
    NIMBUS_LISTEN: '127.0.0.1:0',
    NIMBUS_DATA_DIR: dataDir,
    NIMBUS_HOSTNAME: 'gw.nimbus.test',
    NIMBUS_RELAY_DOMAINS: 'example.com',
    NIMBUS_LOG_LEVEL: 'silent',
    NIMBUS_NEXT_HOP_TIMEOUT_MS: '20000',
    ...env,
  });
  const gw = await startGateway(config, createLogger('silent'));
  return {
    gw,
    dataDir,
    stop: async () => {
      await gw.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function withNextHop(options: ScriptedServerOptions, env: Record<string, string> = {}) {
  const hop = await startScriptedServer(options);
  const g = await gateway({ NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`, ...env });
  return { hop, ...g, stop: async () => { await g.stop(); await hop.stop(); } };
}

/** The bytes before `original` in `relayed`: what the gateway prepended. */
function prefixBefore(relayed: Buffer, original: Buffer): string {
  const at = relayed.indexOf(original);
  return at < 0 ? '<original not found>' : relayed.subarray(0, at).toString('utf8');
}

test('a relayed message has Received and verdict headers prepended and every original byte unchanged', async (t) => {
  const { hop, gw, stop } = await withNextHop({});
  try {
    const result = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'alice@example.org', '--data', `@${PLAIN}`]);
    t.is(result.exitCode, 0, result.output);
    t.is(hop.messages.length, 1);
    const relayed = hop.messages[0]!.bytes;
    const original = readFileSync(PLAIN);
    t.true(relayed.includes(original), 'the original message is inside the relayed one byte for byte');
    const prefix = prefixBefore(relayed, original);
    t.regex(prefix, /^Received: from [^\r\n]+ \(\S+ \[127\.0\.0\.1\]\)\r\n\tby gw\.nimbus\.test \(Nimbus\) with ESMTP id [0-9A-F]{12}\r\n\tfor <bob@example\.com>; .+\r\n/);
    t.regex(prefix, /\r\nX-Nimbus-Verdict: unknown; score=0\.0; required=5\.0\r\nX-Spam-Status: No, score=0\.0 required=5\.0 tests=none\r\nX-Spam-Level: \r\n$/);
    t.false(prefix.includes('X-Spam-Flag'));
    t.deepEqual(hop.messages[0]!.rcptTo, ['bob@example.com']);
    t.regex(result.replies.at(-2) ?? '', /^250 2\.6\.0 Ok: queued as [0-9A-F]{12}$/);
  } finally {
    await stop();
  }
});

test('smtp-sink as next hop receives the message with the original bytes after the prepended headers', async (t) => {
  const sink = await startSmtpSink();
  const g = await gateway({ NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` });
  try {
    const result = await swaks(g.gw.address.port, ['--to', 'bob@example.com', '--from', 'alice@example.org', '--data', `@${PLAIN}`]);
    t.is(result.exitCode, 0, result.output);
    const [file] = await waitForFiles(sink.dir, 1);
    const dumped = sinkMessage(readFileSync(file!));
    t.true(dumped.includes(lf(readFileSync(PLAIN))), dumped.toString('utf8'));
    t.regex(dumped.toString('latin1'), /^Received: from \S+ \(\S+ \[127\.0\.0\.1\]\)\n\tby gw\.nimbus\.test \(Nimbus\)/);
  } finally {
    await g.stop();
    await sink.stop();
  }
});

test('a recipient outside the relay domains from an untrusted client is refused with 550 5.7.1 and never reaches the next hop', async (t) => {
  const { hop, gw, stop } = await withNextHop({}, { NIMBUS_TRUSTED_NETWORKS: '127.0.0.1/32' });
  try {
    const result = await swaks(gw.address.port, ['--local-interface', '127.0.0.2', '--to', 'victim@elsewhere.example', '--from', 'spammer@example.net', '--quit-after', 'RCPT']);
    t.true(result.replies.includes('550 5.7.1 Relay access denied'), result.output);
    t.is(hop.messages.length, 0);
    const local = await swaks(gw.address.port, ['--local-interface', '127.0.0.2', '--to', 'bob@example.com', '--from', 'x@example.net', '--quit-after', 'RCPT']);
    t.true(local.replies.some((r) => r.startsWith('250 ')), 'a relay domain recipient is accepted from anyone');
    const trusted = await swaks(gw.address.port, ['--to', 'someone@elsewhere.example', '--from', 'x@example.com', '--quit-after', 'RCPT']);
    t.false(trusted.replies.some((r) => r.startsWith('550')), 'a trusted client may relay anywhere');
  } finally {
    await stop();
  }
});

test("the next hop's refusal of a recipient is the sender's RCPT reply, and the others still get the message", async (t) => {
  const { hop, gw, stop } = await withNextHop({
    rcpt: (address) => (address === 'nobody@example.com' ? { code: 550, text: '5.1.1 <nobody@example.com>: Recipient address rejected: User unknown' } : null),
  });
  try {
    const result = await swaks(gw.address.port, ['--to', 'nobody@example.com,bob@example.com', '--from', 'a@example.org', '--data', `@${PLAIN}`]);
    t.true(result.replies.includes('550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown'), result.output);
    t.is(hop.messages.length, 1);
    t.deepEqual(hop.messages[0]!.rcptTo, ['bob@example.com']);
  } finally {
    await stop();
  }
});

test('a next hop that is down gives the sender 451 4.4.1 at MAIL FROM', async (t) => {
  const port = await freePort();
  const g = await gateway({ NIMBUS_NEXT_HOP: `127.0.0.1:${port}` });
  try {
    const result = await swaks(g.gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org']);
    t.not(result.exitCode, 0);
    t.true(result.replies.includes('451 4.4.1 Next hop unavailable, try again later'), result.output);
  } finally {
    await g.stop();
  }
});

test('a next hop dropping the connection in the middle of DATA gives the sender 451 4.4.1 and nothing is acknowledged', async (t) => {
  const { hop, gw, stop } = await withNextHop({ dropAfterBytes: 1 }, { NIMBUS_SPOOL_THRESHOLD: '1KB' });
  try {
    const big = join(testDir(t), 'big.eml');
    writeFileSync(big, `Subject: big\r\n\r\n${'0123456789abcdef'.repeat(64 * 1024)}\r\n`);
    const result = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--data', `@${big}`]);
    t.not(result.exitCode, 0);
    t.true(result.replies.includes('451 4.4.1 Next hop unavailable, try again later'), result.output);
    t.false(result.replies.some((r) => r.startsWith('250 2.6.0')));
    t.is(hop.messages.length, 0);
  } finally {
    await stop();
  }
});

test('a message just over a spool threshold smaller than the spool file\'s 16 KB write buffer is spooled and relayed', async (t) => {
  const { hop, gw, dataDir, stop } = await withNextHop({}, { NIMBUS_SPOOL_THRESHOLD: '1KB' });
  try {
    const message = join(testDir(t), 'three-kb.eml');
    writeFileSync(message, `Subject: three kilobytes\r\n\r\n${'line of text\r\n'.repeat(200)}`);
    const result = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--data', `@${message}`, '--timeout', '20'], { timeoutMs: 30_000 });
    t.is(result.exitCode, 0, result.output);
    t.is(hop.messages.length, 1);
    t.true(hop.messages[0]!.bytes.includes(readFileSync(message)));
    t.true(existsSync(join(dataDir, 'spool')), 'the message went through the spool');
  } finally {
    await stop();
  }
});

test("a next hop's 4xx after DATA is mirrored as 4xx and its 5xx passed through as 5xx", async (t) => {
  let answer = { code: 452, text: '4.3.1 Insufficient system storage' };
  const { hop, gw, stop } = await withNextHop({ data: () => answer });
  try {
    const soft = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org']);
    t.true(soft.replies.includes('452 4.3.1 Insufficient system storage'), soft.output);
    answer = { code: 554, text: '5.7.0 Content refused' };
    const hard = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org']);
    t.true(hard.replies.includes('554 5.7.0 Content refused'), hard.output);
    t.is(hop.messages.length, 0);
  } finally {
    await stop();
  }
});

test('a message over NIMBUS_MAX_MESSAGE_SIZE is refused with 552 5.3.4, also when its size is only known from DATA', async (t) => {
  const { hop, gw, stop } = await withNextHop({}, { NIMBUS_MAX_MESSAGE_SIZE: '10KB' });
  try {
    const big = join(testDir(t), 'big.eml');
    writeFileSync(big, `Subject: big\r\n\r\n${'x'.repeat(70)}\r\n`.repeat(1) + `${'y'.repeat(78)}\r\n`.repeat(400));
    const result = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--data', `@${big}`]);
    t.true(result.replies.some((r) => r.startsWith('552 5.3.4')), result.output);
    const declared = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--quit-after', 'EHLO']);
    t.true(declared.output.includes('SIZE 10240'), 'SIZE is advertised');
    t.is(hop.messages.length, 0);
  } finally {
    await stop();
  }
});

test.serial('a 30 MB message is relayed intact through the spool', async (t) => {
  const { hop, gw, dataDir, stop } = await withNextHop({}, { NIMBUS_MAX_MESSAGE_SIZE: '40MB', NIMBUS_SPOOL_THRESHOLD: '1MB' });
  try {
    const dir = testDir(t);
    const big = join(dir, 'big.eml');
    const line = `${'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.repeat(1)}\r\n`;
    writeFileSync(big, `Subject: thirty megabytes\r\nFrom: a@example.org\r\n\r\n${line.repeat(Math.ceil((30 * 1024 * 1024) / line.length))}`);
    const original = readFileSync(big);
    const result = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--data', `@${big}`]);
    t.is(result.exitCode, 0, result.output.slice(-2000));
    t.is(hop.messages.length, 1);
    t.true(hop.messages[0]!.bytes.includes(original));
    t.false(existsSync(join(dataDir, 'spool')) && readdirSync(join(dataDir, 'spool')).length > 0, 'the spool file is removed');
    rmSync(dir, { recursive: true, force: true });
  } finally {
    await stop();
  }
});

test.serial('a spooled message with dot-leading lines across many read buffers reaches the next hop byte for byte', async (t) => {
  const { hop, gw, stop } = await withNextHop({}, { NIMBUS_SPOOL_THRESHOLD: '64KB' });
  try {
    const dir = testDir(t);
    const file = join(dir, 'dots.eml');
    // ~3 MB: a dozen of the relay's 256 KB reads, with a line starting with "." or ".." every few lines.
    const lines: string[] = [];
    for (let i = 0, length = 0; length < 3 * 1024 * 1024; i++) {
      const line = i % 3 === 0 ? `.line ${i}\r\n` : i % 7 === 0 ? `..${'x'.repeat(i % 97)}\r\n` : `text ${'y'.repeat(i % 131)}\r\n`;
      lines.push(line);
      length += line.length;
    }
    writeFileSync(file, `Subject: dots\r\nFrom: a@example.org\r\n\r\n${lines.join('')}`);
    const original = readFileSync(file);
    const result = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--data', `@${file}`]);
    t.is(result.exitCode, 0, result.output.slice(-2000));
    t.is(hop.messages.length, 1);
    const relayed = hop.messages[0]!.bytes;
    // Every byte as sent, dot-leading lines included, after the headers the gateway prepends.
    t.true(relayed.includes(original), `relayed ${relayed.length} bytes do not contain the ${original.length} sent`);
    rmSync(dir, { recursive: true, force: true });
  } finally {
    await stop();
  }
});

test('forged X-Spam-* and X-Nimbus-* fields (folded lines included) are removed from an untrusted client and nothing else', async (t) => {
  const { hop, gw, stop } = await withNextHop({}, { NIMBUS_TRUSTED_NETWORKS: '127.0.0.1/32' });
  try {
    const result = await swaks(gw.address.port, ['--local-interface', '127.0.0.2', '--to', 'bob@example.com', '--from', 'm@example.net', '--data', `@${FORGED}`]);
    t.is(result.exitCode, 0, result.output);
    const relayed = hop.messages[0]!.bytes.toString('utf8');
    const expected = 'From: Mallory <m@example.net>\r\nTo: bob@example.com\r\nSubject: Forged verdict\r\nX-Keep-Me: yes\r\n\r\nBuy now.\r\nX-Spam-Flag: in the body stays\r\n';
    t.true(relayed.includes(expected), relayed);
    t.false(relayed.includes('ALL_TRUSTED'));
    t.false(relayed.includes('ham; score'));
    t.is(relayed.match(/^X-Spam-Status:/gm)?.length, 1, 'only the gateway\'s own X-Spam-Status is left');
  } finally {
    await stop();
  }
});

test('XCLIENT is honoured from a trusted network and refused from an untrusted one', async (t) => {
  const { hop, gw, stop } = await withNextHop({}, { NIMBUS_TRUSTED_NETWORKS: '127.0.0.1/32' });
  try {
    const trusted = await swaks(gw.address.port, ['--xclient', 'ADDR=203.0.113.7 HELO=real.client.example NAME=[UNAVAILABLE]', '--to', 'bob@example.com', '--from', 'a@example.org']);
    t.is(trusted.exitCode, 0, trusted.output);
    const received = hop.messages[0]!.bytes.toString('utf8');
    t.regex(received, /^Received: from real\.client\.example \(\[203\.0\.113\.7\] \[203\.0\.113\.7\]\)/);
    const untrusted = await swaks(gw.address.port, ['--local-interface', '127.0.0.2', '--xclient', 'ADDR=127.0.0.1', '--xclient-optional', '--to', 'victim@elsewhere.example', '--from', 'a@example.org', '--quit-after', 'RCPT']);
    t.false(untrusted.output.includes('XCLIENT NAME ADDR'), 'XCLIENT is not advertised to an untrusted client');
    t.true(untrusted.replies.includes('550 5.7.1 Relay access denied'), untrusted.output);
  } finally {
    await stop();
  }
});

test('the null sender <> reaches the next hop as <>', async (t) => {
  const { hop, gw, stop } = await withNextHop({});
  try {
    const result = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', '<>']);
    t.is(result.exitCode, 0, result.output);
    t.is(hop.messages[0]!.mailFrom, '');
  } finally {
    await stop();
  }
});

test('a GTUBE message is tagged spam with X-Spam-Flag and the subject tag', async (t) => {
  const { hop, gw, stop } = await withNextHop({}, { NIMBUS_SUBJECT_TAG: '[SPAM]' });
  try {
    const result = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--header', 'Subject: hello', '--body', `test ${GTUBE}`]);
    t.is(result.exitCode, 0, result.output);
    const relayed = hop.messages[0]!.bytes.toString('utf8');
    t.regex(relayed, /\r\nX-Nimbus-Verdict: spam; score=1000\.0; required=5\.0\r\nX-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=1000\.0 required=5\.0 tests=NIMBUS_GTUBE\r\nX-Spam-Level: \*{50}\r\n/);
    t.regex(relayed, /\r\nSubject: \[SPAM\] hello\r\n/);
  } finally {
    await stop();
  }
});

test('with no next hop the message is delivered into a real Maildir: a file in new/, nothing left in tmp/', async (t) => {
  const g = await gateway({});
  try {
    const result = await swaks(g.gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--data', `@${PLAIN}`]);
    t.is(result.exitCode, 0, result.output);
    const files = readdirSync(join(g.dataDir, 'maildir', 'new'));
    t.is(files.length, 1);
    t.regex(files[0]!, /^\d+\.\d+_\d+\.\S+$/);
    t.deepEqual(readdirSync(join(g.dataDir, 'maildir', 'tmp')), []);
    t.true(readFileSync(join(g.dataDir, 'maildir', 'new', files[0]!)).includes(readFileSync(PLAIN)));
  } finally {
    await g.stop();
  }
});

test('SMTPUTF8 addresses and the SMTPUTF8 and 8BITMIME parameters reach the next hop', async (t) => {
  const { hop, gw, stop } = await withNextHop({});
  try {
    const replies = await smtpDialogue(gw.address.port, [
      'EHLO client.example',
      'MAIL FROM:<jösé@example.org> SMTPUTF8 BODY=8BITMIME',
      'RCPT TO:<bøb@example.com>',
      'DATA',
      'Subject: Grüße\r\n\r\nÄ body.\r\n.',
      'QUIT',
    ]);
    t.regex(replies[5] ?? '', /^250 2\.6\.0 /, replies.join('\n'));
    const message = hop.messages[0]!;
    t.is(message.mailFrom, 'jösé@example.org');
    t.deepEqual(message.rcptTo, ['bøb@example.com']);
    t.true(Boolean(message.mailArgs.SMTPUTF8));
    t.is(message.mailArgs.BODY, '8BITMIME');
    t.true(message.bytes.toString('utf8').includes('Subject: Grüße\r\n\r\nÄ body.\r\n'));
  } finally {
    await stop();
  }
});

test('a next hop slower than NIMBUS_NEXT_HOP_TIMEOUT_MS to answer DATA gives the sender 451 4.4.1, not 250', async (t) => {
  // The next hop answers DATA only when the test is over: slower than any timeout, without a clock.
  let answer: () => void = () => undefined;
  const answered = new Promise<void>((resolve) => (answer = resolve));
  const { gw, stop } = await withNextHop({ data: async () => { await answered; return 'accept' as const; } }, { NIMBUS_NEXT_HOP_TIMEOUT_MS: '500' });
  try {
    const result = await swaks(gw.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org']);
    t.true(result.replies.includes('451 4.4.1 Next hop unavailable, try again later'), result.output);
    t.false(result.replies.some((r) => r.startsWith('250 2.6.0')));
  } finally {
    answer();
    await stop();
  }
});

test('a client that talks before the greeting is refused with 421 unless it is in a trusted network', async (t) => {
  // 127.0.0.1 trusted, 127.0.0.2 not: both send EHLO the moment the connection is up.
  const { gw, stop } = await gateway({ NIMBUS_TRUSTED_NETWORKS: '127.0.0.1/32' });
  const firstReplies = (localAddress: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: gw.address.port, localAddress });
      let text = '';
      socket.on('connect', () => socket.write('EHLO early.example\r\n'));
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.split('\r\n').length > 2) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
      socket.setTimeout(10_000, () => socket.destroy(new Error(`no reply: ${text}`)));
    });
  try {
    const stranger = await firstReplies('127.0.0.2');
    t.regex(stranger, /^421 .*You talk too soon/m);
    const trusted = await firstReplies('127.0.0.1');
    t.regex(trusted, /^220 /);
    t.regex(trusted, /^250[- ]/m);
  } finally {
    await stop();
  }
});
