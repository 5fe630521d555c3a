/**
 * The minhash of `body:minhash64` (text.ts makes the word shingles): FNV-1a hashes of word
 * 3-shingles, each summarised by 64 minimums of independent 32-bit permutations, kept as their low
 * 16 bits (b-bit minhash). The share of equal positions estimates the Jaccard similarity of the
 * shingle sets. Fingerprints are compared across the network: these hashes never change.
 */
/** A multiple of 8: minhash computes eight positions per pass. */
export const MINHASH_COUNT = 64;
export const SHINGLE_WORDS = 3;
/** Texts with fewer normalised words than this are too short to identify anything. */
export const MIN_WORDS = 10;
/** As int32, so the hash variables stay int32 from their first value (0x811c9dc5 is above 2^31). */
export const FNV_OFFSET = 0x811c9dc5 | 0;
export const FNV_PRIME = 0x01000193;
export const SPACE = 0x20;

/** FNV-1a over UTF-16 code units, continued from `h`: fast, deterministic and plenty for shingle identity. */
function fnv(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  return h;
}

/**
 * The hash of the shingle starting at word `i`: FNV-1a of its words joined by single spaces,
 * computed word by word instead of on the joined string (slice and join per shingle were half the
 * time of minhash on a 5 KB text; the same hashes).
 */
function shingleHash(words: readonly string[], i: number): number {
  let h = fnv(FNV_OFFSET, words[i]!);
  for (let k = 1; k < SHINGLE_WORDS; k++) h = fnv(Math.imul(h ^ SPACE, FNV_PRIME), words[i + k]!);
  return h >>> 0;
}

