/**
 * The public DNS lists and the DNS layer under them, against a real DNS server on loopback
 * (test/helpers/dns-server.ts, UDP and TCP) serving an IP list, a domain list and a hash list:
 * listed, not listed, refused, timeout, SERVFAIL, IPv6, links, attachments, the TTL cache.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { loadConfig, type Config } from '../src/config/index.js';
import { DnsBudget } from '../src/dns/budget.js';
import { DnsResolver } from '../src/dns/resolver.js';
import { offlineRequest } from '../src/scan/offline.js';
import { dnsListsFor, resolverFor } from '../src/scan/runtime.js';
import { Scanner } from '../src/scan/scanner.js';
import type { ScanResult } from '../src/scan/types.js';
import { message } from '../fixtures/fingerprint/factory.js';
import { startDnsServer, type DnsZone, type TestDnsServer } from './helpers/dns-server.js';
import type { LogLine } from './helpers/nimbus.js';
import { testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const LISTED_IP = '203.0.113.7';
const CLEAN_IP = '203.0.113.8';
const REFUSED_IP = '203.0.113.9';
const SILENT_IP = '203.0.113.10';
const SERVFAIL_IP = '203.0.113.11';
const ODD_IP = '203.0.113.12';
const LISTED_IPV6 = '2001:db8:7ca6:22::45';
/** RFC 5782 / Spamhaus's example: 2001:db8:7ca6:22::45 in nibbles, least significant first. */
const IPV6_NIBBLES = '5.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.2.0.0.6.a.c.7.8.b.d.0.1.0.0.2';
const SPAM_DOMAIN = 'spam-shop.example';
const CLEAN_DOMAIN = 'partner.example';
const MALWARE = Buffer.from(`MZ${'\u0090'.repeat(30)}this program cannot be run in DOS mode ${'x'.repeat(200)}`, 'latin1');
const MALWARE_SHA256 = createHash('sha256').update(MALWARE).digest('hex');

/** Spamhaus's codes for ZEN, DBL's spam range, and Team Cymru's one answer (docs/admin/dns-lists.md). */
const LISTS = [
  'zen:zen.test:ip:127.0.0.2=sbl+127.0.0.3=css+127.0.0.4-127.0.0.7=xbl+127.0.0.10-127.0.0.11=pbl:3',
  'dbl:dbl.test:domain:127.0.1.2-127.0.1.99=spam+127.0.1.102-127.0.1.199=abused:4',
  'mhr:hash.test:sha256:127.0.0.2=malware:8',
].join(',');

function zones(): DnsZone[] {
  const reversed = (ip: string) => ip.split('.').reverse().join('.');
  return [
    {
      name: 'zen.test',
      negativeTtl: 900,
      records: {
        [`${reversed(LISTED_IP)}.zen.test`]: { A: ['127.0.0.2', '127.0.0.4'], ttl: 600 },
        [`${reversed(REFUSED_IP)}.zen.test`]: { A: ['127.255.255.254'] },
        [`${reversed(SILENT_IP)}.zen.test`]: { silent: true },
        [`${reversed(SERVFAIL_IP)}.zen.test`]: { fail: 'SERVFAIL' },
        [`${reversed(ODD_IP)}.zen.test`]: { A: ['198.51.100.80'] },
        [`${IPV6_NIBBLES}.zen.test`]: { A: ['127.0.0.3'] },
      },
    },
    { name: 'dbl.test', records: { [`${SPAM_DOMAIN}.dbl.test`]: { A: ['127.0.1.2'], ttl: 600 } } },
    { name: 'hash.test', records: { [`${MALWARE_SHA256.slice(0, 32)}.${MALWARE_SHA256.slice(32)}.hash.test`]: { A: ['127.0.0.2'] } } },
  ];
}

interface ListScanner {
  readonly config: Config;
  readonly logs: LogLine[];
  scan(bytes: Buffer, clientIp: string | null): Promise<ScanResult>;
}

