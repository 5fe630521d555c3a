/**
 * SPF, DKIM, DMARC and ARC in the scan core, against a real DNS server on loopback serving the
 * sender's SPF record, DKIM keys made in the test and DMARC policies; messages signed with
 * mailauth's signer. Each result shows in Authentication-Results, in tests= with its points, and
 * in the `domain` fingerprints, which only a verified identity gets.
 */
import test from 'ava';
import { Readable } from 'node:stream';
import { createLogger } from '../src/log.js';
import { DnsResolver } from '../src/dns/resolver.js';
import { Authenticator } from '../src/scan/authentication.js';
import { Scanner } from '../src/scan/scanner.js';
import type { ScanRequest, ScanResult } from '../src/scan/types.js';
import { startDnsServer, type DnsRecords, type TestDnsServer } from './helpers/dns-server.js';
import { arcSealed, dkimKey, dkimSigned, plainMessage, type DkimKey } from './helpers/mail-auth.js';

const silent = createLogger('silent');
const HOSTNAME = 'mx.nimbus.test';
const SENDER_IP = '203.0.113.25';
const OTHER_IP = '198.51.100.77';

/** One key per domain for the whole file: making RSA keys is the slow part. */
const SENDER_KEY = dkimKey('sender.test');
const FORGER_KEY = dkimKey('sender.test');
const LIST_KEY = dkimKey('lists.test');

function records(overrides: Record<string, DnsRecords> = {}): Record<string, DnsRecords> {
  return {
    'sender.test': { TXT: [['v=spf1 ip4:203.0.113.0/24 -all']] },
    'soft.sender.test': { TXT: [['v=spf1 ip4:203.0.113.0/24 ~all']] },
    [SENDER_KEY.name]: SENDER_KEY.record,
    '_dmarc.sender.test': { TXT: [['v=DMARC1; p=reject']] },
    'lists.test': { TXT: [['v=spf1 ip4:198.51.100.0/24 -all']] },
    [LIST_KEY.name]: LIST_KEY.record,
    ...overrides,
  };
}

async function scanner(t: Parameters<typeof startDnsServer>[0], zoneRecords = records(), timeoutMs = 3000): Promise<{ scanner: Scanner; dns: TestDnsServer }> {
  const dns = await startDnsServer(t, [
    { name: 'sender.test', records: Object.fromEntries(Object.entries(zoneRecords).filter(([name]) => name.endsWith('sender.test'))) },
    { name: 'lists.test', records: Object.fromEntries(Object.entries(zoneRecords).filter(([name]) => name.endsWith('lists.test'))) },
  ]);
  const resolver = new DnsResolver({ servers: [{ host: dns.host, port: dns.port }], timeoutMs });
  t!.teardown(() => resolver.close());
  const policy = { tagScore: 5, rejectScore: 15, spamAction: 'tag', subjectTag: '', weights: { ip: 0, net: 0, attachment: 0, image: 0, url: 0, body: 0, domain: 6 }, spamtraps: [], scanTimeoutMs: 20_000, dmarcRejectWeight: 4 } as const;
  const authentication = new Authenticator({ resolver, hostname: HOSTNAME, log: silent });
  return { scanner: new Scanner({ policy, lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, authentication, log: silent }), dns };
}

function request(bytes: Buffer, options: { ip?: string; mailFrom?: string; helo?: string } = {}): ScanRequest {
  return {
    id: 'auth-test',
    message: { size: bytes.length, read: async () => bytes, stream: () => Readable.from([bytes]) },
    envelope: { mailFrom: options.mailFrom ?? 'news@sender.test', rcptTo: ['bob@example.com'] },
    client: { ip: options.ip ?? SENDER_IP, helo: options.helo ?? 'mail.sender.test', name: null, trusted: false },
  };
}

const authResults = (result: ScanResult) => result.headers.add.find((field) => field.name === 'Authentication-Results')?.value ?? '';
const domainFingerprints = (result: ScanResult) => (result.evidence?.fingerprints ?? []).filter((f) => f.kind === 'domain').map((f) => f.text).sort();
const newsletter = (text = 'Our spring offers are here for you this week only, with free delivery.') => plainMessage('News <news@sender.test>', 'Spring offers', text);

test('a message signed by its domain from a permitted address passes SPF, DKIM and DMARC, and its domain is fingerprinted three ways', async (t) => {
  const { scanner: scan } = await scanner(t);
  const result = await scan.scan(request(await dkimSigned(newsletter(), SENDER_KEY)));
  t.regex(authResults(result), /^mx\.nimbus\.test; spf=pass .*smtp\.mailfrom=news@sender\.test.*; dkim=pass .*header\.i=@sender\.test header\.s=s1.*; dmarc=pass .*header\.from=sender\.test/);
  t.deepEqual(domainFingerprints(result), ['domain:dkim:sender.test', 'domain:dmarc:sender.test', 'domain:spf:sender.test']);
  t.deepEqual(result.tests, []);
  t.deepEqual(result.headers.removeAuthservIds, [HOSTNAME]);
});

