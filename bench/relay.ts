/**
 * `npm run bench -- relay [--json] [--quick] [--write] [--reuse] [--auth [--pairs=N]] [--messages=M] [--warmup=S] [--only=limit,haraka,nimbus]`: relay
 * throughput, added latency and memory, all on loopback.
 *
 * - Load: Postfix's smtp-source, one message per connection (no -d, as inbound MX traffic is),
 *   or with --reuse several per connection (-d, as an MTA with a connection cache sends),
 *   4 smtp-source processes each sending one of 4 distinct message files (so the gateway does
 *   not see one message over and over), sessions split evenly between them.
 * - Next hop: Postfix's smtp-sink (`-u nobody` when run as root), a fresh one per run.
 * - Three servers per mix and concurrency, in the same run: none (smtp-source straight to the
 *   sink: the limit of the harness), Haraka (generated config dir: only `rcpt_to.in_host_list`
 *   and `queue/smtp_forward` to the sink; `nodes` unset, i.e. Haraka's default single process)
 *   and Nimbus as shipped: the sources compiled with tsc into the work dir, then
 *   `node dist/cli.js gateway` (what the systemd unit runs), full analysis, embedded store,
 *   fresh data dir, NIMBUS_WORKERS left at its default (the number of cores) unless --workers=N;
 *   pino logs to a file, as journald would take them. The load comes from 127.0.0.1, a trusted
 *   network by default (as Postfix in front of Nimbus is); --untrusted sets
 *   NIMBUS_TRUSTED_NETWORKS to a network the load is not in (as MX traffic from the Internet).
 * - Warm-up: before each measurement the same load runs for --warmup=S seconds (default 10; 1
 *   with --quick), repeated whole, so every server is measured in its steady state (JIT done,
 *   pools and caches full), as a relay that runs for weeks is; nothing of it is counted.
 * - messages/s: messages / wall time from the start of the first smtp-source to the exit of the
 *   last. smtp-source aborts on any unexpected reply (no -A), so a run that exits 0 relayed
 *   every message with a 250, which both relays give only after the sink accepted the message.
 * - Added latency: a probe client in this process sends the same mix sequentially, one message
 *   per connection, for as long as the load runs, and times each transaction from the end of
 *   DATA (the "." sent) to the final reply: what a before-queue relay makes the sender wait.
 *   Added latency at p50/p99 = that percentile through the relay minus the same percentile
 *   straight to the sink under the same load (the limit run).
 * - Peak RSS: /proc/PID/status VmHWM of every process of the server's tree, polled every
 *   100 ms and summed (for one process: exactly its peak resident set; for a tree it counts the
 *   pages the processes share once per process, so it is an upper bound).
 * - CPU per message: utime + stime of the server's process tree over the measured load, divided
 *   by the messages (less sensitive than messages/s to other work on a shared machine).
 * - Load average: taken before each measurement and reported with it.
 * - --cpu-prof=DIR writes a V8 CPU profile of every Nimbus process into DIR.
 * - --node-args=A,B passes extra flags to node for Nimbus (the cluster workers inherit them), to
 *   measure a V8 setting before shipping it.
 * - --auth runs Nimbus with NIMBUS_AUTH_CHECKS=on against a loopback DNS server answering at once,
 *   every message DKIM-signed by the load's sender domain (bench/relay-auth.ts); the image mix's
 *   corpus messages keep their own senders, whose names that server refuses (temperror, at once).
 * - --auth --pairs=N compares Nimbus without and with the checks in N alternating pairs of runs
 *   (the same signed messages on both sides), and prints every run, each side's lowest, median and
 *   highest CPU ms/msg, and each pair's ratio (bench/relay-auth.ts says how).
 * - --messages=M sends M messages per measured load (and per warm-up round) instead of the mix's
 *   default (text5k 3000, image40k 2000): a longer load, a steadier CPU figure.
 * - --mixes=text5k,image40k,image40k-new and --sessions=20,100 run a subset (figures for a quick look; --mixes=
 *   alone: the memory cases only); --no-memory skips the memory cases.
 * - Memory: one 50 MB message (NIMBUS_MAX_MESSAGE_SIZE raised to 60MB for it), and 200 × 1 MB
 *   messages over 200 concurrent sessions; peak RSS of Nimbus for each.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { comparePairs, startAuthBench, type AuthBench } from './relay-auth.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = join(here, '..');
const CORPUS = join(ROOT, '..', 'shared', 'corpus');
export const DOMAIN = 'bench.test';
export const SENDER = 'load@source.test';
export const RECIPIENT = `user@${DOMAIN}`;
export const IS_ROOT = process.getuid?.() === 0;
/** Seconds of load before each measurement (--warmup=S): Nimbus reaches its steady state after ~7 s. */
const DEFAULT_WARMUP_SECONDS = 10;