/** The scan core with the lists of LISTS (no reputation), over the test's DNS server. */
function listScanner(t: Parameters<typeof testDir>[0], dns: TestDnsServer, env: Record<string, string> = {}): ListScanner {
  // A budget that a loaded 2-core machine does not run out of, where the budget is not the point.
  const config = loadConfig({ NIMBUS_DATA_DIR: testDir(t, 'nimbus-dns-'), NIMBUS_DNS_SERVERS: dns.address, NIMBUS_DNS_LISTS: LISTS, NIMBUS_DNS_TIMEOUT_MS: '4000', ...env });
  const logs: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const resolver = resolverFor(config);
  t.teardown(() => resolver.close());
  const scanner = new Scanner({ policy: config, lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, dnsLists: dnsListsFor(config, resolver, log), log });
  let id = 0;
  return {
    config,
    logs,
    scan: (bytes, clientIp) => {
      const request = offlineRequest(`m${++id}`, bytes);
      return scanner.scan({ ...request, client: { ...request.client, ip: clientIp } });
    },
  };
}

function textMessage(text: string, extra: Parameters<typeof message>[0]['parts'] = []): Buffer {
  return message({ parts: [{ type: 'text/plain; charset=utf-8', content: text, encoding: '7bit' }, ...extra] });
}

const plain = textMessage('Minutes of Thursday: nothing to link, nothing attached.');
const report = (result: ScanResult) => result.headers.add.find((field) => field.name === 'X-Nimbus-Report')?.value ?? '';
const status = (result: ScanResult, name: string) => result.dnsLists.find((list) => list.name === name)?.status;

test('a client listed by an IP list scores the list weight, shows NIMBUS_DNSBL_ZEN in tests= and what the answers mean in X-Nimbus-Report', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan } = listScanner(t, dns);
  const result = await scan(plain, LISTED_IP);
  t.is(status(result, 'zen'), 'listed');
  t.is(result.score, 3);
  t.deepEqual(result.tests, ['NIMBUS_DNSBL_ZEN']);
  t.regex(report(result), /^dnsbl:zen=listed\(sbl\+xbl\)/);
  t.deepEqual(result.dnsLists.find((list) => list.name === 'zen')!.hits, [{ item: LISTED_IP, answers: ['127.0.0.2', '127.0.0.4'], meanings: ['sbl', 'xbl'] }]);
  t.is(dns.asked('7.113.0.203.zen.test', 'A'), 1);
  t.is(status(result, 'dbl'), 'not-asked', 'a message without links asks the domain list nothing');
  t.is(status(result, 'mhr'), 'not-asked');
});

test('a client the list does not know (NXDOMAIN) adds nothing and shows nothing, and a private client is never asked about', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan } = listScanner(t, dns);
  const clean = await scan(plain, CLEAN_IP);
  t.is(status(clean, 'zen'), 'not-listed');
  t.is(clean.score, 0);
  t.deepEqual(clean.tests, []);
  t.is(report(clean), '');
  const local = await scan(plain, '192.168.1.20');
  t.is(status(local, 'zen'), 'not-asked');
  t.false(dns.questions.some((question) => question.name.endsWith('168.192.zen.test')), 'a private address says nothing about a sender, and is nobody else\'s business');
});

test('a refusal answer (Spamhaus 127.255.255.254 to a public resolver) is never counted as listed, and is logged loudly once per list', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan, logs } = listScanner(t, dns);
  const first = await scan(plain, REFUSED_IP);
  const second = await scan(textMessage('another message from the same client'), REFUSED_IP);
  for (const result of [first, second]) {
    t.is(status(result, 'zen'), 'refused');
    t.is(result.score, 0);
    t.false(result.tests.includes('NIMBUS_DNSBL_ZEN'));
    t.regex(report(result), /dnsbl:zen=refused\(127\.255\.255\.254\)/);
  }
  const refusals = logs.filter((line) => line.event === 'dns.list_refused');
  t.is(refusals.length, 1, 'once per list, not once per message');
  t.is(refusals[0]!.level, 50, 'at error level');
  t.is(refusals[0]!.list, 'zen');
  t.is(refusals[0]!.answer, '127.255.255.254');
});

test('an answer outside 127.0.0.0/8 (a resolver rewriting NXDOMAIN) is not counted, and is logged once', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan, logs } = listScanner(t, dns);
  const result = await scan(plain, ODD_IP);
  await scan(plain, ODD_IP);
  t.is(status(result, 'zen'), 'not-listed');
  t.is(result.score, 0);
  t.is(logs.filter((line) => line.event === 'dns.list_unexpected_answer').length, 1);
});

