/**
 * The scan core's contract: what a front (the SMTP relay, the milter, `nimbus check`) hands in,
 * and the typed verdict it gets back. Nothing here knows SMTP or milter: a front turns the result
 * into its own protocol's replies and edits.
 */
import type { Readable } from 'node:stream';
import type { AttachmentInfo, Skip } from '../fingerprint/index.js';
import type { DnsListResult } from '../dns/lists.js';
import type { Fingerprint } from '../fingerprint/types.js';
import type { SiteKnowledge } from '../fingerprint/received.js';
import type { Verdict } from '../reputation/api.js';
import type { Sample } from '../stats/samples.js';
import type { AuthenticationResults } from './authentication.js';
import type { RemoteOutcome } from './lookups.js';

export type { Verdict };

/** What the front does with the message; `trap`: every recipient was a spam trap. */
export type ScanAction = 'deliver' | 'tag' | 'reject' | 'quarantine' | 'discard' | 'trap';

/** The message's bytes, held by the front (in memory or spooled to a file). */
export interface MessageSource {
  readonly size: number;
  /** The whole message in memory: read only when the message is small enough to analyse. */
  read(): Promise<Buffer>;
  /** The same bytes as a stream, for checks that must not hold a large message whole. */
  stream(): Readable;
}

export interface ScanClient {
  /** The connecting client, or the XCLIENT/XFORWARD (milter: CONNECT) address of a trusted MTA; null: taken from Received. */
  readonly ip: string | null;
  readonly helo: string;
  /** Its verified host name, when known. */
  readonly name: string | null;
  /** In NIMBUS_TRUSTED_NETWORKS: its verdict fields are its own, not forgeries. */
  readonly trusted: boolean;
}

export interface Envelope {
  /** '' for the null sender <>. */
  readonly mailFrom: string;
  /** Every accepted recipient, spam traps included. */
  readonly rcptTo: readonly string[];
}

export interface ScanRequest {
  /** The front's id of this message (queue id), for logs. */
  readonly id: string;
  readonly message: MessageSource;
  readonly envelope: Envelope;
  readonly client: ScanClient;
  /** A stored message's site (`nimbus check`, `report`, `learn`): whose hops Received names are the site's own. */
  readonly site?: SiteKnowledge;
}

/** One looked-up fingerprint: what was asked, what came back, and what it did to the score. */
export interface FingerprintResult {
  readonly fingerprint: Fingerprint;
  readonly verdict: Verdict;
  /** Reputation score in [0, 1]. */
  readonly reputation: number;
  /** False when the service could not answer (timeout, error, open breaker): local data only. */
  readonly complete: boolean;
  /** NIMBUS_WEIGHT_<KIND>, or more for an address or network labelled spam often and never ham (score.ts, effectiveWeight). */
  readonly weight: number;
  /** Points this fingerprint added to the message score (0 unless it was the strongest of its kind). */
  readonly contribution: number;
  /** Its `tests=` name when it contributed, else null. */
  readonly test: string | null;
}

/** One entry of X-Nimbus-Report: a looked-up fingerprint, or what a public DNS list answered. */
export type ReportPart = FingerprintReportPart | ListReportPart;

/** `image:dhash64:9f3c…=spam(0.91)` */
export interface FingerprintReportPart {
  readonly source: 'reputation';
  /** What was looked up, in its text form (`ip=203.0.113.7`, `image:dhash64:9f3c…`). */
  readonly label: string;
  readonly verdict: Verdict;
  /** Reputation score in [0, 1]. */
  readonly score: number;
}

/** `dnsbl:zen=listed(sbl)`, `dnsbl:zen=refused(127.255.255.254)`, `dnsbl:dbl=temperror(timeout)` */
export interface ListReportPart {
  readonly source: 'dns-list';
  /** The list's name in NIMBUS_DNS_LISTS (never its zone, which may hold an access key). */
  readonly list: string;
  readonly status: 'listed' | 'refused' | 'temperror';
  /** What each listing means (the codes' words, else the answers), the refusal answer, or the failure. */
  readonly detail: string;
}

