/**
 * Policy: from the judgement of a message's fingerprints (and its spam-trap recipients) to the
 * typed verdict every front acts on: verdict, score, action, `tests=`, report and header edits.
 * Pure: no lookups, no clock, no protocol.
 */
import type { Config } from '../config/index.js';
import { authenticationResultsField } from './auth-policy.js';
import type { AuthenticationResults } from './authentication.js';
import { VERDICT_FIELD_PREFIXES, verdictHeaderFields } from './headers.js';
import type { Judgement } from './judge.js';
import { spamTrapHits } from './traps.js';
import type { Evidence, ReportPart, ScanAction, ScanOutcome, ScanRequest, ScanResult, ScanTimings, Verdict } from './types.js';

export type VerdictPolicy = Pick<Config, 'tagScore' | 'rejectScore' | 'spamAction' | 'subjectTag'>;

export const SPAMTRAP_TEST = 'NIMBUS_SPAMTRAP';
export const SCAN_TIMEOUT_TEST = 'NIMBUS_SCAN_TIMEOUT';

export function actionFor(score: number, policy: Pick<Config, 'tagScore' | 'rejectScore' | 'spamAction'>): ScanAction {
  if (score >= policy.rejectScore) return policy.spamAction;
  if (score >= policy.tagScore) return 'tag';
  return 'deliver';
}

interface Decided {
  readonly verdict: Verdict;
  readonly score: number;
  /** The verdict and score the statistics record carries: without the public DNS lists' points. */
  readonly shared: { readonly verdict: Verdict; readonly score: number };
  readonly action: ScanAction;
  readonly tests: readonly string[];
  readonly report: readonly ReportPart[];
  readonly subjectTag: boolean;
}

/**
 * Only traps among the recipients: nothing to deliver, and the message is spam at the reject
 * score. Traps beside real recipients: the real ones get it as spam at (at least) the reject
 * score, so the configured action applies to them; never a silent drop behind a 250.
 */
export function decide(judgement: Judgement | null, trapHits: readonly string[], recipients: number, policy: VerdictPolicy): Decided {
  if (trapHits.length > 0 && trapHits.length === recipients) {
    const trapped = { verdict: 'spam', score: policy.rejectScore } as const;
    return { ...trapped, shared: trapped, action: 'trap', tests: [SPAMTRAP_TEST], report: [], subjectTag: false };
  }
  const { scored, tests, parts } = judgement!;
  if (trapHits.length > 0) {
    const score = Math.max(scored.score, policy.rejectScore);
    const shared = { verdict: 'spam', score: Math.max(scored.unlisted.score, policy.rejectScore) } as const;
    return { verdict: 'spam', score, shared, action: actionFor(score, policy), tests: [SPAMTRAP_TEST, ...tests], report: parts, subjectTag: true };
  }
  return { verdict: scored.verdict, score: scored.score, shared: scored.unlisted, action: actionFor(scored.score, policy), tests, report: parts, subjectTag: scored.verdict === 'spam' };
}

export function scanResult(
  decided: Decided,
  context: {
    judgement: Judgement | null;
    trapHits: readonly string[];
    trustedClient: boolean;
    evidence: Evidence | null;
    timings: ScanTimings;
    outcome: ScanOutcome;
    /** NIMBUS_HOSTNAME when the authentication checks are on, else null. */
    authservId: string | null;
    authentication: AuthenticationResults | null;
  },
  policy: VerdictPolicy,
): ScanResult {
  const verdictFields = verdictHeaderFields({ verdict: decided.verdict, score: decided.score, required: policy.tagScore, parts: decided.report, tests: decided.tests });
  const authFields = context.authservId !== null && context.authentication !== null ? [authenticationResultsField(context.authservId, context.authentication)] : [];
  return {
    outcome: context.outcome,
    verdict: decided.verdict,
    score: decided.score,
    shared: decided.shared,
    required: policy.tagScore,
    action: decided.action,
    tests: decided.tests,
    fingerprints: context.judgement?.fingerprints ?? [],
    report: decided.report,
    dnsLists: context.judgement?.lists ?? [],
    authentication: context.authentication,
    trapHits: context.trapHits,
    headers: {
      add: [...verdictFields, ...authFields],
      removePrefixes: context.trustedClient ? [] : VERDICT_FIELD_PREFIXES,
      removeAuthservIds: context.authservId === null ? [] : [context.authservId.toLowerCase()],
      subjectTag: decided.subjectTag && policy.subjectTag !== '' ? policy.subjectTag : null,
    },
    evidence: context.evidence,
    timings: context.timings,
  };
}

/**
 * What is stamped when the scan could not decide (it timed out or failed): `unknown`, delivered,
 * never held. Spam-trap recipients are still never delivered to: with only traps, `trap`.
 */
export function undecided(
  outcome: Exclude<ScanOutcome, 'scanned'>,
  context: { trapHits: readonly string[]; recipients: number; trustedClient: boolean; timings: ScanTimings; authservId: string | null },
  policy: VerdictPolicy,
): ScanResult {
  const onlyTraps = context.trapHits.length > 0 && context.trapHits.length === context.recipients;
  const tests = outcome === 'timeout' ? [SCAN_TIMEOUT_TEST] : [];
  const decided: Decided = { verdict: 'unknown', score: 0, shared: { verdict: 'unknown', score: 0 }, action: onlyTraps ? 'trap' : 'deliver', tests, report: [], subjectTag: false };
  // Forged Authentication-Results of this host are removed even so; none of its own is added.
  const { authservId } = context;
  return scanResult(decided, { judgement: null, trapHits: context.trapHits, trustedClient: context.trustedClient, evidence: null, timings: context.timings, outcome, authservId, authentication: null }, policy);
}

/**
 * What a front stamps when Scanner.scan itself threw (the scanner settles its own failures and
 * timeouts; this is the front's last line): a failed scan, built from the request alone, so the
 * relay and the milter stamp the same thing and strip the same forged fields.
 */
export function failedScan(request: ScanRequest, config: Config): ScanResult {
  const context = {
    trapHits: spamTrapHits(config, request.envelope.rcptTo),
    recipients: request.envelope.rcptTo.length,
    trustedClient: request.client.trusted,
    timings: { queuedMs: 0, analysisMs: 0, lookupMs: 0, totalMs: 0 },
    authservId: config.authChecks ? config.hostname : null,
  };
  return undecided('failed', context, config);
}
