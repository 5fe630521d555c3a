import test from 'ava';
import { fuzzySchemeFor, hammingScheme } from '../src/fingerprint/fuzzy.js';
import { bodyMinhash, htmlToText, normalisedWords } from '../src/fingerprint/text.js';
import { minhash } from '../src/fingerprint/minhash.js';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { message, prose } from '../fixtures/fingerprint/factory.js';

const body = fuzzySchemeFor('body', 'minhash64')!;
const hash = (text: string): string => minhash(normalisedWords(text))!;

test('a personalised copy with 10% of words replaced and a token appended is near its original and shares an LSH key', (t) => {
  const original = prose(150, 1);
  const words = original.split(' ');
  for (let i = 0; i < words.length; i += 10) words[i] = 'zebra';
  const copy = `Dear Maria Garcia, ${words.join(' ')} qx7k2p9`;
  const [a, b] = [hash(original), hash(copy)];
  t.true(body.isNear(a, b));
  const keys = new Set(body.storeKeys(a));
  t.true(body.probeKeys(b).some((k) => keys.has(k)));
});

test('unrelated texts are not near', (t) => {
  t.false(body.isNear(hash(prose(150, 1)), hash('The quarterly meeting of the committee will take place in the main hall on Thursday, please bring the minutes of the previous meeting and your questions about the budget for next year.')));
});

test('texts under ten words give no body fingerprint', async (t) => {
  t.is(minhash(normalisedWords('buy now, cheap!')), null);
  const result = await fingerprintMessage(message({ parts: [{ type: 'text/plain', content: 'hi there', encoding: '7bit' }] }), {});
  t.false(result.fingerprints.some((f) => f.kind === 'body'));
  t.true(result.skips.some((s) => s.reason === 'body-too-short'));
});

test('the body hash of a fixed text is the value stores and peers already hold', (t) => {
  // Computed before bodyMinhash existed: the fast path must not change a single position.
  const ascii = `Dear CUSTOMER, ${prose(60, 7)} write to sales@shop.example or see https://shop.example/x?a=1 and www.Shop.example today; a b c I O U. ${prose(40, 8)}`;
  const other = `Chère cliente, ${prose(60, 9)} — Ärger über ÖFFNUNGSZEITEN, ﬁne ligatures, İstanbul ${prose(30, 10)}`;
  const asciiHash = '94361854f9c0fdf4367d0370227dc47c3f851d5a33df928979ca0e4ac887b3dc66229e2d29ec590e7686b382d52be97aa9775a7382bbccdae2d19ea875c919dc97a9b0be19b1adaef2ddb757642f8f21e1abd94f939e19a021a2477247d1928fb874640c91e2459d890723fd63bf371fda5ecd68729c4222e43b8943304d6fd9';
  const otherHash = 'c4951941d9534186f6f1bc293dbf90f633b586782ef45b4e034c56d2792f681cf23b433b13728cf76ba4eac24f8d68ab7532caa3f59789c68a05a85baca120ba396686001f66b0461d477907805d1986afdba1f9e58fa8f04da7306b162f9d3aa853b3e5ca285826a2787b075cbcabe51316e97000e09af2455bd925872636ed';
  t.is(hash(ascii), asciiHash);
  t.is(bodyMinhash(ascii), asciiHash);
  t.is(hash(other), otherHash);
  t.is(bodyMinhash(other), otherHash);
});

test('bodyMinhash gives what minhash gives of the normalised words, for ASCII text and any other', (t) => {
  // One-letter runs, case, links, addresses, digits and separators: where a hand-written scan could drift.
  const pieces = ['ab', 'Cd', 'EFG', 'x', 'I', ' ', ' ', '\t', '\n', '@', '.', '-', '7', '_', 'http://', 'WWW.', 'https://h.example/p', '`', 'é', '\u00a0', 'ﬁ'];
  let state = 42;
  const next = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % n;
  };
  let compared = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const text = Array.from({ length: 20 + next(200) }, () => pieces[next(trial % 2 === 0 ? 16 : pieces.length)]).join('');
    const expected = minhash(normalisedWords(text));
    if (expected !== null) compared++;
    t.is(bodyMinhash(text), expected, JSON.stringify(text));
  }
  t.true(compared > 1000);
});

test('the visible text of HTML excludes scripts, styles and comments and decodes entities', (t) => {
  const text = htmlToText('<html><head><style>p{color:red}</style></head><body><!-- hidden --><p>Caf&eacute; &amp; b&#97;r&#x21;</p><script>var secret=1</script></body></html>');
  t.false(text.includes('secret'));
  t.false(text.includes('color'));
  t.false(text.includes('hidden'));
  t.true(text.includes('& bar!'));
});

test('the same text as plain and as HTML gives the same body fingerprint', async (t) => {
  const text = prose(80, 3);
  const plain = await fingerprintMessage(message({ parts: [{ type: 'text/plain; charset=utf-8', content: text, encoding: '7bit' }] }), {});
  const html = await fingerprintMessage(message({ parts: [{ type: 'text/html; charset=utf-8', content: `<div><b>${text.split(' ').join('</b> <b>')}</b></div>`, encoding: '7bit' }] }), {});
  const pick = (r: typeof plain) => r.fingerprints.find((f) => f.kind === 'body')!.text;
  t.is(pick(plain), pick(html));
});

