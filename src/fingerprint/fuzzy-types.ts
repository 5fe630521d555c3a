/** The contract between the fingerprint code's fuzzy algorithms and the stores that index them (fuzzy.ts). */
export interface FuzzyScheme {
  /** `kind:algorithm`, e.g. `image:dhash64`. */
  readonly id: string;
  storeKeys(value: string): string[];
  probeKeys(value: string): string[];
  /** Similarity in [0, 1]; 1 for identical. */
  similarity(a: string, b: string): number;
  isNear(a: string, b: string): boolean;
  /**
   * When present, stores keep this scheme's index in memory (one per engine instance) instead
   * of reading `storeKeys` rows per lookup: the same chunks and radii as `storeKeys` /
   * `probeKeys`, probed as integers, so a lookup among 200,000 stored hashes stays well under a
   * millisecond. The store only has to tell the index which items exist.
   */
  newIndex?(): NeighbourIndex;
  /**
   * When present, values packed once as numbers and compared as `isNear` compares them, for
   * comparing one value against many (a cache's entries, FuzzyItemSet): a few XORs or equalities
   * instead of parsing both strings per pair. `pack` is null for a value `isNear` does not read
   * as a well-formed code; such pairs are left to `isNear`.
   */
  readonly packed?: PackedNearness;
}

export interface PackedNearness {
  pack(value: string): Int32Array | null;
  isNear(a: Int32Array, b: Int32Array): boolean;
}

/** A scheme's near-neighbour index held in memory (see `FuzzyScheme.newIndex`). */
export interface NeighbourIndex {
  /** Files a stored item by its value (the part after `kind:algorithm:`); an item filed before is ignored. */
  add(item: string, value: string): void;
  /** The stored items near `value`, most similar first (ties by item, as `nearest` orders them). */
  near(value: string): { item: string; similarity: number }[];
  readonly size: number;
}
