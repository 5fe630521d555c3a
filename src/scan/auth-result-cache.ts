/**
 * SPF and DMARC results already evaluated, each kept exactly as long as every DNS answer it read
 * stays in the DNS layer's cache (src/dns/cache.ts, which honours the answers' TTLs).
 *
 * An SPF evaluation is a function of its inputs (client address, envelope sender, HELO name, the
 * host's name) and of the DNS answers it reads; a DMARC evaluation, of the From address, the
 * SPF and DKIM identities that passed, the ARC result, and the `_dmarc` record. While those answers
 * sit in the DNS cache, a new evaluation with the same inputs would read the same answers and give
 * the same result, so it is taken from here: for a sender whose messages come from the same
 * address, mailauth's parsing, domain checks and formatting are done once per TTL rather than per
 * message. Once any of those answers expires (the smallest TTL left among them when the result was
 * made), the result goes too, and the next message is evaluated afresh, reading the DNS anew.
 *
 * A result that read nothing from the DNS, read an answer that is not cached (a TTL of 0, a query
 * the budget cut short) or says `temperror` (a timeout, SERVFAIL, the budget spent: a moment's
 * state, not the sender's) is not kept.
 */
import { LRUCache } from 'lru-cache';
import type { MailauthResolver } from '../dns/mailauth-resolver.js';
import type { DnsResolver } from '../dns/resolver.js';

/**
 * Results kept per cache (SPF, DMARC) and process: up to ~1 KB each (mailauth's result with its
 * comment and Received-SPF text), so at most ~5 MB; beyond that the least recently used go first.
 */
export const AUTH_RESULT_CACHE_ENTRIES = 5_000;

export class AuthResultCache<T extends object> {
  readonly #dns: DnsResolver;
  readonly #entries: LRUCache<string, T>;

  constructor(dns: DnsResolver, entries: number = AUTH_RESULT_CACHE_ENTRIES) {
    this.#dns = dns;
    this.#entries = new LRUCache<string, T>({ max: entries, ttlAutopurge: false, allowStale: false });
  }

  /**
   * The result kept for `key`, else `evaluate`'s, given `resolver` with every question it asks
   * noted; kept unless `temporary` says it is a temporary failure.
   */
  async result(key: string, resolver: MailauthResolver, evaluate: (resolver: MailauthResolver) => Promise<T>, temporary: (result: T) => boolean): Promise<T> {
    const kept = this.#entries.get(key);
    if (kept !== undefined) return kept;
    const asked: [string, string][] = [];
    const noting: MailauthResolver = (name, rrtype) => {
      asked.push([rrtype, name]);
      return resolver(name, rrtype);
    };
    const result = await evaluate(noting);
    if (asked.length === 0 || temporary(result)) return result;
    const seconds = Math.min(...asked.map(([type, name]) => this.#dns.cachedSeconds(type, name)));
    // Whole milliseconds, rounded down: the result never outlives an answer it read.
    const ms = Math.floor(seconds * 1000);
    if (ms > 0) this.#entries.set(key, result, { ttl: ms });
    return result;
  }

  get size(): number {
    return this.#entries.size;
  }
}
