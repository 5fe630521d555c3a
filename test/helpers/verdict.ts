/**
 * Peers for the verdict tests: `nimbus reputation` as a real process with keys made by
 * `nimbus keys add`, the other CLI commands run as processes, corpus messages made sendable, and
 * a hostile "service" that accepts connections and never answers.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ExecutionContext } from 'ava';
import { PROJECT_ROOT, startNimbusGateway, type NimbusProcess } from './postfix.js';
import { sinkMessage, tempDir } from './smtp.js';

const CLI = join(PROJECT_ROOT, 'src', 'cli.ts');
export const CORPUS = '/work/shared/corpus';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `nimbus ARGS` in its own process with only `env` (plus PATH/HOME): nothing leaks from the test runner. */
export async function nimbus(args: readonly string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI, ...args],
      { cwd: PROJECT_ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env }, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

export interface ReputationProcess {
  readonly url: string;
  readonly env: Record<string, string>;
  readonly child: ChildProcess;
  /** A key made with `nimbus keys add --role ROLE`: its token (as printed) and id. */
  addKey(role: 'admin' | 'sensor' | 'reporter'): Promise<{ token: string; id: string }>;
  revokeKey(id: string): Promise<void>;
}

/** `nimbus reputation` over its own SQLite store in a temp dir, on a free loopback port; stopped at teardown. */
export async function startReputationProcess(t: ExecutionContext): Promise<ReputationProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-verdict-rep-'));
  const env = { NIMBUS_DATA_DIR: dir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'info' };
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'reputation'], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nimbus reputation did not listen within 60 s: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { event?: string; url?: string };
        if (entry.event === 'reputation.listening' && entry.url) {
          clearTimeout(timer);
          resolve(entry.url);
        }
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`nimbus reputation exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    env,
    child,
    async addKey(role) {
      const added = await nimbus(['keys', 'add', '--role', role, '--label', `verdict test ${role}`], env);
      if (added.code !== 0) throw new Error(`nimbus keys add failed (${added.code}): ${added.stderr}`);
      const token = added.stdout.trim();
      return { token, id: token.split('_')[1]! };
    },
    async revokeKey(id) {
      const revoked = await nimbus(['keys', 'revoke', id], env);
      if (revoked.code !== 0) throw new Error(`nimbus keys revoke failed (${revoked.code}): ${revoked.stderr}`);
    },
  };
}

/** A gateway process stopped at teardown, with its data dir under the test's control. */
export async function gateway(t: ExecutionContext, env: Record<string, string>): Promise<NimbusProcess & { env: Record<string, string> }> {
  const dataDir = env.NIMBUS_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'nimbus-verdict-gw-'));
  const full = { NIMBUS_DATA_DIR: dataDir, NIMBUS_WORKERS: '1', ...env };
  const process_ = await startNimbusGateway(full);
  t.teardown(async () => {
    await process_.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return Object.assign(process_, { env: full, dataDir });
}

/** smtp-sink ends each dump with an empty line of its own. */
export function relayedMessage(dump: Buffer): Buffer {
  const message = sinkMessage(dump);
  return message.at(-1) === 0x0a && message.at(-2) === 0x0a ? message.subarray(0, -1) : message;
}

/**
 * Writes a message for `swaks --data @FILE`. swaks ends DATA with CRLF . CRLF after the file's
 * content, so the file leaves out the message's own final CRLF: then exactly `message` is sent.
 */
export function dataFile(dir: string, name: string, message: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, message.subarray(-2).toString('latin1') === '\r\n' ? message.subarray(0, -2) : message);
  return path;
}

export function workDir(t: ExecutionContext): string {
  const dir = tempDir('nimbus-verdict-work-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A corpus message as SMTP DATA: without the mbox envelope line, with CRLF line ends. */
export function corpusMessage(relative: string): Buffer {
  const text = readFileSync(join(CORPUS, relative), 'latin1');
  const withoutEnvelope = text.startsWith('From ') ? text.slice(text.indexOf('\n') + 1) : text;
  return Buffer.from(withoutEnvelope.replace(/\r?\n/g, '\r\n'), 'latin1');
}

/** The header fields of a message, unfolded, as name (lower case) and value. */
export function headerFields(message: Buffer | string): { name: string; value: string }[] {
  const text = typeof message === 'string' ? message : message.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const block = end >= 0 ? text.slice(0, end) : text;
  return block
    .replace(/\r?\n[ \t]+/g, ' ')
    .split(/\r?\n/)
    .filter((line) => line.includes(':'))
    .map((line) => ({ name: line.slice(0, line.indexOf(':')).toLowerCase(), value: line.slice(line.indexOf(':') + 1).trim() }));
}

export function header(message: Buffer | string, name: string): string[] {
  return headerFields(message).filter((field) => field.name === name.toLowerCase()).map((field) => field.value);
}

export interface SilentPeer {
  readonly url: string;
  /** How many requests for `path` (e.g. `POST /v1/lookup`) arrived so far. */
  requests(requestLine: string): number;
  stop(): Promise<void>;
}

/**
 * A TCP server that accepts every connection, reads what it is sent and never answers: what a
 * hung reputation service (or a black-holing middlebox) looks like to the gateway.
 */
export async function startSilentPeer(t: ExecutionContext): Promise<SilentPeer> {
  const sockets = new Set<Socket>();
  let received = '';
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
    return stopped;
  };
  t.teardown(stop);
  return {
    url: `http://127.0.0.1:${port}`,
    requests: (requestLine) => received.split(`${requestLine} `).length - 1,
    stop,
  };
}
