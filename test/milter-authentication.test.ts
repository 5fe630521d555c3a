/**
 * The milter and the authentication checks over a real socket: the message the scan sees is the
 * one the sender signed, byte for byte, when the MTA grants SMFIP_HDR_LEADSPC (a DKIM signature
 * over `Subject:x` with simple canonicalisation passes; without the flag the rebuilt block breaks
 * it, which is why Nimbus asks for it); an incoming Authentication-Results in this host's name is
 * deleted by index while another host's stays; values sent back carry their own leading space.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../src/config/index.js';
import { DnsResolver } from '../src/dns/resolver.js';
import { createLogger } from '../src/log.js';
import { PROTOCOL_FLAGS, type Packet } from '../src/milter/codec.js';
import { startMilter } from '../src/milter/server.js';
import { Quarantine, quarantineDir } from '../src/quarantine/store.js';
import { Authenticator } from '../src/scan/authentication.js';
import { Scanner } from '../src/scan/scanner.js';
import { startDnsServer } from './helpers/dns-server.js';
import { dkimKey, dkimSigned } from './helpers/mail-auth.js';
import { Peer, POSTFIX_OFFER, milterHeaders } from './helpers/milter-peer.js';
import { testDir } from './helpers/temp.js';

const HOSTNAME = 'mx.nimbus.test';
const KEY = dkimKey('signed.test');

async function milterWithChecks(t: ExecutionContext, env: Record<string, string> = {}): Promise<{ port: number; quarantine: Quarantine }> {
  const dns = await startDnsServer(t, [{ name: 'signed.test', records: { [KEY.name]: KEY.record } }]);
  const resolver = new DnsResolver({ servers: [{ host: dns.host, port: dns.port }], timeoutMs: 3000 });
  t.teardown(() => resolver.close());
  const log = createLogger('silent');
  const config = loadConfig({ NIMBUS_DATA_DIR: testDir(t, 'nimbus-milter-auth-'), NIMBUS_MILTER_LISTEN: '127.0.0.1:0', NIMBUS_TRUSTED_NETWORKS: '', NIMBUS_HOSTNAME: HOSTNAME, NIMBUS_AUTH_CHECKS: 'on', ...env });
  const authentication = new Authenticator({ resolver, hostname: HOSTNAME, log });
  const scanner = new Scanner({ policy: config, lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, authentication, log });
  const milter = await startMilter(config, log, { scanner, observer: null, quarantine: new Quarantine(quarantineDir(config)), metrics: null });
  t.teardown(() => milter.close());
  return { port: milter.port!, quarantine: new Quarantine(quarantineDir(config)) };
}

/** A message signed with simple/simple over a Subject written without a space after the colon. */
async function signedMessage(): Promise<Buffer> {
  const message = Buffer.from(['From: Billing <billing@signed.test>', 'To: bob@example.com', 'Subject:Your invoice', 'Date: Mon, 07 Dec 2026 10:00:00 +0000', 'Message-ID: <invoice@signed.test>', '', 'Your invoice is ready.', ''].join('\r\n'));
  const forged = Buffer.from(`Authentication-Results: ${HOSTNAME.toUpperCase()}; dkim=pass header.d=signed.test\r\nAuthentication-Results: upstream.example; spf=pass smtp.mailfrom=signed.test\r\n`);
  return Buffer.concat([forged, await dkimSigned(message, KEY, 'simple/simple')]);
}

async function exchange(port: number, offer: typeof POSTFIX_OFFER, message: Buffer): Promise<Packet[]> {
  const peer = new Peer(port);
  const negotiated = await peer.negotiate(offer);
  if (negotiated.command !== 'O') throw new Error(`negotiation answered ${JSON.stringify(negotiated.command)}`);
  const { headers, body } = milterHeaders(message, (offer.protocol & PROTOCOL_FLAGS.HDR_LEADSPC) !== 0);
  peer.sendMessage(body, ['<bob@example.com>'], headers);
  const answer = await peer.answer();
  peer.socket.destroy();
  return answer;
}

const inserted = (answer: Packet[], name: string): string[] =>
  answer.filter((packet) => packet.command === 'i' && packet.data.subarray(4).toString('latin1').startsWith(`${name}\0`)).map((packet) => packet.data.subarray(4 + name.length + 1, -1).toString('latin1'));

test('with SMFIP_HDR_LEADSPC the scan sees the signed bytes (dkim=pass, simple canonicalisation), the forged Authentication-Results of this host is deleted by index, another host\'s kept, and values go back with their leading space', async (t) => {
  const { port } = await milterWithChecks(t);
  const answer = await exchange(port, POSTFIX_OFFER, await signedMessage());
  const [results] = inserted(answer, 'Authentication-Results');
  t.regex(results ?? '', /^ mx\.nimbus\.test; .*dkim=pass .*header\.i=@signed\.test/s, answer.map((packet) => `${packet.command} ${packet.data.toString('latin1')}`).join('\n'));
  t.true(inserted(answer, 'X-Nimbus-Verdict')[0]!.startsWith(' '), 'the MTA adds no space under HDR_LEADSPC');
  const deletions = answer.filter((packet) => packet.command === 'm').map((packet) => [packet.data.readUInt32BE(0), packet.data.subarray(4).toString('latin1')]);
  t.deepEqual(deletions, [[1, 'Authentication-Results\0\0']], 'only the first Authentication-Results (this host\'s) is deleted');
});

test('without SMFIP_HDR_LEADSPC (an MTA that does not grant it) the header block is rebuilt as `Name: value`: the mail flows, but this signature fails, and the values go back without a leading space', async (t) => {
  const { port } = await milterWithChecks(t);
  const answer = await exchange(port, { ...POSTFIX_OFFER, protocol: POSTFIX_OFFER.protocol & ~PROTOCOL_FLAGS.HDR_LEADSPC }, await signedMessage());
  t.is(answer.at(-1)!.command, 'a');
  const [results] = inserted(answer, 'Authentication-Results');
  t.regex(results ?? '', /^mx\.nimbus\.test; .*dkim=fail /s);
});

test("with NIMBUS_MILTER_QUARANTINE=store the copy kept in Nimbus's quarantine has this host's results, not the forged ones, and keeps another host's", async (t) => {
  const { port, quarantine } = await milterWithChecks(t, { NIMBUS_SPAM_ACTION: 'quarantine', NIMBUS_MILTER_QUARANTINE: 'store' });
  const spam = Buffer.concat([await signedMessage(), Buffer.from('XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n')]);
  const answer = await exchange(port, POSTFIX_OFFER, spam);
  t.deepEqual(answer.map((packet) => packet.command), ['d']);
  const [entry] = await quarantine.list();
  const stored = readFileSync((await quarantine.get(entry!.id)).path, 'latin1');
  const results = stored.match(/^Authentication-Results: .*$/gm) ?? [];
  t.is(results.length, 2, stored);
  t.regex(results[0]!, /^Authentication-Results: mx\.nimbus\.test; /);
  t.regex(results[1]!, /^Authentication-Results: upstream\.example; /);
  t.false(stored.includes(HOSTNAME.toUpperCase()), 'the forged field in this host\'s name is gone');
});