/** A 32-bit finaliser (murmur3 fmix) keyed per position: the independent permutations of minhash. */
function mix(value: number, seed: number): number {
  let x = (value ^ seed) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

const SEEDS = Int32Array.from({ length: MINHASH_COUNT }, (_, i) => mix(i + 1, 0x9e3779b9) | 0);
/** Flipping the top bit maps unsigned order onto signed order, so minimums stay int32 (no boxed doubles). */
const SIGN = -0x80000000;

/** Hex minhash (4 hex digits per position) of a word list, or null when it is too short. */
export function minhash(words: readonly string[]): string | null {
  if (words.length < MIN_WORDS) return null;
  return minimums(distinctShingles(words));
}

/**
 * mix()'s first step per position, `x ^ (x >>> 16)` of `x = shingle ^ seed`, is linear in XOR:
 * it equals `(shingle ^ (shingle >>> 16)) ^ (seed ^ (seed >>> 16))`, so the shingle's half is
 * computed once per shingle and the seed's half once here.
 */
const SEED_STEPS = SEEDS.map((seed) => seed ^ (seed >>> 16));

/** The hex minhash of distinct shingle hashes. */
export function minimums(shingles: Int32Array): string {
  // A loop, not a map() arrow: an arrow made per call has its optimised code dropped at each full GC.
  const steps = new Int32Array(shingles.length);
  for (let s = 0; s < shingles.length; s++) steps[s] = shingles[s]! ^ (shingles[s]! >>> 16);
  // The hot loop of text fingerprinting: mix() inlined over int32 arithmetic over a typed array
  // of the distinct shingles (iterating a Set per shingle cost a third of minhash on a 5 KB
  // text), eight positions per pass: their independent chains keep the CPU's multipliers busy,
  // where one position at a time waits on each multiply (8 instead of 4, with the first step
  // taken per shingle: a fifth less time on 700 shingles; the same minimums, as each position
  // still sees every shingle).
  let hex = '';
  for (let i = 0; i < MINHASH_COUNT; i += 8) {
    const k0 = SEED_STEPS[i]!;
    const k1 = SEED_STEPS[i + 1]!;
    const k2 = SEED_STEPS[i + 2]!;
    const k3 = SEED_STEPS[i + 3]!;
    const k4 = SEED_STEPS[i + 4]!;
    const k5 = SEED_STEPS[i + 5]!;
    const k6 = SEED_STEPS[i + 6]!;
    const k7 = SEED_STEPS[i + 7]!;
    let min0 = 0x7fffffff;
    let min1 = 0x7fffffff;
    let min2 = 0x7fffffff;
    let min3 = 0x7fffffff;
    let min4 = 0x7fffffff;
    let min5 = 0x7fffffff;
    let min6 = 0x7fffffff;
    let min7 = 0x7fffffff;
    for (let s = 0; s < steps.length; s++) {
      const step = steps[s]!;
      let a = Math.imul(step ^ k0, 0x85ebca6b);
      let b = Math.imul(step ^ k1, 0x85ebca6b);
      let c = Math.imul(step ^ k2, 0x85ebca6b);
      let d = Math.imul(step ^ k3, 0x85ebca6b);
      let e = Math.imul(step ^ k4, 0x85ebca6b);
      let f = Math.imul(step ^ k5, 0x85ebca6b);
      let g = Math.imul(step ^ k6, 0x85ebca6b);
      let h = Math.imul(step ^ k7, 0x85ebca6b);
      a = Math.imul(a ^ (a >>> 13), 0xc2b2ae35);
      b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
      c = Math.imul(c ^ (c >>> 13), 0xc2b2ae35);
      d = Math.imul(d ^ (d >>> 13), 0xc2b2ae35);
      e = Math.imul(e ^ (e >>> 13), 0xc2b2ae35);
      f = Math.imul(f ^ (f >>> 13), 0xc2b2ae35);
      g = Math.imul(g ^ (g >>> 13), 0xc2b2ae35);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      a = a ^ (a >>> 16) ^ SIGN;
      b = b ^ (b >>> 16) ^ SIGN;
      c = c ^ (c >>> 16) ^ SIGN;
      d = d ^ (d >>> 16) ^ SIGN;
      e = e ^ (e >>> 16) ^ SIGN;
      f = f ^ (f >>> 16) ^ SIGN;
      g = g ^ (g >>> 16) ^ SIGN;
      h = h ^ (h >>> 16) ^ SIGN;
      if (a < min0) min0 = a;
      if (b < min1) min1 = b;
      if (c < min2) min2 = c;
      if (d < min3) min3 = d;
      if (e < min4) min4 = e;
      if (f < min5) min5 = f;
      if (g < min6) min6 = g;
      if (h < min7) min7 = h;
    }
    hex += position(min0) + position(min1) + position(min2) + position(min3) + position(min4) + position(min5) + position(min6) + position(min7);
  }
  return hex;
}

/** A position's 16 low bits as 4 hex digits (b-bit minhash). */
function position(minimum: number): string {
  return (minimum & 0xffff).toString(16).padStart(4, '0');
}

/** The shingles' hashes, each once (as int32). */
function distinctShingles(words: readonly string[]): Int32Array {
  const count = words.length - SHINGLE_WORDS + 1;
  const hashes = new Int32Array(Math.max(count, 0));
  for (let i = 0; i < count; i++) hashes[i] = shingleHash(words, i) | 0;
  return distinct(hashes);
}

/**
 * The hashes each once, in no particular order (a minimum does not depend on it), gathered at the
 * front of `hashes` by open addressing in a table of more than twice their number, 0 marking an
 * empty slot (a hash of 0 is kept aside): on the corpus's texts (~500 shingles) 2-3 times faster
 * than sorting them, as fast on the bench's repetitive ones. A hash's first slot is multiply-shift
 * with an odd multiplier drawn per call, so no text can be written to make its shingles collide in
 * the table (expected O(1) probes per hash whatever the input); the result does not depend on it.
 */
export function distinct(hashes: Int32Array): Int32Array {
  const bits = Math.max(4, 32 - Math.clz32(hashes.length * 2));
  const mask = 2 ** bits - 1;
  const table = new Int32Array(mask + 1);
  const multiplier = (Math.random() * 0x1_0000_0000) | 1;
  let count = 0;
  let zero = false;
  for (let i = 0; i < hashes.length; i++) {
    const hash = hashes[i]!;
    if (hash === 0) {
      if (!zero) hashes[count++] = 0;
      zero = true;
      continue;
    }
    let slot = Math.imul(hash, multiplier) >>> (32 - bits);
    let held = table[slot]!;
    while (held !== 0 && held !== hash) {
      slot = (slot + 1) & mask;
      held = table[slot]!;
    }
    if (held === 0) {
      table[slot] = hash;
      hashes[count++] = hash;
    }
  }
  return hashes.subarray(0, count);
}
