/**
 * SPF and DMARC results are kept while the DNS answers they read are cached, and no longer
 * (src/scan/auth-result-cache.ts): against a real DNS server on loopback whose records the tests
 * change, a kept result never hides a changed record past its TTL, and a message with other inputs
 * (another client, another From) is evaluated afresh.
 */
import test from 'ava';
import { spf, type SPFResult } from 'mailauth';
import { Readable } from 'node:stream';
import { mailauthResolver } from '../src/dns/mailauth-resolver.js';
import { DnsResolver } from '../src/dns/resolver.js';
import { createLogger } from '../src/log.js';
import { AuthResultCache } from '../src/scan/auth-result-cache.js';
import { Authenticator, type AuthenticationResults } from '../src/scan/authentication.js';
import { startDnsServer, type DnsRecords } from './helpers/dns-server.js';
import { dkimKey, dkimSigned, plainMessage } from './helpers/mail-auth.js';

const HOSTNAME = 'mx.nimbus.test';
const SENDER_IP = '203.0.113.25';
const OTHER_IP = '198.51.100.77';
const SENDER_KEY = dkimKey('sender.test');

async function setup(t: Parameters<typeof startDnsServer>[0], records: Record<string, DnsRecords> = {}) {
  const dns = await startDnsServer(t, [{
    name: 'sender.test',
    records: {
      // `a:`: the SPF result hangs on an address record whose TTL the tests choose.
      'sender.test': { TXT: [['v=spf1 a:mta.sender.test -all']] },
      'mta.sender.test': { A: [SENDER_IP], ttl: 1 },
      [SENDER_KEY.name]: SENDER_KEY.record,
      '_dmarc.sender.test': { TXT: [['v=DMARC1; p=reject']] },
      'broken.sender.test': { fail: 'SERVFAIL' },
      ...records,
    },
  }]);
  const resolver = new DnsResolver({ servers: [{ host: dns.host, port: dns.port }], timeoutMs: 3000 });
  t!.teardown(() => resolver.close());
  const authenticator = new Authenticator({ resolver, hostname: HOSTNAME, log: createLogger('silent') });
  const check = async (message: Buffer, ip: string, mailFrom = 'news@sender.test', helo = 'mta.sender.test'): Promise<AuthenticationResults> =>
    authenticator.check({ message, envelope: { mailFrom, rcptTo: ['bob@example.com'] }, client: { ip, helo, name: null, trusted: false }, budget: resolver.budget() }, 'cache-test');
  return { dns, resolver, check };
}

const newsletter = () => plainMessage('News <news@sender.test>', 'Spring offers', 'Our spring offers are here for you this week only, with free delivery.');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('an SPF result is evaluated once while its DNS answers are cached; another client, sender or HELO is evaluated afresh', async (t) => {
  const { resolver } = await setup(t);
  const cache = new AuthResultCache<SPFResult>(resolver);
  let evaluations = 0;
  const ask = (ip: string, sender = 'news@sender.test', helo = 'mta.sender.test') => cache.result(`${ip}\n${sender}\n${helo}`, mailauthResolver(resolver, resolver.budget()), (noting) => {
    evaluations += 1;
    return spf({ sender, ip, helo, mta: HOSTNAME, resolver: noting });
  }, (result) => result.status.result === 'temperror');
  const first = await ask(SENDER_IP);
  t.is(first.status.result, 'pass');
  t.is(await ask(SENDER_IP), first);
  t.is(evaluations, 1);
  t.is((await ask(OTHER_IP)).status.result, 'fail');
  t.is((await ask(SENDER_IP, 'offers@sender.test')).info, first.info.replace('news@', 'offers@').replace('news@', 'offers@'));
  t.is((await ask(SENDER_IP, 'news@sender.test', 'other.sender.test')).status.result, 'pass');
  t.is(evaluations, 4);
  t.is(cache.size, 4);
});

test('a kept SPF result ends with the shortest TTL of the answers it read: a changed address record is seen once its 1 s TTL is over', async (t) => {
  const { dns, check } = await setup(t);
  const message = await dkimSigned(newsletter(), SENDER_KEY);
  t.is((await check(message, SENDER_IP)).spf?.result, 'pass');
  dns.set('mta.sender.test', { A: [OTHER_IP], ttl: 1 });
  // Within the TTL the DNS layer itself still answers with the old address: the same result.
  t.is((await check(message, SENDER_IP)).spf?.result, 'pass');
  await sleep(1200);
  const after = await check(message, SENDER_IP);
  t.is(after.spf?.result, 'fail');
  t.is(dns.asked('mta.sender.test', 'A'), 2);
  // DMARC, read from the new SPF result, still passes on the DKIM signature.
  t.is(after.dmarc?.result, 'pass');
});

test('a temperror is not kept: the next message is evaluated afresh', async (t) => {
  const { resolver } = await setup(t);
  const cache = new AuthResultCache<SPFResult>(resolver);
  let evaluations = 0;
  const ask = () => cache.result(`${SENDER_IP}\na@broken.sender.test\nmta.sender.test`, mailauthResolver(resolver, resolver.budget()), (noting) => {
    evaluations += 1;
    return spf({ sender: 'a@broken.sender.test', ip: SENDER_IP, helo: 'mta.sender.test', mta: HOSTNAME, resolver: noting });
  }, (result) => result.status.result === 'temperror');
  t.is((await ask()).status.result, 'temperror');
  t.is((await ask()).status.result, 'temperror');
  t.is(evaluations, 2);
  t.is(cache.size, 0);
});

test('DMARC is evaluated afresh for other identities: a forged copy from another address fails where the signed one passed', async (t) => {
  const { check } = await setup(t);
  const signed = await check(await dkimSigned(newsletter(), SENDER_KEY), SENDER_IP);
  t.is(signed.dmarc?.result, 'pass');
  const forged = await check(newsletter(), OTHER_IP);
  t.is(forged.spf?.result, 'fail');
  t.is(forged.dmarc?.result, 'fail');
  t.is(forged.dmarc?.policy, 'reject');
  t.deepEqual(forged.resinfo.at(-1), signed.resinfo.at(-1)?.replace('dmarc=pass', 'dmarc=fail'));
  t.is((await check(await dkimSigned(newsletter(), SENDER_KEY), SENDER_IP)).dmarc?.result, 'pass');
});
