/**
 * Base class of Nimbus's own errors: a stable `code` that logs, tests and docs refer to, and
 * the cause kept. Protocol replies (SMTP codes, HTTP statuses) live beside the protocol
 * (src/gateway/smtp-replies.ts, src/reputation/service/) and are mapped from these in one place.
 */
export class NimbusError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}