type Server = 'limit' | 'haraka' | 'nimbus';
/**
 * image40k-new: the image mix with NIMBUS_IMAGE_HASH_CACHE=0, so every image is decoded as if new.
 * The mix repeats 4 messages, so in image40k (as shipped) every image after the first copies is
 * answered from the gateway's hash cache: the two rows bracket real traffic, where some images
 * (logos, a campaign's picture) come back and others are new.
 */
type MixName = 'text5k' | 'image40k' | 'image40k-new';

interface RunFigures {
  messages: number;
  seconds: number;
  mps: number;
  latency_p50_ms: number;
  latency_p99_ms: number;
  probes: number;
  rss_mb: number | null;
  cpu_ms_per_msg: number | null;
  loadavg: number[];
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function waitForPort(port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what}: nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

// ---------- message mixes ----------

/** ~5 KB of plain text with links, deterministic, distinct per variant. */
export function textMessage(variant: number): string {
  const words = ['invoice', 'meeting', 'quarterly', 'report', 'shipment', 'account', 'update', 'schedule', 'review',
    'customer', 'delivery', 'project', 'budget', 'summary', 'approval', 'contract', 'renewal', 'payment', 'team', 'office'];
  let seed = 1000 + variant * 7919;
  const next = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
  const lines: string[] = [];
  let size = 0;
  let paragraph = 0;
  while (size < 5000) {
    const sentence = Array.from({ length: 12 }, () => words[next() % words.length]).join(' ');
    const line = paragraph % 4 === 3
      ? `See https://www.example-${variant}-${paragraph % 7}.com/path/${next() % 100000}?ref=news for details.`
      : `${sentence[0]!.toUpperCase()}${sentence.slice(1)}.`;
    lines.push(line);
    size += line.length + 1;
    paragraph += 1;
  }
  return [
    `From: Newsletter ${variant} <news${variant}@source.test>`,
    `To: <${RECIPIENT}>`,
    `Subject: Weekly update number ${variant}`,
    `Date: Mon, 23 Nov 2026 08:00:0${variant} +0000`,
    `Message-ID: <bench-text-${variant}@source.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    ...lines,
    '',
  ].join('\n');
}

/** Corpus spam with an image part, closest to 40 KB: the `variants` nearest files. */
export function imageMessages(variants: number): { name: string; text: string }[] {
  const manifest = readFileSync(join(CORPUS, 'MANIFEST.tsv'), 'utf8').split('\n').slice(1);
  const rows = manifest.map((line) => line.split('\t')).filter((f) => f[0] === 'spam' && f[7] === '1');
  rows.sort((a, b) => Math.abs(Number(a[5]) - 40_000) - Math.abs(Number(b[5]) - 40_000) || a[1]!.localeCompare(b[1]!));
  return rows.slice(0, variants).map((f) => {
    // Drop the mbox envelope line: it is not part of the message (corpus README).
    const raw = readFileSync(join(CORPUS, f[1]!), 'latin1').replace(/^From [^\n]*\n/, '');
    return { name: f[1]!, text: raw };
  });
}

/** A message with one base64 attachment of about `bytes` bytes (memory runs). */
export function bigMessage(bytes: number, label: string): string {
  const header = [
    `From: <big@source.test>`, `To: <${RECIPIENT}>`, `Subject: ${label}`, `Message-ID: <bench-${label}@source.test>`,
    'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain', '',
    'Large attachment follows.', '', '--b1', 'Content-Type: application/octet-stream; name="data.bin"',
    'Content-Transfer-Encoding: base64', 'Content-Disposition: attachment; filename="data.bin"', '',
  ].join('\n');
  const raw = Buffer.alloc(Math.floor((bytes * 3) / 4));
  let x = 12345;
  for (let i = 0; i < raw.length; i += 1) { x = (x * 1664525 + 1013904223) >>> 0; raw[i] = x >>> 24; }
  const b64 = raw.toString('base64').replace(/.{76}/g, '$&\n');
  return `${header}\n${b64}\n--b1--\n`;
}

// ---------- processes ----------

export interface Started { child: ChildProcess; port: number; stop(): Promise<void> }

export function track(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = track(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export async function startSink(workDir: string): Promise<Started> {
  const port = await freePort();
  const args = [...(IS_ROOT ? ['-u', 'nobody'] : []), '-m', '2000', `127.0.0.1:${port}`, '2048'];
  const child = spawn('/usr/sbin/smtp-sink', args, { stdio: ['ignore', 'ignore', openSync(join(workDir, 'sink.err'), 'a')] });
  await waitForPort(port, 10_000, 'smtp-sink');
  return { child, port, stop: () => stopChild(child) };
}

async function startHaraka(workDir: string, sinkPort: number): Promise<Started> {
  const port = await freePort();
  const dir = join(workDir, 'haraka');
  rmSync(dir, { recursive: true, force: true });
  // Haraka reads connection.ini etc. from the config dir only: start from its shipped defaults,
  // then keep exactly the two plugins the comparison allows.
  cpSync(join(ROOT, 'node_modules', 'Haraka', 'config'), join(dir, 'config'), { recursive: true });
  rmSync(join(dir, 'config', 'tls.ini'), { force: true });
  writeFileSync(join(dir, 'config', 'smtp.ini'), `listen=127.0.0.1:${port}\n`);
  writeFileSync(join(dir, 'config', 'plugins'), 'rcpt_to.in_host_list\nqueue/smtp_forward\n');
  writeFileSync(join(dir, 'config', 'host_list'), `${DOMAIN}\n`);
  writeFileSync(join(dir, 'config', 'smtp_forward.ini'), `host=127.0.0.1\nport=${sinkPort}\n`);
  writeFileSync(join(dir, 'config', 'log.ini'), '[main]\nlevel=warn\n');
  writeFileSync(join(dir, 'config', 'me'), 'haraka.bench\n');
  const log = openSync(join(workDir, 'haraka.log'), 'a');
  const child = spawn(process.execPath, [join(ROOT, 'node_modules', 'Haraka', 'bin', 'haraka'), '-c', dir], { stdio: ['ignore', log, log] });
  closeSync(log);
  await waitForPort(port, 60_000, 'haraka');
  return { child, port, stop: () => stopChild(child) };
}

/**
 * Compiles the sources as `npm ci` does (tsc), into the work dir, so that the benchmark runs what
 * the systemd unit runs (`node dist/cli.js`), not the tsx loader used by the tests.
 */
export async function buildNimbus(workDir: string): Promise<string> {
  const dir = join(workDir, 'nimbus');
  mkdirSync(dir, { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const tsc = spawn(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json'), '--outDir', join(dir, 'dist'), '--sourceMap', 'false'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  tsc.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  tsc.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const code = await new Promise<number | null>((resolve) => tsc.once('exit', resolve));
  if (code !== 0) throw new Error(`bench relay: tsc failed (${code}):\n${output}`);
  return join(dir, 'dist', 'cli.js');
}

interface NimbusOptions { cli: string; env: Record<string, string>; nodeArgs: string[] }

async function startNimbus(workDir: string, sinkPort: number, nimbus: NimbusOptions, extraEnv: Record<string, string> = {}): Promise<Started> {
  const port = await freePort();
  const dataDir = join(workDir, `nimbus-data-${port}`);
  mkdirSync(dataDir, { recursive: true });
  const log = openSync(join(workDir, 'nimbus.log'), 'a');
  // Cluster workers inherit the primary's node arguments (--cpu-prof included).
  const child = spawn(process.execPath, [...nimbus.nodeArgs, nimbus.cli, 'gateway'], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      NIMBUS_LISTEN: `127.0.0.1:${port}`,
      NIMBUS_NEXT_HOP: `127.0.0.1:${sinkPort}`,
      NIMBUS_DATA_DIR: dataDir,
      NIMBUS_RELAY_DOMAINS: DOMAIN,
      NIMBUS_LOG_LEVEL: 'info',
      ...nimbus.env,
      ...extraEnv,
    },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exited = track(child);
  await Promise.race([
    waitForPort(port, 60_000, 'nimbus gateway'),
    exited.then(() => { throw new Error(`nimbus gateway exited at start: see ${join(workDir, 'nimbus.log')}\n${tail(join(workDir, 'nimbus.log'))}`); }),
  ]);
  return { child, port, stop: () => stopChild(child, 30_000) };
}

export function tail(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-15).join('\n') : '';
}

/** The pids of a process tree (root first). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch { /* exited meanwhile */ }
  }
  const pids = [root];
  for (let i = 0; i < pids.length; i += 1) pids.push(...(children.get(pids[i]!) ?? []));
  return pids;
}

/** utime + stime of a process tree, in ms (clock ticks are 100 per second on Linux). */
export function treeCpuMs(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* exited meanwhile */ }
  }
  return ticks * 10;
}

/** Peak RSS of a process tree: max VmHWM seen per pid, summed, polled until stopped. */
export class PeakRss {
  #root: number;
  #peaks = new Map<number, number>();
  #sharedOnceKb = 0;
  #timer: NodeJS.Timeout;
  constructor(pid: number) {
    this.#root = pid;
    this.#poll();
    this.#timer = setInterval(() => this.#poll(), 100);
  }
  #poll(): void {
    let anonKb = 0;
    let fileKb = 0;
    for (const pid of processTree(this.#root)) {
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        const field = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
        this.#peaks.set(pid, Math.max(this.#peaks.get(pid) ?? 0, field('VmHWM')));
        anonKb += field('RssAnon') + field('RssShmem');
        // Workers map the same node binary and libraries as the primary (and more): their
        // file-backed pages are one copy in the page cache, counted here once.
        fileKb = Math.max(fileKb, field('RssFile'));
      } catch { /* exited meanwhile */ }
    }
    this.#sharedOnceKb = Math.max(this.#sharedOnceKb, anonKb + fileKb);
  }
  /** Sum of the per-process peaks (VmHWM): shared pages once per process, an upper bound. */
  stop(): number {
    this.#poll();
    clearInterval(this.#timer);
    let kb = 0;
    for (const value of this.#peaks.values()) kb += value;
    return Math.round(kb / 1024);
  }
  /** The largest single process's peak (the worker that got the big message). */
  get largestMb(): number {
    return Math.round(Math.max(0, ...this.#peaks.values()) / 1024);
  }
  /** Peak of the tree's anonymous memory plus the largest file-backed set (polled, 100 ms). */
  get sharedOnceMb(): number {
    return Math.round(this.#sharedOnceKb / 1024);
  }
}

/** Runs smtp-source processes (one per file), resolves with the wall time in seconds. */
export async function load(port: number, files: readonly string[], sessions: number, messages: number, reuse = false): Promise<number> {
  const perFile = Math.max(1, Math.floor(sessions / files.length));
  const perFileMessages = Math.ceil(messages / files.length);
  const started = process.hrtime.bigint();
  const runs = files.map((file) => new Promise<void>((resolve, reject) => {
    const child = spawn('/usr/sbin/smtp-source', ['-4', ...(reuse ? ['-d'] : []), '-s', String(perFile), '-m', String(perFileMessages), '-f', SENDER,
      '-t', RECIPIENT, '-M', 'source.test', '-F', file, `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { err += chunk; });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`smtp-source to port ${port} failed (${code}): ${err.trim()}`))));
  }));
  await Promise.all(runs);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

