/**
 * A DKIM-Signature field's tags, read as mailauth's field parser (lib/parse-dkim-headers.js)
 * reads them, without building every tag a character at a time: that parser made ~20 KB of
 * short-lived strings and cost ~16 us per signature, more than the header canonicalisation.
 *
 * mailauth's parser splits the value into `tag=value` parts at `;`, takes the tag up to the first
 * `=` and the value after it, folds white space runs into one space and trims both, lower-cases the
 * tag, drops white space from `b=`, `bh=`, `h=` and `p=`, makes `l=`, `t=`, `v=` and `x=` numbers
 * when they read as numbers, keeps the last of a repeated tag, and gives the first part without
 * `=` as the field's `value`. It also reads comments, quotes and backslash escapes: a field with any
 * of `(`, `"`, `'` or `\` gets null here and is left to mailauth's parser, as are ARC fields.
 * test/dkim-signature-tags.test.ts compares both on every kind of field it can make.
 */
import type { DkimTag, ParsedSignature } from 'mailauth/lib/tools.js';

const NOT_PLAIN = /[("'\\]/;
const WITHOUT_WHITE_SPACE = new Set(['bh', 'b', 'p', 'h']);
const NUMBERS = new Set(['l', 'v', 't', 'x']);
const RESERVED = new Set(['__proto__', 'constructor']);

/** mailauth's parse of `line` (a whole DKIM-Signature field), or null: leave it to mailauth. */
export function signatureTags(line: Buffer): ParsedSignature | null {
  let text = line.toString().trim();
  const colon = text.indexOf(':');
  let header: string | undefined;
  if (colon >= 0) {
    header = text.slice(0, colon).trim().toLowerCase();
    text = text.slice(colon + 1).trim();
  }
  if (NOT_PLAIN.test(text) || header === undefined || header.startsWith('arc-') || header.endsWith('authentication-results')) return null;
  const parts: { key: string; value: string | number; hasValue: boolean }[] = [];
  for (const part of text.split(';')) {
    const equals = part.indexOf('=');
    const key = folded(equals < 0 ? part : part.slice(0, equals)).toLowerCase();
    if (key === '') continue;
    let value: string | number = equals < 0 ? '' : folded(part.slice(equals + 1));
    if (WITHOUT_WHITE_SPACE.has(key)) value = value.replace(/\s+/g, '');
    else if (NUMBERS.has(key) && !Number.isNaN(Number(value))) value = Number(value);
    parts.push({ key, value, hasValue: equals >= 0 });
  }
  const parsed: Record<string, unknown> = { header };
  const bare = parts.findIndex((part) => !part.hasValue);
  if (bare >= 0) parsed.value = parts.splice(bare, 1)[0]!.key;
  for (const part of parts) if (!RESERVED.has(part.key)) parsed[part.key] = { value: part.value };
  return { parsed: parsed as Partial<Record<string, DkimTag>>, original: line };
}

function folded(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
