/**
 * `npm run bench -- protection --stream-cost [--stream-gateways N] [--cli PATH] [--json]`: what
 * the convictions stream costs, in two parts.
 *
 * - Service CPU: one `nimbus reputation` (SQLite) gets CONVICTIONS_PER_S admin verdict changes a
 *   second for WINDOW_S seconds, first with no stream open, then with N streams open (the
 *   gateway's own client, src/reputation/convictions-client.ts, N of them in this process, each
 *   with its own connection). CPU is the service process's utime + stime (/proc/PID/stat) over
 *   the window, as a share of one core; the stream's cost is the difference.
 * - Lookups per message: one gateway participating with that service relays MESSAGES messages
 *   (corpus ham and spam, each sent REPEATS times over a minute, as the relay bench repeats its mixes; longer than the known answers' cache) at
 *   RATE a second; service lookups (`/v1/lookup` requests) per message. Run with --cli of the
 *   code before a change for the "today" figure.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConvictionStream } from '../../src/reputation/convictions-client.js';
import { listCorpus, readCorpusMessage } from '../eval/corpus.js';
import { baseEnv, cli, freePort, NetworkError, runCli, stopChild, waitForPort } from '../eval/network.js';
import { spread } from '../eval/plan.js';
import { startSink } from '../eval/sink.js';
import { envelopeSender, sendMessage } from '../eval/smtp-client.js';
import { writeProtectionSection } from './markdown.js';
import { measureNearCost, type NearCost } from './near-cost.js';

export interface StreamCostOptions {
  /** Write the `## Protection: stream cost` section of BENCHMARKS.md, with `before` (an earlier run's JSON, e.g. of the code before the stream) beside it. */
  readonly write: boolean;
  readonly before: string | null;
  readonly out: string;
  readonly root: string;
  readonly cli: string;
  readonly corpus: string;
  readonly gateways: number;
  readonly json: boolean;
}

interface StreamCostResults {
  readonly command: string;
  readonly date: string;
  readonly machine: { readonly cpus: number; readonly cpu: string; readonly loadavg: readonly number[] };
  readonly service_cpu: Record<string, number> | null;
  readonly lookups: LookupFigures;
  readonly lookups_distinct?: LookupFigures;
  /** The gateway's search for cached near neighbours per conviction event of a fuzzy kind. */
  readonly near_neighbour_search?: readonly NearCost[];
}

interface LookupFigures {
  readonly messages: number;
  readonly distinct: number;
  readonly rate_per_s: number;
  readonly lookup_requests: number;
  readonly per_message: number;
}

/** Targets of issue 21: the stream's share of one core with 50 streams, and lookups per message against before. */
const TARGET_STREAM_CPU_PERCENT = 5;
const TARGET_LOOKUP_RATIO = 1.5;

function streamCostMarkdown(now: StreamCostResults, before: StreamCostResults | null): string {
  const cpu = now.service_cpu;
  const ratio = before && before.lookups.per_message > 0 ? now.lookups.per_message / before.lookups.per_message : null;
  const ratioDistinct = before?.lookups_distinct && now.lookups_distinct && before.lookups_distinct.per_message > 0 ? now.lookups_distinct.per_message / before.lookups_distinct.per_message : null;
  const verdict = (ok: boolean): string => (ok ? '**met**' : '**missed**');
  return [
    '## Protection: stream cost',
    '',
    `Command: \`${now.command}\` (bench/protection/stream-cost.ts describes the method)${before ? `; before: \`${before.command}\` (the code before the stream, built from the parent commit)` : ''}. Machine: ${now.machine.cpus}-core ${now.machine.cpu}, shared with other work and loaded (load average ${now.machine.loadavg.join(', ')} at the end). Date: ${now.date.slice(0, 10)}.`,
    '',
    '| figure | before | now | target |',
    '|---|---|---|---|',
    `| service CPU, ${cpu?.convictions_per_s ?? '–'} convictions/s, no stream open (% of one core) | – | ${cpu?.cpu_percent_without_streams ?? '–'} | |`,
    `| service CPU, the same with ${cpu?.streams ?? '–'} streams open | – | ${cpu?.cpu_percent_with_streams ?? '–'} | |`,
    `| **cost of the streams** (difference, % of one core) | – | **${cpu?.stream_cost_cpu_percent ?? '–'}** | < ${TARGET_STREAM_CPU_PERCENT}%: ${cpu ? verdict((cpu.stream_cost_cpu_percent ?? Infinity) < TARGET_STREAM_CPU_PERCENT) : '–'} |`,
    `| events delivered / expected | – | ${cpu ? `${cpu.events_delivered} / ${cpu.events_expected}` : '–'} | |`,
    `| **service lookups per message**, the same ${now.lookups.distinct} messages over and over (${now.lookups.messages} in ${Math.round(now.lookups.messages / now.lookups.rate_per_s)} s, one gateway) | ${before?.lookups.per_message ?? '–'} | **${now.lookups.per_message}** | ≤ ${TARGET_LOOKUP_RATIO}× before: ${ratio === null ? '–' : `${ratio.toFixed(2)}×, ${verdict(ratio <= TARGET_LOOKUP_RATIO)}`} |`,
    `| **service lookups per message**, every message new (${now.lookups_distinct?.messages ?? '–'} corpus messages at ${now.lookups.rate_per_s}/s) | ${before?.lookups_distinct?.per_message ?? '–'} | **${now.lookups_distinct?.per_message ?? '–'}** | ≤ ${TARGET_LOOKUP_RATIO}× before: ${ratioDistinct === null ? '–' : `${ratioDistinct.toFixed(2)}×, ${verdict(ratioDistinct <= TARGET_LOOKUP_RATIO)}`} |`,
    ...(now.near_neighbour_search ?? []).map((near) => `| gateway's search for cached near neighbours per changed \`${near.kind}\` fingerprint, ${near.cached.toLocaleString('en')} of that kind cached (ms; ns per cached one) | – | ${near.ms_per_event} (${near.ns_per_cached_entry} ns) | |`),
    '',
  ].join('\n');
}

