/**
 * What leaves the host, per participation mode: the one place that decides it. The uploader,
 * the lookup client (isSendableFingerprint) and `nimbus statement` (STATEMENT) all read from
 * here, so the printed statement cannot drift from what is sent.
 *
 * Strictness: every fingerprint sent must be a checksum (hex value), except `url:domain:…` and
 * the authenticated sender domains (`domain:dkim:…`, `domain:spf:…`, `domain:dmarc:…`), which
 * must look like a bare domain name. Full-URL fingerprints (`url:sha256:…`, a hash of the
 * whole link, which can carry a personal token) are sent only in extended mode, in lookups too.
 */
import type { ParticipationMode } from '../config/index.js';
import { reportRecord, type ReportRecord } from '../reputation/api.js';
import type { LocalRecord } from './types.js';

const HEX = /^[0-9a-f]{8,2048}$/;
/** Lower-case labels and dots only: nothing that could hold a user part, path or query. */
const DOMAIN = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;
const CHECKSUM_KINDS = new Set(['ip', 'net', 'attachment', 'image', 'body']);
/** How a sender domain proved itself: a passing DKIM signature, SPF, DMARC. */
const SENDER_DOMAIN_ALGORITHMS = new Set(['dkim', 'spf', 'dmarc']);

/** True when this fingerprint text may leave the host in `mode` (lookups and uploads). */
export function isSendableFingerprint(text: string, mode: ParticipationMode): boolean {
  if (mode === 'off') return false;
  const first = text.indexOf(':');
  const second = first < 0 ? -1 : text.indexOf(':', first + 1);
  if (second < 0) return false;
  const kind = text.slice(0, first);
  const algorithm = text.slice(first + 1, second);
  const value = text.slice(second + 1);
  if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(algorithm)) return false;
  if (CHECKSUM_KINDS.has(kind)) return HEX.test(value);
  if (kind === 'domain') return SENDER_DOMAIN_ALGORITHMS.has(algorithm) && DOMAIN.test(value);
  if (kind !== 'url') return false;
  if (algorithm === 'domain') return DOMAIN.test(value);
  // A checksum of the full link: extended only.
  return mode === 'extended' && algorithm === 'sha256' && HEX.test(value);
}

export interface StatementEntry {
  readonly field: string;
  readonly what: string;
}

/**
 * The statement, per mode. The field names are the wire fields of a report record
 * (src/reputation/api.ts); `toWireRecord` below sends exactly these and nothing else.
 */
export const STATEMENT: Readonly<Record<ParticipationMode, readonly StatementEntry[]>> = Object.freeze({
  off: [],
  standard: [
    { field: 'id', what: 'a random id of the record at this gateway (so a resent record is recognised)' },
    { field: 'time', what: 'when the message was processed' },
    {
      field: 'fingerprints',
      what:
        'SHA-256 checksums of the client IP (and its IPv6 /64) and network (/24, /48); SHA-256 and perceptual hashes of images; ' +
        'SHA-256 of attachments; near-duplicate hashes (minhash) of the text; link domains in the clear (url:domain:example.com); ' +
        'with NIMBUS_AUTH_CHECKS=on, sender domains that proved themselves, in the clear: the d= of each passing DKIM signature (domain:dkim:example.com), ' +
        'the envelope domain when SPF passes (domain:spf:example.com), the organisational From domain when DMARC passes (domain:dmarc:example.com)',
    },
    { field: 'verdict', what: 'spam, bulk, ham or unknown, without the public DNS lists\' points' },
    { field: 'score', what: 'the message score, without the public DNS lists\' points' },
    { field: 'action', what: 'what the gateway did: deliver, tag, reject, quarantine, discard, trap' },
  ],
  extended: [
    { field: '(standard)', what: 'everything standard sends, plus:' },
    { field: 'fingerprints', what: 'SHA-256 checksums of full link URLs (url:sha256:…)' },
    { field: 'urls', what: 'the full link URLs in the clear (they may contain tracking tokens)' },
    { field: 'attachments', what: 'per attachment: SHA-256, MIME type and size in bytes' },
    { field: 'size', what: 'the message size in bytes' },
  ],
});

/** Never sent in any mode (printed by `nimbus statement`; the record type cannot even hold the first four). */
export const NEVER_SENT: readonly string[] = Object.freeze([
  'sender and recipient addresses',
  'subjects and any header',
  'message text',
  'the client IP address or HELO name in the clear (they stay in the local statistics)',
  'the next hop reply',
  'file names',
  "the local classifier's token counts (nimbus learn) and its points: the score sent leaves them out",
]);

const ACTIONS = new Set<string>(['deliver', 'tag', 'reject', 'quarantine', 'discard', 'trap', 'tempfail']);

/** The wire record for `mode`; null when nothing is sent (`off`). */
export function toWireRecord(record: LocalRecord, mode: ParticipationMode): ReportRecord | null {
  if (mode === 'off') return null;
  const fingerprints = [...new Set(record.fingerprints.map((f) => f.text))].filter((text) => isSendableFingerprint(text, mode));
  const base: ReportRecord = {
    id: record.id,
    time: new Date(record.time).toISOString(),
    fingerprints,
    verdict: record.verdict,
    score: Number.isFinite(record.score) ? record.score : 0,
    action: ACTIONS.has(record.action) ? record.action : 'deliver',
  };
  if (mode === 'extended') {
    base.size = Math.max(0, Math.floor(record.size));
    base.urls = (record.urls ?? []).filter((url) => url.length <= 2048).slice(0, 500);
    base.attachments = (record.attachments ?? []).slice(0, 500).map((a) => ({ sha256: a.sha256, type: a.type.slice(0, 255), size: Math.max(0, Math.floor(a.size)) }));
  }
  // Validated against the service's schema here, so a bad record is found at the gateway.
  return reportRecord.parse(base);
}
