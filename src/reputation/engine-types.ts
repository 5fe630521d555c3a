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
  /**
   * The role of the service key speaking (absent for the embedded engine's own voices). A spam
   * trap hit in a `sensor` key's records is weak evidence, not a voice (engine.ts recordObservations).
   */
  readonly role?: KeyRole;
}

/** Who changes an override, and why: kept in the fingerprint's audit trail. */
export interface OverrideBy {
  /** The key id at a service; `local` for the gateway's own admin on its embedded engine. */
  readonly by: string;
  readonly reason?: string;
}

/** One change of a fingerprint's override. */
export interface OverrideAudit {
  /** ISO time of the change. */
  readonly at: string;
  readonly by: string;
  /** The override before and after the change (null: none). */
  readonly before: OverrideVerdict | null;
  readonly after: OverrideVerdict | null;
  readonly reason: string | null;
}

/** One reporter's evidence about a fingerprint, decayed to the time asked. */
export interface ReporterEvidence {
  readonly id: string;
  readonly sensor: number;
  readonly spam: number;
  readonly weak: number;
  readonly ham: number;
  /** ISO time this reporter last told anything about the fingerprint. */
  readonly lastReport: string;
}

/** Why a fingerprint has its verdict (GET /v1/fingerprints/{fingerprint}). */
export interface FingerprintExplanation {
  /** What a lookup answers now; a fuzzy kind's may come from a neighbour (`match`). */
  readonly result: LookupResult;
  /** The override in force and the reason given with it. */
  readonly override: { readonly verdict: OverrideVerdict; readonly reason: string | null } | null;
  /** Reporters behind its evidence, most recent first (at most MAX_EXPLAINED_REPORTERS). */
  readonly reporters: readonly ReporterEvidence[];
  /** How many reporters it has in all (the list above may be cut). */
  readonly reporterCount: number;
  /** Stored near neighbours of a fuzzy kind, most similar first, each judged alone. */
  readonly neighbours: readonly { readonly item: string; readonly similarity: number; readonly verdict: Verdict; readonly score: number }[];
  /** Every override change kept (at most AUDIT_KEPT per fingerprint), oldest first. */
  readonly audit: readonly OverrideAudit[];
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
  /**
   * Statistics from a sensor, idempotent by batch id. A null batch id is for records nobody will
   * ever resend (the gateway's own traffic, src/scan/local-learner.ts): they are counted without
   * storing a mark that would only be looked up by a resend.
   */
  ingest(batchId: string | null, sensor: Reporter, records: readonly ReportRecord[], now?: number): Promise<IngestResult>;
  /** User/admin feedback and spam traps. */
  feedback(reporter: Reporter, label: FeedbackLabel, items: readonly string[], now?: number): Promise<void>;
  /**
   * Undoes one reporter's reports: its `label` evidence on each item is withdrawn (its other
   * channels and every other reporter's evidence stay). Returns how many items held such evidence.
   * A SQLite store writing behind a journal (the reputation service) refuses it (ForgetUnsupported):
   * undo is the embedded engine's, for its own admin.
   */
  forget(reporterId: string, label: FeedbackLabel, items: readonly string[], now?: number): Promise<number>;
  /** An admin override that beats every counter; recorded in the fingerprint's audit trail. */
  setVerdict(item: string, verdict: OverrideVerdict, by: OverrideBy, now?: number): Promise<void>;
  /** Removes an override (recorded in the audit trail); false when there was none (nothing recorded). */
  clearVerdict(item: string, by: OverrideBy, now?: number): Promise<boolean>;
  /** Why a fingerprint has its verdict; null when the store has never heard of it (no state, no audit trail). */
  explain(item: string, now?: number): Promise<FingerprintExplanation | null>;
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
