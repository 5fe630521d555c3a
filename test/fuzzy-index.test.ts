/**
 * The in-memory near-neighbour index of `image:phash256` (what both reputation stores probe)
 * answers exactly what the near rule says, compared with checking every stored hash.
 */
import test, { type ExecutionContext } from 'ava';
import { fuzzySchemeFor, hammingLayout } from '../src/fingerprint/fuzzy.js';

const scheme = fuzzySchemeFor('image', 'phash256')!;

function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** Flips `count` distinct bits of `hex` between hex digits [from, to). */
function flip(hex: string, count: number, from: number, to: number, next: () => number): string {
  const digits = hex.split('');
  const used = new Set<number>();
  while (used.size < count) {
    const bit = from * 4 + (next() % ((to - from) * 4));
    if (used.has(bit)) continue;
    used.add(bit);
    digits[bit >> 2] = (parseInt(digits[bit >> 2]!, 16) ^ (1 << (bit & 3))).toString(16);
  }
  return digits.join('');
}

/**
 * Stores `size` hashes (clusters of look-alikes around the threshold, plus unrelated hashes) and
 * checks 1000 probes against every stored hash; returns how many probes had a neighbour.
 */
function checkAgainstEveryHash(t: ExecutionContext, size: number, seed: number): number {
  const next = random(seed);
  const index = scheme.newIndex!();
  const stored: string[] = [];
  for (let i = 0; i < size; i++) {
    const value =
      i % 3 === 0 || stored.length === 0
        ? Array.from({ length: 8 }, () => hex8(next())).join('')
        : flip(flip(stored[next() % stored.length]!, next() % 26, 0, 32, next), next() % 40, 32, 64, next);
    stored.push(value);
    index.add(`image:phash256:${value}`, value);
  }
  t.is(index.size, new Set(stored).size);
  let nonEmpty = 0;
  for (let q = 0; q < 1000; q++) {
    const probe = flip(flip(stored[next() % stored.length]!, next() % 26, 0, 32, next), next() % 40, 32, 64, next);
    const expected = [...new Set(stored)]
      .filter((value) => scheme.isNear(probe, value))
      .map((value) => ({ item: `image:phash256:${value}`, similarity: scheme.similarity(probe, value) }))
      .sort((a, b) => b.similarity - a.similarity || (a.item < b.item ? -1 : 1));
    const got = index.near(probe);
    if (got.length > 0) nonEmpty++;
    t.deepEqual(got, expected);
  }
  return nonEmpty;
}

test('the image index returns exactly the stored hashes within 20 DCT and 32 gradient bits, most similar first', (t) => {
  // 3,000 hashes: more than the ~1,240 buckets a probe reads, so the index probes its buckets.
  const nonEmpty = checkAgainstEveryHash(t, 3000, 42);
  t.true(nonEmpty > 200, `probes with a neighbour: ${nonEmpty}`);
});

test('a small image index, read row by row instead of by bucket, returns exactly the same hashes in the same order', (t) => {
  for (const [size, seed] of [[1, 3], [40, 5], [1000, 11]] as const) {
    const nonEmpty = checkAgainstEveryHash(t, size, seed);
    t.true(nonEmpty > (size === 1 ? 0 : 100), `${size} stored, probes with a neighbour: ${nonEmpty}`);
  }
});

test('the image index finds a hash at exactly 20 DCT and 32 gradient bits, and not one bit further in either half', (t) => {
  const next = random(7);
  for (let trial = 0; trial < 50; trial++) {
    const index = scheme.newIndex!();
    const value = Array.from({ length: 8 }, () => hex8(next())).join('');
    index.add('image:phash256:stored', value);
    const edge = flip(flip(value, 20, 0, 32, next), 32, 32, 64, next);
    t.deepEqual(index.near(edge).map((n) => n.item), ['image:phash256:stored']);
    t.deepEqual(index.near(flip(flip(value, 21, 0, 32, next), 32, 32, 64, next)), []);
    t.deepEqual(index.near(flip(flip(value, 20, 0, 32, next), 33, 32, 64, next)), []);
  }
});

test('a value that is not 64 characters long is never filed and never probes', (t) => {
  const index = scheme.newIndex!();
  index.add('image:phash256:short', 'abcd');
  t.is(index.size, 0);
  index.add('image:phash256:x', '0'.repeat(64));
  t.deepEqual(index.near('0'.repeat(63)), []);
  t.is(index.near('0'.repeat(64))[0]?.item, 'image:phash256:x');
});

test('chunk radii follow the generalised pigeonhole: their sum plus one per chunk is the distance plus one', (t) => {
  for (const [bits, distance, chunks] of [[128, 20, 7], [128, 20, 8], [128, 20, 11], [64, 8, 4], [256, 40, 21], [64, 3, 8]] as const) {
    const layout = hammingLayout(bits, distance, chunks);
    t.is(layout.radii.reduce((sum, r) => sum + r + 1, 0), distance + 1);
    t.is(layout.starts[chunks], bits);
  }
});
