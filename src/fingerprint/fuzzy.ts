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
 * (Provisional scheme set up with the skeleton; the fingerprint work owns the algorithms and
 * constants, the exported API stays.)
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
  const chunkBits = Math.ceil(bits / chunks);
  // Multi-index hashing: if distance <= maxDistance, some chunk differs in at most
  // floor(maxDistance / chunks) bits, so probing every chunk within that radius finds it.
  const radius = Math.floor(maxDistance / chunks);
  const toBits = (hex: string): bigint => BigInt(`0x${hex || '0'}`);
  const chunkValue = (code: bigint, index: number): number =>
    Number((code >> BigInt(index * chunkBits)) & ((1n << BigInt(chunkBits)) - 1n));
  const distance = (a: string, b: string): number => {
    let x = toBits(a) ^ toBits(b);
    let count = 0;
    while (x > 0n) {
      x &= x - 1n;
      count++;
    }
    return count;
  };
  const neighbours = (value: number, r: number): number[] => {
    const out = [value];
    let frontier = [value];
    for (let step = 0; step < r; step++) {
      const next: number[] = [];
      for (const v of frontier) for (let bit = 0; bit < chunkBits; bit++) {
        const flipped = v ^ (1 << bit);
        if (flipped > v || step === 0) next.push(flipped);
      }
      frontier = [...new Set(next)];
      out.push(...frontier);
    }
    return [...new Set(out)];
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
        for (const v of neighbours(chunkValue(code, i), radius)) keys.push(`${i}:${v.toString(16)}`);
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

const SCHEMES = new Map<string, FuzzyScheme>([
  ['image:dhash64', hammingScheme('image:dhash64', 64, 8, 4)],
]);

/** The fuzzy scheme for `kind:algorithm`, or undefined when that algorithm matches exactly only. */
export function fuzzySchemeFor(kind: string, algorithm: string): FuzzyScheme | undefined {
  return SCHEMES.get(`${kind}:${algorithm}`);
}

export function fuzzySchemes(): FuzzyScheme[] {
  return [...SCHEMES.values()];
}
