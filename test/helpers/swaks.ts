/** swaks as the sending MTA: the one wrapper every test sends through. */
import { execFile } from 'node:child_process';

export interface SwaksResult {
  readonly exitCode: number;
  /** swaks's transcript (`->` what it sent, `<-` replies, `<**` failed replies), informational lines left out. */
  readonly output: string;
  /** The server's reply lines (`<-` and `<**` lines), without the arrows. */
  readonly replies: string[];
}

/**
 * Runs swaks against host:port (127.0.0.1 unless `host`). `args` are swaks options (e.g. `--to`,
 * `--data @FILE`, `--from '<>'`, `--xclient`); never throws on SMTP failure: the exit code and
 * replies say what happened.
 */
export async function swaks(port: number, args: readonly string[], options: { host?: string; timeoutMs?: number } = {}): Promise<SwaksResult> {
  return new Promise((resolve) => {
    execFile(
      'swaks',
      ['--server', options.host ?? '127.0.0.1', '--port', String(port), '--timeout', '120', '--hide-informational', ...args],
      { timeout: options.timeoutMs ?? 180_000, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        const replies = output
          .split('\n')
          .filter((line) => /^\s*<(-|\*\*)\s/.test(line))
          .map((line) => line.replace(/^\s*<(-|\*\*)\s+/, '').trimEnd());
        const code = error && typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : error ? 1 : 0;
        resolve({ exitCode: code, output, replies });
      },
    );
  });
}
