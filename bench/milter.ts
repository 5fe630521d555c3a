/**
 * `npm run bench -- milter [--json] [--quick] [--warmup=S] [--only=none,nimbus,rspamd] [--mixes=text5k,image40k] [--sessions=20,100] [--no-memory] [--cpu-prof=DIR]`:
 * what a milter costs Postfix, on loopback.
 *
 * - Mail path: Postfix's smtp-source → a throwaway Postfix (test/helpers/postfix.ts) → relayhost
 *   smtp-sink. One message per connection, 4 distinct message files (bench/relay.ts's mixes).
 * - Three filters in one run, each with a fresh Postfix and sink: none (Postfix alone),
 *   `nimbus milter` as shipped (compiled with tsc, `node dist/cli.js milter`, NIMBUS_WORKERS at
 *   its default, fresh data dir) and Rspamd's proxy worker in milter mode (Debian's rspamd, its
 *   stock configuration: proxy on 11332, normal worker on 11333, no Redis; its DNS pointed at a
 *   loopback server that refuses every question at once, as nothing outside is reachable; run as
 *   root with --insecure, since a throwaway copy cannot switch to its _rspamd user's directories).
 *   Postfix gets the main.cf lines of docs/admin/postfix.md pointing at the filter.
 * - Warm-up: before each measurement the same load runs for --warmup=S seconds (default 10; 1
 *   with --quick), repeated whole and at least once, as in bench/relay.ts: what is measured is the
 *   steady state of a filter that runs for weeks. One load of 1000 messages (500 per worker) was
 *   not enough for Nimbus: V8 was still compiling its hot code, and its CPU per message after
 *   1000 messages was 1.5-2x the figure after 8000 (bench/milter's load replayed by a milter
 *   client, NIMBUS_WORKERS=2). Rspamd compiles its rules at start; the measurement starts after
 *   it answers.
 * - messages/s: messages / wall time from the start of smtp-source to Postfix's queue being empty
 *   (every message handed to the sink).
 * - Added latency: sequential probe messages during the load, timed from the end of DATA to
 *   Postfix's 250 (the milter answers before it); p50/p99 minus Postfix alone's.
 * - CPU per message: utime + stime of the filter's process tree over the measured load, divided by
 *   the messages (probes included).
 * - Memory: 200 × 1 MB messages over 200 concurrent sessions through Postfix and `nimbus milter`
 *   (Postfix's smtpd process limit raised to 250); peak RSS of the milter's process tree.
 * - --only, --mixes and --sessions run a subset (a quick look at one filter; the ratios of the
 *   summary need the `none` row of the same run); --no-memory skips the memory case.
 * - --cpu-prof=DIR writes a V8 CPU profile of every `nimbus milter` process into DIR (the
 *   figures of such a run include the profiler's own overhead).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer, type TestDnsServer } from '../test/helpers/dns-server.js';
import { startPostfix, type PostfixInstance } from '../test/helpers/postfix.js';
import {
  DOMAIN, PeakRss, bigMessage, buildNimbus, freePort, imageMessages, load, percentile, probeWhile, round, startSink, stopChild, tail, textMessage,
  toWire, treeCpuMs, waitForPort, type Started,
} from './relay.js';

type Filter = 'none' | 'nimbus' | 'rspamd';
const FILTERS: readonly Filter[] = ['none', 'nimbus', 'rspamd'];
const RSPAMD_PORTS = [11332, 11333, 11334];
/** Seconds of load before each measurement (--warmup=S), as bench/relay.ts's. */
const DEFAULT_WARMUP_SECONDS = 10;

interface RunFigures { messages: number; seconds: number; mps: number; latency_p50_ms: number; latency_p99_ms: number; probes: number; cpu_ms_per_msg: number | null; loadavg: number[] }

function milterMain(port: number | null): Record<string, string> {
  const base: Record<string, string> = { mydestination: '', virtual_mailbox_domains: '', default_process_limit: '250' };
  if (port === null) return base;
  return { ...base, smtpd_milters: `inet:127.0.0.1:${port}`, non_smtpd_milters: '$smtpd_milters', milter_default_action: 'accept', milter_protocol: '6', milter_mail_macros: 'i {mail_addr} {client_addr} {client_name} {auth_authen}' };
}

async function startNimbusMilter(workDir: string, cli: string, nodeArgs: readonly string[]): Promise<Started> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(workDir, 'nimbus-data-'));
  const logFile = join(workDir, 'nimbus-milter.log');
  const log = openSync(logFile, 'a');
  // Cluster workers inherit the primary's node arguments (--cpu-prof included).
  const child = spawn(process.execPath, [...nodeArgs, cli, 'milter'], {
    cwd: dataDir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NIMBUS_MILTER_LISTEN: `127.0.0.1:${port}`, NIMBUS_DATA_DIR: dataDir, NIMBUS_LOG_LEVEL: 'info', NIMBUS_MAX_MESSAGE_SIZE: '60MB' },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  await waitForPort(port, 60_000, `nimbus milter (${tail(logFile)})`);
  return { child, port, stop: () => stopChild(child, 30_000) };
}

