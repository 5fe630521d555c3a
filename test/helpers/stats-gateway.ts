/**
 * Real processes for the statistics-through-the-gateway tests: `nimbus reputation` with a key from
 * `nimbus keys add --role sensor`, an HTTP recorder between gateway and service (it forwards to
 * the real service, so the service still answers; it only remembers the bytes and can hold a
 * request or a response), `nimbus stats --json`, and senders (smtp-source, and a counting sender
 * that knows exactly which messages got 250).
 *
 * Everything is async: the recorder lives in the test process, so a spawnSync would freeze it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { StatsSummary } from '../../src/stats/index.js';

const CLI = resolve('src/cli.ts');

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `nimbus ARGS` as a child process with exactly `env` (plus PATH/HOME). */
export function nimbus(args: readonly string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI, ...args],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** `nimbus stats --json` against the same data dir (and env file) as the gateway. */
export async function statsJson(env: Record<string, string>): Promise<StatsSummary> {
  const result = await nimbus(['stats', '--json'], env);
  if (result.code !== 0) throw new Error(`nimbus stats exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as StatsSummary;
}

/** Messages in the local statistics (all days). */
export function messagesIn(summary: StatsSummary): number {
  return summary.perDay.reduce((sum, day) => sum + day.messages, 0);
}

export interface ServiceProcess {
  readonly url: string;
  readonly token: string;
  readonly dataDir: string;
  /** nimbus_reputation_records_ingested_total: records counted, resent batches excluded. */
  ingested(): Promise<number>;
  /** Another key (`nimbus keys add` on the service's store), e.g. an admin key to read samples. */
  addKey(role: 'sensor' | 'reporter' | 'admin'): Promise<string>;
  stop(): Promise<void>;
}

/** A real `nimbus reputation` on 127.0.0.1 (port 0) with a fresh key for the gateway (sensor unless `role`). */
export async function startServiceProcess(options: { role?: 'sensor' | 'reporter' | 'admin' } = {}): Promise<ServiceProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nimbus-svc-'));
  const env = { NIMBUS_DATA_DIR: dataDir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'info' };
  const addKey = async (role: 'sensor' | 'reporter' | 'admin'): Promise<string> => {
    const added = await nimbus(['keys', 'add', '--role', role, '--label', `${role} under test`], env);
    if (added.code !== 0) throw new Error(`nimbus keys add failed: ${added.stderr}`);
    return added.stdout.trim();
  };
  const token = await addKey(options.role ?? 'sensor');
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'reputation'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const url = await new Promise<string>((done, fail) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { event?: string; url?: string };
        if (entry.event === 'reputation.listening') done(entry.url!);
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => fail(new Error(`nimbus reputation exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    token,
    dataDir,
    addKey,
    async ingested() {
      const text = await (await fetch(`${url}/metrics`)).text();
      const match = /^nimbus_reputation_records_ingested_total (\d+)/m.exec(text);
      return match ? Number(match[1]) : 0;
    },
    async stop() {
      await stopProcess(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * What the recorder does with a request:
 * - forward: pass it on and pass the answer back;
 * - hold-request: keep it (the service never sees it) until the client gives up;
 * - hold-response: pass it on (the service ingests it) but never pass the answer back;
 * - cut-response: pass it on, then close the gateway's connection instead of answering (an
 *   acknowledgement lost on the way back).
 */
export type RecorderPolicy = 'forward' | 'hold-request' | 'hold-response' | 'cut-response';

export interface RecordedRequest {
  readonly n: number;
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** Date.now() when the whole request had arrived. */
  readonly arrived: number;
  policy: RecorderPolicy;
  /** The service's status, once it answered (null while held before the service). */
  status: number | null;
  responseBody: string | null;
  /** Date.now() when the gateway closed the connection before getting the answer. */
  clientGaveUp: number | null;
}

export interface Recorder {
  readonly url: string;
  readonly requests: RecordedRequest[];
  policy: (request: RecordedRequest) => RecorderPolicy;
  /** Every request as text: request line, headers, body. */
  text(): string;
  /** POST /v1/reports bodies, parsed. */
  reports(): { request: RecordedRequest; batch: { batchId: string; records: Record<string, unknown>[] } }[];
  close(): Promise<void>;
}

/** A node:http server in front of the real service that records every request the gateway makes. */
export async function startRecorder(target: string): Promise<Recorder> {
  const upstream = new URL(target);
  const agent = new Agent({ keepAlive: true });
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const entry: RecordedRequest = {
        n: requests.length + 1,
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
        arrived: Date.now(),
        policy: 'forward',
        status: null,
        responseBody: null,
        clientGaveUp: null,
      };
      requests.push(entry);
      entry.policy = recorder.policy(entry);
      res.on('close', () => {
        if (!res.writableFinished && entry.policy !== 'cut-response') entry.clientGaveUp = Date.now();
      });
      if (entry.policy === 'hold-request') return;
      const headers = { ...req.headers, host: upstream.host };
      const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent }, (answer) => {
        const body: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => body.push(chunk));
        answer.on('end', () => {
          entry.status = answer.statusCode ?? 0;
          entry.responseBody = Buffer.concat(body).toString('utf8');
          if (entry.policy === 'hold-response' || res.destroyed) return;
          if (entry.policy === 'cut-response') {
            res.destroy();
            return;
          }
          res.writeHead(entry.status, answer.headers);
          res.end(Buffer.concat(body));
        });
      });
      forward.on('error', () => res.destroy());
      forward.end(entry.body);
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  const recorder: Recorder = {
    url: `http://127.0.0.1:${port}`,
    requests,
    policy: () => 'forward',
    text: () =>
      requests
        .map((r) => `${r.method} ${r.path}\n${Object.entries(r.headers).map(([k, v]) => `${k}: ${String(v)}`).join('\n')}\n\n${r.body.toString('utf8')}`)
        .join('\n'),
    reports: () =>
      requests
        .filter((r) => r.method === 'POST' && r.path === '/v1/reports')
        .map((request) => ({ request, batch: JSON.parse(request.body.toString('utf8')) as { batchId: string; records: Record<string, unknown>[] } })),
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        agent.destroy();
        server.close(() => done());
      }),
  };
  return recorder;
}

