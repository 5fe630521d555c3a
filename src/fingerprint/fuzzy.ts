/**
 * Near-neighbour matching for fuzzy fingerprint algorithms: the one contract between the
 * fingerprint code (which chooses the hashes) and the reputation stores (which index them).
 *
 * A store keeps, for every stored fuzzy fingerprint, one index entry per `storeKeys(value)`;
 * a lookup probes `probeKeys(value)` and confirms each candidate with `isNear`. Keys are
 * designed so that every stored value within the algorithm's threshold shares at least one key
 * with the probe (multi-index hashing for Hamming codes, LSH bands for minhash), so no lookup
 * ever scans every row.
 *
 * Registered algorithms (thresholds measured by `npm run bench -- fingerprints`, BENCHMARKS.md):
 * - `image:phash256`: 128 DCT bits + 128 gradient bits, near when each half is within its own
 *   distance (IMAGE_MAX_DCT_DISTANCE, IMAGE_MAX_GRADIENT_DISTANCE).
 * - `body:minhash64`: 64 × 16-bit minhash of word 3-shingles, near when at least
 *   BODY_MIN_SIMILARITY of the positions agree; LSH in 32 bands of 2 positions.
 * - `image:dhash64`: kept from the skeleton so stored data of that form still matches.
 */
import { HEX, hexWords, popcount32, wordDistance } from './fuzzy-bits.js';
import { HammingIndex, hammingLayout, hammingScheme } from './fuzzy-hamming.js';
import type { FuzzyScheme } from './fuzzy-types.js';

export type { FuzzyScheme, NeighbourIndex } from './fuzzy-types.js';
export { hammingLayout, hammingScheme, type HammingLayout } from './fuzzy-hamming.js';

/**
 * Minhash scheme over a hex string of `count` 16-bit positions. Banding (LSH): a store key per band
 * of `rows` consecutive positions, so two texts of similarity s share a key with probability
 * 1 - (1 - s^rows)^(count/rows) (0.996 at s = 0.4 with 64 positions in bands of 2).
 */
export function minhashScheme(id: string, count: number, rows: number, minSimilarity: number): FuzzyScheme {
  const positions = (value: string): string[] => value.match(/[0-9a-f]{4}/gi) ?? [];
  const keys = (value: string): string[] => {
    // A well-formed value's positions are its consecutive 4-digit slices, so a band is one
    // substring: no regex match into 64 strings and no join per band on every lookup.
    if (value.length === count * 4 && HEX.test(value)) {
      const out: string[] = [];
      for (let band = 0; band * rows < count; band++) out.push(`${band}:${value.slice(band * rows * 4, Math.min(band * rows + rows, count) * 4)}`);
      return out;
    }
    const p = positions(value);
    const out: string[] = [];
    for (let band = 0; band * rows < count && band * rows < p.length; band++) out.push(`${band}:${p.slice(band * rows, band * rows + rows).join('')}`);
    return out;
  };
  const similarity = (a: string, b: string): number => {
    // Well-formed values (count × 4 hex digits, as minhash writes them) are compared in place:
    // splitting both into 64 strings per candidate was ~2% of a gateway worker's CPU (bench relay).
    if (a.length === count * 4 && b.length === count * 4 && HEX.test(a) && HEX.test(b)) {
      let equal = 0;
      for (let at = 0; at < a.length; at += 4) {
        // | 0x20 folds A-F onto a-f and leaves the digits as they are.
        if (
          (a.charCodeAt(at) | 0x20) === (b.charCodeAt(at) | 0x20) &&
          (a.charCodeAt(at + 1) | 0x20) === (b.charCodeAt(at + 1) | 0x20) &&
          (a.charCodeAt(at + 2) | 0x20) === (b.charCodeAt(at + 2) | 0x20) &&
          (a.charCodeAt(at + 3) | 0x20) === (b.charCodeAt(at + 3) | 0x20)
        )
          equal++;
      }
      return equal / count;
    }
    const pa = positions(a);
    const pb = positions(b);
    if (pa.length !== count || pb.length !== count) return a === b ? 1 : 0;
    let equal = 0;
    for (let i = 0; i < count; i++) if (pa[i]!.toLowerCase() === pb[i]!.toLowerCase()) equal++;
    return equal / count;
  };
  // The fewest equal positions `similarity` calls near, found with its own arithmetic.
  let neededEqual = 0;
  while (neededEqual < count && neededEqual / count < minSimilarity) neededEqual++;
  const allowedMismatches = count - neededEqual;
  return {
    id,
    storeKeys: keys,
    probeKeys: keys,
    similarity,
    isNear: (a, b) => similarity(a, b) >= minSimilarity,
    packed: {
      // The well-formed values `similarity` compares in place, one number per position (parsing folds case as it does).
      pack(value) {
        if (value.length !== count * 4 || !HEX.test(value)) return null;
        const out = new Int32Array(count);
        for (let i = 0; i < count; i++) out[i] = parseInt(value.slice(4 * i, 4 * i + 4), 16);
        return out;
      },
      // Stops at the first mismatch past what nearness allows: most pairs compared are far.
      isNear(a, b) {
        let mismatches = 0;
        for (let i = 0; i < count; i++) if (a[i] !== b[i] && ++mismatches > allowedMismatches) return false;
        return true;
      },
    },
  };
}

/** Bits (of the 128 DCT bits) within which two `image:phash256` values may differ and still be near. */
export const IMAGE_MAX_DCT_DISTANCE = 20;
/** Bits (of the 128 gradient bits) within which two `image:phash256` values may differ and still be near. */
export const IMAGE_MAX_GRADIENT_DISTANCE = 32;
/** Share of equal minhash positions at or above which two `body:minhash64` texts are near-duplicates. */
export const BODY_MIN_SIMILARITY = 0.4;

