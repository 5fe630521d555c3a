/**
 * Real processes for the statistics-through-the-gateway tests: `nimbus reputation` with a key from
 * `nimbus keys add` (helpers/nimbus.ts), an HTTP recorder between gateway and service (it forwards
 * to the real service, so the service still answers; it only remembers the bytes and can hold a
 * request or a response), `nimbus stats --json`, smtp-source as a sender, and a hard kill.
 *
 * Everything is async: the recorder lives in the test process, so a spawnSync would freeze it.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';
import type { StatsSummary } from '../../src/stats/index.js';
import { runNimbus, startReputationProcess, type CliResult, type NimbusProcess, type Owner, type ReputationProcess } from './nimbus.js';

/** `nimbus stats --json` against the same data dir (and env file) as the gateway. */
export async function statsJson(env: Record<string, string>): Promise<StatsSummary> {
  const result = await runNimbus(['stats', '--json'], env);
  if (result.code !== 0) throw new Error(`nimbus stats exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as StatsSummary;
}

/** Messages in the local statistics (all days). */
export function messagesIn(summary: StatsSummary): number {
  return summary.perDay.reduce((sum, day) => sum + day.messages, 0);
}

export interface ServiceProcess extends ReputationProcess {
  /** The token of the gateway's key. */
  readonly token: string;
  /** nimbus_reputation_records_ingested_total: records counted, resent batches excluded. */
  ingested(): Promise<number>;
}

/** A real `nimbus reputation` on 127.0.0.1 (port 0) with a fresh key for the gateway (sensor unless `role`). */
export async function startServiceProcess(owner: Owner, options: { role?: 'sensor' | 'reporter' | 'admin' } = {}): Promise<ServiceProcess> {
  const service = await startReputationProcess(owner);
  const { token } = await service.addKey(options.role ?? 'sensor');
  return Object.assign(service, {
    token,
    async ingested() {
      const text = await (await fetch(`${service.url}/metrics`)).text();
      const match = /^nimbus_reputation_records_ingested_total (\d+)/m.exec(text);
      return match ? Number(match[1]) : 0;
    },
  });
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
export function smtpSource(port: number, messages: number, sessions: number, options: { file?: string } = {}): Promise<Omit<CliResult, 'stdoutBytes'>> {
  const args = ['-m', String(messages), '-s', String(sessions), '-f', 'sender@source.test', '-t', 'rcpt@relay.test'];
  if (options.file) args.push('-F', options.file);
  return new Promise((done) => {
    execFile('/usr/sbin/smtp-source', [...args, `127.0.0.1:${port}`], { timeout: 120_000 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });
}

/**
 * Gateway workers in these tests: several processes share the data dir and each runs an uploader,
 * as in production (NIMBUS_WORKERS defaults to the number of cores).
 */
export const WORKERS = 2;

/** True once every worker logged `event` (after `since`, an ISO time or epoch ms, when given). */
export function everyWorker(gateway: NimbusProcess, event: string, since = 0): boolean {
  const workers = new Set(
    gateway.events(event)
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
