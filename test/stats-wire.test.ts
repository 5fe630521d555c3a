import test from 'ava';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { STATEMENT, isSendableFingerprint, toWireRecord, type LocalRecord } from '../src/stats/index.js';
import { exampleRecord, SAMPLE_RECORD } from '../src/stats/statement.js';
import { runNimbus } from './helpers/nimbus.js';

/** A message full of personal data: addresses, a subject, names, a URL with an address and token. */
const RAW = Buffer.from(
  [
    'Received: from mx.example.net (mx.example.net [198.51.100.23]) by gw.example.com',
    'From: Alice Example <alice@example.org>',
    'To: bob.private@example.com',
    'Subject: Secret project Bluebird for Bob',
    'Message-ID: <unique-123@example.org>',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>Dear Bob Private, the confidential quarterly numbers for project Bluebird are attached below.',
    'Please review the figures before Monday and call me at home; do not forward this message to anyone.',
    'Click <a href="https://tracker.example.biz/open?to=bob.private%40example.com&amp;token=s3cr3t">here</a>',
    'or mail me at <a href="mailto:alice@example.org">alice@example.org</a>. Regards, Alice Example</p>',
    '',
  ].join('\r\n'),
);
const PERSONAL = ['alice', 'bob', 'private', 'example.org', 'example.com', 'Bluebird', 'Secret', 'confidential', 'tracker.example.biz/open', 's3cr3t', '198.51.100.23', 'unique-123'];

async function localRecord(): Promise<LocalRecord> {
  const fp = await fingerprintMessage(RAW, { clientIp: '198.51.100.23' });
  return {
    id: 'r-1',
    time: Date.now(),
    fingerprints: fp.fingerprints.map((f) => ({ text: f.text, ...(f.label ? { label: f.label } : {}) })),
    verdict: 'spam',
    score: 9,
    action: 'tag',
    size: RAW.length,
    urls: fp.urls,
    attachments: fp.attachments,
  };
}

test('off sends nothing at all', async (t) => {
  t.is(toWireRecord(await localRecord(), 'off'), null);
  t.false(isSendableFingerprint('url:domain:example.biz', 'off'));
});

test('standard sends no address, subject, text, IP in the clear or full URL of a real message', async (t) => {
  const record = await localRecord();
  t.true(record.fingerprints.some((f) => f.text.startsWith('url:sha256:')), 'the message does have a full-URL fingerprint locally');
  const wire = toWireRecord(record, 'standard')!;
  const bytes = JSON.stringify(wire);
  for (const word of PERSONAL) t.false(bytes.toLowerCase().includes(word.toLowerCase()), `"${word}" leaked: ${bytes}`);
  t.deepEqual(Object.keys(wire).sort(), ['action', 'fingerprints', 'id', 'score', 'time', 'verdict']);
  t.false(wire.fingerprints.some((f) => f.startsWith('url:sha256:')));
  t.true(wire.fingerprints.includes('url:domain:example.biz'));
  t.true(wire.fingerprints.some((f) => f.startsWith('ip:sha256:')));
});

test('extended adds exactly the fields the statement lists: full URLs, their checksums, attachment types and sizes, message size', async (t) => {
  const record = await localRecord();
  const standard = toWireRecord(record, 'standard')!;
  const extended = toWireRecord(record, 'extended')!;
  const added = Object.keys(extended).filter((key) => !(key in standard)).sort();
  const listed = STATEMENT.extended.map((e) => e.field).filter((f) => f !== '(standard)' && !(f in standard)).sort();
  t.deepEqual(added, listed);
  t.deepEqual(extended.urls, ['https://tracker.example.biz/open?to=bob.private%40example.com&token=s3cr3t']);
  const extraPrints = extended.fingerprints.filter((f) => !standard.fingerprints.includes(f));
  t.true(extraPrints.length > 0 && extraPrints.every((f) => f.startsWith('url:sha256:')));
  // Still never: sender/recipient addresses from headers, subject or text.
  const bytes = JSON.stringify(extended);
  for (const word of ['alice', 'Bluebird', 'Secret', 'confidential', '198.51.100.23']) t.false(bytes.includes(word), word);
});

