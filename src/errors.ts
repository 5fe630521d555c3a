/**
 * Nimbus's own errors: one registry of codes, and the base class that carries one. A code is
 * stable: logs, exit messages, tests and docs/reference/errors.md refer to it, and a test keeps
 * that page and this table in step. Protocol replies live beside each protocol
 * (src/gateway/smtp-replies.ts, src/reputation/service/errors.ts) and are mapped from these in
 * one place there.
 */
export const ERROR_CODES = Object.freeze({
  // Configuration (src/config/).
  CONFIG_INVALID: 'a variable has a wrong value, or variables contradict each other',
  // Stores (src/reputation/, src/stats/).
  STORE_OPEN_FAILED: 'the reputation store cannot be opened (file, Redis unreachable or refusing, upgrade failed)',
  STORE_LOCKED: 'another nimbus reputation already writes this SQLite file',
  STATS_CLOSED: 'a statistics record after the store was closed',
  STATS_WRITER_FAILED: 'the statistics writer thread failed or exited',
  STATS_WRITE_FAILED: 'the writer thread could not commit a record',
  // The relay's next hop (src/gateway/next-hop.ts).
  NEXT_HOP_UNREACHABLE: 'connecting to the next hop failed',
  NEXT_HOP_TIMEOUT: 'the next hop did not connect or answer in time',
  NEXT_HOP_DROPPED: 'the next hop closed the connection, or a socket error ended it',
  NEXT_HOP_PROTOCOL: 'the next hop did not greet with 220, refused EHLO/HELO, or sent a malformed reply',
  // The milter (src/milter/).
  MILTER_PROTOCOL: 'an MTA sent bytes that are not the milter protocol: a packet over the size cap, truncated, malformed, or out of order',
  // The quarantine (src/quarantine/).
  QUARANTINE_BAD_ID: 'not an id the quarantine makes',
  QUARANTINE_NOT_FOUND: 'no quarantined message with that id',
  QUARANTINE_BUSY: 'another process is releasing or deleting the entry',
  QUARANTINE_RELEASE_REFUSED: 'the next hop refused the released message or one of its recipients',
  QUARANTINE_RELEASE_FAILED: 'the release could not be made',
  // The console (src/console/).
  CONSOLE_USERS_UNREADABLE: 'the console\'s user file cannot be read',
  CONSOLE_BAD_USER: 'a console user name with characters other than letters, digits, dots, dashes, underscores',
  CONSOLE_WEAK_PASSWORD: 'a console password shorter than 10 characters, or the two entries differ',
  // The reputation service's client (src/reputation/client.ts): what a call to the service met.
  AUTH_REJECTED: 'the service refused the key (401)',
  FORBIDDEN: "the key's role is too small for the call (403)",
  BAD_REQUEST: 'the service refused the request (another 4xx)',
  TOO_LARGE: 'the service refused the body as too large (413)',
  RATE_LIMITED: 'the key is over its rate (429)',
  SERVER_ERROR: 'the service failed (a 5xx other than 503)',
  UNAVAILABLE: 'no answer from the service, or 503 (its store is unreachable)',
  BAD_RESPONSE: 'a 2xx whose body does not match the wire schema',
} as const);

export type ErrorCode = keyof typeof ERROR_CODES;

/** Base class of Nimbus's own errors: a registered `code`, and the cause kept. */
export class NimbusError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}
