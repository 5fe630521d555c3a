/**
 * From fingerprints to a verdict: one batched lookup, the score, and the report lines. Shared by
 * the gateway's inspector and `nimbus check`, so the command shows exactly what the gateway would
 * stamp on the same message.
 */
import type { Config } from '../config.js';
import type { Fingerprint } from '../fingerprint/types.js';
import type { ReportPart } from '../gateway/verdict-headers.js';
import type { LookupOutcome, ReputationLookups } from './lookups.js';
import { scoreMessage, type MessageScore } from './scoring.js';

/** X-Nimbus-Report lists at most this many fingerprints, the decisive ones first. */
export const MAX_REPORT_ENTRIES = 12;

/** Marks a shortened hash in X-Nimbus-Report. */
export const ELLIPSIS = '...';

export type JudgePolicy = Pick<Config, 'tagScore' | 'weights'>;

export interface Judgement {
  readonly scored: MessageScore;
  readonly outcome: LookupOutcome;
  /** `tests=` names: every part of the score, and whether the service could not answer. */
  readonly tests: string[];
  readonly parts: ReportPart[];
}

export async function judge(lookups: ReputationLookups, policy: JudgePolicy, fingerprints: readonly Fingerprint[], gtube: boolean): Promise<Judgement> {
  const outcome = await lookups.lookup(fingerprints);
  const scored = scoreMessage(fingerprints, outcome.results, policy, { gtube, incomplete: outcome.incomplete });
  const tests = scored.parts.map((part) => part.test);
  if (outcome.incomplete.size > 0) tests.push(`NIMBUS_LOOKUP_${outcome.remote.toUpperCase().replace(/-/g, '_')}`);
  return { scored, outcome, tests, parts: reportParts(scored) };
}

/** The decisive fingerprints first (spam, ham, bulk), then what is unknown, capped. */
function reportParts(scored: MessageScore): ReportPart[] {
  const rank = { spam: 0, ham: 1, bulk: 2, unknown: 3 } as const;
  return [...scored.entries]
    .sort((a, b) => rank[a.verdict] - rank[b.verdict] || b.reputation - a.reputation)
    .slice(0, MAX_REPORT_ENTRIES)
    .map((entry) => ({ label: reportLabel(entry.fingerprint), verdict: entry.verdict, score: entry.reputation }));
}

/**
 * `ip=203.0.113.7` in the clear (the gateway's own header), hashes shortened to 12 digits and
 * `...`. ASCII only: these labels go into header fields of messages relayed without SMTPUTF8 or
 * BODY=8BITMIME, where one `…` (3 bytes of UTF-8) would make a 7-bit message 8-bit.
 */
export function reportLabel(fingerprint: Fingerprint): string {
  if (fingerprint.kind === 'ip' && fingerprint.label) return `ip=${fingerprint.label}`;
  const value = fingerprint.value.length > 16 ? `${fingerprint.value.slice(0, 12)}${ELLIPSIS}` : fingerprint.value;
  return `${fingerprint.kind}:${fingerprint.algorithm}:${value}`;
}

/** One report entry as X-Nimbus-Report writes it. */
export function formatReportPart(part: ReportPart): string {
  return `${part.label}=${part.verdict}(${part.score.toFixed(2)})`;
}