const WINDOW_S = 20;
const CONVICTIONS_PER_S = 20;
const MESSAGES = 1200;
const REPEATS = 30;
const DISTINCT_MESSAGES = 400;
const RATE = 20;
/** USER_HZ: the unit of utime and stime in /proc/PID/stat on Linux. */
const TICKS_PER_S = 100;

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the command name).
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The service's CPU with no stream open, then with `gateways` streams open, at the same rate of convictions. */
async function measureCpu(url: string, admin: string, sensor: string, pid: number, gateways: number): Promise<Record<string, number>> {
  let n = 0;
  const convict = async (): Promise<void> => {
    const item = `url:sha256:${(n++).toString(16).padStart(64, '0')}`;
    await fetch(`${url}/v1/verdicts/${encodeURIComponent(item)}`, { method: 'PUT', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ verdict: 'spam' }) });
  };
  const window = async (): Promise<number> => {
    const before = cpuSeconds(pid);
    const started = performance.now();
    for (let i = 0; i < WINDOW_S * CONVICTIONS_PER_S; i++) {
      await convict();
      const due = started + ((i + 1) * 1000) / CONVICTIONS_PER_S;
      if (due > performance.now()) await sleep(due - performance.now());
    }
    return (cpuSeconds(pid) - before) / ((performance.now() - started) / 1000);
  };
  await window(); // warm-up: JIT, SQLite pages
  const alone = await window();
  let received = 0;
  let up = 0;
  const streams = Array.from({ length: gateways }, () => new ConvictionStream({ url, key: sensor, handlers: { changed: (c) => (received += c.length), reset: () => undefined, up: () => up++, down: () => undefined } }));
  try {
    const deadline = Date.now() + 30_000;
    while (up < gateways && Date.now() < deadline) await sleep(50);
    received = 0;
    const followed = await window();
    return {
      convictions_per_s: CONVICTIONS_PER_S,
      streams: up,
      cpu_percent_without_streams: Number((alone * 100).toFixed(1)),
      cpu_percent_with_streams: Number((followed * 100).toFixed(1)),
      stream_cost_cpu_percent: Number(((followed - alone) * 100).toFixed(1)),
      events_delivered: received,
      events_expected: WINDOW_S * CONVICTIONS_PER_S * gateways,
    };
  } finally {
    for (const stream of streams) stream.close();
  }
}