test('multi-index hashing finds every stored code within the Hamming threshold', (t) => {
  const scheme = hammingScheme('image:test', 256, 40, 21);
  let seed = 5;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 4294967296;
  };
  for (let trial = 0; trial < 50; trial++) {
    const bits = Array.from({ length: 256 }, () => random() < 0.5);
    const flipped = [...bits];
    for (let k = 0; k < 40; k++) {
      const i = Math.floor(random() * 256);
      flipped[i] = !bits[i];
    }
    const hex = (b: boolean[]) => b.map(Number).join('').match(/.{4}/g)!.map((n) => parseInt(n, 2).toString(16)).join('');
    const [a, b] = [hex(bits), hex(flipped)];
    t.true(scheme.isNear(a, b));
    const stored = new Set(scheme.storeKeys(a));
    t.true(scheme.probeKeys(b).some((k) => stored.has(k)));
  }
});

test('every registered image scheme has store keys that differ between unrelated codes', (t) => {
  const image = fuzzySchemeFor('image', 'phash256')!;
  const zero = '0'.repeat(64);
  const ones = 'f'.repeat(64);
  const shared = image.storeKeys(zero).filter((k) => image.storeKeys(ones).includes(k));
  t.deepEqual(shared, []);
});

test('the image:phash256 index finds every stored hash whose DCT and gradient halves are within their thresholds', (t) => {
  const image = fuzzySchemeFor('image', 'phash256')!;
  let seed = 11;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 4294967296;
  };
  const hex = (b: boolean[]) => b.map(Number).join('').match(/.{4}/g)!.map((n) => parseInt(n, 2).toString(16)).join('');
  for (let trial = 0; trial < 50; trial++) {
    const bits = Array.from({ length: 256 }, () => random() < 0.5);
    const near = [...bits];
    const flips = new Set<number>();
    while (flips.size < 20) flips.add(Math.floor(random() * 128));
    while (flips.size < 52) flips.add(128 + Math.floor(random() * 128));
    for (const i of flips) near[i] = !bits[i];
    const [a, b] = [hex(bits), hex(near)];
    t.true(image.isNear(a, b));
    const stored = new Set(image.storeKeys(a));
    t.true(image.probeKeys(b).some((k) => stored.has(k)));
    const far = [...near];
    far[0] = !far[0]; // one more DCT bit changed (or restored): near exactly when the rule says so
    t.is(image.isNear(a, hex(far)), [...Array(128).keys()].filter((i) => far[i] !== bits[i]).length <= 20);
  }
});

// Values written by the implementation before 2026-12-07 (words joined per shingle): every body
// fingerprint already stored in a reputation store must keep matching new copies of its text.
test('body fingerprints of a text are the same as the ones stores already hold (English prose, and German with umlauts, an address and a link)', (t) => {
  t.is(hash(prose(150, 1)), '5898307520965d7a37a9204b9f87172ac557ad35484917f42b4413b3b5b5ddd29c1798d5234e3a005d64066bc98c6c1afcc015abcb5031d3a592c1f2b29b66b23ac0a62ad03162020d58a93844589aae9bc4fa93887ad09d36f57b315e0f817eb30ed12a562cb664056cf2f66e32c7fffaf80c06c56d402a052fe69de27bdd93');
  t.is(
    hash('Grüße aus München: das Angebot für Ihr Büro gilt nur heute, schreiben Sie an info@example.de oder besuchen Sie https://example.de/angebot jetzt sofort'),
    '3c2951a6949b6741e040eafedbf9ac0d3eb7cba5fba5b3cf7087b55fa5ac6459298184d6e6bb7e36972c2fdae677c2c47d1fb2c24c8772c6eec1283dda88f778be0ad8697b151e5472f9903f365572fab875ed2b44045e979f3c8eefd01e2574b68b903435f6a2d4b8ec58c7076b58144273b8bc71f45064cf65a75844ca03be',
  );
});

test('a body hash is filed under one key per band of two 4-digit positions, as stores already hold it, whatever the case or shape of the value', (t) => {
  const value = Array.from({ length: 64 }, (_, i) => ((i * 7919 + 13) & 0xffff).toString(16).padStart(4, '0')).join('');
  const mixed = value.slice(0, 128).toUpperCase() + value.slice(128);
  for (const v of [value, mixed]) {
    const positions = v.match(/[0-9a-f]{4}/gi)!;
    const expected = Array.from({ length: 32 }, (_, band) => `${band}:${positions[2 * band]}${positions[2 * band + 1]}`);
    t.deepEqual(body.storeKeys(v), expected);
    t.deepEqual(body.probeKeys(v), expected);
  }
  t.is(body.storeKeys(value)[0], `0:${value.slice(0, 8)}`);
  // Not a well-formed hash (a separator, too short): its 4-digit groups, wherever they are.
  t.deepEqual(body.storeKeys('abcd-1234ef01x5678'), ['0:abcd1234', '1:ef015678']);
  t.deepEqual(body.storeKeys('abcd12'), ['0:abcd']);
});
