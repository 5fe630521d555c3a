/**
 * The names a DNS list is asked (RFC 5782): the client's address reversed (IPv4 octets, IPv6
 * nibbles, as in-addr.arpa and ip6.arpa write them), a domain as it is, a hash as labels. Each
 * returns null for what cannot be asked: not an address, a name too long for the DNS.
 */
import { isIP } from 'node:net';
import { addressBytes } from '../fingerprint/ip.js';

/** RFC 1035 2.3.4: a name is at most 253 characters written out, a label at most 63. */
const MAX_NAME = 253;
const MAX_LABEL = 63;
const LABEL = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/;

/** `7.113.0.203` for 203.0.113.7; 32 nibbles for IPv6 (an IPv4-mapped IPv6 address is its IPv4). */
export function reversedAddress(address: string): string | null {
  const bytes = addressBytes(address);
  if (bytes === null) return null;
  if (bytes.length === 4) return [...bytes].reverse().join('.');
  const nibbles = [...bytes].flatMap((byte) => [byte >> 4, byte & 0x0f]).map((nibble) => nibble.toString(16));
  return nibbles.reverse().join('.');
}

/** Whether `address` (after mapping) is IPv4. */
export function isIpv4(address: string): boolean {
  return addressBytes(address)?.length === 4;
}

/** `name.zone`, or null when it would not be a valid DNS name. */
export function queryName(name: string, zone: string): string | null {
  const full = `${name.toLowerCase()}.${zone}`;
  if (full.length > MAX_NAME) return null;
  return full.split('.').every((label) => label.length <= MAX_LABEL && LABEL.test(label)) ? full : null;
}

/** A link's registrable domain as a list asks it; null for an IP literal or a name the DNS cannot carry. */
export function listableDomain(domain: string): string | null {
  const name = domain.toLowerCase().replace(/\.$/, '');
  if (isIP(name) !== 0 || !name.includes('.')) return null;
  return name;
}

/** A hex SHA-256 as two 32-digit labels (Team Cymru's Malware Hash Registry writes it so). */
export function hexHashLabels(sha256hex: string): string | null {
  return /^[0-9a-f]{64}$/.test(sha256hex) ? `${sha256hex.slice(0, 32)}.${sha256hex.slice(32)}` : null;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * A SHA-256 in RFC 4648 base32, lower case and unpadded (52 characters, one label), as
 * SpamAssassin's HashBL plugin asks Spamhaus's HBL `_file` zone.
 */
export function base32HashLabel(sha256hex: string): string | null {
  if (!/^[0-9a-f]{64}$/.test(sha256hex)) return null;
  let bits = '';
  for (const byte of Buffer.from(sha256hex, 'hex')) bits += byte.toString(2).padStart(8, '0');
  bits = bits.padEnd(Math.ceil(bits.length / 5) * 5, '0');
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += BASE32[parseInt(bits.slice(i, i + 5), 2)];
  return out;
}
