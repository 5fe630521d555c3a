/**
 * The DKIM fast path (src/scan/dkim-fast-path.ts) against mailauth's own verifier, message by
 * message: where the fast path answers, its answer is mailauth's (From addresses, each row's
 * domain, selector, id, status and Authentication-Results text); where the message is not the
 * plain case (a failure, l=, x=, ARC, a bare LF, a key mailauth refuses) it gives none, so
 * mailauth decides. Messages signed with mailauth's signer, keys served by a resolver in memory.
 */
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { dkimSign, dkimVerify, type DKIMVerifyResult } from 'mailauth';
import { DkimKeyCache } from '../src/scan/dkim-key-cache.js';
import { dkimFastPath, type DkimOutcome } from '../src/scan/dkim-fast-path.js';
import { MIN_KEY_BITS } from '../src/scan/authentication.js';
import { arcSealed, dkimKey, dkimSigned, plainMessage, type DkimKey } from './helpers/mail-auth.js';

const SENDER = dkimKey('sender.test');
const LIST = dkimKey('lists.test', 'l1');
const FORGER = dkimKey('sender.test');
const ED25519 = ed25519Key('sender.test', 'ed');
const SHORT = shortKey('sender.test', 'short');

/** An Ed25519 key (RFC 8463): `p=` is the raw 32-byte key. */
function ed25519Key(domain: string, selector: string): DkimKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
  return { domain, selector, privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), name: `${selector}._domainkey.${domain}`, record: { TXT: [[`v=DKIM1; k=ed25519; p=${raw}`]] } };
}

/** A 512-bit RSA key: below MIN_KEY_BITS, so mailauth gives `policy`. */
function shortKey(domain: string, selector: string): DkimKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 512 });
  const der = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return { domain, selector, privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), name: `${selector}._domainkey.${domain}`, record: { TXT: [[`v=DKIM1; k=rsa; p=${der}`]] } };
}

const PUBLISHED = new Map<string, string[][]>([SENDER, LIST, ED25519, SHORT].map((key) => [key.name, key.record.TXT as string[][]]));

/** mailauth's resolver contract: records, or an error with Node's code. */
async function resolver(name: string, rrtype: string): Promise<string[][]> {
  const records = rrtype === 'TXT' ? PUBLISHED.get(name) : undefined;
  if (records !== undefined) return records;
  throw Object.assign(new Error(`${rrtype} ${name}: no such name`), { code: 'ENOTFOUND' });
}

/** What the authentication checks read of an outcome. */
function seen(outcome: DkimOutcome | DKIMVerifyResult) {
  return {
    headerFrom: outcome.headerFrom,
    results: outcome.results.map((row) => ({
      signingDomain: row.signingDomain,
      selector: row.selector,
      id: row.id,
      info: row.info,
      result: row.status.result,
      aligned: row.status.aligned,
      underSized: row.status.underSized,
    })),
    arc: Boolean(outcome.arc?.chain),
  };
}

/** Both verifiers on `message`; the fast path's outcome (null: it left the message to mailauth). */
async function compare(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }, message: Buffer, keys = new DkimKeyCache(MIN_KEY_BITS)) {
  const fast = await dkimFastPath(message, { resolver, keys });
  const mailauth = await dkimVerify(message, { resolver, minBitLength: MIN_KEY_BITS });
  if (fast !== null) t.deepEqual(seen(fast), seen(mailauth), 'the fast path says what mailauth says');
  return { fast, mailauth };
}

async function signed(message: Buffer, key: DkimKey, options: Record<string, unknown> = {}): Promise<Buffer> {
  const signature = { signingDomain: key.domain, selector: key.selector, privateKey: key.privateKey, canonicalization: 'relaxed/relaxed', ...options };
  const result = await dkimSign(message, { ...signature, signatureData: [signature] } as Parameters<typeof dkimSign>[1]);
  if (result.errors.length > 0) throw new Error(JSON.stringify(result.errors));
  return Buffer.concat([Buffer.from(result.signatures), message]);
}

const news = (text = 'Our spring offers are here.\r\nWith  double  spaces,\ttabs and trailing blanks   \r\n\r\n\r\n') => plainMessage('News <news@sender.test>', 'Spring offers', text);

/** Messages that exercise the canonicalisations: folded and re-spaced headers, 8-bit text, MIME, empty bodies. */
function oddMessages(): Buffer[] {
  const multipart = [
    'From: =?UTF-8?B?w4lsw6huZQ==?= <elene@sender.test>', 'To: a@example.com, "B, C" <b@example.com>', 'Subject: a subject folded',
    '  over two lines', 'X-Spaces:    lots   of    space   ', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="b1"', '',
    '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'Caf\u00e9 cr\u00e8me \u2013 8-bit text.  ', '--b1',
    'Content-Type: text/html', '', '<p>Hello</p>\t', '--b1--', '',
  ].join('\r\n');
  return [
    news(),
    news(''),
    news('\r\n\r\n'),
    news('no line end at the end'),
    Buffer.from(multipart, 'utf8'),
    Buffer.from('From: a@sender.test, b@other.test\r\nSubject: two authors\r\n\r\nbody\r\n'),
    Buffer.from('Subject: no From at all\r\nTo: x@example.com\r\n\r\nbody\r\n'),
    Buffer.from('From: group: a@sender.test, b@sender.test;\r\nSubject: group\r\n\r\nbody\r\n'),
  ];
}

