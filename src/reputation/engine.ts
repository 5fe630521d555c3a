/**
 * What both stores share above the storage itself: turning ingest records and feedback into
 * per-fingerprint observations, and choosing the fuzzy index a fingerprint goes into. The
 * formula lives in scoring.ts; the stores in stores/.
 */
import { createHash } from 'node:crypto';
import { fuzzySchemeFor, type FuzzyScheme } from '../fingerprint/fuzzy.js';
import type { LookupResult, ReportRecord } from './api.js';
import type { FeedbackLabel, FingerprintExplanation, OverrideAudit, OverrideVerdict, Reporter, ReporterEvidence } from './engine-types.js';
import { isoTime } from './iso-time.js';
import { SENSOR_TRAP_CONTRIBUTION, TRUSTED_MESSAGE_CONTRIBUTION, WEAK_CONTRIBUTION, decayFactor, judge, reporterCap, type FingerprintState, type Observation, type PairState } from './scoring.js';

export type { ReputationEngine, KeyStore, OpenedReputation, ReputationStoreOptions } from './engine-types.js';

export interface FuzzyItem {
  readonly scheme: FuzzyScheme;
  /** The value part of `kind:algorithm:value`. */
  readonly value: string;
}

/** The fuzzy scheme and value of an item, or null when its algorithm matches exactly only. */
export function fuzzyItem(item: string): FuzzyItem | null {
  const first = item.indexOf(':');
  const second = first < 0 ? -1 : item.indexOf(':', first + 1);
  if (second < 0) return null;
  const scheme = fuzzySchemeFor(item.slice(0, first), item.slice(first + 1, second));
  return scheme === undefined ? null : { scheme, value: item.slice(second + 1) };
}

/** Index keys a stored item is filed under (scheme-qualified so schemes never collide). */
export function storeIndexKeys(f: FuzzyItem): string[] {
  return f.scheme.storeKeys(f.value).map((k) => `${f.scheme.id}#${k}`);
}

export function probeIndexKeys(f: FuzzyItem): string[] {
  return [...new Set(f.scheme.probeKeys(f.value).map((k) => `${f.scheme.id}#${k}`))];
}

export interface Neighbour {
  readonly item: string;
  readonly similarity: number;
}

/** Near neighbours judged per fuzzy lookup, most similar first: bounds the work of a crowded bucket. */
export const MAX_NEIGHBOURS_JUDGED = 256;

/** Every confirmed candidate within the scheme's threshold, most similar first (then by item). */
export function nearAll(f: FuzzyItem, candidates: Iterable<string>, exclude?: string): Neighbour[] {
  const near: Neighbour[] = [];
  for (const candidate of new Set(candidates)) {
    if (candidate === exclude) continue;
    const other = fuzzyItem(candidate);
    if (other === null || other.scheme.id !== f.scheme.id || !f.scheme.isNear(f.value, other.value)) continue;
    near.push({ item: candidate, similarity: f.scheme.similarity(f.value, other.value) });
  }
  near.sort((a, b) => b.similarity - a.similarity || (a.item < b.item ? -1 : a.item > b.item ? 1 : 0));
  return near.slice(0, MAX_NEIGHBOURS_JUDGED);
}

/**
 * How much a stored neighbour's answer says: an admin verdict, then spam or ham, then bulk, then
 * nothing. A fuzzy lookup answers with the most decisive neighbour (the most similar among
 * equals), not merely the most similar one: copies of a campaign that were only seen (unknown)
 * are stored too, and the nearest of them must not hide the reported original a few bits further.
 */
export function decisiveness(result: LookupResult): number {
  if (result.counters.adminVerdict !== null) return 3;
  if (result.verdict === 'spam' || result.verdict === 'ham') return 2;
  if (result.verdict === 'bulk') return 1;
  return 0;
}

/** The answer of a fuzzy lookup from the judged candidates (the exact item included, similarity 1). */
export function answerFuzzy(item: string, judged: readonly { match: Neighbour; result: LookupResult }[], now: number): LookupResult {
  let best: { match: Neighbour; result: LookupResult } | null = null;
  for (const candidate of judged) {
    if (best === null) best = candidate;
    else {
      const rank = decisiveness(candidate.result) - decisiveness(best.result);
      if (rank > 0 || (rank === 0 && candidate.match.similarity > best.match.similarity)) best = candidate;
    }
  }
  if (best === null) return judge(item, null, now);
  return { ...best.result, item, match: best.match };
}

function zero(): Observation {
  return { seen: 0, spamReports: 0, hamReports: 0, sensor: 0, spam: 0, weak: 0, ham: 0 };
}

/**
 * Kinds that name what many senders share: a link domain (an email service provider's click
 * tracker), a sending address and its network (the provider's outbound relays). A trusted
 * report convicts a message's own content at once, but these only with a second reported
 * message (see sharedEvidence): one reported newsletter must not convict its provider.
 */
const SHARED_KINDS: ReadonlySet<string> = new Set(['url', 'ip', 'net']);

