/**
 * The DNS answer cache: bounded (an LRU), each entry kept as long as the DNS says and no longer.
 *
 * - A and AAAA answers: the smallest TTL of their records (Node's resolver gives them).
 * - TXT, MX and PTR answers: Node's resolver gives no TTL for them, so TXT_TTL_S (5 minutes): the
 *   usual TTL of SPF, DKIM and DMARC records, short enough that a record an admin just changed is
 *   seen soon.
 * - NXDOMAIN and NODATA (RFC 2308): the zone's SOA MINIMUM when the caller names the zone (the
 *   public lists do), capped at MAX_NEGATIVE_TTL_S; else DEFAULT_NEGATIVE_TTL_S.
 * - Failures (timeout, SERVFAIL, REFUSED): FAILURE_TTL_S (RFC 2308 section 7 allows up to five
 *   minutes), so a dead list costs one wait per name per half minute, not one per message.
 * Every TTL is capped at MAX_TTL_S; a TTL of 0 is not cached.
 */
import { LRUCache } from 'lru-cache';
import type { DnsResult } from './types.js';

export const TXT_TTL_S = 300;
export const DEFAULT_NEGATIVE_TTL_S = 300;
/** RFC 2308 section 5: one to three hours is a reasonable maximum for negative answers. */
export const MAX_NEGATIVE_TTL_S = 3 * 3600;
export const FAILURE_TTL_S = 30;
export const MAX_TTL_S = 24 * 3600;
/** A zone's SOA MINIMUM is kept this long once known. */
export const SOA_TTL_S = 3600;
/** ~200 bytes an entry: 100,000 answers hold ~20 MB per process at most. */
export const DNS_CACHE_ENTRIES = 100_000;

/** What is cached: an answer of any record type, or a zone's negative TTL. */
export type CachedValue = DnsResult<unknown> | { readonly status: 'soa'; readonly minimum: number };

export class DnsCache {
  readonly #entries: LRUCache<string, CachedValue>;

  constructor(max: number = DNS_CACHE_ENTRIES) {
    this.#entries = new LRUCache<string, CachedValue>({ max, ttlAutopurge: false, allowStale: false });
  }

  get(key: string): CachedValue | undefined {
    return this.#entries.get(key);
  }

  /** Keeps `value` for `ttlSeconds`, capped at MAX_TTL_S; 0 or less: not kept (and an older entry dropped). */
  set(key: string, value: CachedValue, ttlSeconds: number): void {
    const seconds = Math.min(Math.floor(ttlSeconds), MAX_TTL_S);
    if (!(seconds > 0)) {
      this.#entries.delete(key);
      return;
    }
    this.#entries.set(key, value, { ttl: seconds * 1000 });
  }

  /** Seconds `key` has left, 0 when absent. */
  remainingSeconds(key: string): number {
    const ms = this.#entries.getRemainingTTL(key);
    return Number.isFinite(ms) && ms > 0 ? ms / 1000 : 0;
  }

  get size(): number {
    return this.#entries.size;
  }
}