// ---------- latency probe ----------

/** One SMTP transaction; returns ms from the end of DATA to the final reply, or throws. */
async function probeOnce(port: number, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    // No Nagle: the final "." must not wait for the ACK of the data (a 40 ms delayed-ACK stall).
    socket.setNoDelay(true);
    socket.setTimeout(120_000, () => socket.destroy(new Error('probe timeout')));
    const steps = [`EHLO probe.source.test\r\n`, `MAIL FROM:<${SENDER}>\r\n`, `RCPT TO:<${RECIPIENT}>\r\n`, 'DATA\r\n'];
    const expect = [220, 250, 250, 250, 354, 250];
    let step = 0;
    let buffer = '';
    let sentAt = 0n;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (;;) {
        const nl = buffer.indexOf('\r\n');
        if (nl < 0) return;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        if (line[3] === '-') continue; // multi-line reply continues
        const code = Number(line.slice(0, 3));
        if (code !== expect[step]) { socket.destroy(); reject(new Error(`probe: expected ${expect[step]}, got ${line}`)); return; }
        if (step < 4) socket.write(steps[step]!);
        else if (step === 4) { sentAt = process.hrtime.bigint(); socket.write(Buffer.concat([data, Buffer.from('.\r\n')])); }
        else { const ms = Number(process.hrtime.bigint() - sentAt) / 1e6; socket.end('QUIT\r\n'); resolve(ms); return; }
        step += 1;
      }
    });
    socket.once('error', reject);
  });
}

