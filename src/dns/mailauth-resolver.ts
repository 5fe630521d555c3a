/**
 * The DNS layer (resolver.ts) in the shape mailauth asks for: `(name, rrtype) => records`, like
 * `dns.promises.resolve`, failing with Node's error codes. So SPF, DKIM, DMARC and ARC go
 * through the same resolvers (NIMBUS_DNS_SERVERS), the same TTL cache and the message's one DNS
 * budget as the public lists.
 *
 * mailauth reads ENOTFOUND and ENODATA as "no such record" (SPF `none`, DKIM "no key") and
 * anything else as a temporary failure: a timeout, SERVFAIL, REFUSED or the budget spent becomes
 * `temperror` there, never an exception that could hold the message.
 */
import type { DNSResolver } from 'mailauth';
import type { DnsBudget } from './budget.js';
import type { DnsResolver } from './resolver.js';
import type { DnsAnswer, DnsFailure } from './types.js';

/**
 * What mailauth's `resolver` option is called with and must return. Its type says strings only;
 * it reads MX answers as `dns.promises.resolveMx` gives them ({ exchange, priority }), as here.
 */
export type MailauthResolver = DNSResolver;

/** Node's codes for each failure, so mailauth's own tests of them apply. */
const FAILURE_CODES: Readonly<Record<DnsFailure, string>> = {
  timeout: 'ETIMEOUT',
  budget: 'ETIMEOUT',
  servfail: 'ESERVFAIL',
  refused: 'EREFUSED',
  error: 'ECONNREFUSED',
};

class DnsLookupError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A resolver for one message: every query counted against `budget`. */
export function mailauthResolver(resolver: DnsResolver, budget: DnsBudget): MailauthResolver {
  return async (name, rrtype) => {
    const type = rrtype.toUpperCase();
    const { result } = await ask(resolver, budget, name, type);
    if (result.status === 'ok') return [...result.records] as string[];
    if (result.status === 'temperror') throw new DnsLookupError(FAILURE_CODES[result.reason], result.detail);
    if (result.status === 'nxdomain') throw new DnsLookupError('ENOTFOUND', `${type} ${name}: no such name`);
    throw new DnsLookupError('ENODATA', `${type} ${name}: no ${type} record`);
  };
}

function ask(resolver: DnsResolver, budget: DnsBudget, name: string, type: string): Promise<DnsAnswer<unknown>> {
  switch (type) {
    case 'A':
      return resolver.a(name, budget);
    case 'AAAA':
      return resolver.aaaa(name, budget);
    case 'TXT':
      return resolver.txt(name, budget);
    case 'MX':
      return resolver.mx(name, budget);
    case 'PTR':
      return resolver.ptr(name, budget);
    default:
      // Nothing SPF, DKIM, DMARC or ARC needs: refused plainly rather than asked of the system.
      return Promise.resolve({ result: { status: 'temperror', reason: 'error', detail: `${type} ${name}: record type not asked by Nimbus` }, cached: false });
  }
}
