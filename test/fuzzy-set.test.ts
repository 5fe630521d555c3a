import { randomBytes } from 'node:crypto';
import test from 'ava';
import { fuzzySchemes } from '../src/fingerprint/fuzzy.js';
import { FuzzyItemSet } from '../src/fingerprint/fuzzy-set.js';

const LENGTHS: Record<string, number> = { 'image:dhash64': 16, 'image:phash256': 64, 'body:minhash64': 256 };

/** `value` with `changes` hex digits replaced at random (some of them may land on the same digit). */
function mutate(value: string, changes: number): string {
  const digits = value.split('');
  for (let i = 0; i < changes; i++) digits[Math.floor(Math.random() * digits.length)] = Math.floor(Math.random() * 16).toString(16);
  return digits.join('');
}

test('packed values are near exactly when the service\'s isNear says so, for every fuzzy scheme', (t) => {
  for (const scheme of fuzzySchemes()) {
    const packed = scheme.packed!;
    t.truthy(packed, `${scheme.id} has a packed form`);
    const length = LENGTHS[scheme.id]!;
    let near = 0;
    for (let i = 0; i < 2000; i++) {
      const a = randomBytes(length / 2).toString('hex');
      const b = mutate(i % 2 === 0 ? a : a.toUpperCase(), i % Math.max(40, length));
      const expected = scheme.isNear(a, b);
      if (expected) near++;
      t.is(packed.isNear(packed.pack(a)!, packed.pack(b)!), expected, `${scheme.id}: ${a} ${b}`);
    }
    t.true(near > 100 && near < 1900, `${scheme.id}: both near and far pairs were tried (${near} near)`);
    t.is(packed.pack(`${randomBytes(length / 2).toString('hex')}0`), null, 'a value of another length is left to isNear');
  }
});

test('a FuzzyItemSet finds the filed near neighbours of a fingerprint, of its own scheme only, and forgets deleted ones', (t) => {
  const set = new FuzzyItemSet();
  const body = randomBytes(128).toString('hex');
  const nearBody = `${body.slice(0, 128)}${randomBytes(64).toString('hex')}`;
  const farBody = randomBytes(128).toString('hex');
  t.true(set.add(`body:minhash64:${nearBody}`));
  t.true(set.add(`body:minhash64:${farBody}`));
  // The same value under another scheme is never a neighbour.
  t.true(set.add(`image:phash256:${body.slice(0, 64)}`));
  t.false(set.add('url:sha256:abc'), 'an exact fingerprint is not filed');
  t.is(set.size, 3);
  t.deepEqual(set.near(`body:minhash64:${body}`), [`body:minhash64:${nearBody}`]);
  t.deepEqual(set.near('url:sha256:abc'), []);
  set.delete(`body:minhash64:${nearBody}`);
  t.deepEqual(set.near(`body:minhash64:${body}`), []);
  t.is(set.size, 2);
});
