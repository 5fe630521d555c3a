/**
 * From per-fingerprint reputation to one message score, the way a mail admin reads it: each
 * kind of evidence (sender IP, network, images, attachments, links, text) adds its configured
 * weight times the reputation's score, once per kind, so that ten links to one spam domain do
 * not count ten times and a message cannot be pushed over the line by repetition alone.
 */
import type { FingerprintKind } from '../config/index.js';
import type { Fingerprint } from '../fingerprint/types.js';
import type { LookupResult, Verdict } from '../reputation/api.js';
import { GTUBE_POINTS, GTUBE_TEST } from './gtube.js';

/** SpamAssassin-style test names, one per kind, listed in `tests=` of X-Spam-Status. */
export const KIND_TESTS: Readonly<Record<FingerprintKind, string>> = {
  ip: 'NIMBUS_IP',
  net: 'NIMBUS_NET',
  attachment: 'NIMBUS_ATTACHMENT',
  image: 'NIMBUS_IMAGE',
  url: 'NIMBUS_URL',
  body: 'NIMBUS_BODY',
  domain: 'NIMBUS_DOMAIN',
};

/** One looked-up fingerprint as it appears in X-Nimbus-Report. */
export interface ReportEntry {
  readonly fingerprint: Fingerprint;
  readonly verdict: Verdict;
  readonly reputation: number;
  /** False when the answer could not be had (service down, budget spent): local data only. */
  readonly complete: boolean;
}

/** One contribution to the score: a test name, its points and the fingerprint behind it. */
export interface ScorePart {
  readonly test: string;
  readonly points: number;
  readonly fingerprint: Fingerprint | null;
}

export interface MessageScore {
  readonly score: number;
  readonly verdict: Verdict;
  /**
   * The score and verdict without the public DNS lists' points: what the statistics record says,
   * since a list's answer never leaves the host (docs/admin/dns-lists.md).
   */
  readonly unlisted: { readonly score: number; readonly verdict: Verdict };
  readonly parts: readonly ScorePart[];
  readonly entries: readonly ReportEntry[];
}

/**
 * Labelled evidence strength (issue 19): the sending address and network count as a tie-breaker
 * (NIMBUS_WEIGHT_IP, NIMBUS_WEIGHT_NET) and a link below the tag score because list servers,
 * forwarders and link trackers carry spam and ham alike, and silence about the ham is not its
 * absence. Where that silence means something, the weight grows with the evidence: one more
 * weight per LABELLED_MESSAGES_PER_WEIGHT spam messages labelled (reports, trap hits, `nimbus
 * learn`), up to the kind's LABELLED_STRENGTH_CAP times the weight, for a fingerprint that
 * (1) has no ham evidence at all, nor an admin verdict, (2) was labelled spam at least as often
 * as it was seen in traffic (the decayed counters), and (3) is not in list mail, whose relay and
 * added links are the list's (src/fingerprint/mailing-list.ts). (2) keeps a relay safe where ham
 * goes unlabelled: a gateway sees every message a forwarder relays, spam and ham, and users label
 * a few, so its sightings outnumber its labels; an admin's history (`nimbus learn`) labels ham
 * too, so an address in it with spam and no ham is a spammer's.
 *
 * The address and network grow to six times: with 12 such messages 4.5 + 1.5 points, times their
 * reputation (30/31 when an admin labelled them), above the tag score, so what a spammer's own
 * server sends is tagged on that alone. A link grows to 1.2 times, 4.8 points at most: never the
 * default tag score alone (a link is not a whole message), above it with the address's tie-breaker.
 * In the day-one eval (npm run eval -- --history-split 0.5) every address the history convicted
 * that also relays ham (list servers, a forwarder) had ham in the history, so (1) left it as it was.
 */
export const LABELLED_MESSAGES_PER_WEIGHT = 2;
export const LABELLED_STRENGTH_CAP: Readonly<Partial<Record<FingerprintKind, number>>> = { ip: 6, net: 6, url: 1.2 };

/** The weight a spam answer of this kind counts with: the configured weight, or more (see above). */
export function effectiveWeight(kind: FingerprintKind, weight: number, result: LookupResult | undefined, listMail: boolean): number {
  const cap = LABELLED_STRENGTH_CAP[kind];
  if (cap === undefined || listMail || result === undefined || result.verdict !== 'spam') return weight;
  const { spam, ham, seen, adminVerdict } = result.counters;
  if (ham > 0 || adminVerdict !== null || spam < seen) return weight;
  return weight * Math.min(cap, Math.max(1, spam / LABELLED_MESSAGES_PER_WEIGHT));
}