/** True when the item's kind is shared infrastructure (SHARED_KINDS). */
export function isSharedInfrastructure(item: string): boolean {
  return SHARED_KINDS.has(item.slice(0, item.indexOf(':')));
}

/**
 * Which message a report is about: its content fingerprints (body, images, attachments), or all
 * of its fingerprints when it has no content, hashed. A message reported twice is the same
 * message; two copies of a campaign differ in their text and are two messages.
 */
export function messageKey(items: Iterable<string>): string {
  const all = [...new Set(items)];
  const content = all.filter((item) => !isSharedInfrastructure(item));
  const basis = (content.length > 0 ? content : all).sort();
  return createHash('sha256').update(basis.join('\n')).digest('base64url').slice(0, 16);
}

/**
 * The pair a trusted reporter's evidence about shared infrastructure is kept under: one per
 * reported message, so distinct messages add up where the reporter's own pair would only be
 * refreshed. `explain` lists these as `<reporter>/msg:<key>`.
 */
export function messagePairId(reporterId: string, key: string): string {
  return `${reporterId}/msg:${key}`;
}

/** The reporter id a pair id belongs to (a per-message pair names its reporter first). */
export function pairReporterId(pairId: string): string {
  const at = pairId.indexOf('/msg:');
  return at < 0 ? pairId : pairId.slice(0, at);
}

/** Observations of one pair id (a reporter, or a trusted reporter's message) for a store to apply. */
export interface PairObservations {
  readonly pair: string;
  readonly observations: readonly (readonly [string, Observation])[];
}

/**
 * A trusted reporter's spam evidence on the shared infrastructure of one message: kept under the
 * message's own pair (messagePairId) at TRUSTED_MESSAGE_CONTRIBUTION, below a threshold, so that
 * it takes a second reported message, a voice from elsewhere or the network's verdicts on top.
 */
function sharedEvidence(into: Map<string, Map<string, Observation>>, pair: string, item: string): void {
  let observations = into.get(pair);
  if (observations === undefined) into.set(pair, (observations = new Map()));
  const o = observations.get(item) ?? zero();
  o.spamReports = 1;
  o.spam = TRUSTED_MESSAGE_CONTRIBUTION;
  observations.set(item, o);
}

function pairList(own: string, ownObservations: Map<string, Observation>, perMessage: Map<string, Map<string, Observation>>): PairObservations[] {
  const out: PairObservations[] = [{ pair: own, observations: [...ownObservations] }];
  for (const [pair, observations] of perMessage) out.push({ pair, observations: [...observations] });
  return out;
}

/**
 * One sensor's batch as observations per pair and fingerprint. Every record counts `seen` and
 * marks the sensor as having seen it; a `trap` action is spam evidence from that sensor (a spam
 * trap receives no wanted mail): one voice from a reporter key (a trusted one's weight from an
 * admin key, on shared infrastructure per message: sharedEvidence), weak evidence from a
 * `sensor` key (SENSOR_TRAP_CONTRIBUTION), which may send statistics but not feedback. A
 * record's own `spam` verdict is weak evidence only, since that verdict came from the network
 * and must not confirm itself. The sensor's own pair comes first, then one per trapped message.
 */
export function recordObservations(sensor: Reporter, records: readonly ReportRecord[]): PairObservations[] {
  const cap = reporterCap(sensor.weight, sensor.trusted);
  const sighting = Math.min(1, Math.max(0, sensor.weight));
  const trapIsWeak = sensor.role === 'sensor';
  const trapWeak = SENSOR_TRAP_CONTRIBUTION * sighting;
  const out = new Map<string, Observation>();
  const perMessage = new Map<string, Map<string, Observation>>();
  for (const record of records) {
    const trap = record.action === 'trap';
    const weak = record.verdict === 'spam' ? WEAK_CONTRIBUTION * sighting : 0;
    const items = new Set(record.fingerprints);
    const messagePair = trap && sensor.trusted === true && !trapIsWeak ? messagePairId(sensor.id, messageKey(items)) : null;
    for (const item of items) {
      let o = out.get(item);
      if (o === undefined) out.set(item, (o = zero()));
      o.seen += 1;
      o.sensor = sighting;
      if (trap) {
        if (trapIsWeak) {
          o.spamReports += 1;
          o.weak = Math.max(o.weak, trapWeak);
        } else if (messagePair !== null && isSharedInfrastructure(item)) {
          sharedEvidence(perMessage, messagePair, item);
        } else {
          o.spamReports += 1;
          o.spam = cap;
        }
      }
      o.weak = Math.max(o.weak, weak);
    }
  }
  return pairList(sensor.id, out, perMessage);
}

/**
 * The stored idempotency mark of a report batch: scoped to the key that sent it, so another key
 * using the same batch id (by chance or to have a gateway's reports dropped) is counted. The id's
 * length comes first, so no pair of reporter and batch ids can spell another pair's mark.
 */
export function batchMark(reporterId: string, batchId: string): string {
  return `${reporterId.length}:${reporterId}:${batchId}`;
}