test('a list that never answers costs the message its DNS budget and no more: the verdict comes on time, with NIMBUS_DNS_TEMPERROR', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan, logs } = listScanner(t, dns, { NIMBUS_DNS_TIMEOUT_MS: '400', NIMBUS_SCAN_TIMEOUT_MS: '20000' });
  const result = await scan(plain, SILENT_IP);
  t.is(result.outcome, 'scanned', 'the scan itself did not time out');
  // lookupMs is the time spent asking (the reputation lookup and the lists beside it), parsing apart.
  const ms = result.timings.lookupMs;
  t.true(ms >= 350 && ms < 1500, `the lists took ${Math.round(ms)} ms for a 400 ms DNS budget`);
  t.is(status(result, 'zen'), 'temperror');
  t.is(result.verdict, 'unknown');
  t.deepEqual(result.tests, ['NIMBUS_DNS_TEMPERROR']);
  t.regex(report(result), /dnsbl:zen=temperror\((budget|timeout)\)/);
  t.true(dns.asked('10.113.0.203.zen.test', 'A') >= 1, 'the list was asked');
  await waitFor('the list noted as failing once c-ares gave up', async () => {
    await scan(plain, SILENT_IP);
    return logs.some((line) => line.event === 'dns.list_failing');
  }, 10_000);
});

test('SERVFAIL is a temperror, never a listing, and is kept a little while so the next message does not ask again', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan, logs } = listScanner(t, dns);
  const result = await scan(plain, SERVFAIL_IP);
  t.is(status(result, 'zen'), 'temperror');
  t.is(result.dnsLists[0]!.failure, 'servfail');
  t.regex(report(result), /dnsbl:zen=temperror\(servfail\)/);
  t.deepEqual(result.tests, ['NIMBUS_DNS_TEMPERROR']);
  const asked = dns.asked('11.113.0.203.zen.test', 'A');
  const again = await scan(plain, SERVFAIL_IP);
  t.is(status(again, 'zen'), 'temperror');
  t.is(dns.asked('11.113.0.203.zen.test', 'A'), asked, 'the failure was cached');
  t.is(logs.filter((line) => line.event === 'dns.list_failing').length, 1);
  // The list answers again for another client: said once.
  await scan(plain, LISTED_IP);
  t.is(logs.filter((line) => line.event === 'dns.list_recovered').length, 1);
});

test('an IPv6 client is asked as its 32 nibbles reversed, and an ip4 list is not asked about it', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan } = listScanner(t, dns, { NIMBUS_DNS_LISTS: `${LISTS},cop:zen.test:ip4:127.0.0.3=cop:1` });
  const result = await scan(plain, LISTED_IPV6);
  t.is(status(result, 'zen'), 'listed');
  t.regex(report(result), /dnsbl:zen=listed\(css\)/);
  t.is(dns.asked(`${IPV6_NIBBLES}.zen.test`, 'A'), 1, 'one question: the ip list and the ip4 list would share it, and the ip4 list did not ask');
  t.is(status(result, 'cop'), 'not-asked');
  t.is(result.score, 3);
});

test('a domain list is asked the registrable domain of each link, once per domain, and a listed one counts the list once', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan } = listScanner(t, dns);
  const links = textMessage(`Order at https://www.${SPAM_DOMAIN}/buy?id=1 or https://shop.${SPAM_DOMAIN}/cart, see https://${CLEAN_DOMAIN}/news and http://192.0.2.55/x`);
  const result = await scan(links, null);
  t.is(status(result, 'dbl'), 'listed');
  t.is(result.score, 4);
  t.deepEqual(result.tests, ['NIMBUS_DNSBL_DBL']);
  t.regex(report(result), /dnsbl:dbl=listed\(spam\)/);
  t.is(dns.asked(`${SPAM_DOMAIN}.dbl.test`), 1, 'two links to one registrable domain: one question');
  t.is(dns.asked(`www.${SPAM_DOMAIN}.dbl.test`), 0, 'never the host name, which would tell the list more than it needs');
  t.is(dns.asked(`${CLEAN_DOMAIN}.dbl.test`), 1);
  t.false(dns.questions.some((question) => question.name.startsWith('192.0.2.55') || question.name.includes('55.2.0.192')), 'an IP literal is no domain');
});

test('a hash list is asked each attachment\'s SHA-256 as two 32-digit labels, and a listed one counts its weight', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan } = listScanner(t, dns);
  const withAttachment = textMessage('the invoice you asked for', [{ type: 'application/octet-stream', content: MALWARE, filename: 'invoice.exe' }]);
  const result = await scan(withAttachment, null);
  t.is(status(result, 'mhr'), 'listed');
  t.is(result.score, 8);
  t.is(result.verdict, 'spam');
  t.deepEqual(result.tests, ['NIMBUS_DNSBL_MHR']);
  t.regex(report(result), /dnsbl:mhr=listed\(malware\)/);
  t.is(dns.asked(`${MALWARE_SHA256.slice(0, 32)}.${MALWARE_SHA256.slice(32)}.hash.test`, 'A'), 1);
});

