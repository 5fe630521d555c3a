/**
 * The reputation formula, pure (no store, no clock): both stores keep the same state per
 * fingerprint and per (fingerprint, reporter) pair and call these functions, so SQLite and Redis
 * answer alike. The formula and its reasons are documented in docs/design/reputation-engine.md.
 *
 * Every counter decays exponentially with one half-life, lazily: a stored value and the time it
 * was last brought up to date are enough to know its value at any later time, so there is no
 * background job. Because every channel of a fingerprint shares one timestamp and one half-life,
 * a sum of decayed per-reporter contributions is the decayed sum, which lets a store keep the
 * per-fingerprint aggregate exactly while only touching the one pair that changed.
 */
import type { LookupResult, Verdict } from './api.js';
import { isoTime } from './iso-time.js';

export const DAY_MS = 86_400_000;
/** Evidence loses half its weight in two weeks: a reused IP or domain recovers in weeks, not years. */
export const HALF_LIFE_MS = 14 * DAY_MS;
/** Stores may forget a fingerprint untouched for this long: its evidence is below 1/16 by then. */
export const FORGET_AFTER_MS = 4 * HALF_LIFE_MS;
/** Batch ids are remembered this long for idempotent ingest (a sensor resends within hours). */
export const BATCH_TTL_MS = 7 * DAY_MS;

/** Distinct reporters' worth of spam evidence needed for `spam` (one voice counts at most 1). */
export const SPAM_THRESHOLD = 3;
/** The same for `ham`. */
export const HAM_THRESHOLD = 3;
/**
 * Distinct fresh voices that convict on their own, whatever their decayed sum. The sum alone
 * cannot say "three reporters agree": three voices a few days old sum to just under 3, while two
 * fresh ones sum to 2 and three one half-life old to 1.5. So the verdict also counts voices.
 */
export const VOICES_TO_CONVICT = 3;
/**
 * A voice counts while its decayed evidence is at least this: a full voice (cap 1) given within
 * the last half-life. Lighter voices (weight below 1) count for a shorter time; a trusted one too
 * is one voice here, though its evidence alone passes the threshold.
 */
export const FRESH_VOICE = 0.5;
/**
 * Below this decayed sum of a channel, VOICES_TO_CONVICT fresh voices cannot be there, so no store
 * reads a fingerprint's reporters to count them. The sums are kept incrementally, so they may sit
 * a rounding below the exact sum of the voices: the slack keeps a boundary case from missing.
 */
const VOICE_RANGE_FLOOR = VOICES_TO_CONVICT * FRESH_VOICE - 1e-9;
/**
 * A trusted reporter (the gateway's own admin on its embedded engine, an admin key at a private
 * service) carries twice a threshold: enough alone, and still enough after one half-life of
 * decay. Exactly one threshold would fall below it a millisecond later and never convict.
 */
export const TRUSTED_CONTRIBUTION = 2 * SPAM_THRESHOLD;
/**
 * A trusted reporter's spam report on a message's shared infrastructure (link domains, sending
 * address and network; engine.ts sharedEvidence), per reported message: half a voice short of a
 * threshold. One reported newsletter leaves its provider `unknown`, even with the gateway's own
 * weak verdicts; two distinct reported messages (5) convict for ten days, and any fresh voice
 * from elsewhere, a reporter or the network's verdicts worth half a voice, convicts with one.
 */
export const TRUSTED_MESSAGE_CONTRIBUTION = SPAM_THRESHOLD - FRESH_VOICE;
/** A record's own `spam` verdict, per sensor: weak, since the network's verdict would confirm itself. */
export const WEAK_CONTRIBUTION = 0.2;
/**
 * A spam-trap hit in a record from a `sensor` key (the lowest role, refused feedback): weak
 * evidence too, 2.5 times a record's own verdict since a trap gets no wanted mail, but never a
 * voice. Three sensor keys with a forged record each would otherwise convict what takes three
 * reporter keys' feedback: the lowest role must not be the cheapest way to convict.
 */
export const SENSOR_TRAP_CONTRIBUTION = 0.5;
/**
 * Weak evidence is capped below the threshold, so it can only add to real evidence (traps, feedback):
 * sensors alone never convict, and never count as voices (VOICES_TO_CONVICT counts the spam channel).
 */
