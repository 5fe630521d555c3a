/**
 * API key tokens: `nmb_<id>_<secret>`. The id is public (logs, `nimbus keys list`), the secret is
 * 32 random bytes in base64url and only its SHA-256 is stored, so a leaked store leaks no key.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const TOKEN_PREFIX = 'nmb_';
const ID_BYTES = 8;
const SECRET_BYTES = 32;

export interface ParsedToken {
  readonly id: string;
  readonly secret: string;
}

/** A new id (16 hex digits: no `_`, so the token splits unambiguously). */
export function newKeyId(): string {
  return randomBytes(ID_BYTES).toString('hex');
}

export function newSecret(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}

export function formatToken(id: string, secret: string): string {
  return `${TOKEN_PREFIX}${id}_${secret}`;
}

/** Splits a token; null when it is not of the form `nmb_<id>_<secret>`. */
export function parseToken(token: string): ParsedToken | null {
  if (!token.startsWith(TOKEN_PREFIX)) return null;
  const rest = token.slice(TOKEN_PREFIX.length);
  const sep = rest.indexOf('_');
  if (sep <= 0 || sep === rest.length - 1) return null;
  const id = rest.slice(0, sep);
  const secret = rest.slice(sep + 1);
  if (!/^[0-9a-f]{1,64}$/.test(id) || !/^[A-Za-z0-9_-]{1,128}$/.test(secret)) return null;
  return { id, secret };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time check of a presented secret against the stored hash. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Requests per second a key gets when `nimbus keys add` names no rate. */
export const DEFAULT_KEY_RATE = 100;
