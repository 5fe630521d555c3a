/**
 * mailauth asks through Nimbus's DNS layer (src/dns/mailauth-resolver.ts): the real DNS server on
 * loopback answers, the cache holds, and a DNS failure is `temperror`, never an exception.
 */
import test from 'ava';
import { spf } from 'mailauth';
import { DnsResolver } from '../src/dns/resolver.js';
import { mailauthResolver } from '../src/dns/mailauth-resolver.js';
import { startDnsServer } from './helpers/dns-server.js';

const CLIENT = '203.0.113.25';

async function setup(t: Parameters<typeof startDnsServer>[0], timeoutMs = 3000) {
  const dns = await startDnsServer(t, [
    {
      name: 'sender.test',
      records: {
        'sender.test': { TXT: [['v=spf1 mx -all']], MX: [{ exchange: 'mx.sender.test', preference: 10 }] },
        'mx.sender.test': { A: [CLIENT] },
        'broken.sender.test': { fail: 'SERVFAIL' },
        'slow.sender.test': { silent: true },
      },
    },
  ]);
  const resolver = new DnsResolver({ servers: [{ host: dns.host, port: dns.port }], timeoutMs });
  t!.teardown(() => resolver.close());
  return { dns, resolver };
}

test('SPF passes through the DNS layer, and a second message is answered from its cache', async (t) => {
  const { dns, resolver } = await setup(t);
  const ask = () => spf({ sender: 'news@sender.test', ip: CLIENT, helo: 'mx.sender.test', mta: 'mx.nimbus.test', resolver: mailauthResolver(resolver, resolver.budget()) });
  t.is((await ask()).status.result, 'pass');
  const asked = dns.questions.length;
  t.is((await ask()).status.result, 'pass');
  t.is(dns.questions.length, asked);
  t.is(dns.asked('sender.test', 'MX'), 1);
});

test('SERVFAIL for the SPF record is temperror', async (t) => {
  const { resolver } = await setup(t);
  const result = await spf({ sender: 'a@broken.sender.test', ip: CLIENT, mta: 'mx.nimbus.test', resolver: mailauthResolver(resolver, resolver.budget()) });
  t.is(result.status.result, 'temperror');
});

test('a DNS server that never answers is temperror once the message budget is spent', async (t) => {
  const { resolver } = await setup(t, 300);
  const started = performance.now();
  const result = await spf({ sender: 'a@slow.sender.test', ip: CLIENT, mta: 'mx.nimbus.test', resolver: mailauthResolver(resolver, resolver.budget()) });
  t.is(result.status.result, 'temperror');
  t.true(performance.now() - started < 5000);
});
