/**
 * The sender's address of a stored message (`nimbus check`, `report`, `learn` on a saved file):
 * the client of the hop that handed the message to the admin's own site, which is what the
 * site's MX saw as its client and what a gateway in front of it would have been given.
 *
 * Received headers are read from the top (the newest hop, added by the site's own servers) down.
 * A hop is inside the site, and skipped, when its client address is not public (loopback,
 * private ranges, local delivery), when it is in the site's trusted networks, when it is a
 * retrieval (fetchmail, POP3, IMAP), or when the client's name is in a domain of the site: one
 * named by the admin (relay domains, the gateway's host name), or one the message has already
 * been seen received by (`by mail.example.org`, `for <jim@example.org>`) in the hops passed. The
 * first hop left is the hand-off. Taking the topmost public address instead would convict the
 * site's own MX or fetchmail relay with every message learnt from a Junk folder.
 */
import { getDomain } from 'tldts';
import { addressBytes, isPublicAddress } from './ip.js';

/** What the site says about itself; every field optional (the Received headers alone still say much). */
export interface SiteKnowledge {
  /** The site's own domains and host names (relay domains, NIMBUS_HOSTNAME). */
  readonly ownNames?: readonly string[];
  /** True for an address in the site's trusted networks (NIMBUS_TRUSTED_NETWORKS). */
  readonly isTrusted?: (ip: string) => boolean;
}

export interface Handoff {
  readonly ip: string;
  /** The name the client gave (HELO) or its reverse name; null when none. */
  readonly helo: string | null;
}

/** The header block of a message (CRLF or LF, an mbox `From ` line included), unfolded, as lines. */
function headerLines(raw: Buffer | string): string[] {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  return (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/);
}

/** Every value of one header, top first, unfolded. */
export function headerValues(raw: Buffer | string, name: string): string[] {
  const prefix = `${name.toLowerCase()}:`;
  return headerLines(raw).filter((line) => line.toLowerCase().startsWith(prefix)).map((line) => line.slice(prefix.length).trim());
}

/** Every Received header of a message, top first, unfolded. */
export function receivedHeaders(raw: Buffer | string): string[] {
  return headerValues(raw, 'received');
}

const ADDRESS = /\[(?:ipv6:)?([0-9a-f:.]+)\]|\((?:ipv6:)?([0-9a-f:.]{7,})\)|^\s*from\s+(\d{1,3}(?:\.\d{1,3}){3})\b/gi;
const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i;

export interface Hop {
  readonly addresses: string[];
  readonly names: string[];
  readonly by: string | null;
}

/** `from HELO (rdns [ip]) by host …` into its parts; tolerant of the many real-world forms. */
export function parseHop(header: string): Hop {
  const text = header.replace(/\s+/g, ' ');
  const byAt = text.search(/\sby\s/i);
  const from = byAt < 0 ? text : text.slice(0, byAt);
  const byMatch = byAt < 0 ? null : /^\s*by\s+([^\s;()]+)/i.exec(text.slice(byAt));
  const addresses: string[] = [];
  for (const match of from.matchAll(ADDRESS)) {
    const candidate = match[1] ?? match[2] ?? match[3];
    if (candidate && addressBytes(candidate)) addresses.push(candidate);
  }
  const names: string[] = [];
  const helo = /^\s*from\s+([^\s()[\]]+)/i.exec(from)?.[1];
  if (helo) names.push(helo);
  // The reverse name inside the parentheses: `(user@rdns [ip])`, `(rdns [ip])`.
  for (const match of from.matchAll(/\(([^()]*)\)/g)) {
    for (const word of (match[1] ?? '').split(/[\s@]+/)) if (HOST_NAME.test(word) && !/^\d+(\.\d+)+$/.test(word)) names.push(word);
  }
  return { addresses, names, by: byMatch?.[1] ?? null };
}

/** Mail fetched from a mailbox (fetchmail, POP3, IMAP) is a hop inside the recipient's site. */
const RETRIEVAL = /\bwith\s+(?:POP3?|IMAP4?|ODMR|ETRN)\b|fetchmail/i;
const FOR_ADDRESS = /\bfor\s+<?[^\s<>@;]+@([a-z0-9.-]+)>?/gi;

function domainOf(host: string | undefined | null): string | null {
  return host ? (getDomain(host)?.toLowerCase() ?? null) : null;
}

/**
 * The hand-off hop from Received headers (top first), or null when none is usable.
 * `deliveredTo`: Delivered-To / X-Original-To values, which name the recipient's domain.
 *
 * The site grows while walking down: the domains of the servers that received the message and
 * of the addresses it was for (`for <…>`) in the hops already passed. Only those: a `for` clause
 * further down names the recipient of an earlier leg (a list, an alias) and says nothing about
 * who received the message last.
 */
export function handoffFromReceived(headers: readonly string[], site: SiteKnowledge = {}, deliveredTo: readonly string[] = []): Handoff | null {
  const inside = new Set<string>();
  const ownHosts = new Set<string>();
  const add = (domain: string | null): void => {
    if (domain) inside.add(domain);
  };
  for (const name of site.ownNames ?? []) {
    ownHosts.add(name.toLowerCase());
    add(domainOf(name));
  }
  for (const address of deliveredTo) add(domainOf(/@([^\s>]+)/.exec(address)?.[1]));
  for (const header of headers) {
    const hop = parseHop(header);
    add(domainOf(hop.by));
    for (const match of header.matchAll(FOR_ADDRESS)) add(domainOf(match[1]));
    if (RETRIEVAL.test(header)) continue;
    const ip = hop.addresses.find((address) => isPublicAddress(address) && !(site.isTrusted?.(address.replace(/^::ffff:/i, '')) ?? false));
    if (!ip) continue; // loopback, private, trusted or local delivery: inside the site
    if (hop.names.some((name) => ownHosts.has(name.toLowerCase()) || inside.has(domainOf(name) ?? ''))) continue; // the site's own relays
    const helo = hop.names.find((name) => HOST_NAME.test(name)) ?? null;
    return { ip: ip.replace(/^::ffff:/i, ''), helo };
  }
  return null;
}

/** The hand-off of a whole stored message (its Received, Delivered-To and X-Original-To headers). */
export function handoffOf(raw: Buffer | string, site: SiteKnowledge = {}): Handoff | null {
  const lines = headerLines(raw);
  const values = (name: string): string[] => {
    const prefix = `${name}:`;
    return lines.filter((line) => line.toLowerCase().startsWith(prefix)).map((line) => line.slice(prefix.length).trim());
  };
  return handoffFromReceived(values('received'), site, [...values('delivered-to'), ...values('x-original-to')]);
}
