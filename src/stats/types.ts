/**
 * A statistics record as the gateway hands it over. Deliberately no field for addresses,
 * subjects or text: what the type cannot hold cannot leak.
 */
import type { Fingerprint } from '../fingerprint/types.js';
import type { Verdict, MESSAGE_ACTIONS } from '../reputation/api.js';
import type { Sample } from './samples.js';

export type MessageAction = (typeof MESSAGE_ACTIONS)[number];

export interface StatsInput {
  readonly time?: Date;
  /** Kept locally (for `nimbus stats`); only its checksum fingerprints leave the host. */
  readonly clientIp: string;
  readonly helo?: string;
  readonly fingerprints: readonly Fingerprint[];
  readonly verdict: Verdict;
  readonly score: number;
  /**
   * The verdict and score to upload, when they differ from the above: without the public DNS
   * lists' points, since a list's answer never leaves the host. The local statistics keep the
   * message's own verdict and score.
   */
  readonly shared?: { readonly verdict: Verdict; readonly score: number };
  readonly action: MessageAction;
  readonly size: number;
  readonly nextHop: { readonly code: number; readonly text: string } | null;
  /** Full link URLs: sent in extended mode only. */
  readonly urls?: readonly string[];
  readonly attachments?: readonly { readonly sha256: string; readonly type: string; readonly size: number }[];
  /**
   * Unknown suspicious attachments (src/stats/samples.ts), kept in the sample outbox, not in the
   * record; dropped unless participation is extended when the record is written.
   */
  readonly samples?: readonly Sample[];
}

/** What the store keeps and wire.ts reads. */
export interface LocalRecord {
  readonly id: string;
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly fingerprints: readonly { readonly text: string; readonly label?: string }[];
  readonly verdict: Verdict;
  readonly score: number;
  readonly action: MessageAction;
  readonly size: number;
  readonly urls?: readonly string[];
  readonly attachments?: readonly { readonly sha256: string; readonly type: string; readonly size: number }[];
}
