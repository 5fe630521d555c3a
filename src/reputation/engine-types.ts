/**
 * The reputation engine's contract: one interface, two stores (SQLite embedded, Redis / Redis
 * Cluster). The HTTP service, the gateway's embedded engine, the CLI and the proxy mode all
 * talk to this and nothing below it.
 */
import type { KeyRole, LookupResult, ReportRecord, Verdict } from './api.js';

/** Who is speaking: a sensor (statistics), a reporter (feedback) or the local admin. */
export interface Reporter {
  /** Stable id: the key id at a service, `local` for the gateway's own admin. */
  readonly id: string;
  /** Relative weight of this voice (1 for an ordinary key). */
  readonly weight: number;
  /**
   * The gateway's own admin talking to its embedded engine: one report is enough to mark a
   * fingerprint (DESIGN: "the gateway's own admin is trusted by its embedded engine"). Never
   * set for keys at a shared service.
   */
  readonly trusted?: boolean;
}

export interface IngestResult {
  /** Records counted by this call (0 when the batch id was seen before). */
  readonly accepted: number;
  /** True when this batch id had already been ingested: nothing was counted again. */
  readonly duplicate: boolean;
}

export type FeedbackLabel = 'spam' | 'ham';
export type OverrideVerdict = Exclude<Verdict, 'unknown'>;

export interface ReputationEngine {
  /** One result per item, in the order asked; fuzzy kinds answer from their nearest stored neighbour. */
  lookup(items: readonly string[], now?: number): Promise<LookupResult[]>;
  /** Statistics from a sensor, idempotent by batch id. */
  ingest(batchId: string, sensor: Reporter, records: readonly ReportRecord[], now?: number): Promise<IngestResult>;
  /** User/admin feedback and spam traps. */
  feedback(reporter: Reporter, label: FeedbackLabel, items: readonly string[], now?: number): Promise<void>;
  /** An admin override that beats every counter. */
  setVerdict(item: string, verdict: OverrideVerdict, reason?: string, now?: number): Promise<void>;
  /** Removes an override; false when there was none. */
  clearVerdict(item: string): Promise<boolean>;
  close(): Promise<void>;
}

export interface StoredKey {
  readonly id: string;
  readonly role: KeyRole;
  readonly label: string;
  /** Hex SHA-256 of the secret part; the secret itself is never stored. */
  readonly secretHash: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
  /** Requests per second allowed for this key (token bucket refill rate). */
  readonly rateLimit: number;
}

export interface KeyStore {
  /** Creates a key; the returned token (`nmb_<id>_<secret>`) is shown once and never stored. */
  addKey(role: KeyRole, label: string, rateLimit?: number): Promise<{ key: StoredKey; token: string }>;
  findKey(id: string): Promise<StoredKey | null>;
  listKeys(): Promise<StoredKey[]>;
  /** False when no such key. */
  revokeKey(id: string): Promise<boolean>;
}

export interface OpenedReputation {
  readonly engine: ReputationEngine;
  readonly keys: KeyStore;
  close(): Promise<void>;
  /**
   * Stores behind a connection (Redis): why they cannot serve right now, from the connection's
   * state without a round trip, or null when connected. Absent for SQLite (a file that is open
   * cannot become unreachable).
   */
  unavailable?(): string | null;
  /** Stores behind a connection: one round trip, rejected (within a second) when the store cannot answer. */
  ping?(): Promise<void>;
}

export type ReputationStoreOptions =
  | {
      readonly store: 'sqlite';
      readonly path: string;
      /**
       * WAL checkpoints in a thread of their own (default true): what a service ingesting
       * thousands of reports a second needs. A gateway's local learning writes small batches and
       * saves the thread (a V8 isolate, about 9 MB per process) by checkpointing inline.
       */
      readonly backgroundCheckpoints?: boolean;
      /**
       * Rows written behind a journal (default false; see stores/sqlite-write-behind.ts): the
       * reputation service's ingest rate. Needs the file to itself: a second write-behind engine
       * on the same file fails to open.
       */
      readonly writeBehind?: boolean;
    }
  | { readonly store: 'redis'; readonly urls: readonly string[]; readonly prefix?: string };
