/**
 * The scan core's one entry: a message, its envelope and its client in; a typed verdict out
 * (types.ts). It knows no protocol: the relay, the milter, `nimbus check` and `nimbus report`
 * all go through it, so a message gets the same verdict whichever way it comes.
 *
 * Failure policy (STYLE 4), per check:
 * - the whole scan (waiting for room to analyse, parsing, every check) has NIMBUS_SCAN_TIMEOUT_MS;
 *   past it the message goes on with verdict `unknown` and `tests=NIMBUS_SCAN_TIMEOUT`;
 * - a scan that throws (a bug) gives `unknown` too: mail is never lost or held for Nimbus's failure;
 * - a lookup that fails or runs out of its own budget lets mail through on local data (lookups.ts);
 * - the public DNS lists share one DNS budget per message (NIMBUS_DNS_TIMEOUT_MS, never more than
 *   the scan has left); a list that fails, refuses or runs out of it counts as nothing (src/dns/lists.ts);
 * - a message too large to parse keeps only its IP, network and GTUBE (analyse.ts).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { listQuery, type DnsLists } from '../dns/lists.js';
import type { ImageHashCache } from '../fingerprint/image-cache.js';
import type { LookupResult } from '../reputation/api.js';
import { selectSamples } from '../stats/samples.js';
import { bayesPart, type BayesClassifier } from '../bayes/classify.js';
import { AnalysisGate } from './analysis-gate.js';
import { MAX_ANALYSIS_BYTES, analyseMessage, type Analysed } from './analyse.js';
import { authFingerprints, authScore } from './auth-policy.js';
import { NOT_CHECKED, type AuthenticationResults, type Authenticator } from './authentication.js';
import type { Feedback } from './feedback.js';
import { judge } from './judge.js';
import type { ReputationLookups, RemoteOutcome } from './lookups.js';
import { spamTrapHits } from './traps.js';
import type { Fingerprint } from '../fingerprint/types.js';
import type { Evidence, MessageScanner, ScanOutcome, ScanRequest, ScanResult, ScanTimings, Verdict } from './types.js';
import { decide, scanResult, undecided } from './verdict.js';

/**
 * A message's DNS budget ends a tenth of its scan's budget (NIMBUS_SCAN_TIMEOUT_MS), and at least
 * DNS_RESERVE_MS, before the scan's own end, so that a message which waited for room to be
 * analysed still gets its verdict from what the lists answered in time rather than `unknown`.
 * Scoring takes well under a millisecond; the reserve is for a busy process's late timers.
 */
export const DNS_RESERVE_MS = 100;
export const DNS_RESERVE_SHARE = 0.1;

export type ScanPolicy = Pick<Config, 'tagScore' | 'rejectScore' | 'spamAction' | 'subjectTag' | 'weights' | 'spamtraps' | 'scanTimeoutMs'> & Partial<Pick<Config, 'dmarcRejectWeight' | 'bayesWeight'>>;

/** What a scan uses; replaced whole on reload, so one scan never mixes two configurations. */
export interface ScanParts {
  readonly policy: ScanPolicy;
  /** Null: nothing is looked up (every fingerprint `unknown`; GTUBE and traps still count). */
  readonly lookups: ReputationLookups | null;
  /** Null: spam-trap hits teach nothing. */
  readonly feedback: Feedback | null;
  /** Largest attachment sample this configuration captures; 0: none. */
  readonly sampleMaxBytes: number;
  /** Hashes of images seen before (undefined: every image is decoded). */
  readonly imageHashes: ImageHashCache | undefined;
  /** The public DNS lists (NIMBUS_DNS_LISTS); absent or null: none are asked. */
  readonly dnsLists?: DnsLists | null;
  /** SPF, DKIM, DMARC and ARC (NIMBUS_AUTH_CHECKS); absent or null: not checked. */
  readonly authentication?: Authenticator | null;
  /** The local statistical classifier (src/bayes); absent or null: none. */
  readonly bayes?: BayesClassifier | null;
}

export interface ScanObserver {
  /** Every scan's outcome (a timeout or failure is a metric an admin watches). */
  scanned?(outcome: ScanOutcome): void;
}

export interface ScannerOptions extends ScanParts {
  readonly log: Logger;
  readonly gate?: AnalysisGate;
  readonly observer?: ScanObserver;
}

export class Scanner implements MessageScanner {
  #parts: ScanParts;
  readonly #log: Logger;
  readonly #gate: AnalysisGate;
  readonly #observer: ScanObserver | undefined;

  constructor(options: ScannerOptions) {
    this.#parts = options;
    this.#log = options.log;
    this.#gate = options.gate ?? new AnalysisGate();
    this.#observer = options.observer;
  }

  /** SIGHUP: new policy, lookups and feedback for the next scans; scans under way keep theirs. */
  reload(parts: ScanParts): void {
    this.#parts = parts;
  }

