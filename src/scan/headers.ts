/**
 * The verdict header fields of DESIGN.md, as data, added to every message by every front:
 *
 *   X-Nimbus-Verdict: spam; score=12.0; required=5.0
 *   X-Nimbus-Report: dnsbl:zen=listed(sbl) ip=203.0.113.7:spam(0.97) image:dhash64:9f3c…=spam(0.91)
 *   X-Spam-Flag: YES                      (only when spam)
 *   X-Spam-Status: Yes, score=12.0 required=5.0 tests=NIMBUS_IP,NIMBUS_IMAGE
 *   X-Spam-Level: ************            (one star per point, at most 50)
 *
 * The X-Spam-* lines follow SpamAssassin's conventions so existing Sieve and MUA rules work.
 * A front writes each field with formatHeaderField (folded at whitespace near 78 characters).
 */
import type { HeaderField, ReportPart, Verdict } from './types.js';

export interface VerdictHeaderInput {
  readonly verdict: Verdict;
  readonly score: number;
  readonly required: number;
  readonly parts?: readonly ReportPart[];
  /** SpamAssassin-style test names for `tests=`. */
  readonly tests?: readonly string[];
}

/** Incoming fields with these (lower-case) name prefixes are forgeries unless the client is trusted. */
export const VERDICT_FIELD_PREFIXES: readonly string[] = ['x-nimbus-', 'x-spam-'];

/** The soft line limit of RFC 5322 2.1.1. */
export const FOLD_AT = 78;
export const MAX_SPAM_LEVEL = 50;

const one = (value: number): string => (Number.isFinite(value) ? value.toFixed(1) : '0.0');

export function verdictHeaderFields(input: VerdictHeaderInput): HeaderField[] {
  const isSpam = input.verdict === 'spam';
  const score = one(input.score);
  const required = one(input.required);
  const fields: HeaderField[] = [{ name: 'X-Nimbus-Verdict', value: `${input.verdict}; score=${score}; required=${required}` }];
  const parts = input.parts ?? [];
  if (parts.length > 0) fields.push({ name: 'X-Nimbus-Report', value: parts.map(formatReportPart).join(' ') });
  if (isSpam) fields.push({ name: 'X-Spam-Flag', value: 'YES' });
  const tests = (input.tests ?? []).length > 0 ? input.tests!.join(',') : 'none';
  fields.push({ name: 'X-Spam-Status', value: `${isSpam ? 'Yes' : 'No'}, score=${score} required=${required} tests=${tests}` });
  const stars = Math.max(0, Math.min(MAX_SPAM_LEVEL, Math.floor(input.score)));
  fields.push({ name: 'X-Spam-Level', value: '*'.repeat(stars) });
  return fields;
}

/** The fields as complete, folded header lines (without the final CRLF). */
export function formatVerdictHeaders(input: VerdictHeaderInput): string[] {
  return verdictHeaderFields(input).map(formatHeaderField);
}

/** `Name: value`, folded. An empty value keeps its space (`X-Spam-Level: `), as SpamAssassin writes it. */
export function formatHeaderField(field: HeaderField): string {
  return foldHeader(`${field.name}: ${field.value}`);
}

/** One report entry as X-Nimbus-Report writes it. */
export function formatReportPart(part: ReportPart): string {
  if (part.source === 'dns-list') return `dnsbl:${part.list}=${part.status}(${part.detail})`;
  return `${part.label}=${part.verdict}(${part.score.toFixed(2)})`;
}

/** Whether an incoming field of this name is removed (forged verdict) under these prefixes. */
export function isRemovedField(name: string, prefixes: readonly string[]): boolean {
  const lower = name.trim().toLowerCase();
  return prefixes.some((prefix) => lower.startsWith(prefix));
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
