/**
 * Nimbus as the real processes tests run, and the one way to start and stop them: `node --import
 * tsx src/cli.ts ARGS` with exactly the environment the test gives (plus PATH and TMPDIR: nothing
 * else leaks from the test runner, no HOME, no NIMBUS_* of the machine's), ready once it logged
 * the JSON event that says so, stopped by its PID (SIGTERM, then SIGKILL after a grace period)
 * at the test's teardown.
 *
 * - runNimbus: a command run to its end (`keys add`, `report`, `stats --json`, `check`, `config`).
 * - runNimbusOnTerminal: the same on a pseudo-terminal (`script` from util-linux), for a
 *   command that asks questions (`setup`): the test waits for each question and types the answer.
 * - startNimbus: a long-running command, ready at a log event of the caller's choice.
 * - startGatewayProcess / startReputationProcess: the two servers, on port 0 (the real port is
 *   read from their listening event) over a temp data dir of their own unless one is given.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { stopProcess } from './processes.js';
import { waitFor } from './wait.js';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(PROJECT_ROOT, 'src', 'cli.ts');

/**
 * Who stops a process: a test (its teardown), or null for a process a whole file shares from
 * `test.before` (AVA allows no teardown in hooks): then `test.after.always` must call stop().
 */
export type Owner = Pick<ExecutionContext, 'teardown'> | null;
export type LogLine = Record<string, unknown>;

function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}), ...env };
}

export interface CliResult {
  /** The exit code; -1 when the process was killed (by the timeout, say). */
  readonly code: number;
  readonly stdout: string;
  /** stdout byte for byte (a message `nimbus quarantine show` prints, say). */
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

/** `nimbus ARGS` to its end, with `input` on its stdin (empty when not given). */
export async function runNimbus(args: readonly string[], env: Record<string, string>, options: { input?: Buffer | string; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: PROJECT_ROOT, env: childEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  const stdout: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // A command that does not read its stdin closes it early: not an error of the test's.
  child.stdin.on('error', () => undefined);
  child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode ?? -1));
  }).finally(() => clearTimeout(timer));
  const stdoutBytes = Buffer.concat(stdout);
  return { code, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr };
}

export interface TerminalSession {
  /**
   * Waits until the terminal shows `text` after what earlier calls matched (escape sequences
   * removed), then types `answer` and Enter when one is given.
   */
  expect(text: string, answer?: string): Promise<void>;
  /** Types raw bytes (e.g. `\x03`, Ctrl-C). */
  type(bytes: string): void;
  /** Everything the terminal showed so far, escape sequences removed. */
  screen(): string;
  /** The exit code once the command ended (ended by the owner's teardown if the test fails first). */
  readonly exited: Promise<number>;
}

/** Terminal output as a reader sees it: without the cursor moves and colours readline writes. */
function plain(text: string): string {
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}

/**
 * `nimbus ARGS` on a pseudo-terminal: util-linux's `script` (in every Debian, bsdutils) runs it
 * with a pty as stdin and stdout, relays what the test types, and exits with its exit code.
 */