/**
 * Index chunks of the `image:phash256` DCT half: 7 of 18-19 bits, each probed within 2 bits
 * (3 × 7 = 21 = IMAGE_MAX_DCT_DISTANCE + 1). Measured against 8 × 16 bits (radii 2 and 1) among
 * 200,000 random hashes: 1,240 buckets and ~800 candidates per probe instead of 736 and ~2,250,
 * about half the time; 6 chunks would need 2^21-entry tables and 5,400 buckets per probe.
 */
const IMAGE_DCT_CHUNKS = 7;

/**
 * `image:phash256` = 32 hex digits of DCT bits, then 32 of gradient bits. Near needs both halves
 * near (each is robust to different transforms, together they reject more look-alikes). The
 * index covers the DCT half in IMAGE_DCT_CHUNKS chunks (7 store keys, about 1,240 probe keys),
 * which finds every value within IMAGE_MAX_DCT_DISTANCE of the DCT half. Stores hold it in
 * memory (`newIndex`): among 200,000 random stored hashes a probe walks those buckets and
 * confirms about 800 candidates, a few XOR-popcounts each.
 */
function dctGradientScheme(id: string): FuzzyScheme {
  const layout = hammingLayout(128, IMAGE_MAX_DCT_DISTANCE, IMAGE_DCT_CHUNKS);
  const dct = hammingScheme(`${id}#dct`, 128, IMAGE_MAX_DCT_DISTANCE, IMAGE_DCT_CHUNKS);
  const halves = (value: string): [string, string] => [value.slice(0, 32), value.slice(32, 64)];
  // Words 0-3: the DCT half (least significant word first), 4-7: the gradient half. A half that
  // is not hex reads as 0, as `isNear` reads it; a value not 64 long only ever matches itself.
  const parse = (value: string, out: Int32Array, at: number): boolean => {
    if (value.length !== 64) return false;
    const dctHex = HEX.test(value.slice(0, 32));
    const gradientHex = HEX.test(value.slice(32));
    for (let w = 0; w < 4; w++) {
      out[at + w] = dctHex ? parseInt(value.slice(24 - 8 * w, 32 - 8 * w), 16) | 0 : 0;
      out[at + 4 + w] = gradientHex ? parseInt(value.slice(56 - 8 * w, 64 - 8 * w), 16) | 0 : 0;
    }
    return true;
  };
  // The similarity is computed exactly as `similarity` below, so both paths rank alike.
  const similarityOf = (dctDistance: number, gradientDistance: number): number => (1 - dctDistance / 128 + (1 - gradientDistance / 128)) / 2;
  return {
    id,
    storeKeys: (value) => dct.storeKeys(halves(value)[0]),
    probeKeys: (value) => dct.probeKeys(halves(value)[0]),
    similarity(a, b) {
      const [[a1, a2], [b1, b2]] = [halves(a), halves(b)];
      return similarityOf(hexDistance(a1, b1), hexDistance(a2, b2));
    },
    isNear(a, b) {
      if (a.length !== 64 || b.length !== 64) return a === b;
      const [[a1, a2], [b1, b2]] = [halves(a), halves(b)];
      return hexDistance(a1, b1) <= IMAGE_MAX_DCT_DISTANCE && hexDistance(a2, b2) <= IMAGE_MAX_GRADIENT_DISTANCE;
    },
    newIndex: () =>
      new HammingIndex(layout, 8, parse, (rows, at, probe) => {
        const dctDistance = popcount32(rows[at]! ^ probe[0]!) + popcount32(rows[at + 1]! ^ probe[1]!) + popcount32(rows[at + 2]! ^ probe[2]!) + popcount32(rows[at + 3]! ^ probe[3]!);
        if (dctDistance > IMAGE_MAX_DCT_DISTANCE) return -1;
        const gradientDistance = popcount32(rows[at + 4]! ^ probe[4]!) + popcount32(rows[at + 5]! ^ probe[5]!) + popcount32(rows[at + 6]! ^ probe[6]!) + popcount32(rows[at + 7]! ^ probe[7]!);
        return gradientDistance > IMAGE_MAX_GRADIENT_DISTANCE ? -1 : similarityOf(dctDistance, gradientDistance);
      }),
    packed: {
      pack(value) {
        const out = new Int32Array(8);
        return parse(value, out, 0) ? out : null;
      },
      // Both halves within their distances, as `isNear` reads the strings (a non-hex half reads as 0 in both).
      isNear: (a, b) =>
        wordDistance(a, 0, b, 0, 4) <= IMAGE_MAX_DCT_DISTANCE && wordDistance(a, 4, b, 4, 4) <= IMAGE_MAX_GRADIENT_DISTANCE,
    },
  };
}

/** Hamming distance of two hex codes read as numbers (a half of `image:phash256` is 4 words). */
function hexDistance(a: string, b: string): number {
  const n = Math.max(4, Math.ceil(a.length / 8), Math.ceil(b.length / 8));
  return wordDistance(hexWords(a, n), 0, hexWords(b, n), 0, n);
}

const SCHEMES = new Map<string, FuzzyScheme>([
  ['image:dhash64', hammingScheme('image:dhash64', 64, 8, 4)],
  ['image:phash256', dctGradientScheme('image:phash256')],
  ['body:minhash64', minhashScheme('body:minhash64', 64, 2, BODY_MIN_SIMILARITY)],
]);

/** The fuzzy scheme for `kind:algorithm`, or undefined when that algorithm matches exactly only. */
export function fuzzySchemeFor(kind: string, algorithm: string): FuzzyScheme | undefined {
  return SCHEMES.get(`${kind}:${algorithm}`);
}

export function fuzzySchemes(): FuzzyScheme[] {
  return [...SCHEMES.values()];
}
