/**
 * From fingerprints to a verdict: one batched lookup and the public DNS lists beside it, the
 * score, and the report lines. Every front and `nimbus check` go through this, so the command
 * shows exactly what the relay or the milter would stamp on the same message.
 */
import type { Config } from '../config/index.js';
import type { DnsBudget } from '../dns/budget.js';
import type { DnsListResult, DnsLists, ListQuery } from '../dns/lists.js';
import type { Fingerprint } from '../fingerprint/types.js';
import type { LookupResult } from '../reputation/api.js';
import type { AuthScore } from './auth-policy.js';
import type { LookupOutcome, ReputationLookups } from './lookups.js';
import { effectiveWeight, scoreMessage, type MessageScore, type ReportEntry } from './score.js';
import type { FingerprintReportPart, FingerprintResult, ListReportPart, ReportPart } from './types.js';

/** X-Nimbus-Report lists at most this many fingerprints, the decisive ones first. */
export const MAX_REPORT_ENTRIES = 12;

/** Marks a shortened hash in X-Nimbus-Report. */
export const ELLIPSIS = '...';

/** In `tests=` when a public DNS list could not be asked (timeout, SERVFAIL, the budget spent). */
export const DNS_TEMPERROR_TEST = 'NIMBUS_DNS_TEMPERROR';

export type JudgePolicy = Pick<Config, 'tagScore' | 'weights'>;

export interface Judgement {
  readonly scored: MessageScore;
  readonly outcome: LookupOutcome;
  /** `tests=` names: every part of the score, and whether the service could not answer. */
  readonly tests: string[];
  readonly parts: ReportPart[];
  readonly fingerprints: FingerprintResult[];
  /** Each public DNS list's answer (empty without lists). */
  readonly lists: readonly DnsListResult[];
  readonly lookupMs: number;
}

/** The public DNS lists to ask for this message, and its DNS budget. */
export interface ListCheck {
  readonly lists: DnsLists;
  readonly query: ListQuery;
  readonly budget: DnsBudget;
}

/** What a scan without any reputation (no lookups configured) "finds": nothing is known. */
const NOTHING_LOOKED_UP: LookupOutcome = { results: new Map(), remote: 'disabled', incomplete: new Set(), cacheHits: 0, remoteMs: null };

export async function judge(
  lookups: ReputationLookups | null,
  policy: JudgePolicy,
  fingerprints: readonly Fingerprint[],
  message: {
    readonly gtube: boolean;
    readonly listMail: boolean;
    /** The local classifier's part (NIMBUS_BAYES_SPAM), or null/absent: none. */
    readonly bayes?: { readonly test: string; readonly points: number } | null;
  },
  dns: ListCheck | null = null,
  authentication: AuthScore | null = null,
): Promise<Judgement> {
  const started = performance.now();
  const [outcome, lists] = await Promise.all([
    lookups === null ? NOTHING_LOOKED_UP : lookups.lookup(fingerprints),
    dns === null ? [] : dns.lists.check(dns.query, dns.budget),
  ]);
  const lookupMs = performance.now() - started;
  const listed = lists.filter((list) => list.status === 'listed').map((list) => ({ test: list.test, points: list.weight }));
  // The classifier's points are local like a list's: never in what the statistics record says.
  const fixed = [...listed, ...(authentication?.parts ?? []), ...(message.bayes ? [message.bayes] : [])];
  const scored = scoreMessage(fingerprints, outcome.results, policy, { gtube: message.gtube, listMail: message.listMail, incomplete: outcome.incomplete, fixed });
  const tests = scored.parts.map((part) => part.test);
  if (outcome.incomplete.size > 0) tests.push(`NIMBUS_LOOKUP_${outcome.remote.toUpperCase().replace(/-/g, '_')}`);
  if (lists.some((list) => list.status === 'temperror')) tests.push(DNS_TEMPERROR_TEST);
  tests.push(...(authentication?.notes ?? []));
  // Without any reputation to ask, a report of fingerprints all `unknown` would say nothing.
  const parts: ReportPart[] = [...listReportParts(lists), ...(lookups === null ? [] : reportParts(scored))];
  return { scored, outcome, tests, parts, fingerprints: fingerprintResults(scored, policy, outcome.results, message.listMail), lists, lookupMs };
}

/** The lists that answered something worth reading: a listing, a refusal, a failure. */
function listReportParts(lists: readonly DnsListResult[]): ListReportPart[] {
  return lists.flatMap((list): ListReportPart[] => {
    if (list.status === 'listed') return [{ source: 'dns-list', list: list.name, status: 'listed', detail: [...new Set(list.hits.flatMap((hit) => hit.meanings))].join('+') }];
    if (list.status === 'refused') return [{ source: 'dns-list', list: list.name, status: 'refused', detail: list.refusal ?? 'refused' }];
    if (list.status === 'temperror') return [{ source: 'dns-list', list: list.name, status: 'temperror', detail: list.failure ?? 'error' }];
    return [];
  });
}

/** Each looked-up fingerprint with its answer, the weight it counted with and what it added to the score. */
function fingerprintResults(scored: MessageScore, policy: JudgePolicy, results: ReadonlyMap<string, LookupResult>, listMail: boolean): FingerprintResult[] {
  const contributed = new Map(scored.parts.filter((part) => part.fingerprint !== null).map((part) => [part.fingerprint!, part]));
  return scored.entries.map((entry) => {
    const part = contributed.get(entry.fingerprint);
    return {
      fingerprint: entry.fingerprint,
      verdict: entry.verdict,
      reputation: entry.reputation,
      complete: entry.complete,
      weight: effectiveWeight(entry.fingerprint.kind, policy.weights[entry.fingerprint.kind], results.get(entry.fingerprint.text), listMail),
      contribution: part?.points ?? 0,
      test: part?.test ?? null,
    };
  });
}

/** The decisive fingerprints first (spam, ham, bulk), then what is unknown, capped. */
function reportParts(scored: MessageScore): FingerprintReportPart[] {
  return [...scored.entries]
    .sort(byReportOrder)
    .slice(0, MAX_REPORT_ENTRIES)
    .map((entry) => ({ source: 'reputation' as const, label: reportLabel(entry.fingerprint), verdict: entry.verdict, score: entry.reputation }));
}

const REPORT_RANK = Object.freeze({ spam: 0, ham: 1, bulk: 2, unknown: 3 } as const);

/** A module function, not an arrow per message: V8 re-optimised that arrow after every full GC (--trace-opt). */
function byReportOrder(a: ReportEntry, b: ReportEntry): number {
  return REPORT_RANK[a.verdict] - REPORT_RANK[b.verdict] || b.reputation - a.reputation;
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
