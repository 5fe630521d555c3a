/**
 * How a one-process Nimbus command (`nimbus reputation`, `nimbus console`) runs until told to
 * stop: SIGTERM or SIGINT closes it once (a second signal while closing changes nothing) and
 * resolves with the exit code, 1 when closing failed; SIGHUP is the command's own (a reload, or
 * a note that it needs a restart). The gateway and milter have their supervisor and workers
 * instead (src/gateway/supervisor.ts, front-process.ts).
 */
import type { Logger } from 'pino';

export interface StopOnSignals {
  /** The `process.signal` log line's message, e.g. "stopping: finishing requests in flight". */
  readonly stoppingMessage: string;
  /** Closes everything the process holds. */
  readonly close: () => Promise<void>;
  readonly onHangup: () => void;
}

/** Resolves with the exit code once SIGTERM or SIGINT has closed the process. */
export function runUntilStopped(log: Logger, options: StopOnSignals): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'process.signal', signal }, options.stoppingMessage);
      options.close().then(
        () => resolve(0),
        (error: unknown) => {
          log.error({ event: 'process.close_failed', err: error }, 'closing failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', options.onHangup);
  });
}