/** Sequential probes until `until` settles; failures are counted, not fatal. */
export async function probeWhile(port: number, data: Buffer, until: Promise<unknown>): Promise<number[]> {
  let done = false;
  void until.then(() => { done = true; }, () => { done = true; });
  const samples: number[] = [];
  while (!done) {
    try { samples.push(await probeOnce(port, data)); } catch { await sleep(10); }
  }
  return samples;
}

export function toWire(text: string): Buffer {
  // CRLF line ends and dot-stuffing, as an SMTP client sends the DATA.
  const lines = text.replace(/\r?\n$/, '').split(/\r?\n/).map((line) => (line.startsWith('.') ? `.${line}` : line));
  return Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1');
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const round = (value: number, digits = 1): number => Number(value.toFixed(digits));

// ---------- the benchmark ----------

async function measure(server: Server, workDir: string, files: readonly string[], probe: Buffer, sessions: number, messages: number, reuse: boolean, warmupSeconds: number, nimbus: NimbusOptions): Promise<RunFigures> {
  const before = loadavg().map((x) => round(x, 2));
  const sink = await startSink(workDir);
  let target: Started | null = null;
  try {
    if (server === 'haraka') target = await startHaraka(workDir, sink.port);
    if (server === 'nimbus') target = await startNimbus(workDir, sink.port, nimbus);
    const port = target?.port ?? sink.port;
    const rss = target ? new PeakRss(target.child.pid!) : null;
    // Warm-up at the run's own load, so what is measured is the steady state a relay that runs
    // for weeks is in, not its first seconds: V8 takes thousands of messages to finish optimising
    // the hot code (perf record: the compiler was ~18% of Nimbus's CPU over 4 s of text load after
    // 200 messages, ~2% over 4 s after 10,000), pools fill and the store's pages are cached.
    const warmUntil = Date.now() + warmupSeconds * 1000;
    do await load(port, files, sessions, messages, reuse);
    while (Date.now() < warmUntil);
    const cpuBefore = target ? treeCpuMs(target.child.pid!) : 0;
    const loadDone = load(port, files, sessions, messages, reuse);
    const samples = await probeWhile(port, probe, loadDone);
    const seconds = await loadDone;
    const cpu = target ? treeCpuMs(target.child.pid!) - cpuBefore : null;
    return {
      messages, seconds: round(seconds, 2), mps: round(messages / seconds),
      latency_p50_ms: round(percentile(samples, 50), 2), latency_p99_ms: round(percentile(samples, 99), 2),
      probes: samples.length, rss_mb: rss ? rss.stop() : null,
      // The probe's messages went through the server too.
      cpu_ms_per_msg: cpu === null ? null : round(cpu / (messages + samples.length), 2),
      loadavg: before,
    };
  } finally {
    await target?.stop();
    await sink.stop();
  }
}

interface MemoryFigures { rss_mb: number; largest_process_mb: number; shared_pages_once_mb: number }

async function memoryRun(workDir: string, file: string, sessions: number, messages: number, nimbus: NimbusOptions): Promise<MemoryFigures> {
  const sink = await startSink(workDir);
  const started = await startNimbus(workDir, sink.port, nimbus, { NIMBUS_MAX_MESSAGE_SIZE: '60MB', NIMBUS_MAX_CONNECTIONS: '1000' });
  try {
    const rss = new PeakRss(started.child.pid!);
    await load(started.port, [file], sessions, messages);
    return { rss_mb: rss.stop(), largest_process_mb: rss.largestMb, shared_pages_once_mb: rss.sharedOnceMb };
  } finally {
    await started.stop();
    await sink.stop();
  }
}

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const auth = args.includes('--auth') ? await startAuthBench(SENDER.slice(SENDER.indexOf('@') + 1)) : null;
  try {
    return await runWith(args, auth);
  } finally {
    await auth?.stop();
  }
}