async function startRspamd(workDir: string, dns: TestDnsServer): Promise<Started> {
  const dir = join(workDir, 'rspamd');
  for (const sub of ['local.d', 'db', 'run', 'log']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, 'local.d', 'options.inc'), `dns { nameserver = ["${dns.address}"]; timeout = 1s; retransmits = 1; }\n`);
  writeFileSync(join(dir, 'local.d', 'logging.inc'), `type = "file"; filename = "${join(dir, 'log', 'rspamd.log')}"; level = "warning";\n`);
  const child: ChildProcess = spawn('/usr/bin/rspamd', ['-f', '-i', '-u', 'root', '-g', 'root', '-c', '/etc/rspamd/rspamd.conf',
    `--var=LOCAL_CONFDIR=${dir}`, `--var=DBDIR=${join(dir, 'db')}`, `--var=RUNDIR=${join(dir, 'run')}`, `--var=LOGDIR=${join(dir, 'log')}`], { stdio: ['ignore', 'ignore', 'ignore'] });
  await waitForPort(11332, 120_000, 'rspamd proxy');
  await waitForPort(11333, 120_000, 'rspamd normal worker');
  return { child, port: 11332, stop: () => stopChild(child, 30_000) };
}

/** Polls Postfix's queue until it is empty. */
async function drained(postfix: PostfixInstance): Promise<void> {
  await postfix.waitQueueEmpty(600_000);
}

async function measure(filter: Filter, workDir: string, files: readonly string[], probe: Buffer, sessions: number, messages: number, warmupSeconds: number, cli: string, nodeArgs: readonly string[], dns: TestDnsServer): Promise<RunFigures> {
  const before = loadavg().map((x) => round(x, 2));
  const sink = await startSink(workDir);
  let target: Started | null = null;
  let postfix: PostfixInstance | null = null;
  try {
    if (filter === 'nimbus') target = await startNimbusMilter(workDir, cli, nodeArgs);
    if (filter === 'rspamd') target = await startRspamd(workDir, dns);
    postfix = await startPostfix({ mailboxes: [], main: { ...milterMain(target?.port ?? null), relayhost: `[127.0.0.1]:${sink.port}` } });
    const pf = postfix;
    const warmUntil = Date.now() + warmupSeconds * 1000;
    do {
      await load(pf.smtpPort, files, sessions, messages);
      await drained(pf);
    } while (Date.now() < warmUntil);
    const cpuBefore = target ? treeCpuMs(target.child.pid!) : 0;
    const started = process.hrtime.bigint();
    const done = load(pf.smtpPort, files, sessions, messages).then(() => drained(pf));
    const samples = await probeWhile(pf.smtpPort, probe, done);
    await done;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = target ? treeCpuMs(target.child.pid!) - cpuBefore : null;
    return {
      messages, seconds: round(seconds, 2), mps: round(messages / seconds), latency_p50_ms: round(percentile(samples, 50), 2), latency_p99_ms: round(percentile(samples, 99), 2),
      probes: samples.length, cpu_ms_per_msg: cpu === null ? null : round(cpu / (messages + samples.length), 2), loadavg: before,
    };
  } finally {
    await postfix?.stop();
    await target?.stop();
    await sink.stop();
  }
}

async function memoryRun(workDir: string, file: string, cli: string, nodeArgs: readonly string[]): Promise<number> {
  const sink = await startSink(workDir);
  const milter = await startNimbusMilter(workDir, cli, nodeArgs);
  const postfix = await startPostfix({ mailboxes: [], main: { ...milterMain(milter.port), relayhost: `[127.0.0.1]:${sink.port}`, message_size_limit: '20000000' } });
  try {
    const rss = new PeakRss(milter.child.pid!);
    await load(postfix.smtpPort, [file], 200, 200);
    await drained(postfix);
    return rss.stop();
  } finally {
    await postfix.stop();
    await milter.stop();
    await sink.stop();
  }
}

