/**
 * The gateway's full inspector: fingerprints, one batched lookup, a score, the headers and the
 * action. Policy lives here; the gateway maps the action to SMTP replies.
 *
 * Failure policy (STYLE 4): a lookup that fails or runs out of budget lets mail through on local
 * data (marked in `tests=`); the analysis of a message too large to parse whole keeps only the
 * sender's IP and network (counted as a skip), never holding the gateway.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { fingerprintMessage, type AttachmentInfo, type Skip } from '../fingerprint/index.js';
import { ipFingerprints } from '../fingerprint/ip.js';
import type { Fingerprint } from '../fingerprint/types.js';
import { GTUBE } from '../gateway/default-inspector.js';
import type { Inspection, InspectionAction, InspectionRequest, MessageInspector } from '../gateway/inspection.js';
import { formatVerdictHeaders, type ReportPart } from '../gateway/verdict-headers.js';
import type { Feedback } from './feedback.js';
import type { ReputationLookups, RemoteOutcome } from './lookups.js';
import { scoreMessage, type MessageScore } from './scoring.js';

/** Messages above this are not parsed (MIME, images): IP and network reputation only. */
export const MAX_ANALYSIS_BYTES = 10 * 1024 * 1024;
/** X-Nimbus-Report lists at most this many fingerprints, the decisive ones first. */
export const MAX_REPORT_ENTRIES = 12;

/** What the statistics record needs beyond the verdict (local only until wire.ts filters it). */
export interface Evidence {
  readonly fingerprints: readonly Fingerprint[];
  readonly urls: readonly string[];
  readonly attachments: readonly AttachmentInfo[];
  readonly skips: readonly Skip[];
  readonly remote: RemoteOutcome;
}

export interface InspectionWithEvidence extends Inspection {
  readonly evidence: Evidence;
}

export function evidenceOf(inspection: Inspection): Evidence | null {
  return 'evidence' in inspection ? (inspection as InspectionWithEvidence).evidence : null;
}

type Policy = Pick<Config, 'tagScore' | 'rejectScore' | 'spamAction' | 'weights'>;

export interface ReputationInspectorOptions {
  readonly policy: Policy;
  readonly lookups: ReputationLookups;
  readonly feedback: Feedback;
  readonly log: Logger;
}

export class ReputationInspector implements MessageInspector {
  #policy: Policy;
  #lookups: ReputationLookups;
  #feedback: Feedback;
  readonly #log: Logger;

  constructor(options: ReputationInspectorOptions) {
    this.#policy = options.policy;
    this.#lookups = options.lookups;
    this.#feedback = options.feedback;
    this.#log = options.log;
  }

  /** SIGHUP: new thresholds, and lookups/feedback rebuilt for a changed participation. */
  reload(next: Pick<ReputationInspectorOptions, 'policy' | 'lookups' | 'feedback'>): void {
    this.#policy = next.policy;
    this.#lookups = next.lookups;
    this.#feedback = next.feedback;
  }

  async inspect(request: InspectionRequest): Promise<InspectionWithEvidence> {
    const analysed = await analyse(request);
    const policy = this.#policy;
    if (request.spamtrapHits.length > 0) {
      // A trap address has no real reader: whatever reaches it is spam, and teaches the network.
      await this.#feedback.report('spam', analysed.fingerprints, 'trap').catch((error: unknown) => {
        this.#log.warn({ event: 'trap.feedback_failed', queueId: request.queueId, err: String(error) }, 'spam-trap feedback failed');
      });
      const evidence: Evidence = { ...analysed, remote: 'disabled' };
      return {
        verdict: 'spam',
        score: policy.rejectScore,
        required: policy.tagScore,
        action: 'trap',
        headers: formatVerdictHeaders({ verdict: 'spam', score: policy.rejectScore, required: policy.tagScore, tests: ['NIMBUS_SPAMTRAP'] }),
        subjectTag: false,
        evidence,
      };
    }
    const outcome = await this.#lookups.lookup(analysed.fingerprints);
    const scored = scoreMessage(analysed.fingerprints, outcome.results, policy, { gtube: analysed.gtube, incomplete: outcome.incomplete });
    const tests = scored.parts.map((part) => part.test);
    if (outcome.incomplete.size > 0) tests.push(`NIMBUS_LOOKUP_${outcome.remote.toUpperCase().replace(/-/g, '_')}`);
    return {
      verdict: scored.verdict,
      score: scored.score,
      required: policy.tagScore,
      action: actionFor(scored.score, policy),
      headers: formatVerdictHeaders({ verdict: scored.verdict, score: scored.score, required: policy.tagScore, parts: reportParts(scored), tests }),
      subjectTag: scored.verdict === 'spam',
      evidence: { ...analysed, remote: outcome.remote },
    };
  }
}

export function actionFor(score: number, policy: Pick<Config, 'tagScore' | 'rejectScore' | 'spamAction'>): InspectionAction {
  if (score >= policy.rejectScore) return policy.spamAction;
  if (score >= policy.tagScore) return 'tag';
  return 'deliver';
}

interface Analysed {
  readonly fingerprints: Fingerprint[];
  readonly urls: string[];
  readonly attachments: AttachmentInfo[];
  readonly skips: Skip[];
  readonly gtube: boolean;
}

async function analyse(request: InspectionRequest): Promise<Analysed> {
  if (request.size > MAX_ANALYSIS_BYTES) {
    return {
      fingerprints: ipFingerprints(request.clientIp),
      urls: [],
      attachments: [],
      skips: [{ reason: 'message-too-large', detail: `${request.size} bytes > ${MAX_ANALYSIS_BYTES}` }],
      gtube: false,
    };
  }
  const raw = await request.readMessage();
  const found = await fingerprintMessage(raw, { clientIp: request.clientIp });
  return { ...found, gtube: raw.includes(GTUBE) };
}

/** The decisive fingerprints first (spam, ham, bulk), then what is unknown, capped. */
function reportParts(scored: MessageScore): ReportPart[] {
  const rank = { spam: 0, ham: 1, bulk: 2, unknown: 3 } as const;
  return [...scored.entries]
    .sort((a, b) => rank[a.verdict] - rank[b.verdict] || b.reputation - a.reputation)
    .slice(0, MAX_REPORT_ENTRIES)
    .map((entry) => ({ label: reportLabel(entry.fingerprint), verdict: entry.verdict, score: entry.reputation }));
}

/** `ip=203.0.113.7` in the clear (the gateway's own header), hashes shortened with an ellipsis. */
export function reportLabel(fingerprint: Fingerprint): string {
  if (fingerprint.kind === 'ip' && fingerprint.label) return `ip=${fingerprint.label}`;
  const value = fingerprint.value.length > 16 ? `${fingerprint.value.slice(0, 12)}…` : fingerprint.value;
  return `${fingerprint.kind}:${fingerprint.algorithm}:${value}`;
}