async function runWith(args: string[], auth: AuthBench | null): Promise<number> {
  const json = args.includes('--json');
  const quick = args.includes('--quick');
  const write = args.includes('--write');
  // --reuse: smtp-source -d, several messages per connection (as an MTA's connection cache does).
  const reuse = args.includes('--reuse');
  const listArg = (name: string): string[] | null => {
    const arg = args.find((a) => a.startsWith(`--${name}=`));
    return arg ? arg.slice(name.length + 3).split(',').filter(Boolean) : null;
  };
  const servers = (listArg('only') ?? ['limit', 'haraka', 'nimbus']) as Server[];
  const workersArg = listArg('workers');
  const untrusted = args.includes('--untrusted');
  // --cpu-prof=DIR: every Nimbus process writes a V8 CPU profile there when it exits (for Chrome
  // DevTools or a script); the figures of such a run include the profiler's own overhead.
  const cpuProfDir = listArg('cpu-prof')?.[0] ?? null;
  if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
  const nimbusEnv: Record<string, string> = {
    ...(workersArg ? { NIMBUS_WORKERS: workersArg[0]! } : {}),
    // TEST-NET-1: a network the load (127.0.0.1) is not in, so Nimbus treats it as a stranger.
    ...(untrusted ? { NIMBUS_TRUSTED_NETWORKS: '192.0.2.0/24' } : {}),
  };
  const checksEnv = auth?.env ?? {};
  const subset = listArg('mixes') !== null || listArg('sessions') !== null;
  const say = (line: string): void => { if (!json) process.stderr.write(`${line}\n`); };
  for (const tool of ['/usr/sbin/smtp-source', '/usr/sbin/smtp-sink']) {
    if (!existsSync(tool)) { process.stderr.write(`bench relay: ${tool} is missing (apt-get install postfix)\n`); return 69; }
  }

  const workDir = mkdtempSync(join(tmpdir(), 'nimbus-bench-relay-'));
  try {
    const loadBefore = loadavg().map((x) => round(x, 2));
    const pairs = Number(listArg('pairs')?.[0] ?? 0);
    if (pairs > 0 && auth === null) { process.stderr.write('bench relay: --pairs=N compares the checks off and on: it needs --auth\n'); return 64; }
    const nimbus: NimbusOptions = { cli: servers.includes('nimbus') || pairs > 0 ? await buildNimbus(workDir) : '', env: { ...nimbusEnv, ...checksEnv }, nodeArgs: [...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : []), ...(listArg('node-args') ?? [])] };
    const variants = 4;
    const mixes: Record<MixName, { files: string[]; probe: Buffer; bytes: number; nimbusEnv?: Record<string, string> }> = {} as never;
    const unsigned = Array.from({ length: variants }, (_, i) => textMessage(i));
    const text = auth === null ? unsigned : await Promise.all(unsigned.map((message) => auth.sign(message)));
    const images = imageMessages(variants);
    for (const [name, contents] of [['text5k', text], ['image40k', images.map((m) => m.text)]] as const) {
      const files = contents.map((content, i) => {
        const file = join(workDir, `${name}-${i}.eml`);
        writeFileSync(file, content, 'latin1');
        return file;
      });
      mixes[name] = { files, probe: toWire(contents[0]!), bytes: Math.round(contents.reduce((s, c) => s + c.length, 0) / contents.length) };
    }
    mixes['image40k-new'] = { ...mixes.image40k, nimbusEnv: { NIMBUS_IMAGE_HASH_CACHE: '0' } };
    say(`image mix: ${images.map((m) => m.name).join(', ')}`);

    const concurrency = (listArg('sessions') ?? ['20', '100']).map(Number);
    const counts: Record<MixName, number> = quick ? { text5k: 400, image40k: 300, 'image40k-new': 300 } : { text5k: 3000, image40k: 2000, 'image40k-new': 2000 };
    const messagesArg = listArg('messages');
    if (messagesArg) for (const mix of Object.keys(counts) as MixName[]) counts[mix] = Number(messagesArg[0]);
    const warmupSeconds = Number(listArg('warmup')?.[0] ?? (quick ? 1 : DEFAULT_WARMUP_SECONDS));
    if (pairs > 0) {
      const comparisons: Record<string, Record<string, unknown>> = {};
      for (const mix of (listArg('mixes') ?? ['text5k']) as MixName[]) {
        comparisons[mix] = {};
        for (const sessions of concurrency) {
          say(`${mix} ${sessions} sessions: ${pairs} pairs, checks off and on…`);
          const run = (checks: boolean) => measure('nimbus', workDir, mixes[mix].files, mixes[mix].probe, sessions, counts[mix], reuse, warmupSeconds,
            { ...nimbus, env: { ...nimbusEnv, ...(checks ? checksEnv : {}), ...mixes[mix].nimbusEnv } });
          comparisons[mix]![String(sessions)] = await comparePairs(pairs, run, say);
        }
      }
      const figures = { machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '?', loadavg_before: loadBefore, node: process.version }, messages: counts, warmup_s: warmupSeconds, reuse, comparisons };
      process.stdout.write(`${JSON.stringify(figures, null, json ? 0 : 2)}\n`);
      return 0;
    }
    const results: Record<string, Record<string, Partial<Record<Server, RunFigures>>>> = {};
    for (const mix of (listArg('mixes') ?? Object.keys(mixes)) as MixName[]) {
      results[mix] = {};
      for (const sessions of concurrency) {
        const row: Partial<Record<Server, RunFigures>> = {};
        for (const server of servers) {
          say(`${mix} ${sessions} sessions: ${server}…`);
          const options = { ...nimbus, env: { ...nimbus.env, ...mixes[mix].nimbusEnv } };
          row[server] = await measure(server, workDir, mixes[mix].files, mixes[mix].probe, sessions, counts[mix], reuse, warmupSeconds, options);
          say(`  ${JSON.stringify(row[server])}`);
        }
        results[mix]![String(sessions)] = row;
      }
    }

    let memory: Figures['memory'] = null;
    if (servers.includes('nimbus') && !args.includes('--no-memory')) {
      const big = join(workDir, 'big-50mb.eml');
      writeFileSync(big, bigMessage(50 * 1024 * 1024, 'fifty-megabytes'));
      const one = join(workDir, 'one-1mb.eml');
      writeFileSync(one, bigMessage(1024 * 1024, 'one-megabyte'));
      say('memory: one 50 MB message…');
      const fifty = await memoryRun(workDir, big, 1, 1, nimbus);
      say('memory: 200 concurrent 1 MB messages…');
      const twoHundred = await memoryRun(workDir, one, 200, 200, nimbus);
      memory = {
        one_50mb_rss_mb: fifty.rss_mb, concurrent_200x1mb_rss_mb: twoHundred.rss_mb,
        one_50mb_largest_process_mb: fifty.largest_process_mb, concurrent_200x1mb_largest_process_mb: twoHundred.largest_process_mb,
        one_50mb_shared_pages_once_mb: fifty.shared_pages_once_mb, concurrent_200x1mb_shared_pages_once_mb: twoHundred.shared_pages_once_mb,
      };
    }

    const figures = summarise(results, memory, mixes, { quick, reuse, warmupSeconds, loadBefore, workers: workersArg?.[0] ?? `default (${cpus().length})`, untrusted, auth: auth !== null });
    if (json) process.stdout.write(`${JSON.stringify(figures)}\n`);
    else process.stdout.write(`${markdown(figures)}\n`);
    // The table is of the relay as shipped (checks off): an --auth run is compared by hand.
    if (write && !quick && !subset && auth === null) {
      const file = join(ROOT, 'BENCHMARKS.md');
      const current = readFileSync(file, 'utf8');
      const start = current.indexOf('## Relay\n');
      const next = current.indexOf('\n## ', start + 1);
      // A hand-written "### Relay notes" subsection (analysis of the figures) is kept.
      const notes = current.indexOf('\n### Relay notes', start + 1);
      const end = notes >= 0 && (next < 0 || notes < next) ? notes : next;
      if (start >= 0) writeFileSync(file, `${current.slice(0, start)}${markdown(figures)}${end >= 0 ? current.slice(end) : ''}`);
    }
    return 0;
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