export async function run(args: string[]): Promise<number> {
  const quick = args.includes('--quick');
  const listArg = (name: string): string[] | null => {
    const arg = args.find((a) => a.startsWith(`--${name}=`));
    return arg ? arg.slice(name.length + 3).split(',').filter(Boolean) : null;
  };
  const filters = FILTERS.filter((filter) => (listArg('only') ?? FILTERS).includes(filter));
  const cpuProfDir = listArg('cpu-prof')?.[0] ?? null;
  if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
  const nodeArgs = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [];
  const workDir = mkdtempSync(join(tmpdir(), 'nimbus-bench-milter-'));
  const dns = await startDnsServer(null, []);
  try {
    const cli = await buildNimbus(workDir);
    const write = (name: string, text: string): string => { const path = join(workDir, name); writeFileSync(path, text); return path; };
    const mixes: Record<string, string[]> = {
      text5k: [0, 1, 2, 3].map((i) => write(`text-${i}.eml`, textMessage(i))),
      image40k: imageMessages(4).map((m, i) => write(`image-${i}.eml`, m.text)),
    };
    const results: Record<string, Record<string, Partial<Record<Filter, RunFigures>>>> = {};
    const messages = quick ? 400 : 1000;
    const warmupSeconds = Number(listArg('warmup')?.[0] ?? (quick ? 1 : DEFAULT_WARMUP_SECONDS));
    const mixNames = listArg('mixes') ?? Object.keys(mixes);
    for (const [mix, files] of Object.entries(mixes).filter(([name]) => mixNames.includes(name))) {
      for (const sessions of (listArg('sessions') ?? ['20', '100']).map(Number)) {
        for (const filter of filters) {
          const probe = toWire(textMessage(9));
          const figures = await measure(filter, workDir, files, probe, sessions, messages, warmupSeconds, cli, nodeArgs, dns);
          ((results[mix] ??= {})[String(sessions)] ??= {})[filter] = figures;
          process.stderr.write(`milter ${mix} ${sessions} ${filter}: ${JSON.stringify(figures)}\n`);
        }
      }
    }
    const memoryMb = filters.includes('nimbus') && !args.includes('--no-memory') ? await memoryRun(workDir, write('big.eml', bigMessage(1024 * 1024, 'one-mb')), cli, nodeArgs) : null;
    const figures = { date: new Date().toISOString().slice(0, 10), cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', messages, warmup_s: warmupSeconds, results, memory_200x1mb_rss_mb: memoryMb };
    process.stdout.write(args.includes('--json') ? `${JSON.stringify(figures, null, 2)}\n` : markdown(figures));
    return 0;
  } finally {
    await dns.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

interface Figures { date: string; cpus: number; cpu: string; messages: number; warmup_s: number; results: Record<string, Record<string, Partial<Record<Filter, RunFigures>>>>; memory_200x1mb_rss_mb: number | null }

function markdown(f: Figures): string {
  const rows: string[] = [];
  for (const [mix, bySessions] of Object.entries(f.results)) {
    for (const [sessions, byFilter] of Object.entries(bySessions)) {
      const alone = byFilter.none;
      for (const filter of FILTERS) {
        const r = byFilter[filter];
        if (!r) continue;
        const added = (p: 'latency_p50_ms' | 'latency_p99_ms'): string => (filter === 'none' || !alone ? '—' : String(round(r[p] - alone[p], 1)));
        rows.push(`| ${mix} | ${sessions} | ${filter === 'none' ? 'Postfix alone' : filter === 'nimbus' ? 'nimbus milter' : 'Rspamd proxy (milter)'} | ${r.mps} | ${added('latency_p50_ms')} | ${added('latency_p99_ms')} | ${r.cpu_ms_per_msg ?? '—'} | ${r.loadavg[0]} |`);
      }
    }
  }
  const text = f.results.text5k?.['20'];
  const ratio = text?.nimbus && text.none ? round((100 * text.nimbus.mps) / text.none.mps, 0) : null;
  const cpuRatio = (mix: string, sessions: string): string => {
    const r = f.results[mix]?.[sessions];
    return r?.nimbus?.cpu_ms_per_msg && r.rspamd?.cpu_ms_per_msg ? `${round(r.nimbus.cpu_ms_per_msg / r.rspamd.cpu_ms_per_msg, 2)}` : '—';
  };
  return [
    `Command: \`npm run bench -- milter${f.warmup_s === DEFAULT_WARMUP_SECONDS ? '' : ` --warmup=${f.warmup_s}`}\`; ${f.date}; ${f.cpus}-core ${f.cpu}, shared with other work and loaded (load average per row); ${f.messages} messages per row, each filter measured after ${f.warmup_s} s of the same load.`,
    '',
    '| mix | sessions | filter | messages/s | added p50 ms | added p99 ms | filter CPU ms/msg | load avg |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `- Postfix with nimbus milter at ≥ 80% of Postfix alone (text5k, 20 sessions): ${ratio === null ? 'not measured' : `${ratio}%, ${ratio >= 80 ? 'met' : 'missed'}`}.`,
    `- Nimbus CPU per message ≤ one third of Rspamd's: ratio text5k/20 ${cpuRatio('text5k', '20')}, text5k/100 ${cpuRatio('text5k', '100')}, image40k/20 ${cpuRatio('image40k', '20')}, image40k/100 ${cpuRatio('image40k', '100')} (met where ≤ 0.33).`,
    `- RSS ≤ 600 MB with 200 concurrent 1 MB messages: ${f.memory_200x1mb_rss_mb === null ? 'not measured' : `${f.memory_200x1mb_rss_mb} MB (sum of per-process peaks), ${f.memory_200x1mb_rss_mb <= 600 ? 'met' : 'missed'}`}.`,
    '',
  ].join('\n');
}
