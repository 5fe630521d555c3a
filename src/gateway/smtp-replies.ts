/**
 * Every SMTP reply the gateway gives of its own, in one table, with its RFC 3463 enhanced status
 * code. Replies mirrored from the next hop are not here: they are passed through as the next hop
 * worded them (see next-hop.ts).
 *
 * smtp-server prepends its own enhanced code to texts returned from callbacks, picked from the
 * numeric code alone (550 would become 5.1.1 "bad mailbox" even for a relay denial). The gateway
 * therefore puts the exact enhanced code at the start of its text, and server.ts tells
 * smtp-server not to add another one when the text already starts with one.
 */

export interface SmtpReply {
  readonly code: number;
  /** RFC 3463 `class.subject.detail`. */
  readonly enhanced: string;
  readonly text: string;
}

const reply = (code: number, enhanced: string, text: string): SmtpReply => Object.freeze({ code, enhanced, text });

export const SMTP_REPLIES = Object.freeze({
  /** Recipient outside NIMBUS_RELAY_DOMAINS from a client outside NIMBUS_TRUSTED_NETWORKS. */
  RELAY_DENIED: reply(550, '5.7.1', 'Relay access denied'),
  /**
   * Recipient in a relay domain with sender-specified routing in its local part (`%`, `!` or
   * `@`, quoted or not: recipient-policy.ts) from a client outside NIMBUS_TRUSTED_NETWORKS, as
   * Postfix's allow_untrusted_routing=no refuses it.
   */
  ROUTING_REFUSED: reply(550, '5.7.1', 'Relay access denied: sender-specified routing (%, ! or @ in the local part) is refused'),
  /**
   * The NIMBUS_MAX_REFUSED_RECIPIENTS-th refused recipient of a client outside
   * NIMBUS_TRUSTED_NETWORKS: sent right after that refusal, then the connection is closed
   * (Postfix's smtpd_hard_error_limit, whose reply is `421 4.7.0 … Error: too many errors`).
   */
  TOO_MANY_REFUSED_RECIPIENTS: reply(421, '4.7.0', 'Too many refused recipients, closing connection'),
  /** XCLIENT or XFORWARD from a client outside NIMBUS_TRUSTED_NETWORKS (neither is advertised to it). */
  PROXY_COMMAND_REFUSED: reply(550, '5.7.0', 'XCLIENT and XFORWARD are accepted only from trusted networks'),
  /** SIZE= over the limit, or more bytes than the limit arrived in DATA. */
  MESSAGE_TOO_BIG: reply(552, '5.3.4', 'Message exceeds the fixed maximum message size'),
  /** NIMBUS_MAX_RECIPIENTS reached: the sender sends the rest in another transaction. */
  TOO_MANY_RECIPIENTS: reply(452, '4.5.3', 'Too many recipients'),
  /** The next hop could not be reached, timed out or dropped the connection. */
  NEXT_HOP_UNAVAILABLE: reply(451, '4.4.1', 'Next hop unavailable, try again later'),
  /** The inspection said reject (NIMBUS_SPAM_ACTION=reject). */
  SPAM_REJECTED: reply(550, '5.7.1', 'Message rejected as spam'),
  /**
   * End of DATA, the message taken care of (next hop accepted it, or it is in the Maildir or the
   * quarantine, or discarded). smtp-server writes this one's enhanced code itself, from its own
   * DATA_OK (2.6.0): message-path.ts returns only the text, and logs the reply as sent.
   */
  MESSAGE_ACCEPTED: reply(250, '2.6.0', 'Ok: queued as'),
  /** Writing to the local spool or Maildir failed: the sender retries, nothing is lost. */
  LOCAL_ERROR: reply(451, '4.3.0', 'Local error in processing, try again later'),
  /** SIGTERM received: no new transactions, the sender retries elsewhere or later. */
  SHUTTING_DOWN: reply(421, '4.3.2', 'Service shutting down, try again later'),
});

export type SmtpReplyName = keyof typeof SMTP_REPLIES;

/** An error smtp-server turns into the reply: `responseCode` plus the text with its enhanced code. */
export class SmtpReplyError extends Error {
  readonly responseCode: number;
  readonly reply: SmtpReply;
  constructor(replyValue: SmtpReply, detail?: string) {
    super(formatReplyText(replyValue, detail));
    this.name = 'SmtpReplyError';
    this.responseCode = replyValue.code;
    this.reply = replyValue;
  }
}

/** `5.7.1 Relay access denied` (+ `: detail`). */
export function formatReplyText(replyValue: SmtpReply, detail?: string): string {
  return `${replyValue.enhanced} ${replyValue.text}${detail ? ` ${detail}` : ''}`;
}

/** True when a reply text starts with an enhanced status code, e.g. `5.1.1 User unknown`. */
export const ENHANCED_CODE_PREFIX = /^[245]\.\d{1,3}\.\d{1,3}(?:\s|$)/;

/**
 * A reply of the next hop as the sender's reply. When the next hop gave no enhanced code, one is
 * derived from the class (x.0.0) so that every reply of the gateway carries one.
 */
export function mirroredReplyError(code: number, text: string): SmtpReplyError {
  const enhanced = ENHANCED_CODE_PREFIX.exec(text)?.[0]?.trim();
  const klass = Math.floor(code / 100);
  const value: SmtpReply = enhanced
    ? { code, enhanced, text: text.slice(enhanced.length).trim() }
    : { code, enhanced: `${klass}.0.0`, text };
  return new SmtpReplyError(value);
}