test('signed messages the fast path verifies are verified as mailauth does: every canonicalisation, RSA and Ed25519', async (t) => {
  for (const message of oddMessages()) {
    for (const canonicalization of ['relaxed/relaxed', 'relaxed/simple', 'simple/relaxed', 'simple/simple']) {
      for (const key of [SENDER, ED25519]) {
        const { fast, mailauth } = await compare(t, await signed(message, key, { canonicalization, ...(key === ED25519 ? { algorithm: 'ed25519-sha256' } : {}) }));
        t.not(fast, null, `${canonicalization} ${key.selector}: the common case takes the fast path`);
        t.is(mailauth.results[0]?.status.result, 'pass');
      }
    }
  }
});

test('unsigned messages, several signatures (aligned or not) and a header re-folded in transit: fast, and the same', async (t) => {
  for (const message of oddMessages()) t.not((await compare(t, message)).fast, null);
  const twice = await dkimSigned(await dkimSigned(news(), LIST), SENDER);
  const both = await compare(t, twice);
  t.deepEqual(both.fast?.results.map((row) => row.status.aligned), ['sender.test', false]);
  const refolded = Buffer.from((await dkimSigned(news(), SENDER)).toString('latin1').replace('Subject: Spring offers', 'Subject: Spring\r\n   offers'), 'latin1');
  t.not((await compare(t, refolded)).fast, null);
});

test('what is not a plain pass is left to mailauth: a changed body, a forged or short or missing key, l=, x=, ARC, a bare LF', async (t) => {
  const good = await dkimSigned(news(), SENDER);
  const cases: Record<string, { message: Buffer; mailauthSays: string }> = {
    'changed body': { message: Buffer.concat([good, Buffer.from('appended\r\n')]), mailauthSays: 'neutral' },
    forged: { message: await dkimSigned(news(), FORGER), mailauthSays: 'fail' },
    'short key': { message: await signed(news(), SHORT), mailauthSays: 'policy' },
    'missing key': { message: await signed(news(), { ...SENDER, selector: 'gone' }), mailauthSays: 'neutral' },
    'l=': { message: await signed(news(), SENDER, { maxBodyLength: 10 }), mailauthSays: 'pass' },
    'x= expired': { message: await signed(news(), SENDER, { signTime: new Date(Date.now() - 7200_000), expires: new Date(Date.now() - 3600_000) }), mailauthSays: 'neutral' },
    'bare LF': { message: await signed(Buffer.from('From: news@sender.test\nSubject: LF\n\nbody\n'), SENDER), mailauthSays: 'pass' },
    'rsa-sha1': { message: await signed(news(), SENDER, { algorithm: 'rsa-sha1' }), mailauthSays: 'pass' },
  };
  for (const [name, { message, mailauthSays }] of Object.entries(cases)) {
    const { fast, mailauth } = await compare(t, message);
    t.is(fast, null, `${name}: left to mailauth`);
    t.is(String(mailauth.results[0]?.status.result), mailauthSays, `${name}: mailauth's result`);
  }
  const sealed = await arcSealed(good, LIST, 'lists.test; dkim=pass header.d=sender.test', 'none');
  t.is((await compare(t, sealed)).fast, null, 'ARC: left to mailauth');
});

test('a key is read once per record text: the next message signed with it reuses it, a changed record is read anew', async (t) => {
  const keys = new DkimKeyCache(MIN_KEY_BITS);
  await compare(t, await dkimSigned(news('one\r\n'), SENDER), keys);
  await compare(t, await dkimSigned(news('two\r\n'), SENDER), keys);
  t.is(keys.size, 1);
  const spaced = [[(SENDER.record.TXT as string[][])[0]!.join('').replace(/; /g, ';  ')]];
  t.is(await keys.key(SENDER.name, spaced), await keys.key(SENDER.name, SENDER.record.TXT as string[][]), 'white space is not part of the record mailauth reads');
  await keys.key(LIST.name, LIST.record.TXT as string[][]);
  t.is(keys.size, 2);
  t.is(await keys.key(SENDER.name, [['v=DKIM1; p=']]), null, 'a record mailauth refuses gives no key');
  t.is(keys.size, 2, 'and is not kept');
});

test('the cache keeps at most its number of keys, dropping the one used longest ago', async (t) => {
  const keys = new DkimKeyCache(MIN_KEY_BITS, 2);
  const sender = await keys.key(SENDER.name, SENDER.record.TXT as string[][]);
  await keys.key(LIST.name, LIST.record.TXT as string[][]);
  t.is(await keys.key(SENDER.name, SENDER.record.TXT as string[][]), sender, 'used again: now the newest');
  await keys.key(ED25519.name, ED25519.record.TXT as string[][]);
  t.is(keys.size, 2);
  t.is(await keys.key(SENDER.name, SENDER.record.TXT as string[][]), sender, 'the list key was dropped, not the sender one');
});
