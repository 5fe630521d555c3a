/** Multi-index hashing for Hamming codes: the store keys and probes, and the in-memory index. */
import { HEX, bitsAt, forEachWithin, hexWords, wordDistance } from './fuzzy-bits.js';
import type { FuzzyScheme, NeighbourIndex } from './fuzzy-types.js';

/**
 * How `bits` bits are cut into `chunks` index chunks, and how far each chunk is probed.
 * Generalised pigeonhole: if every chunk i differed in more than radius_i bits, the codes would
 * differ in at least sum(radius_i + 1) bits; the radii are chosen so that this sum is
 * maxDistance + 1, so any code within maxDistance matches some chunk within its radius. Spread
 * evenly, this is the fewest probes for the guarantee (8 chunks and 20 bits: radius 2 in five
 * chunks, 1 in three; 7 chunks: 2 in all; a radius of -1 means the chunk is never probed).
 */
export interface HammingLayout {
  readonly bits: number;
  readonly maxDistance: number;
  /** Chunk i covers bits [starts[i], starts[i + 1]) counted from the least significant bit. */
  readonly starts: readonly number[];
  readonly radii: readonly number[];
}

export function hammingLayout(bits: number, maxDistance: number, chunks: number): HammingLayout {
  // Chunks partition the bits exactly (widths differ by at most one), so no chunk is constant
  // and no key is shared by every stored value.
  const starts = Array.from({ length: chunks + 1 }, (_, i) => Math.floor((i * bits) / chunks));
  const budget = maxDistance + 1;
  const radii = Array.from({ length: chunks }, (_, i) => Math.floor(budget / chunks) + (i < budget % chunks ? 1 : 0) - 1);
  return { bits, maxDistance, starts, radii };
}

/** Hamming-space scheme over a hex-encoded code of `bits` bits, matching within `maxDistance`. */
export function hammingScheme(id: string, bits: number, maxDistance: number, chunks: number): FuzzyScheme {
  const layout = hammingLayout(bits, maxDistance, chunks);
  const { starts, radii } = layout;
  const width = (i: number) => starts[i + 1]! - starts[i]!;
  const wordsOf = (hex: string): Uint32Array => hexWords(hex, Math.max(Math.ceil(bits / 32), Math.ceil(hex.length / 8)));
  const distance = (a: string, b: string): number => {
    const n = Math.max(Math.ceil(bits / 32), Math.ceil(a.length / 8), Math.ceil(b.length / 8));
    return wordDistance(hexWords(a, n), 0, hexWords(b, n), 0, n);
  };
  return {
    id,
    storeKeys(value) {
      const code = wordsOf(value);
      return Array.from({ length: chunks }, (_, i) => `${i}:${bitsAt(code, starts[i]!, width(i)).toString(16)}`);
    },
    probeKeys(value) {
      const code = wordsOf(value);
      const keys: string[] = [];
      for (let i = 0; i < chunks; i++) {
        if (radii[i]! >= 0) forEachWithin(bitsAt(code, starts[i]!, width(i)), width(i), radii[i]!, (v) => keys.push(`${i}:${v.toString(16)}`));
      }
      return keys;
    },
    similarity(a, b) {
      return 1 - distance(a, b) / bits;
    },
    isNear(a, b) {
      return distance(a, b) <= maxDistance;
    },
    packed: {
      // A value of exactly `bits` bits reads as `distance` reads it; any other length is left to `isNear`.
      pack: (value) => (value.length * 4 === bits && HEX.test(value) ? Int32Array.from(hexWords(value, Math.ceil(bits / 32))) : null),
      isNear: (a, b) => wordDistance(a, 0, b, 0, Math.ceil(bits / 32)) <= maxDistance,
    },
  };
}

/**
 * Widest chunk the in-memory index keeps a direct bucket table for (2^20 heads of 4 bytes per
 * chunk): wider chunks would need a hash map per probe and are not used by any scheme.
 */
const MAX_TABLE_BITS = 20;

/**
 * Multi-index hashing in memory for codes of `words` 32-bit words whose bits are cut into
 * chunks by `layout`; `confirm` decides nearness and similarity. Per chunk, a bucket table of
 * linked lists: `heads[chunk][bucket]` is the newest entry of that bucket, and each entry keeps,
 * per chunk, the entry before it in its bucket. O(1) to add, no object per entry, and a probe
 * only walks the buckets within each chunk's radius.
 *
 * An entry's links and code words sit side by side in one Int32Array row (16 ints = 64 bytes
 * for up to 8 chunks of an 8-word code: about one cache line), so confirming a candidate touches one line:
 * at 200,000 entries the index is far bigger than the CPU caches, and memory misses, not
 * arithmetic, are what a lookup costs.
 */
export class HammingIndex implements NeighbourIndex {
  readonly #words: number;
  readonly #chunks: number;
  /** Ints per entry row: the chunk links, then the code words, padded to a power of two. */
  readonly #stride: number;
  readonly #parse: (value: string, out: Int32Array, at: number) => boolean;
  readonly #confirm: (rows: Int32Array, at: number, probe: Int32Array) => number;
  readonly #heads: Int32Array[];
  /** Per chunk: bucket = (the code from word `word` on >>> shift) & mask. */
  readonly #word: number[];
  readonly #shift: number[];
  readonly #mask: number[];
  /** Per chunk, every XOR pattern of weight <= its radius (empty when the chunk is not probed). */
  readonly #patterns: Int32Array[];
  readonly #ids = new Map<string, number>();
  readonly #items: string[] = [];
  readonly #probe: Int32Array;
  /** Buckets one probe reads (every chunk's patterns): an index of no more entries is read whole instead. */
  readonly #probeBuckets: number;
  #rows: Int32Array;

