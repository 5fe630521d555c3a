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
import type { ImageHashCache } from '../fingerprint/image-cache.js';
import { ipFingerprints } from '../fingerprint/ip.js';
import type { Fingerprint } from '../fingerprint/types.js';
import { GTUBE } from '../gateway/default-inspector.js';
import type { Inspection, InspectionAction, InspectionRequest, MessageInspector } from '../gateway/inspection.js';
import { formatVerdictHeaders, type VerdictName } from '../gateway/verdict-headers.js';
import type { LookupResult } from '../reputation/api.js';
import { selectSamples, type Sample } from '../stats/samples.js';
import type { Feedback } from './feedback.js';
import { judge } from './judge.js';
import type { ReputationLookups, RemoteOutcome } from './lookups.js';

/** Messages above this are not parsed (MIME, images): IP and network reputation only. */
export const MAX_ANALYSIS_BYTES = 10 * 1024 * 1024;

/** What the statistics record needs beyond the verdict (local only until wire.ts filters it). */
export interface Evidence {
  readonly fingerprints: readonly Fingerprint[];
  readonly urls: readonly string[];
  /** Without their bytes: those stay only in `samples`. */
  readonly attachments: readonly AttachmentInfo[];
  readonly skips: readonly Skip[];
  readonly remote: RemoteOutcome;
  /** Unknown suspicious attachments to sample (extended participation only, else empty). */
  readonly samples: readonly Sample[];
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
  /** Largest attachment sample this configuration captures (sampleCapture); 0 or absent: none. */
  readonly sampleMaxBytes?: number;
  /** Hashes of images seen before (absent: every image is decoded). */
  readonly imageHashes?: ImageHashCache;
}

export class ReputationInspector implements MessageInspector {
  #policy: Policy;
  #lookups: ReputationLookups;
  #feedback: Feedback;
  #sampleMaxBytes: number;
  #imageHashes: ImageHashCache | undefined;
  readonly #log: Logger;

  constructor(options: ReputationInspectorOptions) {
    this.#policy = options.policy;
    this.#lookups = options.lookups;
    this.#feedback = options.feedback;
    this.#sampleMaxBytes = options.sampleMaxBytes ?? 0;
    this.#imageHashes = options.imageHashes;
    this.#log = options.log;
  }

  /** SIGHUP: new thresholds, and lookups/feedback rebuilt for a changed participation. */
  reload(next: Pick<ReputationInspectorOptions, 'policy' | 'lookups' | 'feedback' | 'sampleMaxBytes' | 'imageHashes'>): void {
    this.#policy = next.policy;
    this.#lookups = next.lookups;
    this.#feedback = next.feedback;
    this.#sampleMaxBytes = next.sampleMaxBytes ?? 0;
    this.#imageHashes = next.imageHashes;
  }

  async inspect(request: InspectionRequest): Promise<InspectionWithEvidence> {
    // Read once: a reload in the middle of this message does not mix two configurations.
    const sampleMaxBytes = this.#sampleMaxBytes;
    const analysed = await analyse(request, sampleMaxBytes, this.#imageHashes);
    const evidence = (verdict: VerdictName, remote: RemoteOutcome, results: ReadonlyMap<string, LookupResult>): Evidence => ({
      fingerprints: analysed.fingerprints,
      urls: analysed.urls,
      attachments: analysed.attachments.map(({ content: _bytes, ...info }) => info),
      skips: analysed.skips,
      remote,
      samples: selectSamples(analysed.attachments, (text) => results.get(text)?.verdict, verdict, sampleMaxBytes),
    });
    const policy = this.#policy;
    const trapped = request.spamtrapHits.length > 0;
    if (trapped) {
      // A trap address has no real reader: whatever reaches it is spam, and teaches the network.
      await this.#feedback.report('spam', analysed.fingerprints, 'trap', { background: true }).catch((error: unknown) => {
        this.#log.warn({ event: 'trap.feedback_failed', queueId: request.queueId, err: String(error) }, 'spam-trap feedback failed');
      });
    }
    if (trapped && request.spamtrapHits.length === request.envelope.rcptTo.length) {
      // Only traps: nothing to deliver to anyone.
      return {
        verdict: 'spam',
        score: policy.rejectScore,
        required: policy.tagScore,
        action: 'trap',
        headers: formatVerdictHeaders({ verdict: 'spam', score: policy.rejectScore, required: policy.tagScore, tests: ['NIMBUS_SPAMTRAP'] }),
        subjectTag: false,
        evidence: evidence('spam', 'disabled', new Map()),
      };
    }
    const { scored, outcome, tests, parts } = await judge(this.#lookups, policy, analysed.fingerprints, analysed.gtube);
    if (trapped) {
      // Real recipients beside a trap get the message as spam at the reject score, so the
      // configured action applies to them; never a silent drop behind a 250.
      const score = Math.max(scored.score, policy.rejectScore);
      return {
        verdict: 'spam',
        score,
        required: policy.tagScore,
        action: actionFor(score, policy),
        headers: formatVerdictHeaders({ verdict: 'spam', score, required: policy.tagScore, parts, tests: ['NIMBUS_SPAMTRAP', ...tests] }),
        subjectTag: true,
        evidence: evidence('spam', outcome.remote, outcome.results),
      };
    }
    return {
      verdict: scored.verdict,
      score: scored.score,
      required: policy.tagScore,
      action: actionFor(scored.score, policy),
      headers: formatVerdictHeaders({ verdict: scored.verdict, score: scored.score, required: policy.tagScore, parts, tests }),
      subjectTag: scored.verdict === 'spam',
      evidence: evidence(scored.verdict, outcome.remote, outcome.results),
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

async function analyse(request: InspectionRequest, keepAttachmentBytes: number, imageHashes: ImageHashCache | undefined): Promise<Analysed> {
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
  const found = await fingerprintMessage(raw, { clientIp: request.clientIp, keepAttachmentBytes, ...(imageHashes ? { imageHashes } : {}) });
  return { ...found, gtube: raw.includes(GTUBE) };
}

