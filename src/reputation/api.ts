/**
 * Wire contract of the reputation service (JSON over HTTP), shared by the service, its client
 * in the gateway, the proxy mode and the statistics uploader. Every request body is validated
 * against these schemas; a bad one gets 400 naming the field and changes nothing.
 */
import { z } from 'zod';
import { fingerprintProblem } from '../fingerprint/forms.js';

export const VERDICTS = ['spam', 'bulk', 'ham', 'unknown'] as const;
export type Verdict = (typeof VERDICTS)[number];

/**
 * `kind:algorithm:value` of a known kind and algorithm, the value in the form that algorithm
 * writes (src/fingerprint/forms.ts); the message names the item and what is wrong with it.
 */
export const fingerprintText = z
  .string()
  .max(2048)
  .superRefine((text, context) => {
    const problem = fingerprintProblem(text);
    if (problem !== null) context.addIssue({ code: 'custom', message: problem });
  });

export const MAX_LOOKUP_ITEMS = 1000;

export const lookupRequest = z.object({
  items: z.array(fingerprintText).min(1).max(MAX_LOOKUP_ITEMS),
});
export type LookupRequest = z.infer<typeof lookupRequest>;

export const counters = z.object({
  seen: z.number(),
  spam: z.number(),
  ham: z.number(),
  reporters: z.number(),
  firstSeen: z.string().nullable(),
  lastSeen: z.string().nullable(),
  adminVerdict: z.enum(VERDICTS).nullable(),
});
export type Counters = z.infer<typeof counters>;

export const lookupResult = z.object({
  /** The fingerprint asked about. */
  item: z.string(),
  verdict: z.enum(VERDICTS),
  score: z.number().min(0).max(1),
  confidence: z.number().min(0).max(1),
  counters,
  /** For fuzzy kinds: the stored neighbour that answered, and how similar it is (0..1). */
  match: z.object({ item: z.string(), similarity: z.number() }).nullable(),
});
export type LookupResult = z.infer<typeof lookupResult>;

export const lookupResponse = z.object({ results: z.array(lookupResult) });
export type LookupResponse = z.infer<typeof lookupResponse>;

export const MESSAGE_ACTIONS = ['deliver', 'tag', 'reject', 'quarantine', 'discard', 'trap', 'tempfail'] as const;

/** One statistics record as it leaves the host: checksums and verdicts, never addresses or text. */
export const reportRecord = z.object({
  /** Stable id of the record at its gateway (so a replayed record is recognisable). */
  id: z.string().min(1).max(128),
  time: z.iso.datetime({ offset: true }),
  fingerprints: z.array(fingerprintText).max(2000),
  verdict: z.enum(VERDICTS),
  score: z.number().finite(),
  action: z.enum(MESSAGE_ACTIONS),
  /** Extended participation only. */
  size: z.number().int().nonnegative().optional(),
  urls: z.array(z.string().max(2048)).max(500).optional(),
  attachments: z.array(z.object({ sha256: z.string(), type: z.string().max(255), size: z.number().int().nonnegative() })).max(500).optional(),
});
export type ReportRecord = z.infer<typeof reportRecord>;

export const MAX_REPORT_RECORDS = 5000;

export const reportBatch = z.object({
  /** Idempotency key: a resent batch with the same id counts once. */
  batchId: z.string().min(8).max(128),
  records: z.array(reportRecord).min(1).max(MAX_REPORT_RECORDS),
});
export type ReportBatch = z.infer<typeof reportBatch>;

export const feedbackRequest = z.union([
  z.object({ label: z.enum(['spam', 'ham']), items: z.array(fingerprintText).min(1).max(MAX_LOOKUP_ITEMS) }),
  /** A raw RFC 822 message (as a string); the service fingerprints it itself. */
  z.object({ label: z.enum(['spam', 'ham']), message: z.string().min(1) }),
]);
export type FeedbackRequest = z.infer<typeof feedbackRequest>;

export const verdictOverride = z.object({ verdict: z.enum(['spam', 'bulk', 'ham']), reason: z.string().max(500).optional() });
export type VerdictOverride = z.infer<typeof verdictOverride>;

/**
 * A sample of an unknown suspicious attachment (extended participation; src/stats/samples.ts says
 * which attachments qualify). Keyed by the SHA-256 of its bytes, so a resend stores it once. The
 * file name is deliberately not a field.
 */
export const sampleUpload = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected the SHA-256 of the content as 64 lower-case hex digits'),
  /** The MIME type the message declared (untrusted; never served back as Content-Type). */
  type: z.string().min(1).max(255),
  size: z.number().int().nonnegative(),
  /** The attachment's decoded bytes, base64 (RFC 4648, with padding). */
  // Canonical base64 survives a round trip; faster on megabytes than a regex, which with a
  // grouped repetition even overflows the regex stack.
  content: z.string().refine((text) => Buffer.from(text, 'base64').toString('base64') === text, 'expected base64 (RFC 4648, with padding)'),
});
export type SampleUpload = z.infer<typeof sampleUpload>;

export const KEY_ROLES = ['sensor', 'reporter', 'admin'] as const;
export type KeyRole = (typeof KEY_ROLES)[number];
