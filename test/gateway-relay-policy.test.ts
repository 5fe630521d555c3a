/**
 * Relay policy against clients outside NIMBUS_TRUSTED_NETWORKS, on the wire: sender-specified
 * routing, the cap on refused recipients, XCLIENT/XFORWARD. The gateway trusts only 127.0.0.1;
 * the untrusted client connects from 127.0.0.2.
 */
import test from 'ava';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../src/config/index.js';
import { startGateway } from '../src/gateway/server.js';
import { checkRecipient } from '../src/gateway/recipient-policy.js';
import { smtpDialogue, startScriptedServer } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { tempDir } from './helpers/temp.js';

const UNTRUSTED = '127.0.0.2';
const ROUTING_REFUSED = '550 5.7.1 Relay access denied: sender-specified routing (%, ! or @ in the local part) is refused';
const ROUTED_RECIPIENTS = ['user%other.test@example.com', 'user%other.test%example.com@example.com', 'other.test!user@example.com', '"user%other.test"@example.com'];

async function setup(env: Record<string, string> = {}) {
  // Every RCPT the next hop is asked about; it refuses nobody*@example.com as unknown users.
  const hopRcpts: string[] = [];
  const hop = await startScriptedServer({
    rcpt: (address) => {
      hopRcpts.push(address);
      return address.startsWith('nobody') ? { code: 550, text: '5.1.1 User unknown' } : null;
    },
  });
  const dataDir = tempDir('nimbus-gw-policy-');
  const logLines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logLines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const config = loadConfig({
    NIMBUS_LISTEN: '127.0.0.1:0',
    NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`,
    NIMBUS_DATA_DIR: dataDir,
    NIMBUS_HOSTNAME: 'gw.nimbus.test',
    NIMBUS_RELAY_DOMAINS: 'example.com',
    NIMBUS_TRUSTED_NETWORKS: '127.0.0.1/32',
    ...env,
  });
  const gw = await startGateway(config, pino({ level: 'info' }, sink));
  return {
    hop,
    hopRcpts,
    port: gw.address.port,
    events: (name: string) => logLines.filter((line) => line.event === name),
    stop: async () => {
      await gw.close();
      await hop.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A client that pipelines, as a harvester or spammer would: after the greeting and the EHLO reply
 * it sends every command at once, then reads until the server closes the connection. Resolves with
 * the last line of each reply; rejects if the server keeps the connection open for 20 s.
 */
function pipelined(port: number, localAddress: string, commands: readonly string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let text = '';
    let stage: 'greeting' | 'ehlo' | 'sent' = 'greeting';
    const finalLines = () => text.split('\r\n').filter((line) => /^\d{3} /.test(line));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection; it said:\n${text}`));
    }, 20_000);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (stage === 'greeting' && finalLines().length === 1) {
        stage = 'ehlo';
        socket.write('EHLO client.example\r\n');
      } else if (stage === 'ehlo' && finalLines().length === 2) {
        stage = 'sent';
        socket.write(commands.map((command) => `${command}\r\n`).join(''));
      }
    });
    // Commands written after the server's close may be refused by the socket: what matters is the close.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(finalLines());
    });
  });
}

test('sender-specified routing to a relay domain (%, %…%, !, quoted) from an untrusted client gets 550 5.7.1, is logged as routing_refused and never reaches the next hop', async (t) => {
  const { hop, hopRcpts, port, events, stop } = await setup();
  try {
    for (const recipient of ROUTED_RECIPIENTS) {
      const result = await swaks(port, ['--local-interface', UNTRUSTED, '--to', recipient, '--from', 'a@example.net', '--quit-after', 'RCPT']);
      t.true(result.replies.includes(ROUTING_REFUSED), `${recipient}\n${result.output}`);
    }
    // `@` in a quoted local part is refused by smtp-server's address syntax check before policy.
    const at = await swaks(port, ['--local-interface', UNTRUSTED, '--to', '"user@other.test"@example.com', '--from', 'a@example.net', '--quit-after', 'RCPT']);
    t.true(at.replies.some((reply) => reply.startsWith('501 ')), at.output);
    t.deepEqual(hopRcpts, [], 'the next hop was asked about none of them');
    t.deepEqual(events('gateway.routing_refused').map((line) => line.rcpt), ROUTED_RECIPIENTS);
    const plain = await swaks(port, ['--local-interface', UNTRUSTED, '--to', 'user@example.com', '--from', 'a@example.net']);
    t.is(plain.exitCode, 0, plain.output);
    t.deepEqual(hop.messages.map((message) => message.rcptTo), [['user@example.com']], 'a plain recipient in the relay domain still goes through');
  } finally {
    await stop();
  }
});

test('the policy sees routing in any local part of a relay domain recipient, `@` inside quotes included, and none in a trusted client or outside relay domains', (t) => {
  const relayDomains = ['example.com'];
  for (const recipient of [...ROUTED_RECIPIENTS, '"user@other.test"@example.com', '"user\\%other.test"@example.com']) {
    t.is(checkRecipient(recipient, false, relayDomains), 'routing-refused', recipient);
    t.is(checkRecipient(recipient, true, relayDomains), 'accept', recipient);
  }
  t.is(checkRecipient('user%other.test@elsewhere.example', false, relayDomains), 'relay-denied');
  t.is(checkRecipient('first.last+tag@example.com', false, relayDomains), 'accept');
});

