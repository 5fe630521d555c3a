import { pino, type DestinationStream, type Logger } from 'pino';
import { maskCredentials, redactLogged } from './redact.js';

export type { Logger };

/**
 * JSON lines on stdout (journald under systemd), or `destination` (tests read the lines); one
 * root logger per process, passed down. No secret reaches a line (src/redact.ts): the message
 * text is masked, and so is whatever is logged under `err` or `error`. Fields that hold a
 * configured URL are masked where they are logged.
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: redactError, error: redactError },
    hooks: {
      logMethod(args, method) {
        const masked: unknown[] = args.map((arg) => (typeof arg === 'string' ? maskCredentials(arg) : arg));
        // Without a message pino takes the error's own, unmasked: give it the masked one.
        const first = args[0] as unknown;
        const error = first instanceof Error ? first : (first as { err?: unknown } | null)?.err;
        if (masked.length === 1 && error instanceof Error) masked.push(maskCredentials(error.message));
        method.apply(this, masked as Parameters<typeof method>);
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * An error as pino writes it (causes folded into message and stack, own fields kept), then
 * masked: error messages embed URLs with their passwords (node-fetch), and ioredis errors carry
 * the failed command, the password of an AUTH or HELLO included.
 */
function redactError(value: unknown): unknown {
  return redactLogged(value instanceof Error ? pino.stdSerializers.err(value) : value);
}
