/** What the relay keeps per SMTP connection and per transaction (MAIL … final reply). */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import type { NextHopSession } from './next-hop.js';

/** What one transaction (MAIL … final reply) has gathered. */
export interface Transaction {
  readonly queueId: string;
  readonly started: number;
  readonly mailFrom: string;
  readonly relayRcpts: string[];
  readonly trapRcpts: string[];
}

/** Per SMTP connection: its logger, its next-hop session, its current transaction. */
export interface ConnectionState {
  readonly log: Logger;
  hop: NextHopSession | null;
  transaction: Transaction | null;
  /** Recipients refused to an untrusted client since the session began or last had a message accepted. */
  refusedRecipients: number;
  /** The next error reply is the session's last: 421 follows it and the connection closes. */
  hangUpAfterReply: boolean;
}

export function newConnectionState(log: Logger): ConnectionState {
  return { log, hop: null, transaction: null, refusedRecipients: 0, hangUpAfterReply: false };
}

/** 12 upper-case hex digits, like a Postfix queue id: unique enough, short in logs. */
export function newQueueId(): string {
  return randomBytes(6).toString('hex').toUpperCase();
}