export interface ScoringPolicy {
  readonly weights: Readonly<Record<FingerprintKind, number>>;
  readonly tagScore: number;
}

/**
 * Per kind: the strongest spam evidence counts (weight × reputation score); with no spam
 * evidence of that kind, the strongest ham evidence counts negatively, weight × (1 − reputation
 * score) (a sender with a good name earns it back). `bulk` adds nothing: newsletters are not spam, but the message verdict
 * says bulk so that filters can file them.
 */
export function scoreMessage(
  fingerprints: readonly Fingerprint[],
  results: ReadonlyMap<string, LookupResult>,
  policy: ScoringPolicy,
  options: {
    readonly gtube: boolean;
    /** A mailing list relayed it (List-Id, Mailing-List): its relay and added links are the list's. */
    readonly listMail?: boolean;
    readonly incomplete?: ReadonlySet<string>;
    /**
     * Points of fixed weight, one part each: the public DNS lists that listed something in the
     * message (one per list), the authentication results (NIMBUS_SPF_FAIL, NIMBUS_DMARC_REJECT, …).
     */
    readonly fixed?: readonly { readonly test: string; readonly points: number }[];
  },
): MessageScore {
  const entries: ReportEntry[] = [];
  const spamByKind = new Map<FingerprintKind, ScorePart>();
  const hamByKind = new Map<FingerprintKind, ScorePart>();
  let bulk = false;
  for (const fingerprint of fingerprints) {
    const result = results.get(fingerprint.text);
    const verdict = result?.verdict ?? 'unknown';
    const reputation = result?.score ?? 0;
    entries.push({ fingerprint, verdict, reputation, complete: !(options.incomplete?.has(fingerprint.text) ?? false) });
    const weight = policy.weights[fingerprint.kind];
    const test = KIND_TESTS[fingerprint.kind];
    if (verdict === 'spam') {
      const points = effectiveWeight(fingerprint.kind, weight, result, options.listMail ?? false) * reputation;
      if (points > (spamByKind.get(fingerprint.kind)?.points ?? 0)) spamByKind.set(fingerprint.kind, { test, points, fingerprint });
    } else if (verdict === 'ham') {
      // The reputation score is the share of spam evidence (0 for a clean name): what is left of
      // it is how good the name is. A ham verdict needs twice as much ham as spam evidence, so
      // this is at least two thirds of the weight, and all of it for an admin's ham.
      const points = -weight * (1 - reputation);
      if (points < (hamByKind.get(fingerprint.kind)?.points ?? 0)) hamByKind.set(fingerprint.kind, { test: `${test}_HAM`, points, fingerprint });
    } else if (verdict === 'bulk') {
      bulk = true;
    }
  }
  const parts: ScorePart[] = [];
  if (options.gtube) parts.push({ test: GTUBE_TEST, points: GTUBE_POINTS, fingerprint: null });
  for (const kind of Object.keys(KIND_TESTS) as FingerprintKind[]) {
    const part = spamByKind.get(kind) ?? hamByKind.get(kind);
    if (part && part.points !== 0) parts.push(part);
  }
  // What leaves the host in statistics is scored without the public DNS lists (their answers
  // never leave it), without the authentication results (the host's own DNS view) and without
  // the local classifier's points (learnt from the admin's own mail).
  const unlistedScore = roundScore(parts.reduce((sum, part) => sum + part.points, 0));
  // A listing counts like a spam answer: its list's weight, once per list however many items it
  // listed; an authentication result counts its own points once.
  for (const part of options.fixed ?? []) if (part.points !== 0) parts.push({ test: part.test, points: part.points, fingerprint: null });
  const score = roundScore(parts.reduce((sum, part) => sum + part.points, 0));
  const verdictOf = (points: number): Verdict => (points >= policy.tagScore ? 'spam' : bulk ? 'bulk' : points < 0 ? 'ham' : 'unknown');
  return { score, verdict: verdictOf(score), unlisted: { score: unlistedScore, verdict: verdictOf(unlistedScore) }, parts, entries };
}

function roundScore(score: number): number {
  return Math.round(score * 100) / 100;
}
