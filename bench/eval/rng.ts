/**
 * Seeded random numbers for the evaluation. Every decision of a run (plan, gateways, variants)
 * draws from a stream named after what it decides (`rngFor(seed, 'variant', file, copy)`), so a
 * stream does not shift when another stream draws more or fewer numbers: the same seed gives the
 * same copy of the same message whatever else changed in the run.
 *
 * Generator: sfc32 (small fast counting PRNG, 128-bit state), state from SHA-256 of the name.
 */
import { createHash } from 'node:crypto';

export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(name: string) {
    const digest = createHash('sha256').update(name).digest();
    this.#a = digest.readUInt32LE(0);
    this.#b = digest.readUInt32LE(4);
    this.#c = digest.readUInt32LE(8);
    this.#d = digest.readUInt32LE(12);
    // Mix the state before the first number is used (sfc32's authors discard 12 outputs).
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** Uniform in [min, max). */
  between(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A new shuffled array (Fisher–Yates); the input is left alone. */
  shuffled<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** Exponentially distributed with the given mean (gaps between arrivals). */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }

  /** Random token of letters and digits, as spammers put in subjects, bodies and links. */
  token(length: number): string {
    const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789';
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet[Math.floor(this.next() * alphabet.length)];
    return out;
  }
}

/** The stream for one decision: `rngFor(seed, 'variant', file, 3)`. */
export function rngFor(seed: string | number, ...parts: readonly (string | number)[]): Rng {
  return new Rng([String(seed), ...parts.map(String)].join('\u0000'));
}