test('SPF fail, softfail and none: named in tests= with their points, and no spf fingerprint', async (t) => {
  const { scanner: scan } = await scanner(t);
  const fail = await scan.scan(request(newsletter(), { ip: OTHER_IP }));
  t.regex(authResults(fail), /spf=fail /);
  t.true(fail.tests.includes('NIMBUS_SPF_FAIL'));
  const soft = await scan.scan(request(newsletter(), { ip: OTHER_IP, mailFrom: 'news@soft.sender.test' }));
  t.regex(authResults(soft), /spf=softfail /);
  t.true(soft.tests.includes('NIMBUS_SPF_SOFTFAIL'));
  const none = await scan.scan(request(newsletter(), { mailFrom: 'news@nothing.sender.test' }));
  t.regex(authResults(none), /spf=none /);
  t.false(none.tests.some((name) => name.startsWith('NIMBUS_SPF')));
  for (const result of [fail, soft, none]) t.false(domainFingerprints(result).some((text) => text.startsWith('domain:spf:')));
  const local = await scan.scan(request(newsletter(), { ip: '10.1.2.3' }));
  t.notRegex(authResults(local), /spf=/, 'a private client address (an MTA that passed no client) is not SPF-checked');
});

test("a signature forged with another key fails DKIM and DMARC p=reject: scored, never fingerprinted, and not rejected on its own", async (t) => {
  const { scanner: scan } = await scanner(t);
  const result = await scan.scan(request(await dkimSigned(newsletter(), FORGER_KEY), { ip: OTHER_IP }));
  t.regex(authResults(result), /dkim=fail .*header\.i=@sender\.test/);
  t.regex(authResults(result), /dmarc=fail /);
  t.deepEqual(result.tests, ['NIMBUS_SPF_FAIL', 'NIMBUS_DKIM_FAIL', 'NIMBUS_DMARC_REJECT']);
  t.is(result.score, 6);
  t.is(result.action, 'tag');
  t.deepEqual(domainFingerprints(result), []);
});

test('a body changed after signing does not verify (mailauth says neutral): no dkim fingerprint, SPF still vouches', async (t) => {
  const { scanner: scan } = await scanner(t);
  const signed = await dkimSigned(newsletter(), SENDER_KEY);
  const changed = Buffer.from(signed.toString('latin1').replace('free delivery', 'a free gift card'), 'latin1');
  const result = await scan.scan(request(changed));
  t.regex(authResults(result), /dkim=neutral \(body hash did not verify\)/);
  t.false(domainFingerprints(result).includes('domain:dkim:sender.test'));
  t.true(domainFingerprints(result).includes('domain:spf:sender.test'), 'SPF still vouches for the envelope domain');
});

test('relaxed canonicalisation survives a header re-folded in transit; simple does not', async (t) => {
  const { scanner: scan } = await scanner(t);
  const refold = (bytes: Buffer) => Buffer.from(bytes.toString('latin1').replace('Subject: Spring offers', 'Subject:  Spring\r\n offers'), 'latin1');
  const relaxed = await scan.scan(request(refold(await dkimSigned(newsletter(), SENDER_KEY, 'relaxed/relaxed'))));
  t.regex(authResults(relaxed), /dkim=pass /);
  const simple = await scan.scan(request(refold(await dkimSigned(newsletter(), SENDER_KEY, 'simple/simple'))));
  t.regex(authResults(simple), /dkim=fail /);
  const simpleUntouched = await scan.scan(request(await dkimSigned(newsletter(), SENDER_KEY, 'simple/simple')));
  t.regex(authResults(simpleUntouched), /dkim=pass /);
});

test('an ARC chain sealed by a mailing list verifies: arc=pass', async (t) => {
  const { scanner: scan } = await scanner(t);
  const original = await dkimSigned(newsletter(), SENDER_KEY);
  const sealed = await arcSealed(original, LIST_KEY, 'lists.test; dkim=pass header.d=sender.test; spf=pass smtp.mailfrom=sender.test', 'none');
  const result = await scan.scan(request(sealed, { ip: '198.51.100.10', mailFrom: 'bounces@lists.test' }));
  t.regex(authResults(result), /arc=pass /);
  t.true(domainFingerprints(result).includes('domain:spf:lists.test'));
});

test('SERVFAIL and a DNS server that never answers give temperror and NIMBUS_AUTH_TEMPERROR; the scan still decides', async (t) => {
  const { scanner: failing } = await scanner(t, records({ 'sender.test': { fail: 'SERVFAIL' }, [SENDER_KEY.name]: { fail: 'SERVFAIL' }, '_dmarc.sender.test': { fail: 'SERVFAIL' } }));
  const servfail = await failing.scan(request(await dkimSigned(newsletter(), SENDER_KEY)));
  t.is(servfail.outcome, 'scanned');
  t.regex(authResults(servfail), /spf=temperror /);
  t.regex(authResults(servfail), /dkim=temperror /);
  t.deepEqual(servfail.tests, ['NIMBUS_AUTH_TEMPERROR']);
  t.deepEqual(domainFingerprints(servfail), []);

  const { scanner: slow } = await scanner(t, records({ 'sender.test': { silent: true }, [SENDER_KEY.name]: { silent: true }, '_dmarc.sender.test': { silent: true } }), 400);
  const started = performance.now();
  const timeout = await slow.scan(request(await dkimSigned(newsletter(), SENDER_KEY)));
  t.is(timeout.outcome, 'scanned');
  t.true(performance.now() - started < 10_000);
  t.regex(authResults(timeout), /spf=temperror /);
  t.true(timeout.tests.includes('NIMBUS_AUTH_TEMPERROR'));
  t.deepEqual(domainFingerprints(timeout), []);
});
