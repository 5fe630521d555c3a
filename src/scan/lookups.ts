/**
 * One batched lookup per message: the embedded engine always, the reputation service when
 * participation allows it, with a TTL cache in front of the service, a strict time budget and
 * a circuit breaker. A failure of the service lets mail through on local data (STYLE: every
 * check says whether its failure holds mail; this one never does) and marks what could not be
 * learnt, so headers and logs say the verdict is partial.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { FuzzyItemSet } from '../fingerprint/fuzzy-set.js';
import type { Fingerprint } from '../fingerprint/types.js';
import type { LookupResult } from '../reputation/api.js';
import type { ReputationEngine } from '../reputation/engine-types.js';
import { CircuitBreaker, type BreakerState } from './breaker.js';

/** What the gateway needs of the service client (src/reputation/client.ts satisfies it). */
export interface RemoteReputation {
  lookup(items: readonly string[], signal?: AbortSignal): Promise<LookupResult[]>;
}

export type RemoteOutcome = 'disabled' | 'ok' | 'cached' | 'timeout' | 'error' | 'breaker-open' | 'auth-rejected';

export interface LookupOutcome {
  readonly results: ReadonlyMap<string, LookupResult>;
  readonly remote: RemoteOutcome;
  /** Items the service should have answered but did not (timeout, error, open breaker). */
  readonly incomplete: ReadonlySet<string>;
  readonly cacheHits: number;
  readonly remoteMs: number | null;
}

export interface LookupObserver {
  remoteLookup?(outcome: RemoteOutcome, ms: number): void;
  cacheHits?(hits: number, misses: number): void;
  breakerState?(state: BreakerState): void;
}

export interface ReputationLookupsOptions {
  readonly local: ReputationEngine;
  /** Null when participation is off (or no service is configured): local data only. */
  readonly remote: RemoteReputation | null;
  /** Which fingerprints may be sent to the service in the current participation mode. */
  readonly sendable: (fingerprint: Fingerprint) => boolean;
  readonly timeoutMs: number;
  readonly log: Logger;
  readonly cacheSize?: number;
  /** How long an answer is kept while the convictions stream is up. */
  readonly cacheTtlMs?: number;
  /** How long an answer is kept while the stream is down or not yet open (NIMBUS_UNKNOWN_CACHE_MS). */
  readonly shortTtlMs?: number;
  readonly breaker?: CircuitBreaker;
  readonly observer?: LookupObserver;
}

/** The service cannot serve (its store is unreachable): the breaker opens at once, for its Retry-After. */
const HTTP_UNAVAILABLE = 503;

/**
 * A service answer, `unknown` included, is cached this long while the convictions stream is up
 * (it drops an answer the moment its verdict changes, and the answers for near neighbours of a
 * changed fuzzy fingerprint): long enough to spare the service a campaign's repeats.
 */
export const DEFAULT_CACHE_TTL_MS = 60_000;
/** Every answer while the stream is down or not yet open (NIMBUS_UNKNOWN_CACHE_MS's default). */
export const DEFAULT_SHORT_TTL_MS = 10_000;
export const DEFAULT_CACHE_SIZE = 100_000;

export class ReputationLookups {
  readonly #options: ReputationLookupsOptions;
  readonly #cache: LRUCache<string, LookupResult>;
  /** The cached fuzzy fingerprints, so a changed one's near neighbours can be dropped with it. */
  readonly #fuzzy = new FuzzyItemSet();
  readonly #breaker: CircuitBreaker;
  #authRejectedLogged = false;
  /** Whether the convictions stream is connected: only then may known answers be kept long. */
  #streamUp = false;
  /** Counts forgets: an answer asked for before one may be what was just forgotten, and is not kept. */
  #forgets = 0;

