/** The quarantine's data: an entry's metadata, its errors, and what an id may look like. */
import { NimbusError } from '../errors.js';

/** An SMTP reply as the release reports it (the next hop's, or the Maildir's stand-in). */
export interface ReleaseReply {
  readonly code: number;
  readonly text: string;
}

/** What an id may look like: the form the store makes, and nothing a path could be built from. */
export const ID_PATTERN = /^[0-9]{8}T[0-9]{9}Z-[A-Za-z0-9]{1,64}$/;

/**
 * Bytes a front added to the message it stores: `text` (UTF-8) at byte offset `at` of the stored
 * file, where `replaced` was (src/scan/header-block.ts's ByteEdit). A release undoes them, so
 * that the message goes out without the verdict fields and the subject tag.
 */
export interface AddedBytes {
  readonly at: number;
  readonly text: string;
  readonly replaced: string;
}

/** What a front hands over with the bytes of a message it quarantines. */
export interface QuarantineInput {
  /** The front's queue id. */
  readonly queueId: string;
  readonly clientIp: string;
  readonly clientHelo: string;
  readonly trustedClient: boolean;
  readonly envelope: { readonly mailFrom: string; readonly rcptTo: readonly string[] };
  /** Recipients that are spam traps: never delivered to on release. */
  readonly spamtrapHits: readonly string[];
  /** Bytes the sender sent. */
  readonly size: number;
  /** What the front added to `bytes` (its verdict fields, its subject tag). */
  readonly added?: readonly AddedBytes[];
}

export interface QuarantineSink {
  /** Stores the message (as it would have been relayed); resolves with the quarantine id. */
  store(input: QuarantineInput, bytes: Buffer, info?: { verdict: string; score: number }): Promise<string>;
}

export type QuarantineErrorCode = 'QUARANTINE_BAD_ID' | 'QUARANTINE_NOT_FOUND' | 'QUARANTINE_BUSY' | 'QUARANTINE_RELEASE_REFUSED' | 'QUARANTINE_RELEASE_FAILED';

export class QuarantineError extends NimbusError {
  /** The next hop's reply when it refused the release. */
  readonly reply: ReleaseReply | null;
  constructor(code: QuarantineErrorCode, message: string, options?: { cause?: unknown; reply?: ReleaseReply }) {
    super(code, message, options);
    this.reply = options?.reply ?? null;
  }
}

export interface QuarantineMeta {
  readonly id: string;
  /** When it was quarantined (ISO 8601, UTC). */
  readonly time: string;
  readonly queueId: string;
  readonly clientIp: string;
  readonly helo: string;
  readonly trustedClient: boolean;
  /** '' for the null sender <>. */
  readonly mailFrom: string;
  /** The recipients a release delivers to (spam-trap recipients excluded: they never reach a mailbox). */
  readonly rcptTo: readonly string[];
  /** Recipients that were spam traps, for the record only. */
  readonly spamtrapHits: readonly string[];
  /** Bytes stored (the message as it would have been relayed). */
  readonly size: number;
  /** Bytes the sender sent. */
  readonly receivedSize: number;
  /** null when neither given to store() nor found in the stored X-Nimbus-Verdict field. */
  readonly verdict: string | null;
  readonly score: number | null;
  /**
   * What the gateway added to the stored message, undone on release. Absent in entries stored by
   * a version that did not record it: those are released as stored.
   */
  readonly added?: readonly AddedBytes[];
}

export interface QuarantineEntry {
  readonly meta: QuarantineMeta;
  /** The stored message file (read it; do not move it: the quarantine owns it). */
  readonly path: string;
}

/** Where a released entry went, and the reply to its message. */
export interface ReleaseDelivery {
  /** `host:port` of the next hop, or `maildir`. */
  readonly to: string;
  readonly reply: ReleaseReply;
}

export interface ReleaseResult extends ReleaseDelivery {
  readonly id: string;
}

/** Refuses anything that is not an id this quarantine could have made, naming what is wrong. */
export function checkQuarantineId(id: string): void {
  if (/[/\\]/.test(id) || id.includes('\0')) {
    throw new QuarantineError('QUARANTINE_BAD_ID', `invalid quarantine id ${JSON.stringify(id)}: ids never contain path separators`);
  }
  if (!ID_PATTERN.test(id)) {
    throw new QuarantineError('QUARANTINE_BAD_ID', `invalid quarantine id ${JSON.stringify(id)}: expected the form 20250101T120000123Z-ABCDEF123456 (see \`nimbus quarantine list\`)`);
  }
}

