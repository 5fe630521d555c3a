/**
 * A circuit breaker for the reputation service: after a run of failures the gateway stops
 * asking for a while instead of spending its whole time budget on every message, then lets
 * one trial request through to see whether the service is back. A service that says it cannot
 * serve (503 with Retry-After: its store is unreachable) opens the circuit at once, for as long
 * as it asked: there is nothing to learn from four more failures.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerPolicy {
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number;
  /** How long the circuit stays open before one trial is let through. */
  readonly openMs: number;
}

export const DEFAULT_BREAKER_POLICY: BreakerPolicy = { failureThreshold: 5, openMs: 30_000 };

export class CircuitBreaker {
  readonly #policy: BreakerPolicy;
  readonly #now: () => number;
  #failures = 0;
  #openedAt: number | null = null;
  /** How long the current opening lasts: the policy's, or what the service asked for. */
  #openMs: number;
  #trialInFlight = false;

  constructor(policy: BreakerPolicy = DEFAULT_BREAKER_POLICY, now: () => number = Date.now) {
    this.#policy = policy;
    this.#now = now;
    this.#openMs = policy.openMs;
  }

  get state(): BreakerState {
    if (this.#openedAt === null) return 'closed';
    return this.#now() - this.#openedAt >= this.#openMs ? 'half-open' : 'open';
  }

  /** Whether a request may go out now; in half-open state only one at a time. */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open' || this.#trialInFlight) return false;
    this.#trialInFlight = true;
    return true;
  }

  succeeded(): void {
    this.#failures = 0;
    this.#openedAt = null;
    this.#trialInFlight = false;
  }

  failed(): void {
    this.#failures++;
    this.#trialInFlight = false;
    if (this.#openedAt !== null || this.#failures >= this.#policy.failureThreshold) this.#open(this.#policy.openMs);
  }

  /**
   * The service said it is unavailable: open now, whatever the run of failures, for
   * `retryAfterMs` (its Retry-After) when given, never longer than the policy's openMs.
   */
  unavailable(retryAfterMs: number | null): void {
    this.#failures++;
    this.#trialInFlight = false;
    this.#open(retryAfterMs === null ? this.#policy.openMs : Math.min(Math.max(0, retryAfterMs), this.#policy.openMs));
  }

  #open(ms: number): void {
    this.#openedAt = this.#now();
    this.#openMs = ms;
  }
}
