/**
 * Perceptual hashes of images already decoded, by the SHA-256 of their bytes. The same bytes
 * come back all day: a company's logo in every signature, a newsletter's banner, a campaign's
 * picture sent to every recipient one transaction at a time. Decoding is most of what an image
 * costs (libvips; ~2.9 of the 5.1 ms of CPU per message of the relay benchmark's image mix), and
 * the same bytes always give the same hash, so a repeat is answered from here.
 *
 * Only successful hashes are kept: a failure may depend on the moment (a decode that timed out
 * under load) and is tried again. One cache per gateway process, bounded by entries (a hash is
 * two 64-character strings: ~10,000 entries take about 3 MB).
 */
import { LRUCache } from 'lru-cache';

export class ImageHashCache {
  readonly #entries: LRUCache<string, string>;

  constructor(maxEntries: number) {
    this.#entries = new LRUCache({ max: maxEntries });
  }

  get size(): number {
    return this.#entries.size;
  }

  get max(): number {
    return this.#entries.max;
  }

  /** The perceptual hash of the image whose bytes have this SHA-256, if known. */
  get(sha256: string): string | undefined {
    return this.#entries.get(sha256);
  }

  set(sha256: string, phash: string): void {
    this.#entries.set(sha256, phash);
  }
}