/**
 * Feedback from one reporter about one message: full evidence of its label, capped per
 * reporter. A trusted reporter's spam report is kept per message on shared infrastructure
 * (sharedEvidence): it convicts the message's content at once, its link domains and sending
 * networks only with another reported message. Ham is never split: one ham report holds back
 * whatever it names, and an ordinary reporter is one voice whatever it reports.
 */
export function feedbackObservations(reporter: Reporter, label: FeedbackLabel, items: readonly string[]): PairObservations[] {
  const cap = reporterCap(reporter.weight, reporter.trusted);
  const unique = [...new Set(items)];
  const o = zero();
  if (label === 'ham') {
    o.ham = cap;
    o.hamReports = 1;
    return [{ pair: reporter.id, observations: unique.map((item) => [item, o] as const) }];
  }
  o.spam = cap;
  o.spamReports = 1;
  if (reporter.trusted !== true) return [{ pair: reporter.id, observations: unique.map((item) => [item, o] as const) }];
  const own = new Map<string, Observation>();
  const perMessage = new Map<string, Map<string, Observation>>();
  const messagePair = messagePairId(reporter.id, messageKey(unique));
  for (const item of unique) {
    if (isSharedInfrastructure(item)) sharedEvidence(perMessage, messagePair, item);
    else own.set(item, o);
  }
  return pairList(reporter.id, own, perMessage);
}

/**
 * One reporter's `label` evidence taken back from a fingerprint (engine `forget`): the pair's
 * channel, decayed to `now`, comes off the fingerprint's sum, and its report off the decayed
 * report count (as much as a report made when the pair was last touched still counts). Null
 * when the pair holds no evidence of that label. The same arithmetic as scoring.observe: both
 * decayed to the fingerprint's time, the pair's time made the fingerprint's.
 */
export function withdrawn(state: FingerprintState, pair: PairState, label: FeedbackLabel, now: number): { state: FingerprintState; pair: PairState } | null {
  const f = decayFactor(state.ts, now);
  const pf = decayFactor(pair.ts, now);
  const evidence = (label === 'spam' ? pair.spam : pair.ham) * pf;
  if (!(evidence > 0)) return null;
  const ts = Math.max(state.ts, now);
  const next: PairState = { sensor: pair.sensor * pf, spam: label === 'spam' ? 0 : pair.spam * pf, weak: pair.weak * pf, ham: label === 'ham' ? 0 : pair.ham * pf, ts };
  const less = (value: number, minus: number): number => Math.max(0, value - minus);
  return {
    state: {
      ...state,
      seen: state.seen * f,
      spamReports: label === 'spam' ? less(state.spamReports * f, pf) : state.spamReports * f,
      hamReports: label === 'ham' ? less(state.hamReports * f, pf) : state.hamReports * f,
      sensorEv: state.sensorEv * f,
      spamEv: label === 'spam' ? less(state.spamEv * f, evidence) : state.spamEv * f,
      weakEv: state.weakEv * f,
      hamEv: label === 'ham' ? less(state.hamEv * f, evidence) : state.hamEv * f,
      ts,
    },
    pair: next,
  };
}

/** A store that cannot undo a report (SQLite writing behind a journal: the reputation service). */
export class ForgetUnsupported extends Error {
  override readonly name = 'ForgetUnsupported';
}

/** Override changes kept per fingerprint, the latest ones: a runaway script cannot grow one without bound. */
export const AUDIT_KEPT = 100;
/** Reporters listed by explain (a newsletter's sender has thousands of sensors behind it). */
export const MAX_EXPLAINED_REPORTERS = 1000;

export interface ReporterPair {
  readonly id: string;
  readonly pair: PairState;
}

/** What a store read to explain a fingerprint, for `explanation`. */
export interface ExplainParts {
  readonly result: LookupResult;
  readonly override: { readonly verdict: OverrideVerdict; readonly reason: string | null } | null;
  readonly pairs: readonly ReporterPair[];
  readonly neighbours: readonly { readonly match: Neighbour; readonly result: LookupResult }[];
  readonly audit: readonly OverrideAudit[];
}

/** The explanation both stores give: reporters decayed to `now`, most recent first. */
export function explanation(parts: ExplainParts, now: number): FingerprintExplanation {
  const reporters: ReporterEvidence[] = [...parts.pairs]
    .sort((a, b) => b.pair.ts - a.pair.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, MAX_EXPLAINED_REPORTERS)
    .map(({ id, pair }) => {
      const f = decayFactor(pair.ts, now);
      return { id, sensor: round(pair.sensor * f), spam: round(pair.spam * f), weak: round(pair.weak * f), ham: round(pair.ham * f), lastReport: isoTime(pair.ts) };
    });
  return {
    result: parts.result,
    override: parts.override,
    reporters,
    reporterCount: parts.pairs.length,
    neighbours: parts.neighbours.map(({ match, result }) => ({ item: match.item, similarity: match.similarity, verdict: result.verdict, score: result.score })),
    audit: parts.audit,
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
