/**
 * The DKIM-Signature tag reader (src/scan/dkim-signature-tags.ts) against mailauth's own field
 * parser: for every field it reads, exactly mailauth's result (tags, values, numbers, the bare
 * part, the original field); every field with a comment, a quote or an escape left to mailauth.
 */
import test from 'ava';
import mailauthTools from 'mailauth/lib/tools.js';
import { signatureTags } from '../src/scan/dkim-signature-tags.js';
import { dkimKey, dkimSigned, plainMessage } from './helpers/mail-auth.js';

const field = (text: string) => Buffer.from(text, 'utf8');

test('signatures made by mailauth\'s signer read as mailauth reads them', async (t) => {
  const key = dkimKey('sender.test');
  for (const canonicalization of ['relaxed/relaxed', 'simple/simple', 'relaxed/simple']) {
    const signed = await dkimSigned(plainMessage('News <news@sender.test>', 'Offers', 'Spring offers, this week only.'), key, canonicalization);
    const line = signed.subarray(0, signed.indexOf('\r\n\r\n')).toString().split(/\r\n(?![ \t])/).find((row) => /^dkim-signature:/i.test(row))!;
    const mine = signatureTags(field(line));
    t.not(mine, null);
    t.deepEqual(mine, mailauthTools.parseDkimHeaders(field(line)));
  }
});

test('folded values, repeated and upper-case tags, a bare part, empty and numeric values read as mailauth reads them', (t) => {
  const fields = [
    'DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=Example.COM;\r\n s=sel; t=1700000000; x=1700003600; l=200;\r\n h=From:To:\r\n  Subject; bh=abc\r\n def=; b=AbC\r\n\tdEf==',
    'dkim-signature:v=1;A=ed25519-sha256;D=example.com;S=x;bh=  a b c ;b=zz;;',
    'DKIM-Signature: bare; v=1; d=a.test; d=b.test; t=; x=soon; l=0x10; v=1e3; z=From:a@b.test|To:c@d.test',
    'DKIM-Signature: ; ; v=1 ; i=@sub.example.com ; q = dns/txt ; s = s 1 ; other',
    'DKIM-Signature: __proto__=1; constructor=2; v=1; b=x',
    'DKIM-Signature: d=caf\u00e9.test; s=s\u00a0one; b=a\u00a0b',
    'DKIM-Signature:',
  ];
  for (const text of fields) {
    const mine = signatureTags(field(text));
    t.not(mine, null, text);
    t.deepEqual(mine, mailauthTools.parseDkimHeaders(field(text)), text);
  }
});

test('fields with a comment, a quote or an escape, ARC fields and a line without a field name are left to mailauth', (t) => {
  for (const text of ['DKIM-Signature: v=1 (one); d=a.test', 'DKIM-Signature: v=1; d="a.test"', "DKIM-Signature: d='a.test'", 'DKIM-Signature: d=a\\.test', 'ARC-Message-Signature: i=1; d=a.test', 'v=1; d=a.test']) {
    t.is(signatureTags(field(text)), null, text);
  }
});

test('on 20,000 fields of random tags, values, separators and white space, each reading is mailauth\'s', (t) => {
  const pieces = ['v', 'a', 'b', 'bh', 'h', 'l', 'x', 't', 'd', 'i', 'B', 'Bh', '=', '=', ';', ';', ' ', '\r\n ', '\t', '1', '12', 'rsa-sha256', 'ab+/c=', 'x.test', ':', '-', ''];
  let seed = 22;
  const next = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
  for (let i = 0; i < 20_000; i += 1) {
    const text = `DKIM-Signature: ${Array.from({ length: next() % 16 }, () => pieces[next() % pieces.length]).join('')}`;
    t.deepEqual(signatureTags(field(text)), mailauthTools.parseDkimHeaders(field(text)), JSON.stringify(text));
  }
});
