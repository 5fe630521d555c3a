/**
 * The statistical classifier's tokens (docs/design/bayes.md): the distinct words of a message's
 * visible text (the same text the body fingerprint is made of) and of its Subject, the latter
 * prefixed `subject:` so that a word means something of its own there. Lower-cased, 3 to 20
 * characters (shorter words say nothing, longer ones are mostly encoded junk), at most
 * MAX_TOKENS per message, Subject first. Only their hashes leave this module: the classifier's
 * tables never hold a word in the clear.
 */

/** Distinct tokens per message: a long message says no more than its first thousand words. */
export const MAX_TOKENS = 1000;
export const MIN_TOKEN_CHARS = 3;
export const MAX_TOKEN_CHARS = 20;

// Letters and digits, and the marks that make a word a price or a shout ($, €, £, %, !) or a
// contraction; any other character separates words.
const WORD = /[\p{L}\p{N}$€£%!'-]+/gu;

function words(text: string, prefix: string, into: Set<number>): void {
  const lower = text.toLowerCase();
  if (ASCII_ONLY.test(lower)) {
    asciiWords(lower, prefix, into);
    return;
  }
  for (const match of lower.matchAll(WORD)) {
    if (into.size >= MAX_TOKENS) return;
    const word = match[0];
    if (word.length < MIN_TOKEN_CHARS || word.length > MAX_TOKEN_CHARS) continue;
    into.add(tokenHash(prefix + word));
  }
}

const ASCII_ONLY = /^[\x00-\x7f]*$/;

/** What WORD matches in lower-case ASCII: \p{L} is a-z there, \p{N} is 0-9. */
function isAsciiWordChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x24 || c === 0x25 || c === 0x21 || c === 0x27 || c === 0x2d;
}

/**
 * `words` for lower-case ASCII text, scanned without the Unicode regular expression (its match
 * objects were a third of the tokens' time on a 5 KB text); the same tokens in the same order.
 */
function asciiWords(lower: string, prefix: string, into: Set<number>): void {
  let start = -1;
  for (let i = 0; i <= lower.length; i++) {
    if (i < lower.length && isAsciiWordChar(lower.charCodeAt(i))) {
      if (start < 0) start = i;
      continue;
    }
    if (start < 0) continue;
    if (into.size >= MAX_TOKENS) return;
    if (i - start >= MIN_TOKEN_CHARS && i - start <= MAX_TOKEN_CHARS) into.add(tokenHash(prefix + lower.slice(start, i)));
    start = -1;
  }
}

/** The message's token hashes, distinct, Subject words first. */
export function messageTokens(visibleText: string, subject: string): number[] {
  const tokens = new Set<number>();
  words(subject, 'subject:', tokens);
  words(visibleText, '', tokens);
  return [...tokens];
}

/**
 * A 53-bit hash of a token (a safe JavaScript integer, an SQLite INTEGER): two 32-bit
 * multiply-xor hashes over the UTF-16 code units with different seeds and multipliers, each
 * finished with an avalanche step, 21 bits of one above the 32 of the other. Not a secret: it
 * keeps words out of the file and the table small, and at a few hundred thousand tokens a
 * collision (two words counted as one) is rare enough to change no verdict.
 */
export function tokenHash(token: string): number {
  let a = 0x811c9dc5;
  let b = 0x3c6ef372;
  for (let i = 0; i < token.length; i++) {
    const unit = token.charCodeAt(i);
    a = Math.imul(a ^ unit, 0x01000193);
    b = Math.imul(b ^ unit, 0x5bd1e995);
    b ^= b >>> 13;
  }
  return (avalanche(b) >>> 11) * 0x1_0000_0000 + (avalanche(a) >>> 0);
}

function avalanche(h: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return x ^ (x >>> 16);
}
