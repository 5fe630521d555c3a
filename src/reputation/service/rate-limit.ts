/**
 * Token bucket per key id, kept in one service instance (not shared across instances: a key
 * spread over N instances gets up to N times its rate, which is acceptable for abuse control).
 * Burst = one second of the key's rate, at least 1.
 */
interface Bucket {
  tokens: number;
  updated: number;
}

/** Buckets idle this long are forgotten, so the map stays bounded by active keys. */
const IDLE_MS = 60_000;

export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  #lastSweep = 0;

  /** 0 when the request may pass, else the seconds to wait (for Retry-After). */
  take(id: string, ratePerSecond: number, now = Date.now()): number {
    if (!(ratePerSecond > 0) || !Number.isFinite(ratePerSecond)) return 0;
    const burst = Math.max(1, ratePerSecond);
    let bucket = this.#buckets.get(id);
    if (!bucket) {
      bucket = { tokens: burst, updated: now };
      this.#buckets.set(id, bucket);
    }
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updated) / 1000) * ratePerSecond);
    bucket.updated = now;
    this.#sweep(now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerSecond));
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep < IDLE_MS) return;
    this.#lastSweep = now;
    for (const [id, bucket] of this.#buckets) if (now - bucket.updated > IDLE_MS) this.#buckets.delete(id);
  }
}
