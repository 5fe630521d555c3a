/**
 * The public DNS lists of NIMBUS_DNS_LISTS, asked for one message: the client's address of the
 * `ip` lists, each link's registrable domain of the `domain` lists, each attachment's SHA-256 of
 * the hash lists, all at once under the message's DNS budget. Each list gives one typed result
 * (listed, not listed, refused, temperror); the scan core scores and reports them, and nothing of
 * them goes into statistics (they are not fingerprints).
 *
 * Failure policy: a list that times out, fails or refuses is `temperror` or `refused` for the
 * message, never listed, and mail flows. A refusal (the operator refuses this resolver) is logged
 * loudly once per list, as is an answer no list gives (a resolver rewriting NXDOMAIN); a list that
 * starts failing is logged once, and once more when it answers again.
 */
import type { Logger } from 'pino';
import type { DnsList, DnsListKind } from '../config/index.js';
import { isPublicAddress } from '../fingerprint/ip.js';
import type { Fingerprint } from '../fingerprint/types.js';
import type { DnsBudget } from './budget.js';
import { classifyAnswers, type ListAnswer } from './list-answers.js';
import { base32HashLabel, hexHashLabels, isIpv4, listableDomain, queryName, reversedAddress } from './names.js';
import type { DnsResolver } from './resolver.js';
import type { DnsFailure } from './types.js';

/** Link domains asked per list and message (SpamAssassin's uridnsbl_max_domains is 20 too). */
export const MAX_DOMAINS_PER_MESSAGE = 20;
/** Attachment hashes asked per list and message (SpamAssassin's HashBL asks at most 10). */
export const MAX_HASHES_PER_MESSAGE = 10;

/** What a message offers the lists to ask about. */
export interface ListQuery {
  /** The client's address; null or not public (loopback, private ranges): ip lists are not asked. */
  readonly clientIp: string | null;
  /** Registrable domains of the links. */
  readonly domains: readonly string[];
  /** Hex SHA-256 of the attachments (images are not attachments here). */
  readonly attachments: readonly string[];
}

/** The query of a message from its fingerprints: `url:domain` values and `attachment:sha256` values. */
export function listQuery(clientIp: string | null, fingerprints: readonly Fingerprint[]): ListQuery {
  const values = (kind: Fingerprint['kind'], algorithm: string) => [...new Set(fingerprints.filter((f) => f.kind === kind && f.algorithm === algorithm).map((f) => f.value))];
  return { clientIp, domains: values('url', 'domain'), attachments: values('attachment', 'sha256') };
}

export type ListStatus = 'listed' | 'refused' | 'temperror' | 'not-listed' | 'not-asked';

/** One listed item: what was asked (local only: an address, a domain, a hash) and what the list answered. */
export interface ListHit {
  readonly item: string;
  readonly answers: readonly string[];
  readonly meanings: readonly string[];
}

export interface DnsListResult {
  readonly name: string;
  readonly kind: DnsListKind;
  /** `tests=` name of a listing: NIMBUS_DNSBL_<NAME>. */
  readonly test: string;
  readonly weight: number;
  /** listed beats refused beats temperror beats not-listed; `not-asked`: the message had nothing of its kind. */
  readonly status: ListStatus;
  readonly hits: readonly ListHit[];
  /** The refusal answer (e.g. 127.255.255.254), when refused. */
  readonly refusal: string | null;
  /** Why an answer could not be had, when temperror. */
  readonly failure: DnsFailure | null;
  /** Names asked, and how many of them the cache answered. */
  readonly queries: number;
  readonly cached: number;
}

/** What each kind of list tells its operator about every message (`nimbus statement`, the docs). */
export const LIST_KIND_TELLS: Readonly<Record<DnsListKind, string>> = Object.freeze({
  ip: "the sending client's IP address (IPv4 or IPv6; private and loopback addresses are never asked)",
  ip4: "the sending client's IPv4 address (IPv6 clients are not asked about)",
  domain: `the registrable domain of each link in the message (at most ${MAX_DOMAINS_PER_MESSAGE} per message; never the full URL or host name)`,
  sha256: `the SHA-256 of each attachment (at most ${MAX_HASHES_PER_MESSAGE} per message; never the file or its name)`,
  'sha256-base32': `the SHA-256 of each attachment, in base32 (at most ${MAX_HASHES_PER_MESSAGE} per message; never the file or its name)`,
});

export function listTest(name: string): string {
  return `NIMBUS_DNSBL_${name.toUpperCase()}`;
}

export interface DnsListsOptions {
  readonly lists: readonly DnsList[];
  readonly resolver: DnsResolver;
  readonly log: Logger;
}

type Answer = ListAnswer | { readonly kind: 'temperror'; readonly reason: DnsFailure };
type Outcome = { readonly item: string; readonly answer: Answer; readonly cached: boolean };

/** The first answer of this kind among a list's outcomes. */
function firstOf<K extends Answer['kind']>(outcomes: readonly Outcome[], kind: K): Extract<Answer, { kind: K }> | undefined {
  return outcomes.map((outcome) => outcome.answer).find((answer): answer is Extract<Answer, { kind: K }> => answer.kind === kind);
}

export class DnsLists {
  readonly #options: DnsListsOptions;
  readonly #refusalLogged = new Set<string>();
  readonly #unexpectedLogged = new Set<string>();
  readonly #failing = new Set<string>();