interface RunOptions { quick: boolean; reuse: boolean; warmupSeconds: number; loadBefore: number[]; workers: string; untrusted: boolean; auth: boolean }

interface Figures {
  machine: { cpus: number; model: string; loadavg_before: number[]; node: string };
  quick: boolean;
  reuse: boolean;
  /** Seconds of the same load before each measurement. */
  warmup_s: number;
  /** NIMBUS_WORKERS of the Nimbus runs. */
  workers: string;
  /** The load came from outside NIMBUS_TRUSTED_NETWORKS. */
  untrusted: boolean;
  /** NIMBUS_AUTH_CHECKS=on against a loopback DNS server (--auth). */
  auth: boolean;
  memory: {
    one_50mb_rss_mb: number; concurrent_200x1mb_rss_mb: number;
    one_50mb_largest_process_mb: number; concurrent_200x1mb_largest_process_mb: number;
    one_50mb_shared_pages_once_mb: number; concurrent_200x1mb_shared_pages_once_mb: number;
  } | null;
  mixes: Record<string, { bytes: number; runs: Record<string, {
    limit_mps?: number; haraka_mps?: number; nimbus_mps?: number;
    nimbus_to_limit?: number; nimbus_to_haraka?: number;
    p50_added_ms?: number; p99_added_ms?: number; haraka_p99_added_ms?: number;
    rss_mb?: number | null; haraka_rss_mb?: number | null;
    cpu_ms_per_msg?: number | null; haraka_cpu_ms_per_msg?: number | null;
    /** 1-minute load average before the Nimbus run. */
    load?: number;
    raw: Partial<Record<Server, RunFigures>>;
  }> }>;
}

