/**
 * The seams where the verdict and statistics parts plug into the gateway. The gateway owns the
 * SMTP protocol and the bytes; these interfaces own the decision and the record.
 *
 * Failure policy (STYLE 4): an inspector that throws or rejects lets the mail through with
 * verdict `unknown` (never lose mail to an analysis bug); an observer that throws is logged and
 * the reply stands (the next hop already has the message: a 4xx now would duplicate it); a
 * quarantine sink that throws gives the sender a 4xx (the message is stored nowhere yet).
 */
import type { Readable } from 'node:stream';
import type { VerdictName } from './verdict-headers.js';

export interface InspectionRequest {
  /** The gateway's id of this message (also in Received and the log). */
  readonly queueId: string;
  /** The client: the XCLIENT/XFORWARD address when a trusted MTA forwarded it. */
  readonly clientIp: string;
  readonly clientHelo: string;
  /** The client is in NIMBUS_TRUSTED_NETWORKS. */
  readonly trustedClient: boolean;
  readonly envelope: {
    /** '' for the null sender <>. */
    readonly mailFrom: string;
    /** Every accepted recipient, spam traps included. */
    readonly rcptTo: readonly string[];
  };
  /** Accepted recipients that are spam traps (NIMBUS_SPAMTRAPS). */
  readonly spamtrapHits: readonly string[];
  readonly size: number;
  /**
   * The message as received (before the gateway's edits), whole in memory: read only when needed
   * and prefer `streamMessage()` for large messages (the spool exists so they are not held whole).
   */
  readMessage(): Promise<Buffer>;
  /** The same bytes as a stream from the spool (memory or file). */
  streamMessage(): Readable;
}

export type InspectionAction = 'deliver' | 'tag' | 'reject' | 'quarantine' | 'discard' | 'trap';

export interface Inspection {
  readonly verdict: VerdictName;
  readonly score: number;
  readonly required: number;
  readonly action: InspectionAction;
  /** Complete header fields to prepend (no final CRLF; folded lines joined with CRLF + WSP). */
  readonly headers: readonly string[];
  /** Put NIMBUS_SUBJECT_TAG in front of the Subject (only when it is set). */
  readonly subjectTag: boolean;
}

export interface MessageInspector {
  inspect(request: InspectionRequest): Promise<Inspection>;
}

export interface ProcessedMessage {
  readonly queueId: string;
  readonly time: Date;
  readonly clientIp: string;
  readonly helo: string;
  readonly size: number;
  readonly inspection: Inspection;
  /** The next hop's reply to the message; null when not relayed (Maildir, discard, trap, reject). */
  readonly nextHop: { readonly code: number; readonly text: string } | null;
}

export interface MessageObserver {
  /** Awaited before the sender gets its final reply: statistics are durable first. */
  processed(message: ProcessedMessage): Promise<void>;
}

export interface QuarantineSink {
  /** Stores the message (as it would have been relayed); resolves with the quarantine id. */
  store(request: InspectionRequest, bytes: Buffer): Promise<string>;
}

export interface GatewayHooks {
  readonly inspector?: MessageInspector;
  readonly observer?: MessageObserver;
  readonly quarantine?: QuarantineSink;
}
