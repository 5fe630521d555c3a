/**
 * SPF, DKIM, DMARC and ARC for one message, with mailauth, every query through Nimbus's DNS layer
 * under the message's DNS budget (src/dns/mailauth-resolver.ts):
 *
 * - SPF on the client's address as the scan gets it (the connecting client, or what a trusted MTA
 *   passed by XCLIENT/XFORWARD), for the envelope sender (RFC 7208: `postmaster@` the HELO name
 *   when the sender is null), with the HELO name for its macros; not checked without an address,
 *   nor for a loopback or private one (an MTA in front that passes no client: its own address
 *   would fail SPF for every message, and DMARC with it);
 * - every DKIM signature, with keys of at least 1024 bits (the common message through
 *   dkim-fast-path.ts, mailauth's parts with the keys kept; the rest through mailauth whole);
 * - ARC: the chain's seals and its last message signature;
 * - DMARC on the From domain, from the SPF and DKIM results (and the ARC result, for its report).
 *
 * SPF and DMARC results are kept while every DNS answer they read is cached (auth-result-cache.ts),
 * so a sender's next message from the same address costs neither evaluation again.
 *
 * A DNS failure, or the budget spent, is each check's `temperror`; a check that throws (a bug,
 * a message mailauth cannot read) is logged and counts as not done: mail flows either way.
 */
import { arc, dkimVerify, dmarc, spf, type ARCResult, type DMARCResult, type SPFResult } from 'mailauth';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { getDomain } from 'tldts';
import type { DnsBudget } from '../dns/budget.js';
import { mailauthResolver } from '../dns/mailauth-resolver.js';
import type { DnsResolver } from '../dns/resolver.js';
import { isPublicAddress } from '../fingerprint/ip.js';
import { AuthResultCache } from './auth-result-cache.js';
import { DkimKeyCache } from './dkim-key-cache.js';
import { dkimFastPath, type DkimOutcome } from './dkim-fast-path.js';
import type { Envelope, ScanClient } from './types.js';

/** RFC 8301: keys under 1024 bits are not trusted. */
export const MIN_KEY_BITS = 1024;

export type AuthStatus = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror' | 'policy';

export interface SpfCheck {
  readonly result: AuthStatus;
  /** The domain checked: the envelope sender's, or the HELO name's for a null sender. */
  readonly domain: string;
}

export interface DkimCheck {
  readonly result: AuthStatus;
  /** `d=`, lower case. */
  readonly domain: string;
  readonly selector: string | null;
  /** Bytes of the body the signature does not cover (an `l=` shorter than the body); 0: all of it. */
  readonly unsignedBytes: number;
}

export interface DmarcCheck {
  readonly result: AuthStatus;
  /** The From domain. */
  readonly domain: string;
  /** The organisational domain of the From domain (Public Suffix List). */
  readonly organisationalDomain: string;
  /** The policy that applies (`sp=` for a subdomain), lower case; null: no record. */
  readonly policy: string | null;
}

export interface ArcCheck {
  readonly result: AuthStatus;
  /** Number of ARC sets (the last `i=`); 0: none. */
  readonly instances: number;
}

export interface AuthenticationResults {
  readonly spf: SpfCheck | null;
  readonly dkim: readonly DkimCheck[];
  readonly dmarc: DmarcCheck | null;
  readonly arc: ArcCheck | null;
  /** Each check's result as RFC 8601 resinfo (`spf=pass smtp.mailfrom=example.com`), in order. */
  readonly resinfo: readonly string[];
}

/** Nothing was checked (checks off, or the message could not be read). */
export const NOT_CHECKED: AuthenticationResults = Object.freeze({ spf: null, dkim: [], dmarc: null, arc: null, resinfo: [] });

export interface AuthenticatorOptions {
  readonly resolver: DnsResolver;
  /** NIMBUS_HOSTNAME: the authserv-id of Authentication-Results, and the SPF checker's name. */
  readonly hostname: string;
  readonly log: Logger;
}

export interface AuthenticationInput {
  /** The message: in memory, or as a stream when it is too large to hold whole. */
  readonly message: Buffer | Readable;
  readonly envelope: Envelope;
  readonly client: ScanClient;
  readonly budget: DnsBudget;
}

export class Authenticator {
  readonly #options: AuthenticatorOptions;
  readonly #dkimKeys = new DkimKeyCache(MIN_KEY_BITS);
  readonly #spfResults: AuthResultCache<SPFResult>;
  readonly #dmarcResults: AuthResultCache<DmarcOutcome>;

  constructor(options: AuthenticatorOptions) {
    this.#options = options;
    this.#spfResults = new AuthResultCache(options.resolver);
    this.#dmarcResults = new AuthResultCache(options.resolver);
  }

  get hostname(): string {
    return this.#options.hostname;
  }

  get resolver(): DnsResolver {
    return this.#options.resolver;
  }

  /** The results; NOT_CHECKED when a check threw (logged): mail flows without them. */
  async check(input: AuthenticationInput, id: string): Promise<AuthenticationResults> {
    try {
      return await this.#checkNow(input);
    } catch (error) {
      this.#options.log.warn({ event: 'scan.auth_failed', id, err: String(error) }, 'authentication checks failed: no results for this message');
      return NOT_CHECKED;
    }
  }