function summarise(results: Record<string, Record<string, Partial<Record<Server, RunFigures>>>>, memory: Figures['memory'],
  mixes: Record<MixName, { bytes: number }>, options: RunOptions): Figures {
  const out: Figures = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '?', loadavg_before: options.loadBefore, node: process.version },
    quick: options.quick, reuse: options.reuse, warmup_s: options.warmupSeconds, workers: options.workers, untrusted: options.untrusted, auth: options.auth, memory, mixes: {},
  };
  for (const [mix, bySessions] of Object.entries(results)) {
    out.mixes[mix] = { bytes: mixes[mix as MixName].bytes, runs: {} };
    for (const [sessions, row] of Object.entries(bySessions)) {
      const { limit, haraka, nimbus } = row;
      out.mixes[mix]!.runs[sessions] = {
        limit_mps: limit?.mps, haraka_mps: haraka?.mps, nimbus_mps: nimbus?.mps,
        nimbus_to_limit: limit && nimbus ? round(nimbus.mps / limit.mps, 3) : undefined,
        nimbus_to_haraka: haraka && nimbus ? round(nimbus.mps / haraka.mps, 3) : undefined,
        p50_added_ms: limit && nimbus ? round(nimbus.latency_p50_ms - limit.latency_p50_ms, 2) : undefined,
        p99_added_ms: limit && nimbus ? round(nimbus.latency_p99_ms - limit.latency_p99_ms, 2) : undefined,
        haraka_p99_added_ms: limit && haraka ? round(haraka.latency_p99_ms - limit.latency_p99_ms, 2) : undefined,
        rss_mb: nimbus?.rss_mb, haraka_rss_mb: haraka?.rss_mb,
        cpu_ms_per_msg: nimbus?.cpu_ms_per_msg, haraka_cpu_ms_per_msg: haraka?.cpu_ms_per_msg,
        load: nimbus?.loadavg[0],
        raw: row,
      };
    }
  }
  return out;
}

