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
  /**
   * When present, stores keep this scheme's index in memory (one per engine instance) instead
   * of reading `storeKeys` rows per lookup: the same chunks and radii as `storeKeys` /
   * `probeKeys`, probed as integers, so a lookup among 200,000 stored hashes stays well under a
   * millisecond. The store only has to tell the index which items exist.
   */
  newIndex?(): NeighbourIndex;
}

/** A scheme's near-neighbour index held in memory (see `FuzzyScheme.newIndex`). */
export interface NeighbourIndex {
  /** Files a stored item by its value (the part after `kind:algorithm:`); an item filed before is ignored. */
  add(item: string, value: string): void;
  /** The stored items near `value`, most similar first (ties by item, as `nearest` orders them). */
  near(value: string): { item: string; similarity: number }[];
  readonly size: number;
}

/** Set bits of a 32-bit integer (SWAR: no table, no BigInt). */
export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

const HEX = /^[0-9a-f]*$/i;

/**
 * A hex code as 32-bit words, least significant word first, `words` long (the number the hex
 * spells, so leading digits beyond `words` words are dropped). Text that is not hex reads as 0,
 * as before.
 */
export function hexWords(hex: string, words: number, out = new Uint32Array(words)): Uint32Array {
  const valid = HEX.test(hex);
  for (let w = 0; w < words; w++) {
    const end = hex.length - 8 * w;
    out[w] = !valid || end <= 0 ? 0 : parseInt(hex.slice(Math.max(0, end - 8), end), 16) >>> 0;
  }
  return out;
}

/** Bits [start, start + width) of a word array (width <= 32), as an unsigned integer. */
function bitsAt(words: ArrayLike<number>, start: number, width: number): number {
  let value = 0;
  for (let k = 0; k < width; k++) {
    const bit = start + k;
    if (((words[bit >>> 5] ?? 0) >>> (bit & 31)) & 1) value |= 1 << k;
  }
  return value >>> 0;
}

/** Hamming distance of two word arrays over their first `count` words, from offsets `ai` and `bi`. */
function wordDistance(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, count: number): number {
  let d = 0;
  for (let w = 0; w < count; w++) d += popcount32((a[ai + w]! ^ b[bi + w]!) >>> 0);
  return d;
}

/** Calls `visit` with every value within Hamming distance `radius` of `value` in a `width`-bit space, each once. */
function forEachWithin(value: number, width: number, radius: number, visit: (v: number) => void, from = 0): void {
  visit(value);
  if (radius === 0) return;
  for (let bit = from; bit < width; bit++) forEachWithin((value ^ (1 << bit)) >>> 0, width, radius - 1, visit, bit + 1);
}

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
class HammingIndex implements NeighbourIndex {
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
  #rows: Int32Array;

  /**
   * `parse` writes a value's words at `out[at…]` (false when the value can only match exactly);
   * `confirm` returns the similarity of the row whose words start at `at`, or -1 when not near.
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
    return out.sort((a, b) => b.similarity - a.similarity || (a.item < b.item ? -1 : a.item > b.item ? 1 : 0));
  }
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
  return { id, storeKeys: keys, probeKeys: keys, similarity, isNear: (a, b) => similarity(a, b) >= minSimilarity };
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
