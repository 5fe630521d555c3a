import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout (journald under systemd); one root logger per process, passed down. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime });
}
