/**
 * The one DNS layer every DNS check uses: the public lists, and SPF, DKIM, DMARC and ARC
 * (mailauth-resolver.ts).
 * Resolvers from NIMBUS_DNS_SERVERS (else the system's), answers cached as long as their TTLs say
 * (cache.ts), one query in flight per name however many messages ask for it, and every wait
 * bounded by the asking message's budget (budget.ts).
 *
 * Failure policy (STYLE 4): a timeout, SERVFAIL, REFUSED or any other failure is a result,
 * `temperror`, never an exception: the check that asked decides what it means, and mail flows.
 */
import { Resolver } from 'node:dns/promises';
import type { HostPort } from '../config/index.js';
import { DnsBudget } from './budget.js';
import { DEFAULT_NEGATIVE_TTL_S, DnsCache, FAILURE_TTL_S, MAX_NEGATIVE_TTL_S, SOA_TTL_S, TXT_TTL_S, type CachedValue } from './cache.js';
import type { DnsAnswer, DnsFailure, DnsRecordType, DnsResult, MxRecord, TxtRecord } from './types.js';

export interface DnsResolverOptions {
  /** Empty: the system's resolvers (/etc/resolv.conf). */
  readonly servers: readonly HostPort[];
  /** A message's DNS budget (NIMBUS_DNS_TIMEOUT_MS). */
  readonly timeoutMs: number;
  readonly cacheEntries?: number;
}

export interface QueryOptions {
  /**
   * The zone the name is in, when the caller knows it (a DNS list's zone): its SOA MINIMUM then
   * says how long a negative answer is cached (RFC 2308), instead of DEFAULT_NEGATIVE_TTL_S.
   */
  readonly zone?: string;
}

/** c-ares tries each resolver this many times, so one lost UDP packet is asked again inside the budget. */
const TRIES = 2;
const SPENT: DnsResult<never> = Object.freeze({ status: 'temperror', reason: 'budget', detail: 'the DNS budget of the message ran out' });

/** Node's resolver error codes (node:dns) and what they mean here. */
const FAILURES: Readonly<Record<string, 'nxdomain' | 'nodata' | DnsFailure>> = {
  ENOTFOUND: 'nxdomain',
  ENODATA: 'nodata',
  ETIMEOUT: 'timeout',
  ESERVFAIL: 'servfail',
  EREFUSED: 'refused',
};

interface Outcome<T> {
  readonly result: DnsResult<T>;
  /** Seconds the result may be cached; null: decided when stored (a negative answer's zone). */
  readonly ttl: number | null;
}

export class DnsResolver {
  readonly #resolver: Resolver;
  readonly #cache: DnsCache;
  readonly #timeoutMs: number;
  readonly #inFlight = new Map<string, Promise<DnsResult<unknown>>>();
  readonly #soaInFlight = new Map<string, Promise<number>>();
  readonly #servers: readonly string[];
  readonly #configured: readonly HostPort[];
  #closed = false;

  constructor(options: DnsResolverOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#configured = options.servers;
    // c-ares's own timeout per try: half the budget, so a retry still fits in it.
    this.#resolver = new Resolver({ timeout: Math.max(1, Math.ceil(options.timeoutMs / TRIES)), tries: TRIES });
    if (options.servers.length > 0) this.#resolver.setServers(options.servers.map(({ host, port }) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`)));
    this.#servers = this.#resolver.getServers();
    this.#cache = new DnsCache(options.cacheEntries);
  }

  /** The resolvers asked, as `address:port` (for logs). */
  get servers(): readonly string[] {
    return this.#servers;
  }

