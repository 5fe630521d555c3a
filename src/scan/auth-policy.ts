/**
 * What the authentication results (authentication.ts) mean for a message: its `domain`
 * fingerprints, its `tests=` names and points, and its Authentication-Results field (RFC 8601).
 *
 * Only a verified identity becomes a fingerprint: the `d=` of a passing DKIM signature that
 * covers the whole body, the SPF-passing envelope domain, the organisational domain of a
 * DMARC-passing From domain. A forged identity fails and is never fingerprinted, so a spoofer
 * cannot spoil a real domain's name, nor earn one.
 */
import { domainToASCII } from 'node:url';
import type { Config } from '../config/index.js';
import { fingerprintProblem } from '../fingerprint/forms.js';
import { makeFingerprint, type Fingerprint } from '../fingerprint/types.js';
import type { AuthenticationResults, AuthStatus } from './authentication.js';
import type { HeaderField } from './types.js';

export const AUTHENTICATION_RESULTS = 'Authentication-Results';

/**
 * Fixed points of the results (SpamAssassin's and Rspamd's scores are of the same order): a
 * failure is a hint, not a verdict, since forwarders break SPF and mailing lists break DKIM.
 * A DMARC failure under `p=reject` has its own weight (NIMBUS_WEIGHT_DMARC_REJECT).
 */
export const AUTH_TESTS = Object.freeze({
  SPF_FAIL: { test: 'NIMBUS_SPF_FAIL', points: 1 },
  SPF_SOFTFAIL: { test: 'NIMBUS_SPF_SOFTFAIL', points: 0.5 },
  DKIM_FAIL: { test: 'NIMBUS_DKIM_FAIL', points: 1 },
  DMARC_QUARANTINE: { test: 'NIMBUS_DMARC_QUARANTINE', points: 1.5 },
});
export const DMARC_REJECT_TEST = 'NIMBUS_DMARC_REJECT';
/** Named in `tests=` without points when a check could not get its DNS answers (timeout, SERVFAIL, the budget spent). */
export const AUTH_TEMPERROR_TEST = 'NIMBUS_AUTH_TEMPERROR';

export interface AuthScore {
  /** Points, one part per test. */
  readonly parts: readonly { readonly test: string; readonly points: number }[];
  /** Names without points (a temperror). */
  readonly notes: readonly string[];
}

/** A domain as a fingerprint value: lower-case ASCII (punycode), no trailing dot; null when it is no domain name. */
function domainValue(domain: string): string | null {
  const ascii = domainToASCII(domain.trim().replace(/\.$/, '')).toLowerCase();
  return ascii !== '' && fingerprintProblem(`domain:dkim:${ascii}`) === null ? ascii : null;
}

/** The `domain` fingerprints of the identities that proved themselves. */
export function authFingerprints(results: AuthenticationResults): Fingerprint[] {
  const found = new Map<string, Fingerprint>();
  const add = (algorithm: 'dkim' | 'spf' | 'dmarc', domain: string) => {
    const value = domainValue(domain);
    if (value === null) return;
    const fingerprint = makeFingerprint('domain', algorithm, value, `${algorithm}=${value}`);
    found.set(fingerprint.text, fingerprint);
  };
  // A signature with `l=` shorter than the body vouches for a part only: what follows is anyone's.
  for (const signature of results.dkim) if (signature.result === 'pass' && signature.unsignedBytes === 0) add('dkim', signature.domain);
  if (results.spf?.result === 'pass') add('spf', results.spf.domain);
  if (results.dmarc?.result === 'pass') add('dmarc', results.dmarc.organisationalDomain);
  return [...found.values()];
}

/** The points and names of the results. */
export function authScore(results: AuthenticationResults, policy: Pick<Config, 'dmarcRejectWeight'>): AuthScore {
  const parts: { test: string; points: number }[] = [];
  if (results.spf?.result === 'fail') parts.push(AUTH_TESTS.SPF_FAIL);
  if (results.spf?.result === 'softfail') parts.push(AUTH_TESTS.SPF_SOFTFAIL);
  if (results.dkim.some((signature) => signature.result === 'fail')) parts.push(AUTH_TESTS.DKIM_FAIL);
  if (results.dmarc?.result === 'fail' && results.dmarc.policy === 'reject') parts.push({ test: DMARC_REJECT_TEST, points: policy.dmarcRejectWeight });
  if (results.dmarc?.result === 'fail' && results.dmarc.policy === 'quarantine') parts.push(AUTH_TESTS.DMARC_QUARANTINE);
  const statuses: (AuthStatus | undefined)[] = [results.spf?.result, results.dmarc?.result, results.arc?.result, ...results.dkim.map((signature) => signature.result)];
  return { parts: parts.filter((part) => part.points !== 0), notes: statuses.includes('temperror') ? [AUTH_TEMPERROR_TEST] : [] };
}

/**
 * `Authentication-Results: mx.example.org; spf=pass … ; dkim=pass header.d=…`, or `; none` when
 * nothing could be checked (RFC 8601 2.2). ASCII only, as the verdict fields: a non-ASCII
 * character (an SMTPUTF8 sender in a comment) would make a 7-bit message 8-bit.
 */
export function authenticationResultsField(authservId: string, results: AuthenticationResults): HeaderField {
  const resinfo = results.resinfo.length === 0 ? ['none'] : results.resinfo;
  return { name: AUTHENTICATION_RESULTS, value: `${authservId}; ${resinfo.join('; ')}`.replace(/[^\x20-\x7e\t]/g, '?') };
}

/**
 * The authserv-id of an Authentication-Results value (RFC 8601 2.2: CFWS, the id, an optional
 * version, `;`), lower case; null when there is none.
 */
export function authservIdOf(value: string): string | null {
  let rest = value.trim();
  while (rest.startsWith('(')) {
    const end = rest.indexOf(')');
    if (end < 0) return null;
    rest = rest.slice(end + 1).trim();
  }
  const id = /^[^\s;()]+/.exec(rest)?.[0];
  return id === undefined ? null : id.replace(/^"|"$/g, '').toLowerCase();
}

/**
 * Whether a header field is an Authentication-Results claiming one of `authservIds` (lower case):
 * only this host may write results in its own name (RFC 8601 5), so such an incoming field is a
 * forgery that every front removes.
 */
export function claimsAuthservId(name: string, value: string, authservIds: readonly string[]): boolean {
  if (authservIds.length === 0 || name.trim().toLowerCase() !== AUTHENTICATION_RESULTS.toLowerCase()) return false;
  const id = authservIdOf(value.replace(/\r?\n/g, ''));
  return id !== null && authservIds.includes(id);
}
