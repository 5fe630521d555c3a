/**
 * Fingerprint texts filed by fuzzy scheme, so that the ones near a given fingerprint can be
 * found: a cache of service answers uses it to drop, when the service says a fuzzy fingerprint's
 * verdict changed, its cached answers for that fingerprint's near neighbours, whose own verdict
 * (the most decisive near neighbour's, at the service) may have changed with it unnamed.
 *
 * Nearness is the service's own rule (`FuzzyScheme.isNear`, on values packed once as numbers
 * where the scheme can). A search compares the fingerprint with every filed one of its scheme
 * and nothing else: a few tens of nanoseconds each (BENCHMARKS.md, Protection), so a gateway
 * cache's few thousand of a scheme cost well under a millisecond per changed fingerprint.
 */
import { fuzzySchemeFor, type FuzzyScheme } from './fuzzy.js';

interface FuzzyParts {
  readonly scheme: FuzzyScheme;
  readonly value: string;
}

interface Filed {
  readonly value: string;
  /** The scheme's packed form, null when the value is left to `isNear` on strings. */
  readonly packed: Int32Array | null;
}

function fuzzyParts(text: string): FuzzyParts | null {
  const first = text.indexOf(':');
  const second = first < 0 ? -1 : text.indexOf(':', first + 1);
  if (second < 0) return null;
  const scheme = fuzzySchemeFor(text.slice(0, first), text.slice(first + 1, second));
  return scheme === undefined ? null : { scheme, value: text.slice(second + 1) };
}

export class FuzzyItemSet {
  /** Per scheme: filed text → its value part. */
  readonly #byScheme = new Map<FuzzyScheme, Map<string, Filed>>();
  #size = 0;

  /** Files `text` when it is a fuzzy fingerprint (false when it matches exactly only). */
  add(text: string): boolean {
    const parts = fuzzyParts(text);
    if (parts === null) return false;
    let filed = this.#byScheme.get(parts.scheme);
    if (filed === undefined) this.#byScheme.set(parts.scheme, (filed = new Map()));
    if (!filed.has(text)) {
      filed.set(text, { value: parts.value, packed: parts.scheme.packed?.pack(parts.value) ?? null });
      this.#size++;
    }
    return true;
  }

  delete(text: string): void {
    const parts = fuzzyParts(text);
    if (parts !== null && this.#byScheme.get(parts.scheme)?.delete(text)) this.#size--;
  }

  clear(): void {
    this.#byScheme.clear();
    this.#size = 0;
  }

  get size(): number {
    return this.#size;
  }

  /** The filed texts near `text` by its scheme's rule (itself included when filed); none when it is not fuzzy. */
  near(text: string): string[] {
    const parts = fuzzyParts(text);
    if (parts === null) return [];
    const filed = this.#byScheme.get(parts.scheme);
    if (filed === undefined) return [];
    const { scheme, value } = parts;
    const packed = scheme.packed;
    const probe = packed?.pack(value) ?? null;
    const out: string[] = [];
    for (const [other, entry] of filed) {
      const near = probe !== null && entry.packed !== null ? packed!.isNear(probe, entry.packed) : scheme.isNear(value, entry.value);
      if (near) out.push(other);
    }
    return out;
  }
}
