/**
 * HTTP statuses of the reputation service as named constants, and the one error class routes
 * throw; the error handler in service.ts turns it into `{error: CODE, message}`.
 */
export const HTTP = {
  OK: 200,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED: 415,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const;

export const ERROR_CODES = {
  AUTH_REJECTED: 'AUTH_REJECTED',
  FORBIDDEN: 'FORBIDDEN',
  BAD_REQUEST: 'BAD_REQUEST',
  NOT_FOUND: 'NOT_FOUND',
  TOO_LARGE: 'TOO_LARGE',
  UNSUPPORTED: 'UNSUPPORTED',
  RATE_LIMITED: 'RATE_LIMITED',
  SERVER_ERROR: 'SERVER_ERROR',
  /** 503 with Retry-After: the store (Redis) cannot be reached; nothing was changed or answered. */
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
} as const;

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}
