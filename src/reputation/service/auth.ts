/**
 * Bearer keys `nmb_<id>_<secret>` (token helpers in ../keys.ts): the id finds the stored key, the secret is checked by
 * comparing SHA-256 digests in constant time (the secret itself is never stored). Stored keys
 * are cached for a few seconds so a hot key does not hit the store per request, and a revoked
 * key is still refused within that time.
 */
import { LRUCache } from 'lru-cache';
import type { KeyRole } from '../api.js';
import type { KeyStore, StoredKey } from '../engine-types.js';
import { parseToken, secretMatches } from '../keys.js';
import { ERROR_CODES, HTTP, HttpError } from './errors.js';

const RANK: Record<KeyRole, number> = { sensor: 0, reporter: 1, admin: 2 };
/** Cache of "no such key" too, so a flood of bad ids does not reach the store each time. */
const MISSING = Symbol('missing');
const UNKNOWN_HASH = '0'.repeat(64);

export class Authenticator {
  readonly #keys: KeyStore;
  readonly #cache: LRUCache<string, StoredKey | typeof MISSING>;

  constructor(keys: KeyStore, cacheMs = 5000) {
    this.#keys = keys;
    this.#cache = new LRUCache({ max: 10_000, ttl: cacheMs });
  }

  /** The key behind an Authorization header with at least `role`, or an HttpError 401/403. */
  async authenticate(header: string | undefined, role: KeyRole): Promise<StoredKey> {
    const rejected = (why: string) => new HttpError(HTTP.UNAUTHORIZED, ERROR_CODES.AUTH_REJECTED, why, { 'www-authenticate': 'Bearer' });
    if (!header) throw rejected('missing Authorization: Bearer key');
    const [scheme, token] = header.split(' ', 2);
    if (scheme?.toLowerCase() !== 'bearer' || !token) throw rejected('expected Authorization: Bearer nmb_<id>_<secret>');
    const parsed = parseToken(token.trim());
    if (!parsed) throw rejected('malformed key: expected nmb_<id>_<secret>');
    const key = await this.#find(parsed.id);
    // Hash even for unknown ids so timing does not tell which ids exist.
    const same = secretMatches(parsed.secret, key?.secretHash ?? UNKNOWN_HASH);
    if (!key || !same) throw rejected('unknown key or wrong secret');
    if (key.revokedAt !== null) throw rejected(`key ${key.id} was revoked`);
    this.authorize(key, role);
    return key;
  }

  /** An HttpError 403 unless `key` has at least `role` (roles nest: admin ⊇ reporter ⊇ sensor). */
  authorize(key: StoredKey, role: KeyRole): void {
    if (RANK[key.role] < RANK[role]) {
      throw new HttpError(HTTP.FORBIDDEN, ERROR_CODES.FORBIDDEN, `key ${key.id} has role ${key.role}; this needs ${role}`);
    }
  }

  async #find(id: string): Promise<StoredKey | null> {
    const cached = this.#cache.get(id);
    if (cached !== undefined) return cached === MISSING ? null : cached;
    const key = await this.#keys.findKey(id);
    this.#cache.set(id, key ?? MISSING);
    return key;
  }
}