export function runNimbusOnTerminal(owner: Pick<ExecutionContext, 'teardown'>, args: readonly string[], env: Record<string, string>): TerminalSession {
  const quote = (word: string): string => `'${word.replaceAll("'", "'\\''")}'`;
  const command = [process.execPath, '--import', 'tsx', CLI, ...args].map(quote).join(' ');
  const child = spawn('script', ['--quiet', '--return', '--command', command, '/dev/null'], { cwd: PROJECT_ROOT, env: childEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let consumed = 0;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
  owner.teardown(() => stopProcess(child, 'SIGKILL'));
  return {
    async expect(text, answer) {
      const at = await waitFor(`the terminal to show ${JSON.stringify(text)}`, () => {
        const found = plain(output).indexOf(text, consumed);
        if (found >= 0) return found;
        if (child.exitCode !== null) throw new Error(`nimbus ${args.join(' ')} exited (${child.exitCode}) before showing ${JSON.stringify(text)}:\n${plain(output)}`);
        return undefined;
      });
      consumed = at + text.length;
      if (answer !== undefined) child.stdin.write(`${answer}\r`);
    },
    type(bytes) {
      child.stdin.write(bytes);
    },
    screen: () => plain(output),
    exited,
  };
}

export interface NimbusProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The environment it was started with (without PATH). */
  readonly env: Record<string, string>;
  /** Its exit code once it exited (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Everything it printed so far: JSON log lines on stdout, anything on stderr. */
  output(): string;
  /** Its JSON log lines so far (those of a gateway's workers included: they share its stdout). */
  logLines(): LogLine[];
  /** Its log lines with this `event`. */
  events(event: string): LogLine[];
  /** The first log line that matches; throws with the output if the process exits first. */
  waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** `signal` (SIGTERM), SIGKILL after a grace period; resolved once it exited. Safe to call twice. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartOptions {
  /** The event that says it is ready (e.g. `reputation_listening`); not waited for when absent. */
  readonly ready?: string;
  readonly timeoutMs?: number;
}

/** `nimbus ARGS` as a long-running child process, stopped at the owner's teardown. */
export async function startNimbus(owner: Owner, args: readonly string[], env: Record<string, string>, options: StartOptions = {}): Promise<NimbusProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: PROJECT_ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let partial = '';
  const lines: LogLine[] = [];
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    const complete = (partial + chunk).split('\n');
    partial = complete.pop()!;
    for (const line of complete) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const process_: NimbusProcess = {
    child,
    pid: child.pid!,
    env,
    exited,
    output: () => output,
    logLines: () => lines,
    events: (event) => lines.filter((line) => line.event === event),
    waitForLog: (what, match, timeoutMs = 60_000) =>
      waitFor(`nimbus ${args.join(' ')} to log ${what}`, () => {
        const found = lines.find(match);
        if (found) return found;
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nimbus ${args.join(' ')} exited (${child.exitCode ?? child.signalCode}) before logging ${what}:\n${output}`);
        return undefined;
      }, timeoutMs),
    stop: (signal = 'SIGTERM') => stopProcess(child, signal),
  };
  owner?.teardown(() => process_.stop());
  if (options.ready) {
    try {
      await process_.waitForLog(options.ready, (line) => line.event === options.ready, options.timeoutMs);
    } catch (error) {
      await process_.stop('SIGKILL');
      throw error;
    }
  }
  return process_;
}

/** A temp dir for a process's data unless `given`; removed at the owner's teardown (after the stop). */
function dataDirFor(owner: Owner, given: string | undefined, prefix: string): string {
  if (given) return given;
  const dir = mkdtempSync(join(tmpdir(), prefix));
  owner?.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface GatewayProcess extends NimbusProcess {
  /** The SMTP port it listens on. */
  readonly port: number;
  readonly dataDir: string;
}

/**
 * `nimbus gateway` on 127.0.0.1 port 0 unless NIMBUS_LISTEN is given (Postfix's master.cf may
 * need the port first), logging at info; ready once it listens, with NIMBUS_WORKERS > 1 once
 * every worker does. `waitReady: false` returns at once (a gateway expected not to start).
 */
export async function startGatewayProcess(owner: Owner, env: Record<string, string>, options: { waitReady?: boolean } = {}): Promise<GatewayProcess> {
  const dataDir = dataDirFor(owner, env.NIMBUS_DATA_DIR, 'nimbus-gw-data-');
  const full = { NIMBUS_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'info', ...env, NIMBUS_DATA_DIR: dataDir };
  const gateway = await startNimbus(owner, ['gateway'], full);
  let port = 0;
  if (options.waitReady ?? true) {
    try {
      const listening = await gateway.waitForLog('gateway.listening', (line) => line.event === 'gateway.listening');
      // A worker's line (it names its worker): the supervisor says when all of them listen.
      if (listening.worker !== undefined) await gateway.waitForLog('supervisor.workers_ready', (line) => line.event === 'supervisor.workers_ready', 90_000);
      port = Number(listening.port);
    } catch (error) {
      await gateway.stop('SIGKILL');
      throw error;
    }
  }
  return Object.assign(gateway, { port, dataDir });
}

export interface ReputationProcess extends NimbusProcess {
  readonly url: string;
  readonly dataDir: string;
  /** A key made with `nimbus keys add --role ROLE` on the service's store: its token (as printed) and id. */
  addKey(role: 'admin' | 'sensor' | 'reporter', label?: string): Promise<{ token: string; id: string }>;
  revokeKey(id: string): Promise<void>;
}

/** `nimbus reputation` on 127.0.0.1 port 0 over a SQLite store in a temp dir (unless `env` says otherwise). */
export async function startReputationProcess(owner: Owner, env: Record<string, string> = {}): Promise<ReputationProcess> {
  const dataDir = dataDirFor(owner, env.NIMBUS_DATA_DIR, 'nimbus-rep-data-');
  const full = { NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'info', ...env, NIMBUS_DATA_DIR: dataDir };
  const service = await startNimbus(owner, ['reputation'], full, { ready: 'reputation.listening' });
  const url = String(service.events('reputation.listening')[0]!.url);
  return Object.assign(service, {
    url,
    dataDir,
    async addKey(role: 'admin' | 'sensor' | 'reporter', label = `${role} under test`) {
      const added = await runNimbus(['keys', 'add', '--role', role, '--label', label], full);
      if (added.code !== 0) throw new Error(`nimbus keys add failed (${added.code}): ${added.stderr}`);
      const token = added.stdout.trim();
      return { token, id: token.split('_')[1]! };
    },
    async revokeKey(id: string) {
      const revoked = await runNimbus(['keys', 'revoke', id], full);
      if (revoked.code !== 0) throw new Error(`nimbus keys revoke failed (${revoked.code}): ${revoked.stderr}`);
    },
  });
}