  constructor(options: ReputationLookupsOptions) {
    this.#options = options;
    this.#cache = new LRUCache({
      max: options.cacheSize ?? DEFAULT_CACHE_SIZE,
      ttl: options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS,
      // Overwritten ('set'), the item stays cached and filed.
      dispose: (_value, item, reason) => {
        if (reason !== 'set') this.#fuzzy.delete(item);
      },
    });
    this.#breaker = options.breaker ?? new CircuitBreaker();
  }

  /**
   * Fingerprints whose verdict changed at the service: the next lookup asks again, about them and
   * about the cached near neighbours of the fuzzy ones (a neighbour's answer is its most decisive
   * near neighbour's at the service, so it may have changed unnamed). Returns those neighbours.
   */
  forget(items: Iterable<string>): string[] {
    this.#forgets++;
    const named = new Set(items);
    const neighbours = new Set<string>();
    for (const item of named) {
      this.#cache.delete(item);
      for (const near of this.#fuzzy.near(item)) if (!named.has(near)) neighbours.add(near);
    }
    for (const near of neighbours) this.#cache.delete(near);
    return [...neighbours];
  }

  /** What changed is not known (a `reset`, or the stream went down): every answer is asked again. */
  forgetAll(): void {
    this.#forgets++;
    this.#cache.clear();
  }

  /**
   * The convictions stream connected (known answers may be kept long) or went down (new answers
   * kept briefly). Answers already cached stay: what changed meanwhile is named, or a `reset`
   * sent, when the stream resumes from its Last-Event-ID.
   */
  setStreamUp(up: boolean): void {
    this.#streamUp = up;
  }

  get cachedAnswers(): number {
    return this.#cache.size;
  }

  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  async lookup(fingerprints: readonly Fingerprint[]): Promise<LookupOutcome> {
    const texts = [...new Set(fingerprints.map((fingerprint) => fingerprint.text))];
    const sendable = [...new Set(fingerprints.filter(this.#options.sendable).map((fingerprint) => fingerprint.text))];
    const [local, remote] = await Promise.all([
      texts.length > 0 ? this.#options.local.lookup(texts) : Promise.resolve([]),
      this.#remote(sendable),
    ]);
    const results = new Map<string, LookupResult>();
    for (const result of local) results.set(result.item, result);
    for (const [item, answer] of remote.answers) results.set(item, preferred(results.get(item), answer));
    return { results, remote: remote.outcome, incomplete: remote.incomplete, cacheHits: remote.cacheHits, remoteMs: remote.ms };
  }

  async #remote(items: readonly string[]): Promise<{
    answers: Map<string, LookupResult>;
    outcome: RemoteOutcome;
    incomplete: Set<string>;
    cacheHits: number;
    ms: number | null;
  }> {
    const answers = new Map<string, LookupResult>();
    const remote = this.#options.remote;
    if (remote === null || items.length === 0) return { answers, outcome: 'disabled', incomplete: new Set(), cacheHits: 0, ms: null };
    const misses: string[] = [];
    for (const item of items) {
      const cached = this.#cache.get(item);
      if (cached) answers.set(item, cached);
      else misses.push(item);
    }
    const cacheHits = items.length - misses.length;
    this.#options.observer?.cacheHits?.(cacheHits, misses.length);
    if (misses.length === 0) return { answers, outcome: 'cached', incomplete: new Set(), cacheHits, ms: null };
    if (!this.#breaker.tryAcquire()) {
      return { answers, outcome: 'breaker-open', incomplete: new Set(misses), cacheHits, ms: null };
    }
    const started = performance.now();
    const forgets = this.#forgets;
    const budget = AbortSignal.timeout(this.#options.timeoutMs);
    let outcome: RemoteOutcome;
    try {
      const results = await remote.lookup(misses, budget);
      const shortTtl = this.#options.shortTtlMs ?? DEFAULT_SHORT_TTL_MS;
      for (const result of results) {
        answers.set(result.item, result);
        if (forgets !== this.#forgets) continue;
        if (this.#streamUp) this.#cache.set(result.item, result);
        else if (shortTtl > 0) this.#cache.set(result.item, result, { ttl: shortTtl });
        else continue;
        this.#fuzzy.add(result.item);
      }
      this.#breaker.succeeded();
      this.#authRejectedLogged = false;
      outcome = 'ok';
    } catch (error) {
      const { status, retryAfter } = (error ?? {}) as { status?: unknown; retryAfter?: unknown };
      if (status === HTTP_UNAVAILABLE) this.#breaker.unavailable(typeof retryAfter === 'number' ? retryAfter * 1000 : null);
      else this.#breaker.failed();
      outcome = budget.aborted ? 'timeout' : classify(error);
      this.#logFailure(outcome, error);
    }
    const ms = performance.now() - started;
    this.#options.observer?.remoteLookup?.(outcome, ms);
    this.#options.observer?.breakerState?.(this.#breaker.state);
    const incomplete = new Set(outcome === 'ok' ? [] : misses);
    return { answers, outcome, incomplete, cacheHits, ms };
  }

  #logFailure(outcome: RemoteOutcome, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    if (outcome === 'auth-rejected') {
      // Said loudly once, not per message: the admin has to fix the key; mail keeps flowing.
      if (!this.#authRejectedLogged) {
        this.#options.log.error({ event: 'lookup.auth_rejected', err: message }, 'reputation service rejected NIMBUS_REPUTATION_KEY (401): lookups continue on local data until the key is fixed');
        this.#authRejectedLogged = true;
      }
      return;
    }
    this.#options.log.warn({ event: outcome === 'timeout' ? 'lookup.timeout' : 'lookup.error', err: message, breaker: this.#breaker.state }, 'reputation service lookup failed; verdict from local data');
  }
}

/**
 * What went wrong, for `tests=` and the log. The client wraps every failure in one typed error
 * (status 0 for "no answer"), so a timeout shows only in its cause chain: an abort by a timer.
 */
function classify(error: unknown): RemoteOutcome {
  const status = (error as { status?: unknown } | null)?.status;
  if (status === 401) return 'auth-rejected';
  for (let cause: unknown = error, depth = 0; cause !== null && typeof cause === 'object' && depth < 5; cause = (cause as { cause?: unknown }).cause, depth++) {
    const { name, code } = cause as { name?: unknown; code?: unknown };
    if (name === 'TimeoutError' || name === 'AbortError' || code === 'TIMEOUT' || code === 'ABORT_ERR') return 'timeout';
  }
  return 'error';
}

/**
 * Local knowledge that is decisive (the admin's own verdicts and reports, which give spam or
 * ham) beats the network; otherwise the network's answer, which has seen far more, is used.
 */
function preferred(local: LookupResult | undefined, remote: LookupResult): LookupResult {
  if (local && (local.verdict === 'spam' || local.verdict === 'ham' || local.counters.adminVerdict !== null)) return local;
  if (remote.verdict === 'unknown' && local) return local;
  return remote;
}
