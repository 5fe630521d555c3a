/**
 * A fingerprint's `fp` row as the SQLite store's write path holds it, and the one update step
 * both of its write modes share (sqlite.ts writes the result at once; sqlite-write-behind.ts
 * keeps it in memory until its flush): the scoring formula applied to the row and to the one
 * reporter's evidence, kept inline in the row for its first INLINE_PAIRS reporters.
 */
import type { FeedbackLabel } from '../engine-types.js';
import { withdrawn } from '../engine.js';
import { emptyPair, emptyState, observe, type FingerprintState, type Observation, type PairState } from '../scoring.js';

/**
 * Reporters kept in the fingerprint's row; further ones go to `pair` and set `spilled`. Most
 * fingerprints have a few reporters; a widely seen one (a newsletter's sender) has hundreds,
 * and a row that grew with each would rewrite kilobytes of overflow pages per report.
 */
export const INLINE_PAIRS = 4;

/** One inline pair: u16 LE length, the reporter id in UTF-8, then sensor, spam, weak, ham, ts as float64 LE. */
const PAIR_VALUES_BYTES = 5 * 8;
/** The length prefix is a u16: a longer reporter id (none is in practice) goes to `pair`. */
const MAX_INLINE_REPORTER_BYTES = 0xffff;

export interface FpRecord {
  readonly state: FingerprintState;
  /** The first reporters' evidence (encodePair), or null. */
  readonly pairs: Buffer | null;
  /** 1 when some reporter's evidence is in `pair` instead (or the row predates inline pairs). */
  readonly spilled: number;
}

export interface Applied {
  readonly record: FpRecord;
  /** True when the fingerprint had no row: it must be inserted and filed in its fuzzy index. */
  readonly created: boolean;
  /** The reporter's evidence when it belongs in `pair` (beyond the inline ones), else null. */
  readonly spilledPair: PairState | null;
  /** Whether that `pair` row exists already (update) or not (insert). */
  readonly spilledPairExists: boolean;
}

function encodePair(reporter: Buffer, p: PairState): Buffer {
  const b = Buffer.allocUnsafe(2 + reporter.length + PAIR_VALUES_BYTES);
  b.writeUInt16LE(reporter.length, 0);
  reporter.copy(b, 2);
  writePairValues(b, 2 + reporter.length, p);
  return b;
}

function writePairValues(b: Buffer, at: number, p: PairState): void {
  b.writeDoubleLE(p.sensor, at);
  b.writeDoubleLE(p.spam, at + 8);
  b.writeDoubleLE(p.weak, at + 16);
  b.writeDoubleLE(p.ham, at + 24);
  b.writeDoubleLE(p.ts, at + 32);
}

/** Offset of the reporter's values in an inline pairs blob, or -1; and how many pairs it holds. */
function findPair(pairs: Buffer | null, reporter: Buffer): { at: number; count: number } {
  let at = -1;
  let count = 0;
  if (pairs === null) return { at, count };
  for (let off = 0; off < pairs.length; count++) {
    const len = pairs.readUInt16LE(off);
    const values = off + 2 + len;
    if (at < 0 && len === reporter.length && pairs.compare(reporter, 0, len, off + 2, values) === 0) at = values;
    off = values + PAIR_VALUES_BYTES;
  }
  return { at, count };
}

const readPair = (b: Buffer, at: number): PairState => ({ sensor: b.readDoubleLE(at), spam: b.readDoubleLE(at + 8), weak: b.readDoubleLE(at + 16), ham: b.readDoubleLE(at + 24), ts: b.readDoubleLE(at + 32) });

/** Every reporter kept inline in a row, with its evidence (lookups counting voices, explain). */
export function inlinePairs(pairs: Buffer | null): { id: string; pair: PairState }[] {
  const out: { id: string; pair: PairState }[] = [];
  if (pairs === null) return out;
  for (let off = 0; off < pairs.length; ) {
    const len = pairs.readUInt16LE(off);
    const values = off + 2 + len;
    out.push({ id: pairs.toString('utf8', off + 2, values), pair: readPair(pairs, values) });
    off = values + PAIR_VALUES_BYTES;
  }
  return out;
}

/**
 * One reporter's observation of one fingerprint whose row is `current` (null: none yet).
 * `storedPair` reads the reporter's `pair` row; it is called only for a row that has spilled
 * and whose inline pairs do not hold this reporter. `current` is never modified.
 */
export function applyObservation(current: FpRecord | null, reporterBytes: Buffer, o: Observation, now: number, storedPair: () => PairState | undefined): Applied {
  const inlinable = reporterBytes.length <= MAX_INLINE_REPORTER_BYTES;
  if (current === null) {
    const { state, pair } = observe(emptyState(now), emptyPair(now), true, o, now);
    if (inlinable) return { record: { state, pairs: encodePair(reporterBytes, pair), spilled: 0 }, created: true, spilledPair: null, spilledPairExists: false };
    return { record: { state, pairs: null, spilled: 1 }, created: true, spilledPair: pair, spilledPairExists: false };
  }
  const found = findPair(current.pairs, reporterBytes);
  const stored = found.at < 0 && current.spilled !== 0 ? storedPair() : undefined;
  const old = found.at >= 0 ? readPair(current.pairs!, found.at) : (stored ?? emptyPair(now));
  const isNew = found.at < 0 && stored === undefined;
  const { state, pair } = observe(current.state, old, isNew, o, now);
  if (found.at >= 0) {
    const pairs = Buffer.from(current.pairs!);
    writePairValues(pairs, found.at, pair);
    return { record: { state, pairs, spilled: current.spilled }, created: false, spilledPair: null, spilledPairExists: false };
  }
  if (isNew && inlinable && found.count < INLINE_PAIRS) {
    const added = encodePair(reporterBytes, pair);
    return { record: { state, pairs: current.pairs === null ? added : Buffer.concat([current.pairs, added]), spilled: current.spilled }, created: false, spilledPair: null, spilledPairExists: false };
  }
  return { record: { state, pairs: current.pairs, spilled: 1 }, created: false, spilledPair: pair, spilledPairExists: !isNew };
}

/**
 * One reporter's `label` evidence withdrawn from a row (engine `forget`), or null when the
 * reporter holds none there. `spilledPair`: the reporter's new `pair` row when it is not inline.
 */
export function withdrawFromRecord(current: FpRecord, reporterBytes: Buffer, label: FeedbackLabel, now: number, storedPair: () => PairState | undefined): { record: FpRecord; spilledPair: PairState | null } | null {
  const found = findPair(current.pairs, reporterBytes);
  const old = found.at >= 0 ? readPair(current.pairs!, found.at) : current.spilled !== 0 ? storedPair() : undefined;
  const result = old === undefined ? null : withdrawn(current.state, old, label, now);
  if (result === null) return null;
  if (found.at < 0) return { record: { state: result.state, pairs: current.pairs, spilled: current.spilled }, spilledPair: result.pair };
  const pairs = Buffer.from(current.pairs!);
  writePairValues(pairs, found.at, result.pair);
  return { record: { state: result.state, pairs, spilled: current.spilled }, spilledPair: null };
}
