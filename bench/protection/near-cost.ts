/**
 * What a conviction event of a fuzzy kind costs a gateway: finding, among its cached fuzzy
 * fingerprints of that kind (src/fingerprint/fuzzy-set.ts), the near neighbours whose answers it
 * drops. Random values of the real formats (random ones are almost never near, so every entry
 * is compared and none dropped: the whole cost of a search), CACHED of a kind, as many as the
 * gateway's answer cache can hold (DEFAULT_CACHE_SIZE) and a tenth of it.
 */
import { randomBytes } from 'node:crypto';
import { FuzzyItemSet } from '../../src/fingerprint/fuzzy-set.js';
import { DEFAULT_CACHE_SIZE } from '../../src/scan/lookups.js';

export interface NearCost {
  readonly kind: string;
  readonly cached: number;
  /** Milliseconds per changed fingerprint (median of SEARCHES). */
  readonly ms_per_event: number;
  readonly ns_per_cached_entry: number;
}

const KINDS: readonly { kind: string; hexDigits: number }[] = [
  { kind: 'body:minhash64', hexDigits: 256 },
  { kind: 'image:phash256', hexDigits: 64 },
];
const SEARCHES = 50;

export function measureNearCost(): NearCost[] {
  const out: NearCost[] = [];
  for (const { kind, hexDigits } of KINDS) {
    for (const cached of [DEFAULT_CACHE_SIZE / 10, DEFAULT_CACHE_SIZE]) {
      const set = new FuzzyItemSet();
      for (let i = 0; i < cached; i++) set.add(`${kind}:${randomBytes(hexDigits / 2).toString('hex')}`);
      const times: number[] = [];
      for (let i = 0; i < SEARCHES + 5; i++) {
        const probe = `${kind}:${randomBytes(hexDigits / 2).toString('hex')}`;
        const started = performance.now();
        set.near(probe);
        if (i >= 5) times.push(performance.now() - started); // the first ones warm the JIT up
      }
      const median = times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
      out.push({ kind, cached, ms_per_event: Number(median.toFixed(2)), ns_per_cached_entry: Math.round((median * 1e6) / cached) });
    }
  }
  return out;
}