  constructor(options: DnsListsOptions) {
    this.#options = options;
  }

  get lists(): readonly DnsList[] {
    return this.#options.lists;
  }

  /** A budget for one message, at most `capMs` (what its scan has left). */
  budget(capMs?: number): DnsBudget {
    return this.#options.resolver.budget(capMs);
  }

  async check(query: ListQuery, budget: DnsBudget): Promise<DnsListResult[]> {
    return Promise.all(this.#options.lists.map((list) => this.#checkList(list, query, budget)));
  }

  async #checkList(list: DnsList, query: ListQuery, budget: DnsBudget): Promise<DnsListResult> {
    const items = itemsFor(list, query);
    const outcomes = await Promise.all(items.map(({ item, name }) => this.#ask(list, item, name, budget)));
    const hits = outcomes.flatMap(({ item, answer }) => (answer.kind === 'listed' ? [{ item, answers: answer.answers, meanings: answer.meanings }] : []));
    const refused = firstOf(outcomes, 'refused');
    const failed = firstOf(outcomes, 'temperror');
    const unexpected = firstOf(outcomes, 'unexpected');
    const resolvers = this.#options.resolver.servers;
    if (refused) {
      this.#logOnce(this.#refusalLogged, list, () =>
        this.#options.log.error(
          { event: 'dns.list_refused', list: list.name, answer: refused.answer, resolvers },
          `DNS list ${list.name} refuses this host's queries (answer ${refused.answer}): nothing it answers counts until that is fixed; use your own resolver in NIMBUS_DNS_SERVERS, not a public one, and stay within the list's terms (docs/admin/dns-lists.md)`,
        ),
      );
    }
    if (unexpected) {
      this.#logOnce(this.#unexpectedLogged, list, () =>
        this.#options.log.warn(
          { event: 'dns.list_unexpected_answer', list: list.name, answer: unexpected.answer, resolvers },
          `DNS list ${list.name} answered ${unexpected.answer}, outside 127.0.0.0/8: not counted; a resolver that rewrites NXDOMAIN answers so (use your own resolver in NIMBUS_DNS_SERVERS)`,
        ),
      );
    }
    this.#noteHealth(list, failed?.reason ?? null, items.length > 0);
    const status: ListStatus = hits.length > 0 ? 'listed' : refused ? 'refused' : failed ? 'temperror' : items.length > 0 ? 'not-listed' : 'not-asked';
    return {
      name: list.name,
      kind: list.kind,
      test: listTest(list.name),
      weight: list.weight,
      status,
      hits,
      refusal: refused?.answer ?? null,
      failure: failed?.reason ?? null,
      queries: items.length,
      cached: outcomes.filter((outcome) => outcome.cached).length,
    };
  }

  async #ask(list: DnsList, item: string, name: string, budget: DnsBudget): Promise<Outcome> {
    const { result, cached } = await this.#options.resolver.a(name, budget, { zone: list.zone });
    if (result.status === 'ok') return { item, answer: classifyAnswers(result.records, list.codes), cached };
    if (result.status === 'temperror') return { item, answer: { kind: 'temperror', reason: result.reason }, cached };
    return { item, answer: { kind: 'not-listed' }, cached };
  }

  #logOnce(logged: Set<string>, list: DnsList, write: () => void): void {
    if (logged.has(list.name)) return;
    logged.add(list.name);
    write();
  }

  /** Logs when a list starts failing and when it answers again; a budget spent is the message's, not the list's. */
  #noteHealth(list: DnsList, failure: DnsFailure | null, asked: boolean): void {
    if (!asked || failure === 'budget') return;
    if (failure !== null && !this.#failing.has(list.name)) {
      this.#failing.add(list.name);
      this.#options.log.warn({ event: 'dns.list_failing', list: list.name, reason: failure, resolvers: this.#options.resolver.servers }, `DNS list ${list.name} gives no answer (${failure}): counted as temperror, never as listed, until it answers again`);
    } else if (failure === null && this.#failing.delete(list.name)) {
      this.#options.log.info({ event: 'dns.list_recovered', list: list.name }, `DNS list ${list.name} answers again`);
    }
  }
}

/** The names a list is asked for this message, with the item each stands for. */
function itemsFor(list: DnsList, query: ListQuery): { item: string; name: string }[] {
  const named = (item: string, label: string | null) => {
    const name = label === null ? null : queryName(label, list.zone);
    return name === null ? [] : [{ item, name }];
  };
  switch (list.kind) {
    case 'ip':
    case 'ip4': {
      const ip = query.clientIp;
      if (ip === null || !isPublicAddress(ip) || (list.kind === 'ip4' && !isIpv4(ip))) return [];
      return named(ip, reversedAddress(ip));
    }
    case 'domain':
      // IP literals are not domains: a domain list is never asked about an address (Spamhaus's DBL answers 127.0.1.255).
      return query.domains
        .filter((domain) => listableDomain(domain) !== null)
        .slice(0, MAX_DOMAINS_PER_MESSAGE)
        .flatMap((domain) => named(domain, listableDomain(domain)));
    case 'sha256':
      return query.attachments.slice(0, MAX_HASHES_PER_MESSAGE).flatMap((sha256) => named(sha256, hexHashLabels(sha256)));
    case 'sha256-base32':
      return query.attachments.slice(0, MAX_HASHES_PER_MESSAGE).flatMap((sha256) => named(sha256, base32HashLabel(sha256)));
  }
}
