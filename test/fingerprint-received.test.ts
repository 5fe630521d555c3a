import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipFingerprints } from '../src/fingerprint/ip.js';
import { handoffFromReceived, handoffOf } from '../src/fingerprint/received.js';
import { message, prose } from '../fixtures/fingerprint/factory.js';
import { runNimbus } from './helpers/nimbus.js';

/** One hop as Postfix writes it: `from HELO (rdns [ip]) by host with PROTO id N for <rcpt>; date`. */
function hop(from: string, ip: string, by: string, extra: { with?: string; for?: string } = {}): string {
  const literal = ip.includes(':') ? `[IPv6:${ip}]` : `[${ip}]`;
  const rcpt = extra.for ? ` for <${extra.for}>` : '';
  return `from ${from} (${from} ${literal}) by ${by} with ${extra.with ?? 'ESMTP'} id 1${rcpt}; Mon, 7 Dec 2026 10:00:00 +0000`;
}

/**
 * A chain as a site's mailbox holds it, newest hop first: local delivery, then `inner` hops of the
 * site (the gateway, the MX), then the sender's server handing it over, then the sender's own hops.
 */
function chain(inner: readonly string[], handoff: string, beyond: readonly string[] = []): string[] {
  return [hop('localhost', '127.0.0.1', 'desk.example.org', { for: 'jim@example.org' }), ...inner, handoff, ...beyond];
}

const SENDER = '203.0.113.77';
const senderHop = hop('bot.dialup.example', SENDER, 'mx.example.org');

test('the hand-off skips local delivery, private relays and the sender\'s own earlier hops', (t) => {
  const received = chain([hop('filter.example.org', '10.0.0.9', 'mail.example.org')], senderHop, [hop('pc77', '192.0.2.200', 'bot.dialup.example')]);
  t.deepEqual(handoffFromReceived(received), { ip: SENDER, helo: 'bot.dialup.example' });
});

test('a fetchmail, POP3 or IMAP hop is a retrieval inside the site, even from a public address', (t) => {
  for (const protocol of ['POP3', 'IMAP', 'ESMTP (fetchmail-6.4)']) {
    const fetched = hop('pop.isp.example', '198.51.100.30', 'localhost', { with: protocol });
    t.is(handoffFromReceived(chain([fetched], senderHop))?.ip, SENDER, protocol);
  }
});

test('the site\'s own relays named by the admin are skipped: relay domains and the host name', (t) => {
  // The site's gateway is hosted under another name than its mail domain, so Received alone cannot tell.
  const gateway = hop('gw7.hosting.example', '198.51.100.40', 'desk.example.org');
  const received = [gateway, hop('bot.dialup.example', SENDER, 'gw7.hosting.example')];
  t.is(handoffFromReceived(received)?.ip, '198.51.100.40');
  t.is(handoffFromReceived(received, { ownNames: ['gw7.hosting.example'] })?.ip, SENDER);
  t.is(handoffFromReceived(received, { ownNames: ['example.org', 'hosting.example'] })?.ip, SENDER);
});

test('a hop from the site\'s trusted networks is inside the site, IPv4 or IPv6', (t) => {
  const isTrusted = (ip: string): boolean => ip.startsWith('198.51.100.') || ip.startsWith('2001:db8:1:');
  for (const relay of ['198.51.100.50', '2001:db8:1::25']) {
    const received = [hop('relay.partner.example', relay, 'mx.example.org'), hop('bot.dialup.example', SENDER, 'relay.partner.example')];
    t.is(handoffFromReceived(received)?.ip, relay);
    t.is(handoffFromReceived(received, { isTrusted })?.ip, SENDER, relay);
  }
});

test('an IPv6 sender is the hand-off too; no public hop at all gives none', (t) => {
  t.deepEqual(handoffFromReceived(chain([], hop('mta.sender.example', '2001:db8:77::5', 'mx.example.org'))), { ip: '2001:db8:77::5', helo: 'mta.sender.example' });
  t.is(handoffFromReceived(chain([hop('filter', '10.0.0.9', 'mx.example.org')], hop('pc', '192.168.1.5', 'filter'))), null);
});

test('handoffOf reads a whole message, CRLF or LF, its Delivered-To naming the site', (t) => {
  // The recipient's domain is named only by Delivered-To: the hop from its own mail host is inside.
  const own = hop('smtp.example.org', '198.51.100.60', 'store.internal');
  const raw = `Delivered-To: jim@example.org\r\nReceived: ${own}\r\nReceived: ${hop('bot.dialup.example', SENDER, 'smtp.example.org')}\r\nSubject: x\r\n\r\nReceived: from body (body [192.0.2.99]) by nothing\r\n`;
  t.is(handoffOf(raw)?.ip, SENDER);
  t.is(handoffOf(raw.replace(/\r\n/g, '\n'))?.ip, SENDER);
});

test('nimbus check and nimbus report take the sender from the hand-off, not the site\'s own fetchmail relay or MX', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nimbus-received-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const relay = '198.51.100.30';
  const received = chain([hop('pop.isp.example', relay, 'localhost', { with: 'POP3' }), hop('gw.hosting.example', '198.51.100.40', 'pop.isp.example')], hop('bot.dialup.example', SENDER, 'gw.hosting.example'));
  const file = join(dir, 'junk.eml');
  await writeFile(file, message({ received, parts: [{ type: 'text/plain', content: prose(40, 5), encoding: '7bit' }] }));
  const env = { NIMBUS_DATA_DIR: join(dir, 'data'), NIMBUS_PARTICIPATION: 'off', NIMBUS_RELAY_DOMAINS: 'example.org', NIMBUS_HOSTNAME: 'gw.hosting.example' };
  const senderIp = ipFingerprints(SENDER)[0]!.text;
  const check = await runNimbus(['check', '--json', file], env);
  t.is(check.code, 0, check.stderr);
  const fingerprints = (JSON.parse(check.stdout) as { fingerprints: string[] }).fingerprints;
  t.true(fingerprints.includes(senderIp));
  t.false(fingerprints.includes(ipFingerprints(relay)[0]!.text));
  const reported = await runNimbus(['report', '--spam', file], env);
  t.is(reported.code, 0, reported.stderr);
  const after = JSON.parse((await runNimbus(['check', '--json', file], env)).stdout) as { report: string[] };
  // The report's evidence sits on the sender's address (one report is not a conviction of a
  // sending address, so it is not spam yet), and none on the site's own relay.
  const senderEntry = after.report.find((entry) => entry.startsWith(`ip=${SENDER}=`)) ?? '';
  t.regex(senderEntry, /=(spam|unknown)\((0\.[1-9]|1)/, after.report.join(' '));
  t.false(after.report.some((entry) => entry.startsWith(`ip=${relay}=`)), after.report.join(' '));
});
