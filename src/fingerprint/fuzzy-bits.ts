/** Bit arithmetic on hex-encoded codes held as 32-bit words, for the Hamming-space schemes. */
/** Set bits of a 32-bit integer (SWAR: no table, no BigInt). */
export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

export const HEX = /^[0-9a-f]*$/i;

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
export function bitsAt(words: ArrayLike<number>, start: number, width: number): number {
  let value = 0;
  for (let k = 0; k < width; k++) {
    const bit = start + k;
    if (((words[bit >>> 5] ?? 0) >>> (bit & 31)) & 1) value |= 1 << k;
  }
  return value >>> 0;
}

/** Hamming distance of two word arrays over their first `count` words, from offsets `ai` and `bi`. */
export function wordDistance(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, count: number): number {
  let d = 0;
  for (let w = 0; w < count; w++) d += popcount32((a[ai + w]! ^ b[bi + w]!) >>> 0);
  return d;
}

/** Calls `visit` with every value within Hamming distance `radius` of `value` in a `width`-bit space, each once. */
export function forEachWithin(value: number, width: number, radius: number, visit: (v: number) => void, from = 0): void {
  visit(value);
  if (radius === 0) return;
  for (let bit = from; bit < width; bit++) forEachWithin((value ^ (1 << bit)) >>> 0, width, radius - 1, visit, bit + 1);
}