export const WEAK_CAP = SPAM_THRESHOLD / 2;
/** Distinct sensors' worth of sightings for `bulk`. */
export const BULK_SENSORS = 10;
/** Spam evidence below which a widely seen fingerprint is `bulk` rather than `unknown`. */
export const BULK_MAX_SPAM = 1;

/** Evidence channels kept per (fingerprint, reporter): each at most the reporter's cap. */
export interface PairState {
  sensor: number;
  spam: number;
  weak: number;
  ham: number;
  /** Time (ms) the values above were last brought up to date. */
  ts: number;
}

export interface FingerprintState {
  /** Decayed volume counters (display; volume alone never decides). */
  seen: number;
  spamReports: number;
  hamReports: number;
  /** Decayed sums of the pairs' channels. */
  sensorEv: number;
  spamEv: number;
  weakEv: number;
  hamEv: number;
  /** Distinct reporters and sensors ever heard about this fingerprint. */
  reporters: number;
  firstSeen: number | null;
  lastSeen: number | null;
  ts: number;
  admin: Exclude<Verdict, 'unknown'> | null;
}

/** What one call tells about a fingerprint from one reporter. */
export interface Observation {
  seen: number;
  spamReports: number;
  hamReports: number;
  /** Target value of each channel for this reporter (refreshed to it, never summed past it). */
  sensor: number;
  spam: number;
  weak: number;
  ham: number;
}

export function decayFactor(fromMs: number, toMs: number): number {
  return toMs > fromMs ? Math.pow(2, -(toMs - fromMs) / HALF_LIFE_MS) : 1;
}

export function emptyState(now: number): FingerprintState {
  return { seen: 0, spamReports: 0, hamReports: 0, sensorEv: 0, spamEv: 0, weakEv: 0, hamEv: 0, reporters: 0, firstSeen: null, lastSeen: null, ts: now, admin: null };
}

export function emptyPair(now: number): PairState {
  return { sensor: 0, spam: 0, weak: 0, ham: 0, ts: now };
}

/** The state as of `now` (never moves time backwards: late reports count as current). */
export function decayed(state: FingerprintState, now: number): FingerprintState {
  const f = decayFactor(state.ts, now);
  return {
    ...state,
    seen: state.seen * f,
    spamReports: state.spamReports * f,
    hamReports: state.hamReports * f,
    sensorEv: state.sensorEv * f,
    spamEv: state.spamEv * f,
    weakEv: state.weakEv * f,
    hamEv: state.hamEv * f,
    ts: Math.max(state.ts, now),
  };
}

/**
 * Applies one reporter's observation. `isNewPair` is true when this reporter had never spoken
 * about the fingerprint. Returns the new fingerprint and pair states.
 */
export function observe(state: FingerprintState, pair: PairState, isNewPair: boolean, o: Observation, now: number): { state: FingerprintState; pair: PairState } {
  // Spelled out channel by channel, without intermediate objects: this runs once per fingerprint
  // of every ingested record (the service's hottest function after SQLite itself). The same
  // operations in the same order as decayed() followed by the update, so results are identical.
  const f = decayFactor(state.ts, now);
  const pf = decayFactor(pair.ts, now);
  const sensor = pair.sensor * pf;
  const spam = pair.spam * pf;
  const weak = pair.weak * pf;
  const ham = pair.ham * pf;
  // The pair's time is the fingerprint's: a late report's evidence is added to the sums as of the
  // fingerprint's time, so the pair must decay from there too, or the sums and the voices counted
  // from the pairs would disagree (Redis's OBSERVE has always done this).
  const ts = Math.max(state.ts, now);
  const next: PairState = { sensor: Math.max(sensor, o.sensor), spam: Math.max(spam, o.spam), weak: Math.max(weak, o.weak), ham: Math.max(ham, o.ham), ts };
  return {
    state: {
      seen: state.seen * f + o.seen,
      spamReports: state.spamReports * f + o.spamReports,
      hamReports: state.hamReports * f + o.hamReports,
      sensorEv: state.sensorEv * f + (next.sensor - sensor),
      spamEv: state.spamEv * f + (next.spam - spam),
      weakEv: state.weakEv * f + (next.weak - weak),
      hamEv: state.hamEv * f + (next.ham - ham),
      reporters: isNewPair ? state.reporters + 1 : state.reporters,
      firstSeen: state.firstSeen === null || now < state.firstSeen ? now : state.firstSeen,
      lastSeen: state.lastSeen === null || now > state.lastSeen ? now : state.lastSeen,
      ts,
      admin: state.admin,
    },
    pair: next,
  };
}

