/**
 * The Redis store's binary layout: a fingerprint's state string (counters, admin verdict, its
 * first reporters inline), the spilled reporters, and the observations an OBSERVE call carries.
 * The Lua scripts (redis-scripts.ts) write what these functions read.
 */
import { hash } from 'node:crypto';
import type { OverrideAudit, OverrideVerdict } from '../engine-types.js';
import type { ReporterPair } from '../engine.js';
import { isoTime } from '../iso-time.js';
import type { FingerprintState, Observation, PairState } from '../scoring.js';

/**
 * A fingerprint's state as one string, packed with Lua's `struct` (read in JS with Buffer reads at
 * STATE_AT): ts, seen, sr, hr, se, sp, wk, hm, fs, ls, lg as float64 LE (fs and ls NaN until
 * first observed: an admin verdict can come first), the reporter count (u32), the admin verdict
 * (u8, ADMIN_CODES) and whether the spill hash may hold reporters (u8). Then up to INLINE_PAIRS
 * reporters, each a u16 length, the reporter id and PAIR_FORMAT. Strings instead of hash fields
 * spare the script a tonumber per field read and a number formatting per field written: the
 * hash layout cost ~19-24 µs of Redis's single thread per fingerprint, this one ~7-10 µs.
 */
export const STATE_FORMAT = '<dddddddddddIBB';
export const STATE_AT = { ts: 0, seen: 8, sr: 16, hr: 24, se: 32, sp: 40, wk: 48, hm: 56, fs: 64, ls: 72, lg: 80, rep: 88, admin: 92, spilled: 93 } as const;
export const STATE_BYTES = STATE_AT.spilled + 1;
/** One reporter's evidence: sensor, spam, weak, ham and the time they were brought up to date. */
export const PAIR_FORMAT = '<ddddd';
export const PAIR_BYTES = 5 * 8;
/** Per fingerprint of an OBSERVE call: seen, spamReports, hamReports, sensor, spam, weak, ham, reindex interval. */
export const OBSERVATION_FORMAT = '<dddddddd';
export const OBSERVATION_BYTES = 8 * 8;
/** The admin byte's values; 0 is none. */
export const ADMIN_CODES: readonly (OverrideVerdict | null)[] = [null, 'spam', 'ham', 'bulk'];

/**
 * Reporters kept in the state string; further ones go to the spill hash (field = reporter id,
 * value = PAIR_FORMAT). Most fingerprints have a few reporters; a widely seen one (a newsletter's
 * sender) has hundreds, and a string that grew with each would be walked and rewritten whole on
 * every report. Four, as the SQLite store keeps inline.
 */
export const INLINE_PAIRS = 4;
/** The length prefix is a u16: a longer reporter id (none is in practice) goes to the spill hash. */
export const MAX_INLINE_REPORTER_BYTES = 0xffff;

const orNull = (x: number): number | null => (Number.isNaN(x) ? null : x);

/** The reporters kept in a state string after its fixed part (see STATE_FORMAT). */
export function inlinePairs(b: Buffer): ReporterPair[] {
  const out: ReporterPair[] = [];
  for (let at = STATE_BYTES; at < b.length; ) {
    const len = b.readUInt16LE(at);
    const values = at + 2 + len;
    out.push({ id: b.toString('utf8', at + 2, values), pair: readPair(b, values) });
    at = values + PAIR_BYTES;
  }
  return out;
}

export const readPair = (b: Buffer, at: number): PairState => ({ sensor: b.readDoubleLE(at), spam: b.readDoubleLE(at + 8), weak: b.readDoubleLE(at + 16), ham: b.readDoubleLE(at + 24), ts: b.readDoubleLE(at + 32) });

/** An audit entry as SET_VERDICT and CLEAR_VERDICT write it. */
export function toAudit(json: string): OverrideAudit {
  const e = JSON.parse(json) as { at: number; by: string; before?: OverrideVerdict | null; after?: OverrideVerdict | null; reason?: string | null };
  return { at: isoTime(e.at), by: e.by, before: e.before ?? null, after: e.after ?? null, reason: e.reason ?? null };
}

export function toState(b: Buffer | null): FingerprintState | null {
  if (b === null) return null;
  const d = (at: number) => b.readDoubleLE(at);
  return {
    ts: d(STATE_AT.ts),
    seen: d(STATE_AT.seen),
    spamReports: d(STATE_AT.sr),
    hamReports: d(STATE_AT.hr),
    sensorEv: d(STATE_AT.se),
    spamEv: d(STATE_AT.sp),
    weakEv: d(STATE_AT.wk),
    hamEv: d(STATE_AT.hm),
    reporters: b.readUInt32LE(STATE_AT.rep),
    firstSeen: orNull(d(STATE_AT.fs)),
    lastSeen: orNull(d(STATE_AT.ls)),
    admin: ADMIN_CODES[b[STATE_AT.admin]!] ?? null,
  };
}

export function writeObservation(b: Buffer, at: number, o: Observation, reindexMs: number): void {
  b.writeDoubleLE(o.seen, at);
  b.writeDoubleLE(o.spamReports, at + 8);
  b.writeDoubleLE(o.hamReports, at + 16);
  b.writeDoubleLE(o.sensor, at + 24);
  b.writeDoubleLE(o.spam, at + 32);
  b.writeDoubleLE(o.weak, at + 40);
  b.writeDoubleLE(o.ham, at + 48);
  b.writeDoubleLE(reindexMs, at + 56);
}

/** The store's key names under its prefix P (see redis.ts for what each holds). */
export class RedisKeyNames {
  readonly prefix: string;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** A digest of the fingerprint used as the hash tag: one-shot, a Hash object per item was ~1.8 µs. */
  tag(item: string): string {
    return hash('sha1', item, 'base64url').slice(0, 16);
  }
  state(tag: string): string {
    return `${this.prefix}st:{${tag}}`;
  }
  spill(tag: string): string {
    return `${this.prefix}sp:{${tag}}`;
  }
  reason(tag: string): string {
    return `${this.prefix}why:{${tag}}`;
  }
  audit(tag: string): string {
    return `${this.prefix}audit:{${tag}}`;
  }
  fuzzy(k: string): string {
    return `${this.prefix}fz:${k}`;
  }
  batch(mark: string): string {
    return `${this.prefix}batch:${mark}`;
  }
  apiKey(id: string): string {
    return `${this.prefix}key:${id}`;
  }
  get apiKeys(): string {
    return `${this.prefix}keys`;
  }
  get log(): string {
    return `${this.prefix}fzlog`;
  }
  get pinned(): string {
    return `${this.prefix}fzpinned`;
  }
  get schema(): string {
    return `${this.prefix}schema`;
  }
}
