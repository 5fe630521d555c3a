/**
 * The parsers of the variables' text: each turns the text into a typed value or says what was
 * wrong ("expected …"), and formats a value back into text for `nimbus config`. They never see
 * the variable's name or echo the value: the loader does that, masked, for all of them alike.
 *
 * No dependency beyond node: the gateway's supervisor loads this folder and nothing else heavy
 * (zod alone is ~12 MB of memory), which is also why URLs are checked with WHATWG URL.
 */
import { existsSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import type { HostPort, ListenAddress } from './types.js';

export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  /** `complaints` follow `NAME="value": ` in the error; `shown` replaces the value echoed there. */
  | { readonly ok: false; readonly complaints: readonly string[]; readonly shown?: string };

export interface Parser<T> {
  /** Never called with blank text unless the variable's default is blank. */
  parse(text: string): Parsed<T>;
  /** The value as it would be written in the env file. */
  format(value: T): string;
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const wrong = <T>(complaints: string | readonly string[], shown?: string): Parsed<T> => ({
  ok: false,
  complaints: typeof complaints === 'string' ? [complaints] : complaints,
  ...(shown === undefined ? {} : { shown }),
});

const SIZE_UNITS: Readonly<Record<string, number>> = Object.freeze({ '': 1, B: 1, KB: 1024, K: 1024, MB: 1024 ** 2, M: 1024 ** 2, GB: 1024 ** 3, G: 1024 ** 3 });

/** Parses `25MB`, `512KB`, `1048576` into bytes. */
export function parseSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!match) return null;
  const unit = SIZE_UNITS[(match[2] ?? '').toUpperCase()];
  if (unit === undefined) return null;
  return Math.floor(Number(match[1]) * unit);
}

/** Parses `host:port`, `[v6]:port` or `:port`. */
export function parseHostPort(text: string): HostPort | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text.trim());
  if (!match) return null;
  const port = Number(match[3]);
  if (port > 65535) return null;
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** Adds `a.b.c.d/n` or `v6/n` (or a bare address) to a BlockList; false when malformed. */
export function addCidr(list: BlockList, cidr: string): boolean {
  const [address, prefixText] = cidr.split('/');
  if (!address) return false;
  const family = isIP(address);
  if (family === 0) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const maxPrefix = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > maxPrefix) return false;
  list.addSubnet(address, prefix, type);
  return true;
}

/** A BlockList of networks already checked by `cidrList`. */
export function blockListOf(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) addCidr(list, cidr);
  return list;
}

/** True when `address` (IPv4, IPv6 or IPv4-mapped IPv6) is inside the list. */
export function inBlockList(list: BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const plain = mapped?.[1] ?? address;
  const family = isIP(plain);
  if (family === 0) return false;
  return list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
}

/** Items of a comma- or space-separated list. */
function items(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Any text; `trim` for names, where stray blanks are a typo. */
export const text = ({ trim }: { trim: boolean }): Parser<string> => ({
  parse: (value) => ok(trim ? value.trim() : value),
  format: (value) => value,
});

/** Blank is "none" (null), anything else goes to `parser`. */
export const optional = <T>(parser: Parser<T>): Parser<T | null> => ({
  parse: (value) => (value.trim() === '' ? ok(null) : parser.parse(value)),
  format: (value) => (value === null ? '' : parser.format(value)),
});

export const number = ({ min = -Infinity, max = Infinity, integer = false }: { min?: number; max?: number; integer?: boolean }): Parser<number> => {
  const allowed = `${integer ? 'an integer' : 'a number'}${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` <= ${max}` : ''}`;
  return {
    parse(raw) {
      const value = Number(raw.trim());
      const fits = Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isInteger(value));
      return fits ? ok(value) : wrong(`expected ${allowed}`);
    },
    format: String,
  };
};

/** `auto`, or what `parser` accepts: `null` stands for `auto`, which the loader resolves. */
export const autoOr = <T>(parser: Parser<T>): Parser<T | null> => ({
  parse(raw) {
    if (raw.trim().toLowerCase() === 'auto') return ok(null);
    const parsed = parser.parse(raw);
    return parsed.ok ? parsed : wrong(parsed.complaints.map((complaint) => `${complaint}, or auto`));
  },
  format: (value) => (value === null ? 'auto' : parser.format(value)),
});

export const oneOf = <T extends string>(allowed: readonly T[]): Parser<T> => ({
  parse(raw) {
    const value = raw.trim().toLowerCase();
    return (allowed as readonly string[]).includes(value) ? ok(value as T) : wrong(`expected one of ${allowed.join(', ')}`);
  },
  format: (value) => value,
});

export const YES = ['yes', 'true', '1', 'on'] as const;
const NO = ['no', 'false', '0', 'off'] as const;

export const yesNo: Parser<boolean> = {
  parse(raw) {
    const value = raw.trim().toLowerCase();
    if ((YES as readonly string[]).includes(value)) return ok(true);
    if ((NO as readonly string[]).includes(value)) return ok(false);
    return wrong('expected yes or no');
  },
  format: (value) => (value ? 'yes' : 'no'),
};

