/**
 * What both stores share above the storage itself: turning ingest records and feedback into
 * per-fingerprint observations, and choosing the fuzzy index a fingerprint goes into. The
 * formula lives in scoring.ts; the stores in stores/.
 */
import { fuzzySchemeFor, type FuzzyScheme } from '../fingerprint/fuzzy.js';
import type { ReportRecord } from './api.js';
import type { FeedbackLabel, Reporter } from './engine-types.js';
import { WEAK_CONTRIBUTION, reporterCap, type Observation } from './scoring.js';

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

/** The nearest confirmed candidate (highest similarity), or null. */
export function nearest(f: FuzzyItem, candidates: Iterable<string>): { item: string; similarity: number } | null {
  let best: { item: string; similarity: number } | null = null;
  for (const candidate of candidates) {
    const other = fuzzyItem(candidate);
    if (other === null || other.scheme.id !== f.scheme.id) continue;
    if (!f.scheme.isNear(f.value, other.value)) continue;
    const similarity = f.scheme.similarity(f.value, other.value);
    if (best === null || similarity > best.similarity || (similarity === best.similarity && candidate < best.item)) best = { item: candidate, similarity };
  }
  return best;
}

function zero(): Observation {
  return { seen: 0, spamReports: 0, hamReports: 0, sensor: 0, spam: 0, weak: 0, ham: 0 };
}

/**
 * One sensor's batch as one observation per distinct fingerprint. Every record counts `seen` and
 * marks the sensor as having seen it; a `trap` action is full spam evidence from that sensor
 * (a spam trap receives no wanted mail); a record's own `spam` verdict is weak evidence only,
 * since that verdict came from the network and must not confirm itself.
 */
export function recordObservations(sensor: Reporter, records: readonly ReportRecord[]): Map<string, Observation> {
  const cap = reporterCap(sensor.weight, sensor.trusted);
  const sighting = Math.min(1, Math.max(0, sensor.weight));
  const out = new Map<string, Observation>();
  for (const record of records) {
    const trap = record.action === 'trap';
    const weak = record.verdict === 'spam' ? WEAK_CONTRIBUTION * sighting : 0;
    for (const item of new Set(record.fingerprints)) {
      let o = out.get(item);
      if (o === undefined) out.set(item, (o = zero()));
      o.seen += 1;
      o.sensor = sighting;
      if (trap) {
        o.spamReports += 1;
        o.spam = cap;
      }
      o.weak = Math.max(o.weak, weak);
    }
  }
  return out;
}

/** Feedback from one reporter: full evidence of its label, capped per reporter. */
export function feedbackObservation(reporter: Reporter, label: FeedbackLabel): Observation {
  const cap = reporterCap(reporter.weight, reporter.trusted);
  const o = zero();
  if (label === 'spam') {
    o.spam = cap;
    o.spamReports = 1;
  } else {
    o.ham = cap;
    o.hamReports = 1;
  }
  return o;
}
