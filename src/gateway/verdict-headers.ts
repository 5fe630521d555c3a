/**
 * The verdict header fields of DESIGN.md, added to every relayed message:
 *
 *   X-Nimbus-Verdict: spam; score=12.0; required=5.0
 *   X-Nimbus-Report: ip=203.0.113.7:spam(0.97) image:dhash64:9f3c…=spam(0.91)
 *   X-Spam-Flag: YES                      (only when spam)
 *   X-Spam-Status: Yes, score=12.0 required=5.0 tests=NIMBUS_IP,NIMBUS_IMAGE
 *   X-Spam-Level: ************            (one star per point, at most 50)
 *
 * The X-Spam-* lines follow SpamAssassin's conventions so existing Sieve and MUA rules work.
 * Each returned string is one field, folded at whitespace to stay near 78 characters, without the
 * final CRLF.
 */

export type VerdictName = 'spam' | 'bulk' | 'ham' | 'unknown';

export interface ReportPart {
  /** What was looked up, in its text form (`ip=203.0.113.7`, `image:dhash64:9f3c…`). */
  readonly label: string;
  readonly verdict: VerdictName;
  /** Reputation score in [0, 1]. */
  readonly score: number;
}

export interface VerdictHeaderInput {
  readonly verdict: VerdictName;
  readonly score: number;
  readonly required: number;
  readonly parts?: readonly ReportPart[];
  /** SpamAssassin-style test names for `tests=`. */
  readonly tests?: readonly string[];
}

/** The soft line limit of RFC 5322 2.1.1. */
export const FOLD_AT = 78;
export const MAX_SPAM_LEVEL = 50;

const one = (value: number): string => (Number.isFinite(value) ? value.toFixed(1) : '0.0');

export function formatVerdictHeaders(input: VerdictHeaderInput): string[] {
  const isSpam = input.verdict === 'spam';
  const score = one(input.score);
  const required = one(input.required);
  const fields = [`X-Nimbus-Verdict: ${input.verdict}; score=${score}; required=${required}`];
  const parts = input.parts ?? [];
  if (parts.length > 0) {
    fields.push(`X-Nimbus-Report: ${parts.map((p) => `${p.label}=${p.verdict}(${p.score.toFixed(2)})`).join(' ')}`);
  }
  if (isSpam) fields.push('X-Spam-Flag: YES');
  const tests = (input.tests ?? []).length > 0 ? input.tests!.join(',') : 'none';
  fields.push(`X-Spam-Status: ${isSpam ? 'Yes' : 'No'}, score=${score} required=${required} tests=${tests}`);
  const stars = Math.max(0, Math.min(MAX_SPAM_LEVEL, Math.floor(input.score)));
  fields.push(`X-Spam-Level: ${'*'.repeat(stars)}`);
  return fields.map((field) => foldHeader(field));
}

/**
 * Folds a field at whitespace so lines stay within `limit` where possible (a single word longer
 * than the limit stays whole: breaking it would change its meaning). Each continuation line
 * starts with the whitespace that was there, so RFC 5322 unfolding restores the field exactly.
 */
export function foldHeader(field: string, limit = FOLD_AT): string {
  if (field.length <= limit) return field;
  const words = field.split(/(?=[ \t])/);
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line !== '' && line.length + word.length > limit) {
      lines.push(line);
      line = word;
    } else {
      line += word;
    }
  }
  if (line !== '') lines.push(line);
  return lines.join('\r\n');
}
