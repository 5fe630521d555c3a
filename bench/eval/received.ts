/**
 * The sending IP of a corpus message: the address of the hop that handed it to the recipient's
 * domain, read from its Received headers, which is what the recipient's MX saw as its client
 * and what a gateway in front of that MX would have been given. Sent to the gateway with
 * XCLIENT.
 *
 * The rule is the one `nimbus check`, `report` and `learn` apply to a stored message
 * (src/fingerprint/received.ts). When no header names a usable address, a public address derived
 * from the message's bytes stands in: stable across runs and seeds, and distinct per message.
 */
import { createHash } from 'node:crypto';
import { addressBytes, isPublicAddress } from '../../src/fingerprint/ip.js';
import { handoffOf as storedHandoff, type Handoff as StoredHandoff } from '../../src/fingerprint/received.js';
import type { Rng } from './rng.js';

export interface Handoff extends StoredHandoff {
  /** `received` when read from the headers, `derived` when made up from the message bytes. */
  readonly source: 'received' | 'derived';
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
  const found = storedHandoff(raw);
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
