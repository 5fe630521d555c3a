/**
 * The sending IP of a corpus message: the address of the hop that handed it to the recipient's
 * domain, read from its Received headers, which is what the recipient's MX saw as its client
 * and what a gateway in front of that MX would have been given. Sent to the gateway with
 * XCLIENT.
 *
 * Received headers are read from the top (the newest hop, added by the recipient's own servers)
 * down. Hops whose client address is not public (loopback, fetchmail, private relays) are inside
 * the recipient's site; so is a hop whose client name is in the same registrable domain as the
 * server that received it (mx1.example.org -> mail.example.org). The first hop left is the
 * hand-off. When no header names a usable address, a public address derived from the message's
 * bytes stands in: stable across runs and seeds, and distinct per message.
 */
import { createHash } from 'node:crypto';
import { getDomain } from 'tldts';
import { addressBytes, isPublicAddress } from '../../src/fingerprint/ip.js';
import { headerValue } from './corpus.js';
import type { Rng } from './rng.js';

export interface Handoff {
  readonly ip: string;
  /** The name the client gave (HELO) or its reverse name, for XCLIENT HELO; null when none. */
  readonly helo: string | null;
  /** `received` when read from the headers, `derived` when made up from the message bytes. */
  readonly source: 'received' | 'derived';
}

/** Every Received header of an LF message, top first, unfolded. */
export function receivedHeaders(raw: Buffer | string): string[] {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  const end = text.indexOf('\n\n');
  const head = (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  return head
    .split(/\r?\n/)
    .filter((line) => /^received:/i.test(line))
    .map((line) => line.slice('received:'.length).trim());
}

const ADDRESS = /\[(?:ipv6:)?([0-9a-f:.]+)\]|\((?:ipv6:)?([0-9a-f:.]{7,})\)|^\s*from\s+(\d{1,3}(?:\.\d{1,3}){3})\b/gi;
const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i;

interface Hop {
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
 * The hand-off hop's address from Received headers (top first), or null when none is usable.
 * `deliveredTo`: Delivered-To / X-Original-To values, which name the recipient's domain.
 *
 * The recipient's site grows while walking down: the domains of the servers that received the
 * message and of the addresses it was for (`for <…>`) in the hops already passed. Only those:
 * a `for` clause further down names the recipient of an earlier leg (a list, an alias) and says
 * nothing about who received the message last.
 */
export function handoffFromReceived(headers: readonly string[], deliveredTo: readonly string[] = []): Omit<Handoff, 'source'> | null {
  const inside = new Set<string>();
  const add = (domain: string | null): void => {
    if (domain) inside.add(domain);
  };
  for (const address of deliveredTo) add(domainOf(/@([^\s>]+)/.exec(address)?.[1]));
  for (const header of headers) {
    const hop = parseHop(header);
    add(domainOf(hop.by));
    for (const match of header.matchAll(FOR_ADDRESS)) add(domainOf(match[1]));
    if (RETRIEVAL.test(header)) continue;
    const ip = hop.addresses.find((address) => isPublicAddress(address));
    if (!ip) continue; // loopback, private or local delivery: inside the recipient's site
    if (hop.names.some((name) => inside.has(domainOf(name) ?? ''))) continue; // the recipient's own relays
    const helo = hop.names.find((name) => HOST_NAME.test(name)) ?? null;
    return { ip: ip.replace(/^::ffff:/i, ''), helo };
  }
  return null;
}

/** A public IPv4 address made from `key`'s hash: the same key always gives the same address. */
export function derivedAddress(key: string | Buffer): string {
  let digest = createHash('sha256').update(key).digest();
  for (;;) {
    for (let i = 0; i + 4 <= digest.length; i += 4) {
      const candidate = `${digest[i]}.${digest[i + 1]}.${digest[i + 2]}.${Math.max(1, Math.min(254, digest[i + 3]!))}`;
      if (isPublicAddress(candidate)) return candidate;
    }
    digest = createHash('sha256').update(digest).digest();
  }
}

export function handoffOf(raw: Buffer): Handoff {
  const deliveredTo = [headerValue(raw, 'delivered-to'), headerValue(raw, 'x-original-to')].filter((value): value is string => value !== null);
  const found = handoffFromReceived(receivedHeaders(raw), deliveredTo);
  if (found) return { ...found, source: 'received' };
  return { ip: derivedAddress(raw), helo: null, source: 'derived' };
}

export type IpChange = 'same' | 'same-net' | 'other-net';

function isIpv4(ip: string): boolean {
  return addressBytes(ip)?.length === 4;
}

/** Another host in the same /24 (IPv4) or /64 (IPv6). */
export function sameNetworkAddress(rng: Rng, ip: string): string {
  const bytes = addressBytes(ip);
  if (!bytes) throw new RangeError(`not an address: ${ip}`);
  if (bytes.length === 4) {
    let last = bytes[3]!;
    while (last === bytes[3]) last = rng.int(1, 254);
    return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${last}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  for (let i = 0; i < 4; i++) groups.push(rng.int(0, 0xffff).toString(16));
  return groups.join(':');
}

/** A public IPv4 address outside the original's /24: another bot of the same botnet. */
export function otherNetworkAddress(rng: Rng, ip: string): string {
  const original = addressBytes(ip);
  for (;;) {
    const candidate = `${rng.int(1, 223)}.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`;
    const bytes = addressBytes(candidate)!;
    const sameNet = original !== null && original.length === 4 && bytes[0] === original[0] && bytes[1] === original[1] && bytes[2] === original[2];
    if (isPublicAddress(candidate) && !sameNet) return candidate;
  }
}

export function changeAddress(rng: Rng, ip: string, change: IpChange): string {
  if (change === 'same') return ip;
  if (change === 'same-net') return sameNetworkAddress(rng, ip);
  return otherNetworkAddress(rng, isIpv4(ip) ? ip : '0.0.0.0');
}
