/**
 * `npm run bench -- reputation [--json] [--store sqlite|redis] [--fingerprints N] [--duration S] [--no-write] [--cpu-prof DIR]`
 *
 * Loads N (default 1,000,000) fingerprints, a fifth of them image perceptual hashes, into each
 * store through the engine, then runs the service in a child process (so the load generator
 * does not share its event loop) and drives it over HTTP with autocannon:
 *   - lookups in batches of 10 (half known, half unknown items);
 *   - report ingest (batches of 500 records of 4 fingerprints, each batch id new).
 * In the engine, a near-neighbour image lookup (3 bits flipped in each half) is timed.
 * Also: store size (SQLite file + WAL, Redis used_memory delta) and the service's RSS.
 * Redis runs under its own key prefix at 127.0.0.1:6379, deleted afterwards.
 * --cpu-prof DIR: the service child writes a V8 CPU profile into DIR when it stops.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { loadConfig } from '../src/config/index.js';
import type { ReportRecord } from '../src/reputation/api.js';
import type { OpenedReputation, ReputationStoreOptions } from '../src/reputation/engine-types.js';
import { startReputationService } from '../src/reputation/service.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const REDIS_URL = 'redis://127.0.0.1:6379';
const LOAD_BATCH_RECORDS = 5000;
const FINGERPRINTS_PER_LOAD_RECORD = 10;
const REPORT_BATCH_RECORDS = 500;
const REPORT_FINGERPRINTS = 4;
const LOOKUP_BATCH = 10;

/** The part of autocannon's programmatic API used here (the package ships no types). */
interface CannonRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (request: CannonRequest) => CannonRequest;
}
interface CannonOptions extends CannonRequest {
  url: string;
  connections: number;
  duration: number;
  requests?: CannonRequest[];
}
interface CannonResult {
  requests: { total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}
type Autocannon = (options: CannonOptions, done: (error: Error | null, result: CannonResult) => void) => unknown;

type OpenReputation = (options: ReputationStoreOptions) => Promise<OpenedReputation>;

async function loadOpenReputation(): Promise<OpenReputation> {
  const specifier = '../src/reputation/open.js';
  const module = (await import(specifier)) as { openReputation: OpenReputation };
  return module.openReputation;
}

interface StoreFigures {
  fingerprints_loaded: number;
  load_seconds: number;
  lookups_per_second: number;
  lookup_requests_per_second: number;
  lookup_p50_ms: number;
  lookup_p99_ms: number;
  lookup_errors: number;
  reports_per_second: number;
  report_p99_ms: number;
  report_errors: number;
  image_neighbour_ms: number;
  image_neighbour_found: number;
  store_bytes: number;
  service_rss_mb: number;
  service_peak_rss_mb: number;
}

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');
const OTHER_KINDS = ['url', 'attachment', 'ip', 'net'] as const;

/** Fingerprint i of the synthetic set: every fifth an image hash, the rest sha256 of other kinds. */
function syntheticFingerprint(i: number): string {
  if (i % 5 === 0) return `image:phash256:${hex(32)}`;
  return `${OTHER_KINDS[i % OTHER_KINDS.length]}:sha256:${hex(32)}`;
}

/** Flips `bits` distinct bits in a hex string between hex digit offsets [from, to). */
function flipBits(value: string, from: number, to: number, bits: number): string {
  const digits = value.split('');
  const used = new Set<number>();
  while (used.size < bits) used.add(from * 4 + Math.floor(Math.random() * (to - from) * 4));
  for (const bit of used) {
    const at = Math.floor(bit / 4);
    digits[at] = (parseInt(digits[at]!, 16) ^ (1 << (bit % 4))).toString(16);
  }
  return digits.join('');
}

function record(id: string, fingerprints: string[], spam: boolean): ReportRecord {
  return { id, time: new Date().toISOString(), fingerprints, verdict: spam ? 'spam' : 'ham', score: spam ? 9 : 0, action: 'deliver' };
}

/** Loads `total` fingerprints through engine.ingest; keeps a sample of known items and image hashes. */
async function load(opened: OpenedReputation, total: number): Promise<{ known: string[]; images: string[]; seconds: number }> {
  const known: string[] = [];
  const images: string[] = [];
  const started = performance.now();
  const sensor = { id: 'bench-loader', weight: 1 };
  let next = 0;
  let batch = 0;
  while (next < total) {
    const records: ReportRecord[] = [];
    for (let r = 0; r < LOAD_BATCH_RECORDS && next < total; r++) {
      const fingerprints: string[] = [];
      for (let f = 0; f < FINGERPRINTS_PER_LOAD_RECORD && next < total; f++, next++) {
        const item = syntheticFingerprint(next);
        fingerprints.push(item);
        if (next % 10 === 1 && known.length < 200_000) known.push(item);
        if (item.startsWith('image:') && images.length < 2000) images.push(item);
      }
      records.push(record(`load-${batch}-${r}`, fingerprints, r % 2 === 0));
    }
    await opened.engine.ingest(`bench-load-${batch++}-${hex(4)}`, sensor, records);
  }
  return { known, images, seconds: (performance.now() - started) / 1000 };
}

/** Mean engine lookup time of a near (not identical) image hash; and how many found their neighbour. */
async function imageNeighbour(opened: OpenedReputation, images: string[]): Promise<{ ms: number; found: number }> {
  const probes = images.slice(0, 1000).map((item) => {
    const value = item.slice('image:phash256:'.length);
    return { stored: item, near: `image:phash256:${flipBits(flipBits(value, 0, 32, 3), 32, 64, 3)}` };
  });
  for (const probe of probes.slice(0, 50)) await opened.engine.lookup([probe.near]);
  let found = 0;
  const started = performance.now();
  for (const probe of probes) {
    const [result] = await opened.engine.lookup([probe.near]);
    if (result?.match?.item === probe.stored) found++;
  }
  return { ms: (performance.now() - started) / probes.length, found: found / probes.length };
}

function rssOf(pid: number): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

async function startChild(options: ReputationStoreOptions, dataDir: string, cpuProfDir: string | null): Promise<{ child: ChildProcess; url: string }> {
  const profile = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', path.join(here, 'reputation.ts'), '--serve'], {
    cwd: root,
    env: { ...process.env, NIMBUS_BENCH_STORE: JSON.stringify(options), NIMBUS_BENCH_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench service exited with ${code}`)));
    lines.once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
  });
  return { child, url };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function drive(options: CannonOptions): Promise<CannonResult> {
  const specifier = 'autocannon';
  const autocannon = ((await import(specifier)) as { default: Autocannon }).default;
  return new Promise((resolve, reject) => {
    autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

async function redisUsedMemory(): Promise<number> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const info = await redis.info('memory');
  redis.disconnect();
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
}

async function deleteRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
  let cursor = '0';
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
    cursor = nextCursor;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}

async function benchStore(store: 'sqlite' | 'redis', total: number, duration: number, progress: (line: string) => void, cpuProfDir: string | null): Promise<StoreFigures> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `nimbus-bench-rep-${store}-`));
  const prefix = `nimbus-bench-${process.pid}-${hex(3)}:`;
  const options: ReputationStoreOptions =
    // Write-behind on SQLite, as `nimbus reputation` opens its store (service/open-store.ts).
    store === 'sqlite' ? { store: 'sqlite', path: path.join(dir, 'reputation.sqlite'), writeBehind: true } : { store: 'redis', urls: [REDIS_URL], prefix };
  const memoryBefore = store === 'redis' ? await redisUsedMemory() : 0;
  let child: ChildProcess | null = null;
  try {
    const openReputation = await loadOpenReputation();
    const opened = await openReputation(options);
    progress(`${store}: loading ${total} fingerprints`);
    const loaded = await load(opened, total);
    progress(`${store}: loaded in ${loaded.seconds.toFixed(1)} s; timing image neighbours`);
    const neighbour = await imageNeighbour(opened, loaded.images);
    const { token } = await opened.keys.addKey('sensor', 'bench', 1e9);
    await opened.close();

    const started = await startChild(options, dir, cpuProfDir);
    child = started.child;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const known = loaded.known;
    const lookupBody = () => {
      const items: string[] = [];
      for (let i = 0; i < LOOKUP_BATCH; i++) {
        items.push(Math.random() < 0.5 ? known[Math.floor(Math.random() * known.length)]! : `url:sha256:${hex(32)}`);
      }
      return JSON.stringify({ items });
    };
    progress(`${store}: lookups for ${duration} s`);
    await drive({ url: `${started.url}/v1/lookup`, method: 'POST', headers, body: lookupBody(), connections: 4, duration: 2 });
    const lookups = await drive({
      url: `${started.url}/v1/lookup`,
      connections: 12,
      duration,
      requests: [{ method: 'POST', headers, setupRequest: (request) => ({ ...request, body: lookupBody() }) }],
    });
    let batchNo = 0;
    const reportBody = () => {
      const records: ReportRecord[] = [];
      for (let r = 0; r < REPORT_BATCH_RECORDS; r++) {
        const fingerprints = Array.from({ length: REPORT_FINGERPRINTS }, () => known[Math.floor(Math.random() * known.length)]!);
        records.push(record(`r${r}`, fingerprints, r % 3 === 0));
      }
      return JSON.stringify({ batchId: `bench-${process.pid}-${hex(6)}-${batchNo++}`, records });
    };
    // Bodies built ahead: building a 500-record body per request would measure this process.
    const reportBodies = Array.from({ length: 64 }, reportBody);
    let bodyAt = 0;
    progress(`${store}: report ingest for ${duration} s`);
    const reports = await drive({
      url: `${started.url}/v1/reports`,
      connections: 8,
      duration,
      requests: [
        {
          method: 'POST',
          headers,
          setupRequest: (request) => {
            const base = reportBodies[bodyAt++ % reportBodies.length]!;
            // A fresh batch id per request, so nothing is taken for a duplicate.
            return { ...request, body: base.replace(/"batchId":"[^"]+"/, `"batchId":"bench-${hex(8)}-${bodyAt}"`) };
          },
        },
      ],
    });
    const memory = rssOf(child.pid!);
    await stopChild(child);
    child = null;
    let storeBytes = 0;
    if (store === 'sqlite') {
      for (const suffix of ['', '-wal', '-shm']) {
        const file = `${options.store === 'sqlite' ? options.path : ''}${suffix}`;
        if (existsSync(file)) storeBytes += statSync(file).size;
      }
    } else storeBytes = (await redisUsedMemory()) - memoryBefore;
    const lookupOk = lookups.requests.total - lookups.non2xx - lookups.errors;
    const reportOk = reports.requests.total - reports.non2xx - reports.errors;
    return {
      fingerprints_loaded: total,
      load_seconds: round(loaded.seconds),
      lookups_per_second: Math.round((lookupOk * LOOKUP_BATCH) / duration),
      lookup_requests_per_second: Math.round(lookupOk / duration),
      lookup_p50_ms: lookups.latency.p50,
      lookup_p99_ms: lookups.latency.p99,
      lookup_errors: lookups.non2xx + lookups.errors,
      reports_per_second: Math.round((reportOk * REPORT_BATCH_RECORDS) / duration),
      report_p99_ms: reports.latency.p99,
      report_errors: reports.non2xx + reports.errors,
      image_neighbour_ms: round(neighbour.ms, 3),
      image_neighbour_found: round(neighbour.found, 3),
      store_bytes: storeBytes,
      service_rss_mb: Math.round(memory.rss),
      service_peak_rss_mb: Math.round(memory.peak),
    };
  } finally {
    if (child) await stopChild(child);
    if (store === 'redis') await deleteRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits;

function markdown(figures: Record<string, StoreFigures>, command: string, load: { start: number[]; end: number[] }): string {
  const stores = Object.keys(figures);
  const rows: [string, (f: StoreFigures) => string, string][] = [
    ['fingerprints looked up / s (batches of 10)', (f) => f.lookups_per_second.toLocaleString('en'), '>= 20,000'],
    ['lookup request p50 / p99 (ms)', (f) => `${f.lookup_p50_ms} / ${f.lookup_p99_ms}`, 'p99 <= 10'],
    ['report records ingested / s (batches of 500)', (f) => f.reports_per_second.toLocaleString('en'), '>= 20,000'],
    ['report request p99 (ms)', (f) => String(f.report_p99_ms), ''],
    ['image near-neighbour lookup in the engine (ms)', (f) => String(f.image_neighbour_ms), '< 1'],
    ['image neighbours found (3+3 bits flipped)', (f) => `${Math.round(f.image_neighbour_found * 100)} %`, ''],
    ['non-2xx / errors (lookups, reports)', (f) => `${f.lookup_errors}, ${f.report_errors}`, '0'],
    ['load of the fingerprints (s)', (f) => String(f.load_seconds), ''],
    ['store size (SQLite file + WAL; Redis used_memory delta)', (f) => `${(f.store_bytes / 1048576).toFixed(0)} MB`, ''],
    ['service RSS after the run / peak (MB)', (f) => `${f.service_rss_mb} / ${f.service_peak_rss_mb}`, ''],
  ];
  const lines = [
    `Command: \`${command}\` (${new Date().toISOString().slice(0, 16)}Z, ${os.cpus().length} cores, Node ${process.version}, load average ${load.start.map((l) => l.toFixed(1)).join(' / ')} at the start and ${load.end.map((l) => l.toFixed(1)).join(' / ')} at the end: the machine is shared, higher load means lower figures).`,
    `${(Object.values(figures)[0]?.fingerprints_loaded ?? 0).toLocaleString('en')} fingerprints loaded (a fifth image:phash256), service in a child process, autocannon in this one.`,
    '',
    `| figure | ${stores.join(' | ')} | target |`,
    `|---|${stores.map(() => '---').join('|')}|---|`,
    ...rows.map(([name, format, target]) => `| ${name} | ${stores.map((s) => format(figures[s]!)).join(' | ')} | ${target} |`),
  ];
  return lines.join('\n');
}

/** Replaces the figures block inside BENCHMARKS.md's "## Reputation" section only. */
function writeBenchmarks(block: string): void {
  const file = path.join(root, 'BENCHMARKS.md');
  const text = readFileSync(file, 'utf8');
  const begin = '<!-- reputation figures -->';
  const end = '<!-- /reputation figures -->';
  const section = text.indexOf('## Reputation');
  if (section === -1) return;
  const marked = `${begin}\n${block}\n${end}`;
  const from = text.indexOf(begin, section);
  if (from !== -1) {
    const to = text.indexOf(end, from);
    writeFileSync(file, text.slice(0, from) + marked + text.slice(to + end.length));
    return;
  }
  const headerEnd = text.indexOf('\n', section) + 1;
  writeFileSync(file, `${text.slice(0, headerEnd)}\n${marked}\n${text.slice(headerEnd)}`);
}

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at === -1 ? undefined : args[at + 1];
}

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const cpuProfArg = option(args, '--cpu-prof');
  const cpuProfDir = cpuProfArg ? path.resolve(cpuProfArg) : null;
  const total = Number(option(args, '--fingerprints') ?? 1_000_000);
  const duration = Number(option(args, '--duration') ?? 10);
  const only = option(args, '--store');
  const stores = only ? [only] : ['sqlite', 'redis'];
  if (!stores.every((s) => s === 'sqlite' || s === 'redis') || !(total > 0) || !(duration > 0)) {
    process.stderr.write('usage: npm run bench -- reputation [--json] [--store sqlite|redis] [--fingerprints N] [--duration S] [--no-write] [--cpu-prof DIR]\n');
    return 64;
  }
  const progress = (line: string) => process.stderr.write(`bench reputation: ${line}\n`);
  const loadAtStart = os.loadavg();
  const figures: Record<string, StoreFigures> = {};
  const failed: Record<string, { error: string }> = {};
  for (const store of stores as ('sqlite' | 'redis')[]) {
    try {
      figures[store] = await benchStore(store, total, duration, progress, cpuProfDir);
    } catch (error) {
      // One store missing (e.g. no Redis) must not hide the other's figures.
      failed[store] = { error: (error as Error).message };
      progress(`${store}: not measured: ${(error as Error).message}`);
    }
  }
  if (Object.keys(figures).length === 0) return 1;
  const load = { start: loadAtStart, end: os.loadavg() };
  if (json) process.stdout.write(`${JSON.stringify({ ...figures, ...failed, load_average: load })}\n`);
  const command = `npm run bench -- reputation ${args.filter((a) => a !== '--no-write').join(' ')}`.trim();
  const table = markdown(figures, command, load) + Object.entries(failed).map(([store, f]) => `\n\n${store}: not measured (${f.error}).`).join('');
  if (!json) process.stdout.write(`${table}\n`);
  if (!args.includes('--no-write')) writeBenchmarks(table);
  return 0;
}

/** Child mode: the service over the store named in NIMBUS_BENCH_STORE, until SIGTERM. */
async function serve(): Promise<void> {
  const options = JSON.parse(process.env.NIMBUS_BENCH_STORE!) as ReputationStoreOptions;
  const config = loadConfig({ NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_DATA_DIR: process.env.NIMBUS_BENCH_DATA_DIR!, NIMBUS_LOG_LEVEL: 'silent' });
  const opened = await (await loadOpenReputation())(options);
  const service = await startReputationService(config, pino({ level: 'silent' }), opened);
  process.stdout.write(`${JSON.stringify({ url: service.url })}\n`);
  process.once('SIGTERM', () => {
    void service
      .close()
      .then(() => opened.close())
      .then(() => process.exit(0));
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv.includes('--serve')) {
  serve().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
