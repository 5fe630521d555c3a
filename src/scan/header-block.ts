/**
 * Edits of the raw header block, byte for byte: never parsed and re-serialised, so every header
 * the gateway does not touch (and the body) stays exactly as signed by DKIM.
 */
import { claimsAuthservId } from './auth-policy.js';
import { VERDICT_FIELD_PREFIXES, isRemovedField } from './headers.js';

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

/** Whether `field` is an Authentication-Results field of one of `authservIds` (lower case). */
function isOwnAuthenticationResults(field: Buffer, authservIds: readonly string[]): boolean {
  return authservIds.length > 0 && claimsAuthservId(fieldName(field), field.subarray(field.indexOf(0x3a) + 1).toString('latin1'), authservIds);
}

/**
 * The header block without the fields whose names start with one of `prefixes` (with their
 * continuation lines): by default X-Nimbus-* and X-Spam-*, which only Nimbus may write; and
 * without the Authentication-Results fields claiming one of `authservIds` (RFC 8601 5: only this
 * host may write results in its own name).
 */
export function stripVerdictFields(block: Buffer, prefixes: readonly string[] = VERDICT_FIELD_PREFIXES, authservIds: readonly string[] = []): { block: Buffer; removed: number } {
  if (prefixes.length === 0 && authservIds.length === 0) return { block, removed: 0 };
  const kept: Buffer[] = [];
  let removed = 0;
  for (const field of splitFields(block)) {
    if (isRemovedField(fieldName(field), prefixes) || isOwnAuthenticationResults(field, authservIds)) removed++;
    else kept.push(field);
  }
  return { block: removed === 0 ? block : Buffer.concat(kept), removed };
}

/**
 * Bytes the gateway put into a message: `text` (UTF-8) at byte offset `at`, where `replaced` was. Kept
 * with a quarantined message so that a release can take out exactly what the gateway added
 * (its verdict fields, its subject tag) instead of guessing by field names.
 */
export interface ByteEdit {
  readonly at: number;
  readonly text: string;
  readonly replaced: string;
}

/**
 * Puts `tag` in front of the first Subject field's value (once: an already tagged subject is left
 * alone); adds a Subject field when there is none. `edit` says what changed (offsets in `block`),
 * null when nothing did.
 */
export function tagSubject(block: Buffer, tag: string): { block: Buffer; edit: ByteEdit | null } {
  const fields = splitFields(block);
  const index = fields.findIndex((field) => fieldName(field) === 'subject');
  const newline = block.includes('\r\n') || block.length === 0 ? '\r\n' : '\n';
  if (index < 0) {
    const added = `Subject: ${tag}${newline}`;
    return { block: Buffer.concat([block, Buffer.from(added, 'utf8')]), edit: { at: block.length, text: added, replaced: '' } };
  }
  const field = fields[index]!;
  const colon = field.indexOf(0x3a);
  let valueStart = colon + 1;
  while (field[valueStart] === 0x20 || field[valueStart] === 0x09) valueStart++;
  if (field.subarray(valueStart).toString('utf8').startsWith(tag)) return { block, edit: null };
  const inserted = ` ${tag} `;
  fields[index] = Buffer.concat([field.subarray(0, colon + 1), Buffer.from(inserted, 'utf8'), field.subarray(valueStart)]);
  const fieldOffset = fields.slice(0, index).reduce((sum, before) => sum + before.length, 0);
  return {
    block: Buffer.concat(fields),
    // Only blanks (ASCII) were between the colon and the value: they come back byte for byte.
    edit: { at: fieldOffset + colon + 1, text: inserted, replaced: field.subarray(colon + 1, valueStart).toString('utf8') },
  };
}

/**
 * `bytes` with `edits` undone (each `text` at `at` put back to `replaced`), or null when the
 * bytes at an edit's offset are not its text: then they are not the message the edits were
 * recorded for, and nothing is changed by guessing. Offsets are those of `bytes` as they are;
 * edits may be given in any order but must not overlap.
 */
export function undoEdits(bytes: Buffer, edits: readonly ByteEdit[]): Buffer | null {
  let result = bytes;
  // From the last offset back, so that each undo leaves the offsets before it where they were.
  for (const edit of [...edits].sort((a, b) => b.at - a.at)) {
    const text = Buffer.from(edit.text, 'utf8');
    if (edit.at < 0 || !result.subarray(edit.at, edit.at + text.length).equals(text)) return null;
    result = Buffer.concat([result.subarray(0, edit.at), Buffer.from(edit.replaced, 'utf8'), result.subarray(edit.at + text.length)]);
  }
  return result;
}