test('a trusted client may still give recipients with sender-specified routing, and the next hop gets them unchanged; after XCLIENT the real client is judged', async (t) => {
  const { hop, port, stop } = await setup();
  try {
    const trusted = await swaks(port, ['--to', ROUTED_RECIPIENTS.join(','), '--from', 'a@example.com']);
    t.is(trusted.exitCode, 0, trusted.output);
    t.deepEqual(hop.messages.map((message) => message.rcptTo), [ROUTED_RECIPIENTS]);
    // Postfix in front (trusted) handing over an outside client with XCLIENT ADDR=.
    const proxied = await swaks(port, ['--xclient', 'ADDR=203.0.113.7 NAME=[UNAVAILABLE]', '--to', 'user%other.test@example.com', '--from', 'a@example.net', '--quit-after', 'RCPT']);
    t.true(proxied.replies.includes(ROUTING_REFUSED), proxied.output);
  } finally {
    await stop();
  }
});

test('an untrusted client is disconnected with 421 4.7.0 right after its NIMBUS_MAX_REFUSED_RECIPIENTS-th refused recipient; what it pipelined after gets no reply and is not logged', async (t) => {
  const { hopRcpts, port, events, stop } = await setup({ NIMBUS_MAX_REFUSED_RECIPIENTS: '3' });
  try {
    const replies = await pipelined(port, UNTRUSTED, [
      'MAIL FROM:<harvester@example.net>',
      'RCPT TO:<victim@elsewhere.example>', // relay denied
      'RCPT TO:<user%other.test@example.com>', // routing refused
      'RCPT TO:<nobody@example.com>', // refused by the next hop: the third refusal
      'RCPT TO:<nobody2@example.com>', // never answered
      'QUIT',
    ]);
    t.deepEqual(replies.slice(2), [
      '250 2.1.0 Accepted',
      '550 5.7.1 Relay access denied',
      ROUTING_REFUSED,
      '550 5.1.1 User unknown',
      '421 4.7.0 Too many refused recipients, closing connection',
    ]);
    t.deepEqual(hopRcpts, ['nobody@example.com'], 'the command after the limit never reached the next hop');
    t.is(events('gateway.relay_denied').length + events('gateway.routing_refused').length, 2);
    t.like(events('gateway.refused_recipients_limit'), [{ refused: 3, client: UNTRUSTED }]);
    t.is(events('gateway.refused_recipients_limit').length, 1, 'one line for the disconnect');
  } finally {
    await stop();
  }
});

test('a session with fewer refused recipients than the limit is unaffected, and an accepted message starts the count again', async (t) => {
  const { hop, port, stop } = await setup({ NIMBUS_MAX_REFUSED_RECIPIENTS: '3' });
  try {
    const transaction = (refused: readonly string[], subject: string) => [
      'MAIL FROM:<a@example.net>',
      ...refused.map((recipient) => `RCPT TO:<${recipient}>`),
      'RCPT TO:<bob@example.com>',
      'DATA',
      `Subject: ${subject}\r\n\r\nbody\r\n.`,
    ];
    const replies = await smtpDialogue(port, [
      'EHLO client.example',
      ...transaction(['victim@elsewhere.example', 'nobody@example.com'], 'first'),
      ...transaction(['user%other.test@example.com', 'nobody3@example.com'], 'second'),
      'QUIT',
    ], '127.0.0.1', UNTRUSTED);
    // Four refusals in the session, two before each accepted message: nobody is cut off.
    t.is(replies.filter((reply) => reply.startsWith('550 ')).length, 4, replies.join('\n'));
    t.is(replies.filter((reply) => reply.startsWith('250 2.6.0 ')).length, 2, replies.join('\n'));
    t.regex(replies.at(-1) ?? '', /^221 /);
    t.is(hop.messages.length, 2);
  } finally {
    await stop();
  }
});

test('a trusted client is never disconnected for refused recipients', async (t) => {
  const { port, stop } = await setup({ NIMBUS_MAX_REFUSED_RECIPIENTS: '3' });
  try {
    const replies = await smtpDialogue(port, [
      'EHLO mta.example',
      'MAIL FROM:<list@example.org>',
      ...[1, 2, 3, 4, 5].map((n) => `RCPT TO:<nobody${n}@example.com>`),
      'QUIT',
    ]);
    t.deepEqual(replies.slice(3, 8), Array(5).fill('550 5.1.1 User unknown'));
    t.regex(replies.at(-1) ?? '', /^221 /);
  } finally {
    await stop();
  }
});

test('XCLIENT and XFORWARD from an untrusted client are not advertised and are refused with 550 5.7.0', async (t) => {
  const { port, stop } = await setup();
  try {
    const replies = await smtpDialogue(port, [
      'EHLO client.example',
      'XCLIENT ADDR=127.0.0.1',
      'XFORWARD ADDR=127.0.0.1',
      'MAIL FROM:<a@example.net>',
      'RCPT TO:<victim@elsewhere.example>',
      'QUIT',
    ], '127.0.0.1', UNTRUSTED);
    t.notRegex(replies[1] ?? '', /XCLIENT|XFORWARD/);
    t.is(replies[2], '550 5.7.0 XCLIENT and XFORWARD are accepted only from trusted networks');
    t.is(replies[3], '550 5.7.0 XCLIENT and XFORWARD are accepted only from trusted networks');
    t.is(replies[5], '550 5.7.1 Relay access denied', 'the session stays the untrusted client\'s');
    const trusted = await smtpDialogue(port, ['EHLO mta.example', 'XFORWARD ADDR=203.0.113.7', 'QUIT']);
    t.regex(trusted[1] ?? '', /XFORWARD/);
    t.regex(trusted[2] ?? '', /^250 /);
  } finally {
    await stop();
  }
});