  async scan(request: ScanRequest): Promise<ScanResult> {
    const parts = this.#parts;
    const started = performance.now();
    const trapHits = spamTrapHits(parts.policy, request.envelope.rcptTo);
    const authservId = parts.authentication?.hostname ?? null;
    const context = { trapHits, recipients: request.envelope.rcptTo.length, trustedClient: request.client.trusted, authservId };
    let expired = false;
    let timer: NodeJS.Timeout | undefined;
    const budget = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), parts.policy.scanTimeoutMs)));
    // A message still waiting for the gate when the budget runs out is never analysed: its front
    // has moved on and may have dropped its bytes.
    const work = this.#gate.run(request.message.size, () => (expired ? Promise.resolve(null) : this.#scanNow(request, parts, trapHits, started)));
    try {
      const result = await Promise.race([work, budget]);
      if (result === 'timeout') {
        expired = true;
        work.catch((error: unknown) => this.#log.debug({ event: 'scan.late_failure', id: request.id, err: error }, 'a scan that had timed out failed later'));
        this.#log.warn({ event: 'scan.timeout', id: request.id, size: request.message.size, ms: Math.round(performance.now() - started) }, 'scan time budget ran out: verdict unknown');
        return this.#settled(undecided('timeout', { ...context, timings: totalOnly(started) }, parts.policy));
      }
      return this.#settled(result!);
    } catch (error) {
      this.#log.error({ event: 'scan.failed', id: request.id, err: error }, 'scan failed: verdict unknown');
      return this.#settled(undecided('failed', { ...context, timings: totalOnly(started) }, parts.policy));
    } finally {
      clearTimeout(timer);
    }
  }

  #settled(result: ScanResult): ScanResult {
    this.#observer?.scanned?.(result.outcome);
    return result;
  }

  async #scanNow(request: ScanRequest, parts: ScanParts, trapHits: readonly string[], started: number): Promise<ScanResult> {
    const queuedMs = performance.now() - started;
    // The DNS budgets end before the scan's own, leaving it time to decide.
    const reserve = Math.max(DNS_RESERVE_MS, parts.policy.scanTimeoutMs * DNS_RESERVE_SHARE);
    const scanLeft = () => started + parts.policy.scanTimeoutMs - performance.now() - reserve;
    // The authentication checks wait on the DNS while the message is parsed.
    const authenticating = parts.authentication ? this.#authenticate(parts.authentication, request, scanLeft()) : null;
    // Tokens only when the classifier can use them: below its minimum it costs nothing.
    const classifier = parts.bayes && (parts.policy.bayesWeight ?? 0) > 0 ? parts.bayes : null;
    const learnt = classifier?.learnt() ?? null;
    const analysed = await analyseMessage(request.message, { clientIp: request.client.ip, site: request.site, keepAttachmentBytes: parts.sampleMaxBytes, imageHashes: parts.imageHashes, tokens: learnt !== null });
    const authentication = authenticating === null ? null : await authenticating;
    const analysisMs = performance.now() - started - queuedMs;
    const fingerprints: Fingerprint[] = authentication === null ? analysed.fingerprints : [...analysed.fingerprints, ...authFingerprints(authentication)];
    if (trapHits.length > 0 && parts.feedback !== null) {
      // A trap address has no real reader: whatever reaches it is spam, and teaches the network.
      await parts.feedback.report('spam', fingerprints, 'trap', { background: true }).catch((error: unknown) => {
        this.#log.warn({ event: 'scan.trap_feedback_failed', id: request.id, err: String(error) }, 'spam-trap feedback failed');
      });
    }
    const onlyTraps = trapHits.length > 0 && trapHits.length === request.envelope.rcptTo.length;
    const lists = parts.dnsLists ?? null;
    const dns = lists === null || onlyTraps ? null : { lists, query: listQuery(analysed.clientIp, analysed.fingerprints), budget: lists.budget(scanLeft()) };
    const auth = authentication === null ? null : authScore(authentication, { dmarcRejectWeight: parts.policy.dmarcRejectWeight ?? 0 });
    const bayes = classifier === null || learnt === null || onlyTraps ? null : bayesPart(classifier.classify(analysed.tokens, learnt), parts.policy.bayesWeight ?? 0);
    const judgement = onlyTraps ? null : await judge(parts.lookups, parts.policy, fingerprints, { gtube: analysed.gtube, listMail: analysed.mailingList !== null, bayes }, dns, auth);
    const decided = decide(judgement, trapHits, request.envelope.rcptTo.length, parts.policy);
    const timings: ScanTimings = { queuedMs, analysisMs, lookupMs: judgement?.lookupMs ?? 0, totalMs: performance.now() - started };
    const evidence = evidenceOf(analysed, fingerprints, decided.verdict, judgement?.outcome.remote ?? 'disabled', judgement?.outcome.results ?? new Map(), parts.sampleMaxBytes);
    const authservId = parts.authentication?.hostname ?? null;
    return scanResult(decided, { judgement, trapHits, trustedClient: request.client.trusted, evidence, timings, outcome: 'scanned', authservId, authentication }, parts.policy);
  }

  /** Never rejects: a message that cannot be read for the checks is simply not checked. */
  async #authenticate(authenticator: Authenticator, request: ScanRequest, budgetMs: number): Promise<AuthenticationResults> {
    try {
      const message = request.message.size > MAX_ANALYSIS_BYTES ? request.message.stream() : await request.message.read();
      return await authenticator.check({ message, envelope: request.envelope, client: request.client, budget: authenticator.resolver.budget(budgetMs) }, request.id);
    } catch (error) {
      this.#log.warn({ event: 'scan.auth_failed', id: request.id, err: String(error) }, 'authentication checks failed: no results for this message');
      return NOT_CHECKED;
    }
  }
}

function evidenceOf(analysed: Analysed, fingerprints: readonly Fingerprint[], verdict: Verdict, remote: RemoteOutcome, results: ReadonlyMap<string, LookupResult>, sampleMaxBytes: number): Evidence {
  return {
    fingerprints,
    urls: analysed.urls,
    attachments: analysed.attachments.map(({ content: _bytes, ...info }) => info),
    skips: analysed.skips,
    remote,
    samples: selectSamples(analysed.attachments, (text) => results.get(text)?.verdict, verdict, sampleMaxBytes),
  };
}

function totalOnly(started: number): ScanTimings {
  return { queuedMs: 0, analysisMs: 0, lookupMs: 0, totalMs: performance.now() - started };
}
