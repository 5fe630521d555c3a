/**
 * Edits of the raw header block, byte for byte: never parsed and re-serialised, so every header
 * the gateway does not touch (and the body) stays exactly as signed by DKIM.
 */
import { VERDICT_FIELD_PREFIXES, isRemovedField } from '../scan/headers.js';

/** Splits a header block into fields: each field is its first line plus folded continuations. */
export function splitFields(block: Buffer): Buffer[] {
  const fields: Buffer[] = [];
  let start = 0;
  let i = 0;
  while (i < block.length) {
    const lf = block.indexOf(0x0a, i);
    const lineEnd = lf < 0 ? block.length : lf + 1;
    const next = block[lineEnd];
    // A line starting with space or tab continues the field (RFC 5322 2.2.3).
    if (next !== 0x20 && next !== 0x09) {
      fields.push(block.subarray(start, lineEnd));
      start = lineEnd;
    }
    i = lineEnd;
  }
  if (start < block.length) fields.push(block.subarray(start));
  return fields;
}

function fieldName(field: Buffer): string {
  const colon = field.indexOf(0x3a);
  if (colon < 0) return '';
  return field.subarray(0, colon).toString('latin1').trim().toLowerCase();
}

/**
 * The header block without the fields whose names start with one of `prefixes` (with their
 * continuation lines): by default X-Nimbus-* and X-Spam-*, which only Nimbus may write.
 */
export function stripVerdictFields(block: Buffer, prefixes: readonly string[] = VERDICT_FIELD_PREFIXES): { block: Buffer; removed: number } {
  if (prefixes.length === 0) return { block, removed: 0 };
  const kept: Buffer[] = [];
  let removed = 0;
  for (const field of splitFields(block)) {
    if (isRemovedField(fieldName(field), prefixes)) removed++;
    else kept.push(field);
  }
  return { block: removed === 0 ? block : Buffer.concat(kept), removed };
}

/**
 * Puts `tag` in front of the first Subject field's value (once: an already tagged subject is left
 * alone); adds a Subject field when there is none.
 */
export function tagSubject(block: Buffer, tag: string): Buffer {
  const fields = splitFields(block);
  const index = fields.findIndex((field) => fieldName(field) === 'subject');
  const newline = block.includes('\r\n') || block.length === 0 ? '\r\n' : '\n';
  if (index < 0) return Buffer.concat([block, Buffer.from(`Subject: ${tag}${newline}`, 'utf8')]);
  const field = fields[index]!;
  const colon = field.indexOf(0x3a);
  let valueStart = colon + 1;
  while (field[valueStart] === 0x20 || field[valueStart] === 0x09) valueStart++;
  if (field.subarray(valueStart).toString('utf8').startsWith(tag)) return block;
  const tagged = Buffer.concat([field.subarray(0, colon + 1), Buffer.from(` ${tag} `, 'utf8'), field.subarray(valueStart)]);
  fields[index] = tagged;
  return Buffer.concat(fields);
}
