/**
 * Where the scan core, statistics and the quarantine plug into the relay. The gateway owns the
 * SMTP protocol and the bytes; the scanner owns the decision, the observer the record.
 *
 * Failure policy (STYLE 4): a scanner that throws lets the mail through with verdict `unknown`
 * (never lose mail to an analysis bug; the Scanner itself already answers `unknown` on its own
 * failures and timeouts); an observer that throws is logged and the reply stands (the next hop
 * already has the message: a 4xx now would duplicate it); a quarantine that throws gives the
 * sender a 4xx (the message is stored nowhere yet).
 */
import type { QuarantineSink } from '../quarantine/types.js';
import type { MessageObserver } from '../scan/recorder.js';
import type { MessageScanner } from '../scan/types.js';

export interface GatewayHooks {
  /** Absent: a scanner with no reputation (GTUBE and spam traps only). */
  readonly scanner?: MessageScanner;
  readonly observer?: MessageObserver;
  /** Absent: a `quarantine` verdict is tagged and relayed instead. */
  readonly quarantine?: QuarantineSink;
}