/** A reporter's cap: 1 for an ordinary voice (or less for a lighter weight), a threshold if trusted. */
export function reporterCap(weight: number, trusted: boolean | undefined): number {
  if (trusted) return TRUSTED_CONTRIBUTION;
  return Math.max(0, Math.min(1, weight));
}

const iso = (ms: number | null): string | null => (ms === null ? null : isoTime(ms));

export type VoiceChannel = 'spam' | 'ham';

/**
 * The channel whose fresh voices would decide the verdict, or null when the decayed sums decide
 * alone: no admin verdict, the channel's sum below its threshold but high enough to hold
 * VOICES_TO_CONVICT fresh voices, and it outweighs the other side as a verdict must. A store
 * reads a fingerprint's reporters for `judge` only when this is not null, so the common lookup
 * costs what it did. Weak evidence never makes voices, so it does not open the range either.
 */
export function voiceChannel(stored: FingerprintState, now: number): VoiceChannel | null {
  if (stored.admin !== null) return null;
  const f = decayFactor(stored.ts, now);
  return channelOf(stored.spamEv * f, stored.weakEv * f, stored.hamEv * f);
}

/** voiceChannel on decayed sums. */
function channelOf(spamEv: number, weakEv: number, hamEv: number): VoiceChannel | null {
  const spam = spamEv + Math.min(weakEv, WEAK_CAP);
  if (spam < SPAM_THRESHOLD && spamEv >= VOICE_RANGE_FLOOR && spam >= 2 * hamEv) return 'spam';
  if (hamEv < HAM_THRESHOLD && hamEv >= VOICE_RANGE_FLOOR && hamEv >= 2 * spam) return 'ham';
  return null;
}

/** Reporters whose evidence on the channel, decayed to `now`, is still a fresh voice (FRESH_VOICE). */
export function freshVoices(pairs: readonly PairState[], channel: VoiceChannel, now: number): number {
  let voices = 0;
  for (const p of pairs) if (p[channel] * decayFactor(p.ts, now) >= FRESH_VOICE) voices++;
  return voices;
}

/**
 * Judges a state as of `now`: the verdict, score, confidence and the counters shown. `pairs` are
 * the fingerprint's reporters, needed only when voiceChannel is not null (all of them, or at
 * least VOICES_TO_CONVICT fresh ones); without them the voices are taken as not there.
 */
export function judge(item: string, stored: FingerprintState | null, now: number, pairs: readonly PairState[] = []): LookupResult {
  if (stored === null) {
    return { item, verdict: 'unknown', score: 0, confidence: 0, counters: { seen: 0, spam: 0, ham: 0, reporters: 0, firstSeen: null, lastSeen: null, adminVerdict: null }, match: null };
  }
  const s = decayed(stored, now);
  const counters = {
    seen: round(s.seen),
    spam: round(s.spamReports),
    ham: round(s.hamReports),
    reporters: s.reporters,
    firstSeen: iso(s.firstSeen),
    lastSeen: iso(s.lastSeen),
    adminVerdict: s.admin,
  };
  if (s.admin !== null) {
    const score = s.admin === 'spam' ? 1 : s.admin === 'bulk' ? 0.5 : 0;
    return { item, verdict: s.admin, score, confidence: 1, counters, match: null };
  }
  const spam = s.spamEv + Math.min(s.weakEv, WEAK_CAP);
  const ham = s.hamEv;
  // Score: share of spam evidence, with one reporter's worth of doubt in the denominator so
  // that a single voice never reaches a high score.
  const score = clamp01(spam / (spam + ham + 1));
  const confidence = clamp01(1 - Math.pow(2, -(spam + ham + s.sensorEv / BULK_SENSORS) / SPAM_THRESHOLD));
  const channel = channelOf(s.spamEv, s.weakEv, ham);
  const voices = channel === null ? 0 : freshVoices(pairs, channel, now);
  let verdict: Verdict = 'unknown';
  if (spam >= SPAM_THRESHOLD && spam >= 2 * ham) verdict = 'spam';
  else if (ham >= HAM_THRESHOLD && ham >= 2 * spam) verdict = 'ham';
  else if (channel !== null && voices >= VOICES_TO_CONVICT) verdict = channel;
  else if (s.sensorEv >= BULK_SENSORS && spam < BULK_MAX_SPAM) verdict = 'bulk';
  return { item, verdict, score, confidence, counters, match: null };
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
