/**
 * The value each `kind:algorithm` has, as this code writes it: what the reputation API accepts
 * (src/reputation/api.ts `fingerprintText`), so a value no fingerprinter can produce
 * (`image:phash256:nothex`, a NUL, a short sha256) is refused with 400 naming it, instead of
 * being stored as a fingerprint nothing will ever match.
 *
 * - `ip:sha256`, `ip:sha256-64`, `net:sha256` (ip.ts), `attachment:sha256`, `image:sha256`
 *   (index.ts), `url:sha256` (url.ts): SHA-256, 64 lower-case hex digits;
 * - `image:phash256` (image.ts): 256 bits, 64 lower-case hex digits;
 * - `image:dhash64`: 64 bits, 16 hex digits; no longer produced, kept (as in fuzzy.ts) so data
 *   stored in that form can still be looked up and overridden;
 * - `body:minhash64` (text.ts): 64 positions of 4 hex digits, 256 lower-case hex digits;
 * - `url:domain` (url.ts registrableDomain): a lower-case host name (punycode for IDNs; `_` as
 *   URL parsing allows it) or an IP address;
 * - `domain:dkim`, `domain:spf`, `domain:dmarc` (src/scan/auth-policy.ts): an authenticated
 *   sender domain, a lower-case host name (punycode for IDNs), never an address.
 * Anything else (another kind or algorithm) is refused, naming the known ones.
 */
import { isIP } from 'node:net';
import { PHASH_ALGORITHM, PHASH_BITS } from './image.js';
import { MINHASH_COUNT } from './minhash.js';

interface ValueForm {
  /** What the value must be, for the error message. */
  readonly expected: string;
  matches(value: string): boolean;
}

const LOWER_HEX = /^[0-9a-f]*$/;

function hex(digits: number): ValueForm {
  return { expected: `${digits} lower-case hex digits`, matches: (value) => value.length === digits && LOWER_HEX.test(value) };
}

const LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
const HOST_NAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

const HOST: ValueForm = {
  expected: 'a lower-case host name (labels of a-z, 0-9, - and _ joined by dots, at most 253 characters) or an IP address',
  matches: (value) => HOST_NAME.test(value) || isIP(value) !== 0,
};

const SHA256 = hex(64);

const DOMAIN_NAME: ValueForm = {
  expected: 'a lower-case domain name (labels of a-z, 0-9, - and _ joined by dots, at most 253 characters)',
  matches: (value) => HOST_NAME.test(value) && value.includes('.') && isIP(value) === 0,
};

export const FINGERPRINT_FORMS: ReadonlyMap<string, ValueForm> = new Map([
  ['ip:sha256', SHA256],
  ['ip:sha256-64', SHA256],
  ['net:sha256', SHA256],
  ['attachment:sha256', SHA256],
  ['image:sha256', SHA256],
  [`image:${PHASH_ALGORITHM}`, hex(PHASH_BITS / 4)],
  ['image:dhash64', hex(16)],
  ['body:minhash64', hex(MINHASH_COUNT * 4)],
  ['url:sha256', SHA256],
  ['url:domain', HOST],
  ['domain:dkim', DOMAIN_NAME],
  ['domain:spf', DOMAIN_NAME],
  ['domain:dmarc', DOMAIN_NAME],
]);

const KINDS = [...new Set([...FINGERPRINT_FORMS.keys()].map((id) => id.slice(0, id.indexOf(':'))))];

/** The text as it can be shown in a message: quoted, control characters escaped, long ones cut. */
function shown(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}

/** What is wrong with a fingerprint text, naming it, or null when it is of its algorithm's form. */
export function fingerprintProblem(text: string): string | null {
  const first = text.indexOf(':');
  const second = first < 0 ? -1 : text.indexOf(':', first + 1);
  if (second < 0) return `${shown(text)} is not kind:algorithm:value`;
  const kind = text.slice(0, first);
  const id = text.slice(0, second);
  const form = FINGERPRINT_FORMS.get(id);
  if (form === undefined) {
    if (!KINDS.includes(kind)) return `${shown(text)}: unknown kind ${shown(kind)}; known kinds are ${KINDS.join(', ')}`;
    const known = [...FINGERPRINT_FORMS.keys()].filter((name) => name.startsWith(`${kind}:`));
    return `${shown(text)}: unknown algorithm ${shown(id)}; known for ${kind} are ${known.join(', ')}`;
  }
  return form.matches(text.slice(second + 1)) ? null : `${shown(text)}: the value of ${id} must be ${form.expected}`;
}
