import test from 'ava';
import { createHash } from 'node:crypto';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { deeplyNested, manyParts, message, prose } from '../fixtures/fingerprint/factory.js';

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

test('each attachment of 64 bytes or more gives the SHA-256 of its decoded bytes', async (t) => {
  const payload = Buffer.from('%PDF-1.4 '.repeat(20));
  const raw = message({ parts: [{ type: 'text/plain', content: 'invoice attached', encoding: '7bit' }, { type: 'application/pdf', content: payload, filename: 'invoice.pdf' }] });
  const result = await fingerprintMessage(raw, {});
  t.true(result.fingerprints.some((f) => f.text === `attachment:sha256:${sha256(payload)}` && f.label === 'invoice.pdf'));
  t.deepEqual(result.attachments, [{ sha256: sha256(payload), type: 'application/pdf', size: payload.length, name: 'invoice.pdf' }]);
});

test('attachments under 64 bytes are skipped and counted', async (t) => {
  const raw = message({ parts: [{ type: 'text/plain', content: 'x', encoding: '7bit' }, { type: 'application/octet-stream', content: 'short', filename: 's.bin' }] });
  const result = await fingerprintMessage(raw, {});
  t.false(result.fingerprints.some((f) => f.kind === 'attachment'));
  t.true(result.skips.some((s) => s.reason === 'attachment-too-small'));
});

test('an mbox envelope line before the message is ignored', async (t) => {
  const raw = message({ parts: [{ type: 'text/plain', content: prose(60, 1), encoding: '7bit' }] });
  const a = await fingerprintMessage(raw, {});
  const b = await fingerprintMessage(Buffer.concat([Buffer.from('From someone@example.net  Mon Nov 23 07:00:00 2026\n'), raw]), {});
  t.deepEqual(b.fingerprints.map((f) => f.text), a.fingerprints.map((f) => f.text));
});

test('a multipart whose boundary never closes and whose base64 is broken still gives what can be read', async (t) => {
  const raw = Buffer.from(
    'Received: from x (x [198.51.100.7]) by mx\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\n' +
      `${prose(50, 2)}\r\n--zz\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@not base64!!!${'QUJD'.repeat(40)}\r\n`,
  );
  const result = await fingerprintMessage(raw, {});
  t.true(result.fingerprints.some((f) => f.kind === 'body'));
  t.true(result.fingerprints.some((f) => f.kind === 'ip'));
});

test('wrong and unknown charsets do not stop fingerprinting', async (t) => {
  const latin1Says8 = Buffer.concat([
    Buffer.from('Received: from x (x [198.51.100.8]) by mx\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'),
    Buffer.from(`${prose(40, 3)} caf\xe9 na\xefve r\xe9sum\xe9 ${prose(20, 4)}`, 'latin1'),
  ]);
  const unknown = Buffer.from(`Content-Type: text/plain; charset="x-klingon-9"\r\n\r\n${prose(40, 5)}`, 'latin1');
  const garbageHeader = Buffer.from(`Subject: =?bogus-charset?Q?=E9=E9?=\r\nContent-Type: text/plain; charset=\r\n\r\n${prose(40, 6)}`, 'latin1');
  for (const raw of [latin1Says8, unknown, garbageHeader]) {
    const result = await fingerprintMessage(raw, {});
    t.true(result.fingerprints.some((f) => f.kind === 'body'));
  }
});

test('deeply nested multiparts (1,000 levels) are fingerprinted without a stack overflow', async (t) => {
  const result = await fingerprintMessage(deeplyNested(1000, prose(50, 7)), {});
  t.true(result.fingerprints.some((f) => f.kind === 'body'));
  t.false(result.skips.some((s) => s.reason === 'mime-unparseable'));
});

test('a message of 10,000 parts is analysed up to the attachment cap and the rest counted as skipped', async (t) => {
  const result = await fingerprintMessage(manyParts(10_000), {}, { maxAttachments: 50 });
  t.is(result.fingerprints.filter((f) => f.kind === 'attachment').length, 50);
  t.is(result.skips.filter((s) => s.reason === 'attachment-over-limit').length, 10_000 - 50);
});

test('more parts than the parser cap is reported as unparseable MIME, and the headers still give the IP', async (t) => {
  const result = await fingerprintMessage(manyParts(300), {}, { maxParts: 100 });
  t.true(result.skips.some((s) => s.reason === 'mime-unparseable'));
  t.true(result.fingerprints.some((f) => f.kind === 'ip'));
});

test('random bytes, empty input and a lone header never throw', async (t) => {
  let seed = 99;
  const noise = Buffer.from(
    Array.from({ length: 20_000 }, () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 24;
    }),
  );
  for (const raw of [Buffer.alloc(0), noise, Buffer.from('Content-Type: multipart/mixed\r\n\r\n'), Buffer.from('From \n')]) {
    const result = await fingerprintMessage(raw, {});
    t.true(Array.isArray(result.skips));
  }
});