/** Writes an env file (KEY=value lines) for NIMBUS_ENV_FILE. */
export function writeEnvFile(path: string, values: Record<string, string>): void {
  writeFileSync(path, `${Object.entries(values).map(([k, v]) => `${k}=${v}`).join('\n')}\n`);
}

/** smtp-source: `messages` messages over `sessions` parallel sessions; resolves with its exit code. */
export function smtpSource(port: number, messages: number, sessions: number, options: { file?: string } = {}): Promise<CliResult> {
  const args = ['-m', String(messages), '-s', String(sessions), '-f', 'sender@source.test', '-t', 'rcpt@relay.test'];
  if (options.file) args.push('-F', options.file);
  return new Promise((done) => {
    execFile('/usr/sbin/smtp-source', [...args, `127.0.0.1:${port}`], { timeout: 120_000 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });
}

/**
 * One message over one SMTP session; resolves with the reply to the final dot (null when the
 * connection ended before it, e.g. the gateway was killed).
 */
export function sendOne(port: number, message: string): Promise<string | null> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    const script = ['EHLO sender.test', 'MAIL FROM:<sender@source.test>', 'RCPT TO:<rcpt@relay.test>', 'DATA', `${message.replace(/\r?\n/g, '\r\n')}\r\n.`, 'QUIT'];
    let step = 0;
    let buffer = '';
    let final: string | null = null;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let index: number;
      while ((index = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, index);
        buffer = buffer.slice(index + 2);
        if (/^\d{3}-/.test(line)) continue;
        // Replies: greeting, EHLO, MAIL, RCPT, DATA (354), final dot, QUIT.
        if (step === 5) final = line;
        if (step < script.length) socket.write(`${script[step]}\r\n`);
        step++;
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => done(final));
  });
}

/** Log lines of `event` so far. */
export function events(gateway: { logLines(): Record<string, unknown>[] }, event: string): Record<string, unknown>[] {
  return gateway.logLines().filter((line) => line.event === event);
}

/** Polls an async condition every 200 ms; throws naming `what` after timeoutMs. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Gateway workers in these tests: several processes share the data dir and each runs an uploader,
 * as in production (NIMBUS_WORKERS defaults to the number of cores).
 */
export const WORKERS = 2;

/** True once every worker logged `event` (after `since`, an ISO time or epoch ms, when given). */
export function everyWorker(gateway: { logLines(): Record<string, unknown>[] }, event: string, since = 0): boolean {
  const workers = new Set(
    events(gateway, event)
      .filter((line) => new Date(line.time as string | number).getTime() >= since)
      .map((line) => line.worker ?? 'single'),
  );
  return workers.size >= WORKERS || workers.has('single');
}

/** The pids of `pid`'s children (gateway workers of a node:cluster primary), from /proc. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/**
 * kill -9 of a whole gateway, as a power cut or the OOM killer would do it: the workers first
 * (killing the primary alone would let them finish gracefully), then the primary before it can
 * replace them.
 */
export async function killHard(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((done) => (child.exitCode !== null || child.signalCode !== null ? done() : child.once('exit', () => done())));
  const workers = childPids(child.pid!);
  for (const pid of workers) process.kill(pid, 'SIGKILL');
  child.kill('SIGKILL');
  // The workers may stay zombies (nobody reaps them here): the store tells a zombie from a live
  // uploader, which is part of what the crash test proves.
  await exited;
}