  async #checkNow(input: AuthenticationInput): Promise<AuthenticationResults> {
    const resolver = mailauthResolver(this.#options.resolver, input.budget);
    const [dkimResult, spfResult] = await Promise.all([
      this.#dkim(input, resolver),
      this.#spf(input, resolver),
    ]);
    // Without ARC sets there is no chain to verify, and nothing to say about one.
    const chain = dkimResult.arc?.chain;
    const arcResult = dkimResult.arc && Array.isArray(chain) && chain.length > 0 ? await arc({ ...dkimResult.arc, chain }, { resolver, minBitLength: MIN_KEY_BITS }) : null;
    const dmarcOutcome = await this.#dmarc(dkimResult, spfResult, arcResult, resolver);
    const dmarcResult = dmarcOutcome?.result ?? null;
    const resinfo = [
      ...(spfResult === null ? [] : [spfResult.info]),
      ...dkimResult.results.map((row) => row.info),
      ...(arcResult?.info ? [arcResult.info] : []),
      ...(dmarcResult === null ? [] : [dmarcResult.info]),
    ].map(oneLine);
    return {
      spf: spfResult === null ? null : { result: statusOf(spfResult.status.result), domain: spfResult.domain.toLowerCase() },
      dkim: dkimResult.results
        .filter((row) => typeof row.signingDomain === 'string' && row.signingDomain !== '')
        .map((row) => ({
          result: statusOf(row.status.result),
          domain: row.signingDomain.toLowerCase(),
          selector: row.selector ?? null,
          unsignedBytes: Number(row.status.underSized ?? 0) || 0,
        })),
      dmarc: dmarcOutcome?.check ?? null,
      arc: arcResult === null ? null : { result: statusOf(arcResult.status.result), instances: arcResult.i === false ? 0 : arcResult.i },
      resinfo,
    };
  }

  async #dkim(input: AuthenticationInput, resolver: ReturnType<typeof mailauthResolver>): Promise<DkimOutcome> {
    const fast = Buffer.isBuffer(input.message) ? await dkimFastPath(input.message, { resolver, keys: this.#dkimKeys }) : null;
    return fast ?? dkimVerify(input.message, { resolver, sender: input.envelope.mailFrom, minBitLength: MIN_KEY_BITS });
  }

  async #spf(input: AuthenticationInput, resolver: ReturnType<typeof mailauthResolver>): Promise<SPFResult | null> {
    const ip = input.client.ip;
    if (ip === null || !isPublicAddress(ip)) return null;
    const helo = input.client.helo;
    const { mailFrom } = input.envelope;
    // Everything mailauth's evaluation reads besides the DNS (the host name is this object's own).
    const key = `${ip}\n${mailFrom}\n${helo}`;
    return this.#spfResults.result(key, resolver, (noting) => spf({ sender: mailFrom, ip, helo, mta: this.#options.hostname, resolver: noting }), (result) => statusOf(result.status.result) === 'temperror');
  }

  async #dmarc(dkimResult: DkimOutcome, spfResult: SPFResult | null, arcResult: ARCResult | null, resolver: ReturnType<typeof mailauthResolver>): Promise<DmarcOutcome | null> {
    // DMARC needs exactly one From address (RFC 7489 6.6.1): mailauth gives up on several.
    if (dkimResult.headerFrom.length !== 1) return null;
    const headerFrom = dkimResult.headerFrom[0]!;
    const spfDomains = spfResult?.status.result === 'pass' ? [spfResult.domain] : [];
    const dkimDomains = dkimResult.results.filter((row) => row.status.result === 'pass').map((row) => ({
      domain: row.signingDomain,
      ...(row.id === undefined ? {} : { id: row.id }),
      ...(row.status.aligned === undefined ? {} : { aligned: row.status.aligned }),
      ...(row.status.underSized === undefined ? {} : { underSized: row.status.underSized }),
    }));
    // What mailauth's DMARC (lib/dmarc/verify.js) reads besides the DNS: the From address, the
    // identities in order with their domain and `underSized` (not a signature's `id`, which is
    // new in every message), and the ARC result's word.
    const key = JSON.stringify([headerFrom, spfDomains, dkimDomains.map((row) => [row.domain, row.underSized ?? null]), arcResult?.status.result ?? null]);
    const evaluate = async (noting: ReturnType<typeof mailauthResolver>): Promise<DmarcOutcome> => {
      const result = await dmarc({ headerFrom: [headerFrom], spfDomains, dkimDomains, ...(arcResult === null ? {} : { arcResult }), resolver: noting });
      // mailauth answers false only for a From count other than one, excluded above.
      if (result === false) throw new Error('DMARC: mailauth gave no result for one From address');
      return { result, check: dmarcCheck(headerFrom, result) };
    };
    return this.#dmarcResults.result(key, resolver, evaluate, (outcome) => outcome.check.result === 'temperror');
  }
}

/** mailauth's DMARC result, and what the checks read of it. */
interface DmarcOutcome {
  readonly result: DMARCResult;
  readonly check: DmarcCheck;
}

/** The From domain, its organisational domain (tldts, the Public Suffix List) and the policy that applied. */
function dmarcCheck(headerFrom: string, result: DMARCResult): DmarcCheck {
  const domain = headerFrom.slice(headerFrom.lastIndexOf('@') + 1).trim().toLowerCase();
  const organisational = getDomain(domain, { allowPrivateDomains: true }) ?? domain;
  return { result: statusOf(result.status.result), domain, organisationalDomain: organisational, policy: result.policy ? result.policy.toLowerCase() : null };
}

const STATUSES = new Set<string>(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy']);

/** mailauth's words as RFC 8601's (it writes `temperr` in places). */
function statusOf(result: string): AuthStatus {
  if (result === 'temperr') return 'temperror';
  return STATUSES.has(result) ? (result as AuthStatus) : 'neutral';
}

/** mailauth folds long resinfo; a front folds the whole field itself (headers.ts). */
function oneLine(text: string): string {
  return text.replace(/\r?\n[ \t]*/g, ' ').trim();
}