export async function runStreamCost(options: StreamCostOptions): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'nimbus-stream-cost-'));
  const port = await freePort();
  const env = { ...baseEnv(), NIMBUS_DATA_DIR: join(work, 'service'), NIMBUS_HTTP_LISTEN: `127.0.0.1:${port}`, NIMBUS_LOG_LEVEL: 'warn' };
  const url = `http://127.0.0.1:${port}`;
  const key = async (role: string): Promise<string> => {
    const made = await runCli(options.cli, options.root, ['keys', 'add', '--role', role, '--label', role, '--rate', '100000'], env);
    const token = made.stdout.trim().split('\n').pop() ?? '';
    if (made.status !== 0 || !token.startsWith('nmb_')) throw new NetworkError(`nimbus keys add failed: ${made.stderr}`);
    return token;
  };
  const admin = await key('admin');
  const sensor = await key('sensor');
  const service = cli(options.cli, options.root, ['reputation'], env, join(work, 'service.log'));
  let gateway: ReturnType<typeof cli> | null = null;
  try {
    await waitForPort(port, service, join(work, 'service.log'), 'nimbus reputation');
    // A product without the stream (the code before it, with --cli): lookups per message only.
    const probe = await fetch(`${url}/v1/convictions`, { headers: { authorization: `Bearer ${sensor}` }, signal: AbortSignal.timeout(2000) }).then(
      (response) => {
        void response.body?.cancel();
        return response.status;
      },
      () => 0,
    );
    const serviceCpu = probe === 200 ? await measureCpu(url, admin, sensor, service.pid!, options.gateways) : null;

    // Lookups per message through one participating gateway.
    const sink = await startSink(work);
    const smtpPort = await freePort();
    const gatewayLog = join(work, 'gateway.log');
    gateway = cli(options.cli, options.root, ['gateway'], {
      ...baseEnv(),
      NIMBUS_LISTEN: `127.0.0.1:${smtpPort}`,
      NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`,
      NIMBUS_RELAY_DOMAINS: 'example.com',
      NIMBUS_TRUSTED_NETWORKS: '127.0.0.0/8',
      NIMBUS_DATA_DIR: join(work, 'gateway'),
      NIMBUS_WORKERS: '1',
      NIMBUS_LOOKUP_TIMEOUT_MS: '2000',
      NIMBUS_LOG_LEVEL: 'warn',
      NIMBUS_PARTICIPATION: 'standard',
      NIMBUS_ACCEPT_STATEMENT: 'yes',
      NIMBUS_REPUTATION_URL: url,
      NIMBUS_REPUTATION_KEY: sensor,
    }, gatewayLog);
    await waitForPort(smtpPort, gateway, gatewayLog, 'nimbus gateway');
    const lookupsNow = async (): Promise<number> => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return [...text.matchAll(/^nimbus_reputation_requests_total\{route="\/v1\/lookup",method="POST",status="200"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const corpus = listCorpus(options.corpus).map(readCorpusMessage);
    let sequence = 0;
    /** `count` messages at RATE a second, cycling through `messages`: service lookup requests per message. */
    const lookupsPerMessage = async (messages: readonly (typeof corpus)[number][], count: number): Promise<LookupFigures> => {
      const before = await lookupsNow();
      const started = performance.now();
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < count; i++) {
        const message = messages[i % messages.length]!;
        const due = started + (i * 1000) / RATE;
        if (due > performance.now()) await sleep(due - performance.now());
        const headEnd = message.raw.indexOf('\n\n');
        const rcpt = `user${sequence++}@example.com`;
        sends.push(sendMessage({ port: smtpPort, clientIp: '198.51.100.7', clientHelo: null, mailFrom: envelopeSender(message.raw.subarray(0, headEnd).toString('latin1')), rcptTo: rcpt, message: message.raw }).finally(() => sink.take(rcpt)));
      }
      await Promise.all(sends);
      const lookups = (await lookupsNow()) - before;
      return { messages: count, distinct: Math.min(count, messages.length), rate_per_s: RATE, lookup_requests: lookups, per_message: Number((lookups / count).toFixed(3)) };
    };
    const repeated = await lookupsPerMessage(spread(corpus, MESSAGES / REPEATS), MESSAGES);
    // Mail as it comes (every message new): what most of a gateway's lookups are.
    const fresh = await lookupsPerMessage(spread(corpus, DISTINCT_MESSAGES + MESSAGES / REPEATS).slice(MESSAGES / REPEATS), DISTINCT_MESSAGES);
    await sink.close();
    const results: StreamCostResults = {
      command: `npm run bench -- protection ${process.argv.slice(3).join(' ')}`.trim(),
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', loadavg: loadavg().map((n) => Number(n.toFixed(2))) },
      service_cpu: serviceCpu,
      lookups: repeated,
      lookups_distinct: fresh,
      near_neighbour_search: measureNearCost(),
    };
    mkdirSync(join(options.root, 'bench', 'results'), { recursive: true });
    writeFileSync(join(options.root, 'bench', 'results', `${options.out}.json`), `${JSON.stringify(results, null, 1)}\n`);
    if (options.write) {
      const before = options.before ? (JSON.parse(readFileSync(options.before, 'utf8')) as StreamCostResults) : null;
      writeProtectionSection(join(options.root, 'BENCHMARKS.md'), streamCostMarkdown(results, before));
    }
    process.stdout.write(`${JSON.stringify(results, null, options.json ? 0 : 1)}\n`);
    return 0;
  } finally {
    if (gateway) await stopChild(gateway);
    await stopChild(service);
    rmSync(work, { recursive: true, force: true });
  }
}