test('answers are kept for their TTL: a second message from the same client with the same links and attachment asks the server nothing', async (t) => {
  const dns = await startDnsServer(t, zones());
  const { scan } = listScanner(t, dns);
  const spam = () => textMessage(`Cheap at https://${SPAM_DOMAIN}/ and https://${CLEAN_DOMAIN}/`, [{ type: 'application/octet-stream', content: MALWARE, filename: 'a.exe' }]);
  const first = await scan(spam(), LISTED_IP);
  const asked = dns.questions.length;
  t.true(asked >= 4, 'the first message asked the client, two domains and the hash');
  const second = await scan(spam(), LISTED_IP);
  t.is(dns.questions.length, asked, `nothing more was asked: ${JSON.stringify(dns.questions.slice(asked))}`);
  t.deepEqual(second.tests, first.tests);
  t.is(second.score, 3 + 4 + 8);
  t.true(second.dnsLists.every((list) => list.cached === list.queries));
});

test('a negative answer is kept for the list zone\'s SOA minimum (RFC 2308), read once alongside the first query', async (t) => {
  const dns = await startDnsServer(t, [{ name: 'short.test', negativeTtl: 1 }]);
  const resolver = new DnsResolver({ servers: [{ host: dns.host, port: dns.port }], timeoutMs: 5000 });
  t.teardown(() => resolver.close());
  const ask = () => resolver.a('8.113.0.203.short.test', new DnsBudget(5000), { zone: 'short.test' });
  const first = await ask();
  t.deepEqual(first, { result: { status: 'nxdomain' }, cached: false });
  await waitFor('the zone\'s SOA read', () => dns.asked('short.test', 'SOA') >= 1);
  const soaQuestions = dns.asked('short.test', 'SOA');
  const nameQuestions = dns.asked('8.113.0.203.short.test');
  t.deepEqual(await ask(), { result: { status: 'nxdomain' }, cached: true });
  // With the default of five minutes this would never happen within the wait; with the SOA's one second it does.
  await waitFor('the negative answer expired after the SOA minimum', async () => (await ask()).cached === false, 10_000);
  t.true(dns.asked('8.113.0.203.short.test') > nameQuestions, 'asked again once expired');
  t.is(dns.asked('short.test', 'SOA'), soaQuestions, 'the SOA minimum is itself kept');
});

test('the DNS layer reads a TXT record too large for UDP over TCP, as a DKIM key needs', async (t) => {
  const key = `v=DKIM1; k=rsa; p=${'A'.repeat(230)}`; // a TXT string holds at most 255 characters
  const dns = await startDnsServer(t, [{ name: 'example.test', records: { 'sel._domainkey.example.test': { TXT: [[key, 'B'.repeat(250), 'C'.repeat(250), 'D'.repeat(250), 'E'.repeat(250)]] } } }]);
  const resolver = new DnsResolver({ servers: [{ host: dns.host, port: dns.port }], timeoutMs: 5000 });
  t.teardown(() => resolver.close());
  const answer = await resolver.txt('sel._domainkey.example.test', new DnsBudget(5000));
  t.is(answer.result.status, 'ok');
  t.deepEqual(answer.result.status === 'ok' ? answer.result.records[0]![0] : null, key);
  const transports = dns.questions.map((question) => question.transport);
  t.is(transports[0], 'udp', 'asked over UDP first');
  t.is(transports.at(-1), 'tcp', 'truncated over UDP, asked again over TCP');
});

test('a DNS failure is a result, never an exception: a refused query and a dead resolver both come back as temperror', async (t) => {
  const dns = await startDnsServer(t, [{ name: 'known.test' }]);
  const resolver = new DnsResolver({ servers: [{ host: dns.host, port: dns.port }], timeoutMs: 5000 });
  t.teardown(() => resolver.close());
  const outside = await resolver.a('elsewhere.example', new DnsBudget(5000));
  t.like(outside.result, { status: 'temperror', reason: 'refused' });
  await dns.stop();
  const dead = await resolver.a('x.known.test', new DnsBudget(300));
  t.is(dead.result.status, 'temperror');
});