/** The issue's targets for this 2-core machine, each stated as met or missed. */
function targets(f: Figures): string[] {
  const out = ['Targets (issue 7):', ''];
  const state = (ok: boolean | null): string => (ok === null ? 'not measured' : ok ? 'met' : '**missed**');
  const text = f.mixes.text5k?.runs ?? {};
  for (const [sessions, r] of Object.entries(text)) {
    const vsHaraka = r.nimbus_mps !== undefined && r.haraka_mps !== undefined ? r.nimbus_mps >= r.haraka_mps : null;
    const vsLimit = r.nimbus_to_limit !== undefined ? r.nimbus_to_limit >= 0.5 : null;
    out.push(`- 5 KB mix, ${sessions} sessions: ≥ Haraka ${state(vsHaraka)}; ≥ 50% of the limit ${state(vsLimit)}`);
  }
  for (const mix of ['image40k', 'image40k-new']) {
    for (const [sessions, r] of Object.entries(f.mixes[mix]?.runs ?? {})) {
      out.push(`- ${mix}, ${sessions} sessions: ≥ 200 msg/s ${state(r.nimbus_mps !== undefined ? r.nimbus_mps >= 200 : null)}`);
    }
  }
  for (const [mix, { runs }] of Object.entries(f.mixes)) {
    const r = runs['20'];
    if (r) out.push(`- ${mix}, 20 sessions: added p99 ≤ 50 ms ${state(r.p99_added_ms !== undefined ? r.p99_added_ms <= 50 : null)}`);
  }
  out.push(`- one 50 MB message: RSS ≤ 300 MB ${state(f.memory ? f.memory.one_50mb_rss_mb <= 300 : null)}`);
  out.push(`- 200 × 1 MB concurrent: RSS ≤ 600 MB ${state(f.memory ? f.memory.concurrent_200x1mb_rss_mb <= 600 : null)}`);
  return out;
}

function markdown(f: Figures): string {
  const flags = `${f.reuse ? ' --reuse' : ''}${f.warmup_s === DEFAULT_WARMUP_SECONDS ? '' : ` --warmup=${f.warmup_s}`}${f.workers.startsWith('default') ? '' : ` --workers=${f.workers}`}${f.untrusted ? ' --untrusted' : ''}${f.auth ? ' --auth' : ''}`;
  const lines = ['## Relay', '', `Command: \`npm run bench -- relay --write${flags}\` (the method is described at the top of bench/relay.ts; ${f.reuse ? 'several messages per connection, smtp-source -d' : 'one message per connection'}; each server measured after ${f.warmup_s} s of the same load; NIMBUS_WORKERS ${f.workers}; load from ${f.untrusted ? 'an untrusted' : 'a trusted'} network).`, '',
    `Machine: ${f.machine.cpus} × ${f.machine.model}, Node ${f.machine.node}, load average before the run ${f.machine.loadavg_before.join(' / ')} (shared with other work: the load column is the 1-minute load average before each Nimbus run).`, '',
    '| mix | sessions | limit msg/s | Haraka msg/s | Nimbus msg/s | Nimbus/limit | Nimbus/Haraka | added p50 / p99 ms (Nimbus) | added p99 ms (Haraka) | peak RSS MB Nimbus / Haraka | CPU ms/msg Nimbus / Haraka | load |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|'];
  const show = (value: number | null | undefined): string => (value === undefined || value === null || Number.isNaN(value) ? '–' : String(value));
  for (const [mix, { bytes, runs }] of Object.entries(f.mixes)) {
    for (const [sessions, r] of Object.entries(runs)) {
      lines.push(`| ${mix} (~${Math.round(bytes / 1024)} KB) | ${sessions} | ${show(r.limit_mps)} | ${show(r.haraka_mps)} | ${show(r.nimbus_mps)} | ${show(r.nimbus_to_limit)} | ${show(r.nimbus_to_haraka)} | ${show(r.p50_added_ms)} / ${show(r.p99_added_ms)} | ${show(r.haraka_p99_added_ms)} | ${show(r.rss_mb)} / ${show(r.haraka_rss_mb)} | ${show(r.cpu_ms_per_msg)} / ${show(r.haraka_cpu_ms_per_msg)} | ${show(r.load)} |`);
    }
  }
  lines.push('');
  lines.push(...targets(f), '');
  if (f.memory) {
    const m = f.memory;
    lines.push('| memory case | peak RSS MB, process tree (sum of VmHWM) | tree, shared file pages counted once | largest single process |', '|---|---|---|---|',
      `| one 50 MB message | ${m.one_50mb_rss_mb} | ${m.one_50mb_shared_pages_once_mb} | ${m.one_50mb_largest_process_mb} |`,
      `| 200 concurrent 1 MB messages | ${m.concurrent_200x1mb_rss_mb} | ${m.concurrent_200x1mb_shared_pages_once_mb} | ${m.concurrent_200x1mb_largest_process_mb} |`, '');
  }
  lines.push('```json', JSON.stringify(f), '```', '');
  return lines.join('\n');
}
