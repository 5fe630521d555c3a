/**
 * A verdict as milter replies: the one place where the scan core's typed result becomes what the
 * MTA is told (STYLE: policy apart from protocol). The same result gives the same headers and the
 * same action as the relay (src/gateway/message-path.ts):
 *
 *   - incoming X-Nimbus-* / X-Spam-* fields (for an untrusted client), and Authentication-Results
 *     fields claiming this host's authserv-id (from anyone), are deleted by index (SMFIR_CHGHEADER
 *     with an empty value), highest index first so that no deletion moves another;
 *   - the verdict fields are inserted at the top, in order (SMFIR_INSHEADER at 0, 1, …);
 *   - the Subject gets NIMBUS_SUBJECT_TAG (SMFIR_CHGHEADER, or SMFIR_ADDHEADER when there is none);
 *   - spam-trap recipients are removed (SMFIR_DELRCPT); a message for traps only is discarded;
 *   - reject: `550 5.7.1` with the relay's text; discard; quarantine: the MTA's hold queue
 *     (SMFIR_QUARANTINE) or, with NIMBUS_MILTER_QUARANTINE=store, Nimbus's own quarantine and a
 *     discard (the session stores it before this answer is sent).
 *
 * Values sent start with their own space when the MTA granted HDR_LEADSPC (it then adds none),
 * so the message comes out as `Name: value` either way.
 */
import { SMTP_REPLIES } from '../gateway/smtp-replies.js';
import { claimsAuthservId } from '../scan/auth-policy.js';
import { formatHeaderField, isRemovedField } from '../scan/headers.js';
import type { HeaderField, ScanAction, ScanResult } from '../scan/types.js';
import { ACTION_FLAGS, REPLIES, encodeIndexedHeader, encodePacket, strings } from './codec.js';

/** A recipient as the MTA sent it (`raw`, for SMFIR_DELRCPT) and as an address. */
export interface MilterRecipient {
  readonly raw: string;
  readonly address: string;
}

export interface DecisionInput {
  readonly scan: ScanResult;
  /** The message's header fields as the MTA sent them, in order (values with `\n` folds). */
  readonly headers: readonly HeaderField[];
  /** HDR_LEADSPC granted: values came, and go, with their leading blanks. */
  readonly leadingSpace: boolean;
  readonly recipients: readonly MilterRecipient[];
  /** SMFIF_* flags the MTA granted in option negotiation. */
  readonly granted: number;
  /** `mta`: SMFIR_QUARANTINE; `store`: the session has stored the message in Nimbus's quarantine. */
  readonly quarantine: 'mta' | 'store';
}

export interface Decision {
  /** Modification packets, sent before `final` (the protocol allows them only at end of message). */
  readonly modifications: readonly Buffer[];
  readonly final: Buffer;
  /** What was done, for the statistics record (the relay's words). */
  readonly action: ScanAction;
  /** What the MTA was told, for the log line. */
  readonly reply: string;
}

/** The reason Postfix shows for a held message (`postcat -q`, its log). */
export function quarantineReason(scan: ScanResult): string {
  return `Nimbus: ${scan.verdict}, score ${scan.score.toFixed(1)}`;
}

export function decide(input: DecisionInput): Decision {
  const { scan } = input;
  if (scan.action === 'reject') {
    const { code, enhanced, text } = SMTP_REPLIES.SPAM_REJECTED;
    return { modifications: [], final: encodePacket(REPLIES.REPLYCODE, strings(`${code} ${enhanced} ${text}`)), action: 'reject', reply: `${code} ${enhanced}` };
  }
  if (scan.action === 'discard' || scan.action === 'trap') return { modifications: [], final: encodePacket(REPLIES.DISCARD), action: scan.action, reply: 'discard' };
  if (scan.action === 'quarantine' && input.quarantine === 'store') return { modifications: [], final: encodePacket(REPLIES.DISCARD), action: 'quarantine', reply: 'discard (stored in quarantine)' };

  const modifications = [...headerEdits(scan, input.headers, input.leadingSpace), ...trapRemovals(input)];
  if (scan.action === 'quarantine') {
    modifications.push(encodePacket(REPLIES.QUARANTINE, strings(quarantineReason(scan))));
    return { modifications, final: encodePacket(REPLIES.ACCEPT), action: 'quarantine', reply: 'accept (held by the MTA)' };
  }
  return { modifications, final: encodePacket(REPLIES.ACCEPT), action: scan.action, reply: 'accept' };
}

/** Forged verdict fields out, the subject tagged, the verdict fields in at the top. */
export function headerEdits(scan: ScanResult, headers: readonly HeaderField[], leadingSpace: boolean): Buffer[] {
  // An empty value deletes, with or without HDR_LEADSPC: only values that stay get the space.
  const sent = (value: string): string => (leadingSpace ? ` ${value}` : value);
  const packets: Buffer[] = [];
  const occurrences = new Map<string, number>();
  const removals: { name: string; index: number }[] = [];
  let subject: { value: string } | null = null;
  for (const field of headers) {
    const lower = field.name.toLowerCase();
    const index = (occurrences.get(lower) ?? 0) + 1;
    occurrences.set(lower, index);
    if (isRemovedField(lower, scan.headers.removePrefixes) || claimsAuthservId(lower, field.value, scan.headers.removeAuthservIds)) removals.push({ name: field.name, index });
    else if (lower === 'subject' && subject === null) subject = { value: field.value };
  }
  for (const removal of removals.reverse()) packets.push(encodeIndexedHeader(REPLIES.CHGHEADER, removal.index, removal.name, ''));
  const tag = scan.headers.subjectTag;
  if (tag !== null) {
    if (subject === null) packets.push(encodePacket(REPLIES.ADDHEADER, strings('Subject', sent(tag))));
    else if (!subject.value.trimStart().startsWith(tag)) packets.push(encodeIndexedHeader(REPLIES.CHGHEADER, 1, 'Subject', sent(`${tag} ${subject.value.trimStart()}`)));
  }
  scan.headers.add.forEach((field, index) => packets.push(encodeIndexedHeader(REPLIES.INSHEADER, index, field.name, sent(milterValue(field)))));
  return packets;
}

/** The field's value folded as the relay folds it, with `\n` line breaks as the MTA expects them. */
export function milterValue(field: HeaderField): string {
  return formatHeaderField(field).slice(field.name.length + 2).replace(/\r\n/g, '\n');
}

function trapRemovals(input: DecisionInput): Buffer[] {
  if (input.scan.trapHits.length === 0 || (input.granted & ACTION_FLAGS.DELRCPT) === 0) return [];
  const traps = new Set(input.scan.trapHits.map((address) => address.toLowerCase()));
  return input.recipients.filter((recipient) => traps.has(recipient.address.toLowerCase())).map((recipient) => encodePacket(REPLIES.DELRCPT, strings(recipient.raw)));
}

/** Nimbus failed: NIMBUS_MILTER_ON_ERROR's answer. */
export function failureReply(onError: 'accept' | 'tempfail'): { final: Buffer; reply: string } {
  return onError === 'tempfail' ? { final: encodePacket(REPLIES.TEMPFAIL), reply: 'tempfail' } : { final: encodePacket(REPLIES.ACCEPT), reply: 'accept' };
}
