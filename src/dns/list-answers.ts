/**
 * What a DNS list's answer means (docs/admin/dns-lists.md, "Answers"). Pure: addresses and the
 * list's codes in, a meaning out.
 *
 * - A refusal is never a listing. Operators answer queries they refuse with an address, not an
 *   error: Spamhaus with 127.255.255.252 (unknown zone), .254 (public or open resolver) and .255
 *   (too many queries), and its DBL with 127.0.1.255 (an IP asked of a domain list); URIBL and
 *   SURBL with 127.0.0.1, which RFC 5782 section 5 keeps out of every list. So 127.0.0.1, all of
 *   127.255.255.0/24 and any 127.x.y.255 are refusals, whatever the codes say.
 * - An answer outside 127.0.0.0/8 is no listing either: it is what a resolver that rewrites
 *   NXDOMAIN (to an advertising page) answers for every name.
 * - Otherwise the list's codes decide; a list without codes counts every other 127.0.0.0/8 answer.
 */
import { isIP } from 'node:net';
import type { DnsListCode } from '../config/index.js';

export type ListAnswer =
  | { readonly kind: 'listed'; readonly answers: readonly string[]; readonly meanings: readonly string[] }
  | { readonly kind: 'refused'; readonly answer: string }
  | { readonly kind: 'unexpected'; readonly answer: string }
  | { readonly kind: 'not-listed' };

function octets(address: string): number[] | null {
  return isIP(address) === 4 ? address.split('.').map(Number) : null;
}

function toNumber(parts: readonly number[]): number {
  return parts.reduce((value, octet) => value * 256 + octet, 0);
}

export function isRefusal(address: string): boolean {
  const parts = octets(address);
  if (parts === null || parts[0] !== 127) return false;
  return address === '127.0.0.1' || (parts[1] === 255 && parts[2] === 255) || parts[3] === 255;
}

/** The codes an answer matches (a range holds it, or a mask shares a bit with its last octet). */
function matching(parts: readonly number[], codes: readonly DnsListCode[]): DnsListCode[] {
  const value = toNumber(parts);
  return codes.filter((code) => {
    if (code.mask !== null) return (parts[3]! & code.mask) !== 0;
    return value >= toNumber(octets(code.range!.first)!) && value <= toNumber(octets(code.range!.last)!);
  });
}

/** The meaning of one query's answers (the A records of one name). */
export function classifyAnswers(addresses: readonly string[], codes: readonly DnsListCode[]): ListAnswer {
  const refusal = addresses.find(isRefusal);
  if (refusal !== undefined) return { kind: 'refused', answer: refusal };
  const listed: string[] = [];
  const meanings: string[] = [];
  let unexpected: string | null = null;
  for (const address of addresses) {
    const parts = octets(address);
    if (parts === null || parts[0] !== 127) {
      unexpected ??= address;
      continue;
    }
    if (codes.length === 0) {
      listed.push(address);
      meanings.push(address);
      continue;
    }
    const found = matching(parts, codes);
    if (found.length === 0) continue;
    listed.push(address);
    for (const code of found) meanings.push(code.meaning ?? address);
  }
  if (listed.length > 0) return { kind: 'listed', answers: listed, meanings: [...new Set(meanings)] };
  return unexpected === null ? { kind: 'not-listed' } : { kind: 'unexpected', answer: unexpected };
}
