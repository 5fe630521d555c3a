/**
 * Nimbus in front of the MX (docs/admin/postfix.md, "In front of the MX"), end to end with a real Postfix as the
 * mailbox host and a real Nimbus process:
 *
 *   swaks (from 127.0.0.2) ─▶ Nimbus ─▶ Postfix (mynetworks trusts Nimbus; example.com in
 *     mydestination) ─▶ Maildir, or for other domains ─▶ relayhost: smtp-sink standing for the
 *     rest of the Internet
 *
 * A mailbox host's Postfix rewrites `user%other.test@example.com`, `other.test!user@example.com`
 * and the like into `user@other.test` for its own domains, and relays it on for a client in
 * mynetworks, which Nimbus is. So Nimbus must refuse sender-specified routing from untrusted
 * clients itself (Postfix's allow_untrusted_routing=no), or it is an open relay. Nimbus trusts only
 * 127.0.0.1 here, so swaks from 127.0.0.2 is an outside client.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { startGatewayProcess, type GatewayProcess } from './helpers/nimbus.js';
import { startPostfix, type PostfixInstance } from './helpers/postfix.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { waitForFiles } from './helpers/wait.js';

const OUTSIDE_CLIENT = '127.0.0.2';
const ROUTED_RECIPIENTS = ['user%other.test@example.com', 'user%other.test%example.com@example.com', 'other.test!user@example.com', '"user%other.test"@example.com'];

interface Setup { sink: SmtpSink; postfix: PostfixInstance; nimbus: GatewayProcess }

async function setUp(t: ExecutionContext): Promise<Setup> {
  const sink = await startSmtpSink();
  const started: { postfix?: PostfixInstance } = {};
  try {
    started.postfix = await startPostfix({
      domain: 'example.com',
      mailboxes: ['alice'],
      main: {
        // The mailbox host is the final destination of example.com: the address class in which
        // Postfix applies allow_percent_hack and swap_bangpath. virtual(8) still does the
        // delivery into the helper's Maildirs (local(8) needs real accounts).
        mydestination: 'example.com',
        virtual_mailbox_domains: '',
        local_transport: 'virtual',
        local_recipient_maps: '$virtual_mailbox_maps',
        relayhost: `[127.0.0.1]:${sink.port}`,
      },
    });
    const nimbus = await startGatewayProcess(t, {
      NIMBUS_NEXT_HOP: `127.0.0.1:${started.postfix.smtpPort}`,
      NIMBUS_RELAY_DOMAINS: 'example.com',
      NIMBUS_TRUSTED_NETWORKS: '127.0.0.1/32',
      NIMBUS_WORKERS: '1',
    });
    return { sink, postfix: started.postfix, nimbus };
  } catch (error) {
    await started.postfix?.stop();
    await sink.stop();
    throw error;
  }
}

async function tearDown(setup: Setup): Promise<void> {
  await setup.nimbus.stop();
  await setup.postfix.stop();
  await setup.sink.stop();
}

function send(setup: Setup, to: string, from: string, client?: string) {
  return swaks(setup.nimbus.port, [...(client ? ['--local-interface', client] : []),
    '--from', from, '--to', to, '--header', `Subject: to ${to}`, '--body', 'routing test']);
}

test.serial('in front of the MX: sender-specified routing from an outside client gets 550 5.7.1 from Nimbus and nothing reaches Postfix or beyond, while a plain recipient is delivered', async (t) => {
  const setup = await setUp(t);
  t.teardown(() => tearDown(setup));
  for (const recipient of ROUTED_RECIPIENTS) {
    const result = await send(setup, recipient, 'spammer@remote.test', OUTSIDE_CLIENT);
    t.not(result.exitCode, 0, result.output);
    t.regex(result.output, /<\*\* +550 5\.7\.1 Relay access denied: sender-specified routing/, result.output);
  }
  const plain = await send(setup, 'alice@example.com', 'sender@remote.test', OUTSIDE_CLIENT);
  t.is(plain.exitCode, 0, `${plain.output}\n${setup.postfix.log()}`);
  await setup.postfix.waitForMail('alice', 1);

  // A trusted client's routed recipient shows the setup does relay such addresses: once it has
  // reached the sink and Postfix's queue is empty, anything Postfix took before it has gone too.
  const sentinel = await send(setup, 'sentinel%other.test@example.com', 'mta@example.com');
  t.is(sentinel.exitCode, 0, sentinel.output);
  const [relayed] = await waitForFiles(setup.sink.dir, 1);
  await setup.postfix.waitQueueEmpty();
  t.regex(readFileSync(relayed!, 'latin1'), /sentinel@other\.test/, 'Postfix relayed the trusted routed recipient to other.test');
  t.is(setup.sink.files().length, 1, 'only the trusted sentinel left for other.test');
  t.notRegex(setup.postfix.log(), /user[%@!]|!user/, 'Postfix never heard of the refused recipients');
  t.deepEqual(setup.nimbus.logLines().filter((line) => line.event === 'gateway.routing_refused').map((line) => line.rcpt), ROUTED_RECIPIENTS);
});
