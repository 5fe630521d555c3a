/**
 * Relay policy against clients outside NIMBUS_TRUSTED_NETWORKS, on the wire: sender-specified
 * routing. The gateway trusts only 127.0.0.1;
 * the untrusted client connects from 127.0.0.2.
 */
import test from 'ava';
import { rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startGateway } from '../src/gateway/server.js';
import { checkRecipient } from '../src/gateway/recipient-policy.js';
import { startScriptedServer, swaks, tempDir } from './helpers/smtp.js';

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
    t.deepEqual(events('routing_refused').map((line) => line.rcpt), ROUTED_RECIPIENTS);
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
