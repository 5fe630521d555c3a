/**
 * The shortcut for a body relaxed canonicalisation leaves alone (src/scan/dkim-plain-body.ts)
 * against mailauth's own body hasher: for every body the shortcut takes, the same hash; every
 * body it does not take (a tab, two spaces, a space at a line end, a lone CR or LF) left to mailauth.
 */
import test from 'ava';
import mailauthBody from 'mailauth/lib/dkim/body/index.js';
import { plainRelaxedBodyHash } from '../src/scan/dkim-plain-body.js';

function mailauthHash(body: Buffer): string {
  const hash = mailauthBody.dkimBody('relaxed', 'sha256', '');
  hash.update(body);
  return hash.digest('base64');
}

test('bodies relaxed canonicalisation leaves alone hash as mailauth hashes them: empty, empty lines only, no final CRLF, trailing empty lines, a leading space, 8-bit bytes', (t) => {
  const bodies = ['', '\r\n', '\r\n\r\n\r\n', 'Hello', 'Hello\r\n', 'Hello\r\n\r\n\r\n', '\r\nHello\r\n', ' indented line\r\nnext\r\n', 'caf\xe9 cr\xe8me\r\n', 'a b c\r\n\r\nd e\r\n'];
  for (const text of bodies) {
    const body = Buffer.from(text, 'latin1');
    t.is(plainRelaxedBodyHash(body), mailauthHash(body), JSON.stringify(text));
  }
});

test('bodies relaxed canonicalisation would change, or with lone line ends, are left to mailauth', (t) => {
  for (const text of ['a\tb\r\n', 'a  b\r\n', 'a \r\nb\r\n', 'ab ', 'a\rb\r\n', 'a\nb\r\n', '\nab', 'ab\r', ' \r\n']) {
    t.is(plainRelaxedBodyHash(Buffer.from(text, 'latin1')), null, JSON.stringify(text));
  }
});

test('on 20,000 bodies made of words, spaces, tabs and line ends of every kind, each hash the shortcut gives is mailauth\'s', (t) => {
  const pieces = ['word', 'x', ' ', '  ', '\t', '\r\n', '\r\n', '\r\n\r\n', '\r', '\n', '\xe9', '.'];
  let seed = 22;
  const next = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
  let taken = 0;
  for (let i = 0; i < 20_000; i += 1) {
    const text = Array.from({ length: next() % 12 }, () => pieces[next() % pieces.length]).join('');
    const body = Buffer.from(text, 'latin1');
    const plain = plainRelaxedBodyHash(body);
    if (plain === null) continue;
    taken += 1;
    t.is(plain, mailauthHash(body), JSON.stringify(text));
  }
  // Both branches are exercised: a good share of the bodies is plain.
  t.true(taken > 1000, `only ${taken} plain bodies`);
});