  /** The servers as configured (empty: the system's). */
  get configured(): readonly HostPort[] {
    return this.#configured;
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** A fresh budget for one message, at most `capMs` (what is left of its scan's budget). */
  budget(capMs: number = Infinity): DnsBudget {
    return new DnsBudget(Math.min(this.#timeoutMs, capMs));
  }

  /** IPv4 addresses of `name`. */
  a(name: string, budget: DnsBudget, options: QueryOptions = {}): Promise<DnsAnswer<string>> {
    return this.#query<string>('A', name, budget, options);
  }

  /** IPv6 addresses of `name`. */
  aaaa(name: string, budget: DnsBudget, options: QueryOptions = {}): Promise<DnsAnswer<string>> {
    return this.#query<string>('AAAA', name, budget, options);
  }

  /** TXT records of `name`, each as its strings. */
  txt(name: string, budget: DnsBudget, options: QueryOptions = {}): Promise<DnsAnswer<TxtRecord>> {
    return this.#query<TxtRecord>('TXT', name, budget, options);
  }

  /** Mail exchangers of `name` (SPF's `mx` mechanism). */
  mx(name: string, budget: DnsBudget): Promise<DnsAnswer<MxRecord>> {
    return this.#query<MxRecord>('MX', name, budget, {});
  }

  /** Names of a reverse name such as `7.113.0.203.in-addr.arpa` (SPF's `ptr` mechanism). */
  ptr(name: string, budget: DnsBudget): Promise<DnsAnswer<string>> {
    return this.#query<string>('PTR', name, budget, {});
  }

  /**
   * Seconds the cached answer for `type` `name` has left, 0 when none is cached: how long a result
   * computed from that answer (an SPF evaluation, src/scan/auth-result-cache.ts) stays what the
   * DNS layer would give again.
   */
  cachedSeconds(type: string, name: string): number {
    return this.#cache.remainingSeconds(`${type.toUpperCase()} ${name.toLowerCase()}`);
  }

  /** Cancels what is in flight (each gets `temperror`); later queries answer from nothing. */
  close(): void {
    this.#closed = true;
    this.#resolver.cancel();
  }

  async #query<T>(type: DnsRecordType, name: string, budget: DnsBudget, options: QueryOptions): Promise<DnsAnswer<T>> {
    const key = `${type} ${name.toLowerCase()}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined && cached.status !== 'soa') return { result: cached as DnsResult<T>, cached: true };
    if (this.#closed) return { result: { status: 'temperror', reason: 'error', detail: 'the resolver is closed' }, cached: false };
    if (budget.spent) return { result: SPENT, cached: false };
    if (options.zone !== undefined) this.#negativeTtl(options.zone.toLowerCase());
    let pending = this.#inFlight.get(key) as Promise<DnsResult<T>> | undefined;
    if (pending === undefined) {
      pending = this.#ask<T>(type, name).then((outcome) => {
        this.#inFlight.delete(key);
        this.#store(key, outcome, options.zone?.toLowerCase());
        return outcome.result;
      });
      this.#inFlight.set(key, pending);
    }
    return { result: await budget.race(pending, SPENT), cached: false };
  }

  async #ask<T>(type: DnsRecordType, name: string): Promise<Outcome<T>> {
    try {
      if (type === 'TXT') {
        const records = await this.#resolver.resolveTxt(name);
        return { result: { status: 'ok', records: records as T[] }, ttl: TXT_TTL_S };
      }
      // Node gives no TTL for MX and PTR answers either: they are kept as long as TXT answers.
      if (type === 'MX') return { result: { status: 'ok', records: (await this.#resolver.resolveMx(name)) as T[] }, ttl: TXT_TTL_S };
      if (type === 'PTR') return { result: { status: 'ok', records: (await this.#resolver.resolvePtr(name)) as T[] }, ttl: TXT_TTL_S };
      const records = type === 'A' ? await this.#resolver.resolve4(name, { ttl: true }) : await this.#resolver.resolve6(name, { ttl: true });
      return { result: { status: 'ok', records: records.map((record) => record.address as T) }, ttl: Math.min(...records.map((record) => record.ttl)) };
    } catch (error) {
      const code = String((error as { code?: unknown }).code ?? '');
      const meaning = FAILURES[code];
      if (meaning === 'nxdomain' || meaning === 'nodata') return { result: { status: meaning }, ttl: null };
      const detail = `${code || 'error'} for ${type} ${name}`;
      // A cancelled query (reload, shutdown) says nothing about the name: it is not cached.
      const reason: DnsFailure = meaning === undefined ? 'error' : meaning;
      return { result: { status: 'temperror', reason, detail }, ttl: code === 'ECANCELLED' ? 0 : FAILURE_TTL_S };
    }
  }

  #store(key: string, outcome: Outcome<unknown>, zone: string | undefined): void {
    const { result } = outcome;
    if (outcome.ttl !== null) {
      this.#cache.set(key, result, outcome.ttl);
      return;
    }
    // A negative answer: the zone's SOA MINIMUM when known, else the default until it is.
    const known = zone === undefined ? undefined : this.#cache.get(`SOA ${zone}`);
    this.#cache.set(key, result, known?.status === 'soa' ? known.minimum : DEFAULT_NEGATIVE_TTL_S);
    const soa = zone === undefined || known !== undefined ? undefined : this.#soaInFlight.get(zone);
    if (soa === undefined) return;
    const stored = performance.now();
    void soa.then((minimum) => {
      // Only the entry stored above is corrected; a newer answer keeps its own TTL.
      if (this.#cache.get(key) === result) this.#cache.set(key, result, minimum - (performance.now() - stored) / 1000);
    });
  }

  /**
   * Starts finding `zone`'s SOA MINIMUM unless it is known or being found: asked alongside the
   * first query into the zone, so a negative answer's TTL costs no extra wait.
   */
  #negativeTtl(zone: string): void {
    const key = `SOA ${zone}`;
    if (this.#cache.get(key) !== undefined || this.#soaInFlight.has(zone)) return;
    const found = this.#resolver.resolveSoa(zone).then(
      (soa) => {
        const minimum = Math.min(soa.minttl, MAX_NEGATIVE_TTL_S);
        this.#cache.set(key, soaEntry(minimum), SOA_TTL_S);
        return minimum;
      },
      (error: unknown) => {
        // A zone name below its apex (a DQS key's `_file.KEY.hbl…`) has no SOA of its own: default.
        const failed = FAILURES[String((error as { code?: unknown }).code ?? '')];
        const negative = failed === 'nxdomain' || failed === 'nodata';
        this.#cache.set(key, soaEntry(DEFAULT_NEGATIVE_TTL_S), negative ? SOA_TTL_S : FAILURE_TTL_S);
        return DEFAULT_NEGATIVE_TTL_S;
      },
    );
    this.#soaInFlight.set(zone, found);
    void found.finally(() => this.#soaInFlight.delete(zone));
  }
}

function soaEntry(minimum: number): CachedValue {
  return { status: 'soa', minimum };
}
