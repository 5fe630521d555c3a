/**
 * Authentication end to end, with real processes only: a DNS server on loopback serving SPF,
 * DKIM keys made in the test and DMARC, `nimbus gateway` with NIMBUS_AUTH_CHECKS=on relaying to
 * smtp-sink (or its own Maildir), swaks as the sending MTA handing over the real client address
 * with XCLIENT, and `nimbus report` by the admin.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { startDnsServer, type DnsRecords, type TestDnsServer } from './helpers/dns-server.js';
import { dkimKey, dkimSigned, plainMessage } from './helpers/mail-auth.js';
import { runNimbus } from './helpers/nimbus.js';
import { startSmtpSink } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { testDir } from './helpers/temp.js';
import { dataFile, gateway, header, relayedMessage } from './helpers/verdict.js';
import { waitForFiles } from './helpers/wait.js';

const HOSTNAME = 'mx.nimbus.test';
const THROWAWAY_KEY = dkimKey('throwaway.test');
const BANK_KEY = dkimKey('goodbank.test');

function zone(name: string, records: Record<string, DnsRecords>) {
  return { name, records };
}

async function dnsServer(t: Parameters<typeof startDnsServer>[0]): Promise<TestDnsServer> {
  return startDnsServer(t, [
    zone('broken.test', { 'broken.test': { fail: 'SERVFAIL' }, 's1._domainkey.broken.test': { silent: true }, '_dmarc.broken.test': { fail: 'SERVFAIL' } }),
    zone('throwaway.test', {
      'throwaway.test': { TXT: [['v=spf1 ip4:203.0.113.0/24 ip4:198.51.100.0/24 -all']] },
      [THROWAWAY_KEY.name]: THROWAWAY_KEY.record,
      '_dmarc.throwaway.test': { TXT: [['v=DMARC1; p=none']] },
    }),
    zone('goodbank.test', {
      'goodbank.test': { TXT: [['v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all']] },
      [BANK_KEY.name]: BANK_KEY.record,
      '_dmarc.goodbank.test': { TXT: [['v=DMARC1; p=reject']] },
    }),
  ]);
}

function authEnv(dns: TestDnsServer): Record<string, string> {
  return { NIMBUS_AUTH_CHECKS: 'on', NIMBUS_DNS_SERVERS: dns.address, NIMBUS_DNS_TIMEOUT_MS: '500', NIMBUS_HOSTNAME: HOSTNAME, NIMBUS_RELAY_DOMAINS: 'example.com' };
}

test('through a real gateway: SERVFAIL and a silent DNS server give temperror and the mail flows; a forged Authentication-Results of this host is removed, another host\'s kept', async (t) => {
  const dns = await dnsServer(t);
  const sink = await startSmtpSink();
  t.teardown(() => sink.stop());
  const gw = await gateway(t, { ...authEnv(dns), NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` });
  const forged = Buffer.concat([
    Buffer.from(`Authentication-Results: ${HOSTNAME.toUpperCase()};\r\n spf=pass smtp.mailfrom=broken.test; dkim=pass header.d=broken.test\r\n`),
    Buffer.from('Authentication-Results: upstream.example; spf=pass smtp.mailfrom=broken.test\r\n'),
    await dkimSigned(plainMessage('Billing <billing@broken.test>', 'Your invoice', 'Your invoice for December is attached to your account page.'), { ...THROWAWAY_KEY, domain: 'broken.test', name: 's1._domainkey.broken.test' }),
  ]);
  const file = dataFile(testDir(t, 'nimbus-auth-e2e-'), 'invoice.eml', forged);
  const started = Date.now();
  const sent = await swaks(gw.port, ['--xclient', 'ADDR=203.0.113.40 HELO=mail.broken.test', '--from', 'billing@broken.test', '--to', 'bob@example.com', '--data', `@${file}`]);
  t.is(sent.exitCode, 0, sent.output);
  t.true(Date.now() - started < 8000, `the DNS failures held the message ${Date.now() - started} ms`);
  const [dump] = await waitForFiles(sink.dir, 1);
  const relayed = relayedMessage(readFileSync(dump!));
  const results = header(relayed, 'Authentication-Results');
  t.is(results.length, 2, results.join('\n'));
  t.regex(results[0]!, /^mx\.nimbus\.test; spf=temperror .*; dkim=temperror .*header\.i=@broken\.test.*; dmarc=temperror /);
  t.is(results[1], 'upstream.example; spf=pass smtp.mailfrom=broken.test');
  t.regex(header(relayed, 'X-Spam-Status')[0] ?? '', /^No, score=0\.0 required=5\.0 tests=NIMBUS_AUTH_TEMPERROR$/);
});

test('a campaign signed by its own throwaway domain, caught once by a spam trap, is tagged by that domain\'s fingerprint when it comes back with new words, links and sender address', async (t) => {
  const dns = await dnsServer(t);
  const sink = await startSmtpSink();
  t.teardown(() => sink.stop());
  const gw = await gateway(t, { ...authEnv(dns), NIMBUS_SPAMTRAPS: 'trap@example.com', NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` });
  const dir = testDir(t, 'nimbus-auth-campaign-');
  const first = await dkimSigned(plainMessage('Deals <deals@throwaway.test>', 'Cheap watches', 'Replica watches at a tenth of the price: http://cheap-watches.example/buy'), THROWAWAY_KEY);
  const trapped = await swaks(gw.port, ['--xclient', 'ADDR=203.0.113.50 HELO=mail.throwaway.test', '--from', 'deals@throwaway.test', '--to', 'trap@example.com', '--data', `@${dataFile(dir, 'first.eml', first)}`]);
  t.is(trapped.exitCode, 0, trapped.output);

  const next = await dkimSigned(plainMessage('Offers <offers@throwaway.test>', 'Your exclusive invitation', 'Designer handbags delivered tomorrow, order now at http://bags-outlet.example/now'), THROWAWAY_KEY);
  const sent = await swaks(gw.port, ['--xclient', 'ADDR=198.51.100.60 HELO=mx2.throwaway.test', '--from', 'offers@throwaway.test', '--to', 'bob@example.com', '--data', `@${dataFile(dir, 'next.eml', next)}`]);
  t.is(sent.exitCode, 0, sent.output);
  const [dump] = await waitForFiles(sink.dir, 1);
  const relayed = relayedMessage(readFileSync(dump!));
  t.deepEqual(header(relayed, 'X-Spam-Flag'), ['YES'], relayed.toString('latin1').slice(0, 3000));
  t.regex(header(relayed, 'X-Spam-Status')[0] ?? '', /tests=.*NIMBUS_DOMAIN\b/);
  t.regex(header(relayed, 'X-Nimbus-Report')[0] ?? '', /domain:dkim:throwaway\.test=spam\(/);
  t.regex(header(relayed, 'Authentication-Results')[0] ?? '', /dkim=pass .*header\.i=@throwaway\.test/);
});

test('a bank domain with a good name (reported as ham by the admin) lowers the score of its next message', async (t) => {
  const dns = await dnsServer(t);
  // Delivered into the gateway's own Maildir: the copy the admin reports.
  const gw = await gateway(t, authEnv(dns));
  const dir = testDir(t, 'nimbus-auth-ham-');
  const statement = await dkimSigned(plainMessage('Good Bank <alerts@goodbank.test>', 'Your statement', 'Your monthly statement is ready in online banking.'), BANK_KEY);
  const first = await swaks(gw.port, ['--xclient', 'ADDR=192.0.2.10 HELO=mail.goodbank.test', '--from', 'alerts@goodbank.test', '--to', 'alice@example.com', '--data', `@${dataFile(dir, 'statement.eml', statement)}`]);
  t.is(first.exitCode, 0, first.output);
  const [delivered] = await waitForFiles(join(gw.dataDir, 'maildir', 'new'), 1);
  const report = await runNimbus(['report', '--ham', delivered!], gw.env);
  t.is(report.code, 0, report.stderr);
  t.regex(report.stdout, /reported as ham: \d+ fingerprints learnt locally/);

  const notice = await dkimSigned(plainMessage('Good Bank <security@goodbank.test>', 'New sign-in', 'A new device signed in to your account this morning; if it was you, nothing to do.'), BANK_KEY);
  const second = await swaks(gw.port, ['--xclient', 'ADDR=198.51.100.70 HELO=mx2.goodbank.test', '--from', 'security@goodbank.test', '--to', 'alice@example.com', '--data', `@${dataFile(dir, 'notice.eml', notice)}`]);
  t.is(second.exitCode, 0, second.output);
  const files = await waitForFiles(join(gw.dataDir, 'maildir', 'new'), 2);
  const copies = files.map((path) => readFileSync(path)).filter((bytes) => bytes.includes('New sign-in'));
  t.is(copies.length, 1);
  const status = header(copies[0]!, 'X-Spam-Status')[0] ?? '';
  t.regex(status, /^No, score=-[\d.]+ required=5\.0 tests=.*NIMBUS_DOMAIN_HAM/);
  t.regex(header(copies[0]!, 'X-Nimbus-Report')[0] ?? '', /domain:dkim:goodbank\.test=ham\(/);
});
