/**
 * Secrets out of everything Nimbus prints or logs: URL passwords, secret query parameters and
 * API keys. One function, `maskCredentials`, for any text that may hold a URL (a configured URL,
 * a comma-separated list of Redis Cluster URLs, an error message that embeds one, a URL that does
 * not even parse); `redactLogged` applies it to what pino is about to write under `err`. No
 * dependency: src/config/, loaded by every command, uses it.
 *
 * What is kept: the scheme, the user name (it says which account, and is no secret), host, port
 * and path, so a log line still says where a connection went. What goes: the password
 * (`user:***@`), a user-info without a colon as a whole (`***@`: `https://TOKEN@host` puts a
 * token there), the value of secret-looking query parameters (`?password=***`: ioredis reads
 * options from the query), the secret half of `nmb_<id>_<secret>` keys (the id is public, as in
 * `nimbus keys list`) and Bearer tokens.
 */
export const MASK = '***';

/**
 * `scheme://`, the start of a URL anywhere in a text; also `scheme:/` and backslashes, which the
 * WHATWG parser takes for `//` in http(s) URLs (`http:\\u:p@host` has a password too).
 */
const URL_START = /[a-z][a-z0-9+.-]*:[\\/]{1,2}/gi;
/** Where a URL written in a text surely ends: whitespace, quotes, angle brackets. */
const URL_END = /[\s"'`<>]/;
/** Query parameters whose value is a credential (ioredis takes `password` from the query). */
const SECRET_QUERY = /([?&;](?:password|passwd|pass|pwd|secret|token|access_token|auth|authorization|key|api_key|apikey)=)[^&;#\s"'`<>]*/gi;
/** `nmb_<id>_<secret>` (src/reputation/keys.ts): the id stays, the secret goes. */
const API_KEY = /(?<![A-Za-z0-9])(nmb_[0-9a-f]{1,64}_)[A-Za-z0-9_-]+/g;
/** A Bearer token; a key already masked to `nmb_<id>_***` keeps its id. */
const BEARER_WORD = /bearer/i;
const BEARER = /\b(Bearer\s+)(?!\*\*\*|nmb_[0-9a-f]{1,64}_\*\*\*)[^\s"'`,;]+/gi;

/** `text` with every credential masked; text without one comes back unchanged. */
export function maskCredentials(text: string): string {
  // Each rule only where its marker occurs: the logger runs every message through this.
  let masked = text.includes('@') ? maskUserInfo(text) : text;
  if (masked.includes('=')) masked = masked.replace(SECRET_QUERY, `$1${MASK}`);
  if (masked.includes('nmb_')) masked = masked.replace(API_KEY, `$1${MASK}`);
  if (BEARER_WORD.test(masked)) masked = masked.replace(BEARER, `$1${MASK}`);
  return masked;
}

/** maskCredentials for a configured URL that may be unset (a log field, `nimbus config`). */
export function maskUrl(url: string | null): string | null {
  return url === null ? null : maskCredentials(url);
}

/** A configured API key for display: `nmb_<id>_***`, or `***` when it is not of that form. */
export function maskApiKey(key: string): string {
  const token = /^(nmb_[0-9a-f]{1,64}_)[A-Za-z0-9_-]+$/.exec(key.trim());
  return token ? `${token[1]}${MASK}` : MASK;
}

function maskUserInfo(text: string): string {
  const starts = [...text.matchAll(URL_START)].map((match) => ({ scheme: match.index, authority: match.index + match[0].length }));
  if (starts.length === 0) return text;
  let out = '';
  let copied = 0;
  starts.forEach(({ scheme, authority }, i) => {
    // The URL runs to whitespace or a quote, and never into the next URL of a list.
    const limit = i + 1 < starts.length ? starts[i + 1]!.scheme : text.length;
    let end = authority;
    while (end < limit && !URL_END.test(text[end]!)) end++;
    const at = userInfoEnd(text.slice(scheme, end), authority - scheme);
    if (at < 0) return;
    out += text.slice(copied, authority) + maskedUserInfo(text.slice(authority, scheme + at));
    copied = scheme + at;
  });
  return out + text.slice(copied);
}

/**
 * Index in `url` of the `@` that ends the user-info, or -1. A URL's authority ends at the first
 * `/`, `?` or `#`, and its user-info at the last `@` before that (WHATWG). A URL that does not
 * parse may hold a password with a raw `/`, `?` or `#` in it: then everything up to the last `@`
 * is taken as user-info, masking too much rather than too little.
 */
function userInfoEnd(url: string, from: number): number {
  const rest = url.slice(from);
  const authorityEnd = rest.search(/[/?#\\]/);
  const inAuthority = rest.lastIndexOf('@', authorityEnd < 0 ? rest.length : authorityEnd);
  if (inAuthority >= 0 && (authorityEnd < 0 || inAuthority < authorityEnd)) return from + inAuthority;
  const anywhere = rest.lastIndexOf('@');
  if (anywhere < 0 || parses(url)) return -1;
  return from + anywhere;
}

function parses(url: string): boolean {
  try {
    return new URL(url).host !== '';
  } catch {
    return false;
  }
}

function maskedUserInfo(userInfo: string): string {
  if (userInfo === '') return '';
  const colon = userInfo.indexOf(':');
  return colon < 0 ? MASK : `${userInfo.slice(0, colon)}:${MASK}`;
}

/** Redis commands whose arguments carry the password (ioredis puts the failed command on its errors). */
const AUTH_COMMANDS = new Set(['auth', 'hello']);
const MAX_DEPTH = 6;

/**
 * A value about to be logged, with credentials masked: strings through maskCredentials, objects
 * and arrays field by field, an Error as its type, message, stack and own fields, and Redis
 * AUTH/HELLO commands with their arguments hidden. src/log.ts runs every `err` through pino's
 * own error serializer (causes folded into message and stack), then through this.
 */
export function redactLogged(value: unknown): unknown {
  return redactValue(value, 0, new WeakSet());
}

function redactValue(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return maskCredentials(value);
  if (value === null || typeof value !== 'object') return value;
  // Bytes (a failed command's arguments may be a whole sample) and dates hold no URL to mask.
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Date) return value;
  if (seen.has(value)) return '[Circular]';
  if (depth > MAX_DEPTH) return '[deeper fields left out]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1, seen));
  const out: Record<string, unknown> = value instanceof Error ? { type: value.name, message: value.message, stack: value.stack } : {};
  for (const [key, field] of Object.entries(value)) out[key] = field;
  for (const [key, field] of Object.entries(out)) out[key] = redactValue(field, depth + 1, seen);
  const name = typeof out.name === 'string' ? out.name.toLowerCase() : '';
  if (AUTH_COMMANDS.has(name) && Array.isArray(out.args)) out.args = out.args.map(() => MASK);
  return out;
}
