/**
 * The parsers of the DNS variables: NIMBUS_DNS_SERVERS (resolvers) and NIMBUS_DNS_LISTS (public
 * DNS lists). docs/admin/dns-lists.md describes the list syntax; each complaint here names the
 * entry it is about, so an admin with five lists on one line knows which one is wrong.
 *
 *   NIMBUS_DNS_LISTS=name:zone:kind[:codes][:weight], …
 *   codes = code[+code…], code = 127.0.0.2 | 127.0.0.4-127.0.0.7 | &8, each with an optional =meaning
 */
import { isIP } from 'node:net';
import type { Parsed, Parser } from './parsers.js';
import { DNS_LIST_KINDS, type DnsListCode, type DnsListEntry, type DnsListKind, type HostPort } from './types.js';

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const wrong = <T>(complaints: readonly string[]): Parsed<T> => ({ ok: false, complaints });

const DNS_PORT = 53;

/** A resolver as `address`, `address:port` or `[v6]:port`: an IP address, since a resolver cannot be looked up. */
function parseServer(text: string): HostPort | null {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(text);
  const plain = isIP(text) === 6 ? null : /^([^:]+)(?::(\d{1,5}))?$/.exec(text);
  const host = bracketed?.[1] ?? (isIP(text) === 6 ? text : plain?.[1]);
  const portText = bracketed?.[2] ?? plain?.[2];
  if (host === undefined || isIP(host) === 0) return null;
  const port = portText === undefined ? DNS_PORT : Number(portText);
  return port >= 1 && port <= 65535 ? { host, port } : null;
}

/** Resolvers, comma-separated; empty: the system's. */
export const dnsServers: Parser<readonly HostPort[]> = {
  parse(raw) {
    const entries = raw.split(/[\s,]+/).filter((entry) => entry !== '');
    const servers = entries.map(parseServer);
    const bad = entries.filter((_entry, index) => servers[index] === null);
    if (bad.length > 0) return wrong(bad.map((entry) => `expected comma-separated resolver IP addresses with an optional port, e.g. 127.0.0.1:53 or [::1]:53 (bad entry ${JSON.stringify(entry)}: a resolver is given by its address, not a name)`));
    return ok(servers as HostPort[]);
  },
  format: (servers) => servers.map(({ host, port }) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`)).join(','),
};

/** At most this many lists: each one is queried for every message. */
export const MAX_DNS_LISTS = 32;
const NAME = /^[a-z][a-z0-9_]{0,31}$/;
/** Labels of letters, digits, `-` and `_` (Spamhaus DQS keys and `_file` labels), ≤ 63 each; room left for the query. */
const ZONE = /^(?=.{1,180}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)+$/;
const MEANING = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const WEIGHT = /^\d+(\.\d+)?$/;
const MAX_WEIGHT = 1000;

function ipv4Number(text: string): number | null {
  if (isIP(text) !== 4) return null;
  return text.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
}

function parseCode(text: string): DnsListCode | string {
  const [match = '', meaning, ...extra] = text.split('=');
  if (extra.length > 0 || (meaning !== undefined && !MEANING.test(meaning))) return `code ${JSON.stringify(text)}: a meaning is one word of a-z, 0-9, - and _ after =`;
  const word = meaning ?? null;
  if (match.startsWith('&')) {
    const mask = Number(match.slice(1));
    if (!Number.isInteger(mask) || mask < 1 || mask > 255) return `code ${JSON.stringify(text)}: a bitmask is &1 to &255 (bits of the answer's last octet)`;
    return { range: null, mask, meaning: word };
  }
  const [first = '', last = first, ...more] = match.split('-');
  const from = ipv4Number(first);
  const to = ipv4Number(last);
  if (more.length > 0 || from === null || to === null || from > to) return `code ${JSON.stringify(text)}: expected an answer address (127.0.0.2), a range (127.0.0.4-127.0.0.7) or a bitmask (&8)`;
  return { range: { first, last }, mask: null, meaning: word };
}

function formatCode(code: DnsListCode): string {
  const match = code.mask !== null ? `&${code.mask}` : code.range!.first === code.range!.last ? code.range!.first : `${code.range!.first}-${code.range!.last}`;
  return code.meaning === null ? match : `${match}=${code.meaning}`;
}

/** One `name:zone:kind[:codes][:weight]` entry, or what is wrong with it. */
function parseEntry(text: string): DnsListEntry | string[] {
  const [name = '', zoneText = '', kind = '', ...rest] = text.split(':');
  const zone = zoneText.toLowerCase().replace(/\.$/, '');
  const problems: string[] = [];
  if (!NAME.test(name)) problems.push(`name ${JSON.stringify(name)}: expected a lower-case word of a-z, 0-9 and _ starting with a letter (it becomes NIMBUS_DNSBL_${name.toUpperCase() || 'NAME'} in tests=)`);
  if (!ZONE.test(zone)) problems.push(`zone ${JSON.stringify(zoneText)}: expected a DNS zone such as zen.spamhaus.org`);
  if (!(DNS_LIST_KINDS as readonly string[]).includes(kind)) problems.push(`kind ${JSON.stringify(kind)}: expected one of ${DNS_LIST_KINDS.join(', ')}`);
  if (rest.length > 2) problems.push('expected name:zone:kind[:codes][:weight]: too many fields');
  const weightText = rest.length > 0 && WEIGHT.test(rest.at(-1)!) ? rest.at(-1)! : null;
  const codesText = rest.length === 2 || (rest.length === 1 && weightText === null) ? rest[0]! : null;
  if (rest.length === 2 && weightText === null) problems.push(`weight ${JSON.stringify(rest[1])}: expected a number of points from 0 to ${MAX_WEIGHT}`);
  const weight = weightText === null ? null : Number(weightText);
  if (weight !== null && weight > MAX_WEIGHT) problems.push(`weight ${weightText}: expected a number of points from 0 to ${MAX_WEIGHT}`);
  const codes: DnsListCode[] = [];
  for (const codeText of codesText === null ? [] : codesText.split('+')) {
    const code = parseCode(codeText);
    if (typeof code === 'string') problems.push(code);
    else codes.push(code);
  }
  return problems.length > 0 ? problems : { name, zone, kind: kind as DnsListKind, codes, weight };
}

/** The public DNS lists, comma-separated entries; empty: none. */
export const dnsLists: Parser<readonly DnsListEntry[]> = {
  parse(raw) {
    const texts = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
    const complaints: string[] = [];
    const lists: DnsListEntry[] = [];
    const names = new Set<string>();
    texts.forEach((text, index) => {
      const entry = parseEntry(text);
      const name = text.split(':')[0]!;
      const problems = Array.isArray(entry) ? [...entry] : [];
      if (names.has(name)) problems.push(`the name ${name} is already taken; each list needs its own`);
      names.add(name);
      if (problems.length > 0) complaints.push(...problems.map((problem) => `list ${index + 1} (${JSON.stringify(text)}): ${problem}`));
      else lists.push(entry as DnsListEntry);
    });
    if (texts.length > MAX_DNS_LISTS) complaints.push(`expected at most ${MAX_DNS_LISTS} lists (each is asked for every message), got ${texts.length}`);
    return complaints.length > 0 ? wrong(complaints) : ok(lists);
  },
  format: (lists) =>
    lists
      .map((list) => [list.name, list.zone, list.kind, ...(list.codes.length > 0 ? [list.codes.map(formatCode).join('+')] : []), ...(list.weight === null ? [] : [String(list.weight)])].join(':'))
      .join(','),
};
