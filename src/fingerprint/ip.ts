/**
 * `ip` and `net` fingerprints: SHA-256 of the client address bytes (IPv4 4 bytes, IPv6 16
 * bytes), of the IPv6 /64 prefix (8 bytes), and of the network (/24: 3 bytes, /48: 6 bytes).
 * Hashing the bytes, not a text form, makes every spelling of one address (`::ffff:1.2.3.4`,
 * zero-compressed IPv6) give the same checksum.
 */
import { hash } from 'node:crypto';
import { isIP } from 'node:net';
import { makeFingerprint, type Fingerprint } from './types.js';

/** The address as bytes (IPv4-mapped IPv6 becomes IPv4), or null when it is not an address. */
export function addressBytes(input: string): Uint8Array | null {
  let text = input.trim().replace(/^\[|\]$/g, '').replace(/^ipv6:/i, '');
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const version = isIP(text);
  if (version === 4) return Uint8Array.from(text.split('.').map(Number));
  if (version !== 6) return null;
  // The WHATWG URL parser canonicalises IPv6 (embedded IPv4 becomes hex groups, one `::` at most).
  const canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const [head, rest] = canonical.includes('::') ? (canonical.split('::') as [string, string]) : [canonical, undefined];
  const parse = (s: string | undefined): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = parse(rest);
  const groups = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  if (groups.length !== 8) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => { bytes[i * 2] = g >> 8; bytes[i * 2 + 1] = g & 0xff; });
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

const sha256 = (bytes: Uint8Array): string => hash('sha256', bytes);

/** `ip:sha256`, for IPv6 also `ip:sha256-64`, and `net:sha256` of the /24 or /48; [] when not an address. */
export function ipFingerprints(address: string): Fingerprint[] {
  const bytes = addressBytes(address);
  if (!bytes) return [];
  const label = address.trim().replace(/^\[|\]$/g, '');
  if (bytes.length === 4) {
    return [makeFingerprint('ip', 'sha256', sha256(bytes), label), makeFingerprint('net', 'sha256', sha256(bytes.subarray(0, 3)), `${bytes.subarray(0, 3).join('.')}.0/24`)];
  }
  return [
    makeFingerprint('ip', 'sha256', sha256(bytes), label),
    makeFingerprint('ip', 'sha256-64', sha256(bytes.subarray(0, 8)), `${label} /64`),
    makeFingerprint('net', 'sha256', sha256(bytes.subarray(0, 6)), `${label} /48`),
  ];
}

/** Private, loopback, link-local, CGNAT, documentation-free check: addresses that say nothing about a sender. */
export function isPublicAddress(address: string): boolean {
  const b = addressBytes(address);
  if (!b) return false;
  if (b.length === 4) {
    const [a, c] = [b[0]!, b[1]!];
    if (a === 0 || a === 10 || a === 127 || a >= 224) return false;
    if (a === 169 && c === 254) return false;
    if (a === 172 && c >= 16 && c <= 31) return false;
    if (a === 192 && c === 168) return false;
    if (a === 100 && c >= 64 && c <= 127) return false;
    return true;
  }
  if (b.every((x, i) => x === 0 || (i === 15 && x === 1))) return false; // :: and ::1
  if ((b[0]! & 0xfe) === 0xfc) return false; // fc00::/7 unique local
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return false; // fe80::/10 link local
  if (b[0] === 0xff) return false; // multicast
  return true;
}