  /**
   * `parse` writes a value's words at `out[at…]` (false when the value can only match exactly);
   * `confirm` returns the similarity of the row whose words start at `at`, or -1 when not near,
   * and never calls near a code further than `layout.maxDistance` in the chunked bits: then the
   * probed buckets hold every row it accepts, and reading every row answers the same.
   */
  constructor(layout: HammingLayout, words: number, parse: (value: string, out: Int32Array, at: number) => boolean, confirm: (rows: Int32Array, at: number, probe: Int32Array) => number) {
    this.#words = words;
    this.#chunks = layout.radii.length;
    this.#stride = 2 ** Math.ceil(Math.log2(this.#chunks + words));
    this.#parse = parse;
    this.#confirm = confirm;
    this.#word = [];
    this.#shift = [];
    this.#mask = [];
    this.#heads = [];
    this.#patterns = [];
    for (let c = 0; c < this.#chunks; c++) {
      const start = layout.starts[c]!;
      const width = layout.starts[c + 1]! - start;
      if (width > MAX_TABLE_BITS) throw new RangeError(`chunk of ${width} bits is too wide for an in-memory bucket table`);
      this.#word.push(start >>> 5);
      this.#shift.push(start & 31);
      this.#mask.push(2 ** width - 1);
      this.#heads.push(new Int32Array(2 ** width).fill(-1));
      const patterns: number[] = [];
      if (layout.radii[c]! >= 0) forEachWithin(0, width, layout.radii[c]!, (p) => patterns.push(p));
      this.#patterns.push(Int32Array.from(patterns));
    }
    this.#rows = new Int32Array(1024 * this.#stride);
    this.#probe = new Int32Array(words);
    this.#probeBuckets = this.#patterns.reduce((sum, patterns) => sum + patterns.length, 0);
  }

  get size(): number {
    return this.#items.length;
  }

  add(item: string, value: string): void {
    if (this.#ids.has(item)) return;
    const id = this.#items.length;
    const stride = this.#stride;
    if ((id + 1) * stride > this.#rows.length) {
      const rows = new Int32Array(this.#rows.length * 2);
      rows.set(this.#rows);
      this.#rows = rows;
    }
    const rows = this.#rows;
    const at = id * stride;
    if (!this.#parse(value, rows, at + this.#chunks)) return;
    this.#ids.set(item, id);
    this.#items.push(item);
    for (let c = 0; c < this.#chunks; c++) {
      const bucket = this.#bucket(rows, at + this.#chunks, c);
      rows[at + c] = this.#heads[c]![bucket]!;
      this.#heads[c]![bucket] = id;
    }
  }

  /** Chunk `c` of the code whose words start at `code[at]` (a chunk may straddle two words). */
  #bucket(code: Int32Array, at: number, c: number): number {
    const word = this.#word[c]!;
    const shift = this.#shift[c]!;
    const low = code[at + word]! >>> shift;
    const high = shift === 0 || word + 1 >= this.#words ? 0 : code[at + word + 1]! << (32 - shift);
    return ((low | high) & this.#mask[c]!) >>> 0;
  }

  near(value: string): { item: string; similarity: number }[] {
    const probe = this.#probe;
    if (!this.#parse(value, probe, 0)) return [];
    const out: { item: string; similarity: number }[] = [];
    const found = new Set<number>();
    const chunks = this.#chunks;
    const stride = this.#stride;
    const rows = this.#rows;
    const confirm = this.#confirm;
    // A small index (a new gateway's, ~1,240 buckets per image probe) is read row by row: each
    // bucket read costs about what confirming one row does, and every row is confirmed once.
    if (this.#items.length <= this.#probeBuckets) {
      for (let id = 0; id < this.#items.length; id++) {
        const similarity = confirm(rows, id * stride + chunks, probe);
        if (similarity >= 0) out.push({ item: this.#items[id]!, similarity });
      }
      return out.sort(bySimilarity);
    }
    for (let c = 0; c < chunks; c++) {
      const patterns = this.#patterns[c]!;
      const heads = this.#heads[c]!;
      const own = this.#bucket(probe, 0, c);
      for (let p = 0; p < patterns.length; p++) {
        // An entry can sit in probed buckets of several chunks: confirmed each time (cheaper than
        // marking every candidate), reported once.
        for (let id = heads[own ^ patterns[p]!]!; id >= 0; id = rows[id * stride + c]!) {
          const similarity = confirm(rows, id * stride + chunks, probe);
          if (similarity >= 0 && !found.has(id)) {
            found.add(id);
            out.push({ item: this.#items[id]!, similarity });
          }
        }
      }
    }
    return out.sort(bySimilarity);
  }
}

/** Most similar first, then by item: the same order however the rows were found. */
function bySimilarity(a: { item: string; similarity: number }, b: { item: string; similarity: number }): number {
  return b.similarity - a.similarity || (a.item < b.item ? -1 : a.item > b.item ? 1 : 0);
}