test('isSendableFingerprint admits checksums and bare domains only, full-URL hashes in extended only', (t) => {
  const hex = 'ab'.repeat(32);
  t.true(isSendableFingerprint(`ip:sha256:${hex}`, 'standard'));
  t.true(isSendableFingerprint(`body:minhash64:${hex}`, 'standard'));
  t.true(isSendableFingerprint('url:domain:example.co.uk', 'standard'));
  t.false(isSendableFingerprint(`url:sha256:${hex}`, 'standard'));
  t.true(isSendableFingerprint(`url:sha256:${hex}`, 'extended'));
  t.false(isSendableFingerprint('ip:plain:203.0.113.7', 'extended'), 'an IP in the clear is never sendable');
  t.false(isSendableFingerprint('url:domain:alice@example.org', 'extended'));
  t.false(isSendableFingerprint('url:domain:example.biz/path?u=1', 'extended'));
  t.false(isSendableFingerprint('url:full:https://example.biz/', 'extended'));
  t.false(isSendableFingerprint('body:text:hello world', 'extended'));
  t.true(isSendableFingerprint('domain:dkim:mail.example.com', 'standard'), 'a verified sender domain is a bare domain');
  const fingerprintsSent = STATEMENT.standard.find((entry) => entry.field === 'fingerprints')?.what ?? '';
  for (const form of ['domain:dkim:', 'domain:spf:', 'domain:dmarc:']) t.true(fingerprintsSent.includes(form), `the statement names ${form}`);
  t.false(isSendableFingerprint('domain:dkim:alice@example.com', 'extended'));
  t.false(isSendableFingerprint('domain:whois:example.com', 'extended'));
});

test('nimbus statement prints the very records wire.ts sends for its sample message', async (t) => {
  const { stdout } = await runNimbus(['statement', '--json'], {});
  const printed = JSON.parse(stdout) as { modes: Record<string, { sends: unknown; example: unknown }> };
  t.is(printed.modes.off?.example, null);
  t.deepEqual(printed.modes.standard?.example, toWireRecord(SAMPLE_RECORD, 'standard'));
  t.deepEqual(printed.modes.extended?.example, exampleRecord('extended'));
  t.deepEqual(printed.modes.extended?.sends, STATEMENT.extended);
  const text = (await runNimbus(['statement'], {})).stdout;
  t.true(text.includes(JSON.stringify(toWireRecord(SAMPLE_RECORD, 'standard'), null, 2).split('\n')[3]!.trim()));
  t.false(text.split('== extended ==')[0]!.includes('alice%40example.org'), 'the standard part shows no full URL');
});

test('nimbus statement names each configured public DNS list and what it is told, also before the statement is accepted', async (t) => {
  const env = {
    // Not loadable as a whole (standard without acceptance): the statement is read before accepting.
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_DNS_LISTS: 'zen:zen.spamhaus.org:ip:127.0.0.2=sbl:3,dbl:dbl.spamhaus.org:domain,mhr:hash.cymru.com:sha256',
  };
  const text = await runNimbus(['statement'], env);
  t.is(text.code, 0, text.stderr);
  const section = text.stdout.split('== Public DNS lists (NIMBUS_DNS_LISTS) ==')[1] ?? '';
  t.regex(section, /zen \(zen\.spamhaus\.org\): the sending client's IP address/);
  t.regex(section, /dbl \(dbl\.spamhaus\.org\): the registrable domain of each link/);
  t.regex(section, /mhr \(hash\.cymru\.com\): the SHA-256 of each attachment/);
  t.regex(section, /stays on this host/);
  const json = JSON.parse((await runNimbus(['statement', '--json'], env)).stdout) as { dnsLists: { name: string; zone: string; kind: string; tells: string }[] };
  t.deepEqual(json.dnsLists.map((list) => [list.name, list.zone, list.kind]), [['zen', 'zen.spamhaus.org', 'ip'], ['dbl', 'dbl.spamhaus.org', 'domain'], ['mhr', 'hash.cymru.com', 'sha256']]);
  const none = await runNimbus(['statement'], {});
  t.regex(none.stdout, /No list is configured: nothing is asked\./);
});