export interface HeaderField {
  readonly name: string;
  /** Unfolded; a front folds it as its protocol needs (headers.ts formatHeaderField). */
  readonly value: string;
}

export interface HeaderEdits {
  /** Fields to add at the top, in this order. */
  readonly add: readonly HeaderField[];
  /**
   * Lower-case name prefixes of incoming fields to remove first (forged verdicts): empty for a
   * trusted client, whose verdict fields are its own.
   */
  readonly removePrefixes: readonly string[];
  /**
   * Incoming Authentication-Results fields with these (lower-case) authserv-ids are removed first
   * (RFC 8601 5): NIMBUS_HOSTNAME when the authentication checks are on, whoever the client.
   */
  readonly removeAuthservIds: readonly string[];
  /** Text to put in front of the Subject (NIMBUS_SUBJECT_TAG), or null. */
  readonly subjectTag: string | null;
}

/** What the statistics record and the sample outbox need beyond the verdict. */
export interface Evidence {
  readonly fingerprints: readonly Fingerprint[];
  readonly urls: readonly string[];
  /** Without their bytes: those stay only in `samples`. */
  readonly attachments: readonly AttachmentInfo[];
  readonly skips: readonly Skip[];
  readonly remote: RemoteOutcome;
  /** Unknown suspicious attachments to sample (extended participation only, else empty). */
  readonly samples: readonly Sample[];
}

/**
 * `scanned`: the verdict is the scan's; `timeout`: NIMBUS_SCAN_TIMEOUT_MS ran out; `failed`: the
 * scan threw (a bug). Both of the latter give verdict `unknown` and let the mail through.
 */
export type ScanOutcome = 'scanned' | 'timeout' | 'failed';

export interface ScanTimings {
  /** Waiting for room to analyse (the analysis gate). */
  readonly queuedMs: number;
  /** Parsing and fingerprints. */
  readonly analysisMs: number;
  /** The batched lookup, and the public DNS lists asked beside it. */
  readonly lookupMs: number;
  readonly totalMs: number;
}

export interface ScanResult {
  readonly outcome: ScanOutcome;
  readonly verdict: Verdict;
  readonly score: number;
  /**
   * The verdict and score without the public DNS lists' points: what the statistics record
   * uploads, so a list's answer never leaves the host (equal to the above when nothing is listed).
   */
  readonly shared: { readonly verdict: Verdict; readonly score: number };
  /** NIMBUS_TAG_SCORE at the time of the scan. */
  readonly required: number;
  readonly action: ScanAction;
  /** `tests=` of X-Spam-Status: every part of the score, and what could not be asked. */
  readonly tests: readonly string[];
  readonly fingerprints: readonly FingerprintResult[];
  /** X-Nimbus-Report: the DNS lists that answered something, then the decisive fingerprints first. */
  readonly report: readonly ReportPart[];
  /**
   * Each public DNS list's answer (NIMBUS_DNS_LISTS; empty when none are configured, or the scan
   * did not get that far). Local only: never part of `evidence`, so never in statistics.
   */
  readonly dnsLists: readonly DnsListResult[];
  /** SPF, DKIM, DMARC and ARC (NIMBUS_AUTH_CHECKS); null when they are off or the scan did not get that far. */
  readonly authentication: AuthenticationResults | null;
  /** Recipients that are spam traps (NIMBUS_SPAMTRAPS). */
  readonly trapHits: readonly string[];
  readonly headers: HeaderEdits;
  /** Present when the message was scanned; null after a timeout or failure. */
  readonly evidence: Evidence | null;
  readonly timings: ScanTimings;
}

/** What every front calls; the gateway and tests may plug their own. */
export interface MessageScanner {
  scan(request: ScanRequest): Promise<ScanResult>;
}