export const hostPort: Parser<HostPort> = {
  parse(raw) {
    const parsed = parseHostPort(raw);
    return parsed ? ok(parsed) : wrong('expected host:port (e.g. 127.0.0.1:2525 or [::1]:2525)');
  },
  format: ({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`,
};

/** `host:port`, or `unix:/absolute/path` for a unix socket (the milter's listener). */
export const listenAddress: Parser<ListenAddress> = {
  parse(raw) {
    const text = raw.trim();
    if (text.startsWith('unix:')) {
      const path = text.slice('unix:'.length);
      return path.startsWith('/') && !path.includes('\0') ? ok({ kind: 'unix', path }) : wrong('expected unix:/absolute/path for a unix socket');
    }
    const parsed = parseHostPort(text);
    return parsed ? ok({ kind: 'tcp', ...parsed }) : wrong('expected host:port (e.g. 127.0.0.1:11332) or unix:/absolute/path');
  },
  format: (value) => (value.kind === 'unix' ? `unix:${value.path}` : hostPort.format(value)),
};

/** Sizes written back in the largest unit that divides them, as an admin writes them. */
function formatSize(bytes: number): string {
  for (const [unit, factor] of [['GB', 1024 ** 3], ['MB', 1024 ** 2], ['KB', 1024]] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

/** A size above zero; with `zeroSwitchesOff`, 0 is allowed too (it turns the feature off), up to `max`. */
export const size = (options: { zeroSwitchesOff?: boolean; max?: number } = {}): Parser<number> => ({
  parse(raw) {
    const bytes = parseSize(raw);
    if (options.zeroSwitchesOff) {
      const max = options.max ?? Infinity;
      return bytes !== null && bytes <= max ? ok(bytes) : wrong(`expected a size such as 1MB, 512KB, a number of bytes, or 0; at most ${max} bytes`);
    }
    return bytes !== null && bytes > 0 ? ok(bytes) : wrong('expected a size such as 25MB, 512KB or a number of bytes');
  },
  format: formatSize,
});

/** Networks as CIDR (a bare address is one host); each bad entry is named. */
export const cidrList: Parser<readonly string[]> = {
  parse(raw) {
    const cidrs = items(raw);
    const bad = cidrs.filter((cidr) => !addCidr(new BlockList(), cidr));
    const complaints = bad.map((cidr) => `expected comma-separated CIDR networks such as 127.0.0.0/8,::1/128 (bad entry ${JSON.stringify(cidr)})`);
    return complaints.length === 0 ? ok(cidrs) : wrong(complaints);
  },
  format: (value) => value.join(','),
};

const DOMAIN = /^[a-z0-9*]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** Recipient domains, lower-cased. */
export const domainList: Parser<readonly string[]> = {
  parse(raw) {
    const domains = items(raw).map((domain) => domain.toLowerCase());
    const bad = domains.filter((domain) => !DOMAIN.test(domain) && !/^[^\s@]+$/.test(domain));
    return bad.length === 0 ? ok(domains) : wrong(bad.map(() => 'expected comma-separated domain names'));
  },
  format: (value) => value.join(','),
};

/** E-mail addresses, lower-cased; each bad entry is named. */
export const addressList: Parser<readonly string[]> = {
  parse(raw) {
    const addresses = items(raw).map((address) => address.toLowerCase());
    const bad = addresses.filter((address) => !/^[^\s@]+@[^\s@]+$/.test(address));
    return bad.length === 0 ? ok(addresses) : wrong(bad.map((address) => `expected comma-separated e-mail addresses (bad entry ${JSON.stringify(address)})`));
  },
  format: (value) => value.join(','),
};

/**
 * A service's base URL. The client authenticates with a Bearer key and appends `/v1/...` to
 * this, so `user:password@` (node-fetch refuses such a URL, every request would fail) and a
 * query or fragment are refused here rather than at the first request. `keyName` is where the
 * key goes instead of the URL's user-info.
 */
export const serviceUrl = (keyName: string): Parser<string> => ({
  parse(raw) {
    const value = raw.trim();
    if (!isUrlOf(value, ['http:', 'https:'])) return wrong('expected an http:// or https:// URL');
    const parsed = new URL(value);
    if (parsed.username !== '' || parsed.password !== '') {
      return wrong(`credentials in the URL are not used; remove user:password@ from it and put the service's key in ${keyName} (sent as Authorization: Bearer)`, parsed.href);
    }
    if (parsed.search !== '' || parsed.hash !== '' || value.includes('?') || value.includes('#')) {
      return wrong('expected a base URL without ?query or #fragment (request paths are appended to it)');
    }
    return ok(value.replace(/\/+$/, ''));
  },
  format: (value) => value,
});

/** One Redis URL or several (Cluster seed nodes); `host:port` alone gets `redis://`. */
export const redisUrls: Parser<readonly string[]> = {
  parse(raw) {
    const urls = items(raw).map((item) => (item.includes('://') ? item : `redis://${item}`));
    const bad = urls.filter((url) => !isUrlOf(url, ['redis:', 'rediss:']));
    // Shown with the scheme added, so that a password in a scheme-less entry is masked too.
    const complaint = 'expected redis://host:port, or a comma-separated list of cluster nodes';
    return bad.length === 0 ? ok(urls) : wrong(bad.map(() => complaint), urls.join(','));
  },
  format: (value) => value.join(','),
};

/** A path to a PEM file that exists (read when the listener starts). */
export const pemFile: Parser<string> = {
  parse(raw) {
    const path = raw.trim();
    return existsSync(path) ? ok(path) : wrong('expected a readable PEM file (file not found)');
  },
  format: (value) => value,
};

/** Whether `raw` is an absolute URL with one of these schemes and a host. */
function isUrlOf(raw: string, protocols: readonly string[]): boolean {
  try {
    const url = new URL(raw);
    return protocols.includes(url.protocol) && url.hostname !== '';
  } catch {
    return false;
  }
}
