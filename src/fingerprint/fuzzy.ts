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
export interface FuzzyScheme {
  /** `kind:algorithm`, e.g. `image:dhash64`. */
  readonly id: string;
  storeKeys(value: string): string[];
  probeKeys(value: string): string[];
  /** Similarity in [0, 1]; 1 for identical. */
  similarity(a: string, b: string): number;
  isNear(a: string, b: string): boolean;
}

/** Hamming-space scheme over a hex-encoded code of `bits` bits, matching within `maxDistance`. */
export function hammingScheme(id: string, bits: number, maxDistance: number, chunks: number): FuzzyScheme {
  // Chunks partition the bits exactly (widths differ by at most one), so no chunk is constant
  // and no key is shared by every stored value.
  const starts = Array.from({ length: chunks + 1 }, (_, i) => Math.floor((i * bits) / chunks));
  // Multi-index hashing: if distance <= maxDistance, some chunk differs in at most
  // floor(maxDistance / chunks) bits, so probing every chunk within that radius finds it.
  const radius = Math.floor(maxDistance / chunks);
  const toBits = (hex: string): bigint => BigInt(`0x${/^[0-9a-f]+$/i.test(hex) ? hex : '0'}`);
  const chunkValue = (code: bigint, index: number): number =>
    Number((code >> BigInt(starts[index]!)) & ((1n << BigInt(starts[index + 1]! - starts[index]!)) - 1n));
  const distance = (a: string, b: string): number => {
    let x = toBits(a) ^ toBits(b);
    let count = 0;
    while (x > 0n) {
      x &= x - 1n;
      count++;
    }
    return count;
  };
  // Every value within Hamming distance r of `value` in a `width`-bit space.
  const neighbours = (value: number, width: number, r: number): number[] => {
    const out = new Set([value]);
    let frontier = [value];
    for (let step = 0; step < r; step++) {
      const next = new Set<number>();
      for (const v of frontier) for (let bit = 0; bit < width; bit++) next.add(v ^ (1 << bit));
      frontier = [...next].filter((v) => !out.has(v));
      for (const v of frontier) out.add(v);
    }
    return [...out];
  };
  return {
    id,
    storeKeys(value) {
      const code = toBits(value);
      return Array.from({ length: chunks }, (_, i) => `${i}:${chunkValue(code, i).toString(16)}`);
    },
    probeKeys(value) {
      const code = toBits(value);
      const keys: string[] = [];
      for (let i = 0; i < chunks; i++) {
        for (const v of neighbours(chunkValue(code, i), starts[i + 1]! - starts[i]!, radius)) keys.push(`${i}:${v.toString(16)}`);
      }
      return keys;
    },
    similarity(a, b) {
      return 1 - distance(a, b) / bits;
    },
    isNear(a, b) {
      return distance(a, b) <= maxDistance;
    },
  };
}

/**
 * Minhash scheme over a hex string of `count` 16-bit positions. Banding (LSH): a store key per band
 * of `rows` consecutive positions, so two texts of similarity s share a key with probability
 * 1 - (1 - s^rows)^(count/rows) (0.996 at s = 0.4 with 64 positions in bands of 2).
 */
export function minhashScheme(id: string, count: number, rows: number, minSimilarity: number): FuzzyScheme {
  const positions = (value: string): string[] => value.match(/[0-9a-f]{4}/gi) ?? [];
  const keys = (value: string): string[] => {
    const p = positions(value);
    const out: string[] = [];
    for (let band = 0; band * rows < count && band * rows < p.length; band++) out.push(`${band}:${p.slice(band * rows, band * rows + rows).join('')}`);
    return out;
  };
  const similarity = (a: string, b: string): number => {
    const pa = positions(a);
    const pb = positions(b);
    if (pa.length !== count || pb.length !== count) return a === b ? 1 : 0;
    let equal = 0;
    for (let i = 0; i < count; i++) if (pa[i]!.toLowerCase() === pb[i]!.toLowerCase()) equal++;
    return equal / count;
  };
  return { id, storeKeys: keys, probeKeys: keys, similarity, isNear: (a, b) => similarity(a, b) >= minSimilarity };
}

/** Bits (of the 128 DCT bits) within which two `image:phash256` values may differ and still be near. */
export const IMAGE_MAX_DCT_DISTANCE = 20;
/** Bits (of the 128 gradient bits) within which two `image:phash256` values may differ and still be near. */
export const IMAGE_MAX_GRADIENT_DISTANCE = 32;
/** Share of equal minhash positions at or above which two `body:minhash64` texts are near-duplicates. */
export const BODY_MIN_SIMILARITY = 0.4;

/**
 * `image:phash256` = 32 hex digits of DCT bits, then 32 of gradient bits. Near needs both halves
 * near (each is robust to different transforms, together they reject more look-alikes). The
 * index covers the DCT half: 11 chunks of 11-12 bits probed within 1 bit (11 store keys, about
 * 140 probe keys), which finds every value within IMAGE_MAX_DCT_DISTANCE of the DCT half.
 */
function dctGradientScheme(id: string): FuzzyScheme {
  const dct = hammingScheme(`${id}#dct`, 128, IMAGE_MAX_DCT_DISTANCE, 11);
  const gradient = hammingScheme(`${id}#gradient`, 128, IMAGE_MAX_GRADIENT_DISTANCE, 4);
  const halves = (value: string): [string, string] => [value.slice(0, 32), value.slice(32, 64)];
  return {
    id,
    storeKeys: (value) => dct.storeKeys(halves(value)[0]),
    probeKeys: (value) => dct.probeKeys(halves(value)[0]),
    similarity(a, b) {
      const [[a1, a2], [b1, b2]] = [halves(a), halves(b)];
      return (dct.similarity(a1, b1) + gradient.similarity(a2, b2)) / 2;
    },
    isNear(a, b) {
      if (a.length !== 64 || b.length !== 64) return a === b;
      const [[a1, a2], [b1, b2]] = [halves(a), halves(b)];
      return dct.isNear(a1, b1) && gradient.isNear(a2, b2);
    },
  };
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
