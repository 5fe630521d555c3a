/**
 * `npm run bench -- reputation-engine [--json] [--store sqlite|redis] [--fingerprints N] [--images N] [--reports N]`
 *
 * The reputation engine alone, without HTTP, on each store (SQLite in a temp file; Redis at
 * 127.0.0.1:6379 under its own key prefix, deleted afterwards):
 *   - bulk load of N (default 1,000,000) new fingerprints through `engine.ingest` (batches of
 *     5,000 records of 10 fingerprints), a fifth of them `image:phash256` (or --images);
 *   - image near-neighbour lookups, one item per call as a gateway asks: a stored hash with a
 *     few bits flipped in each half, one flipped exactly at the threshold (20 DCT + 32 gradient
 *     bits; must still be found), and a random hash that matches nothing (the common case);
 *   - report ingest as the service gets it: batches of 500 records of 4 already-stored
 *     fingerprints, every batch id new (--reports records in all, default 50,000).
 * Nothing is written to BENCHMARKS.md; bench/reputation.ts measures the same over HTTP.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import type { ReportRecord } from '../src/reputation/api.js';
import type { OpenedReputation, ReputationStoreOptions } from '../src/reputation/engine-types.js';

const REDIS_URL = 'redis://127.0.0.1:6379';

export interface SyntheticLoad {
  readonly fingerprints: number;
  readonly images: number;
  readonly records: number;
  readonly seconds: number;
  readonly recordsPerSecond: number;
  /** Some stored image hashes, to perturb and look up. */
  readonly imageSamples: string[];
  /** Some stored exact fingerprints, for lookup benches. */
  readonly exactSamples: string[];
}

/** xorshift32: deterministic data so runs compare. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

const FPS_PER_RECORD = 10;
const RECORDS_PER_BATCH = 5000;
const REPORT_BATCH_RECORDS = 500;
const REPORT_FINGERPRINTS = 4;

/** Loads `fingerprints` distinct fingerprints, `images` of them `image:phash256`, through ingest. */
export async function loadSynthetic(opened: OpenedReputation, options: { fingerprints: number; images: number; seed?: number }): Promise<SyntheticLoad> {
  const next = prng(options.seed ?? 20261123);
  const imageSamples: string[] = [];
  const exactSamples: string[] = [];
  const time = new Date().toISOString();
  const every = options.images > 0 ? options.fingerprints / options.images : Infinity;
  let made = 0;
  let images = 0;
  let records = 0;
  let batchNo = 0;
  const started = performance.now();
  while (made < options.fingerprints) {
    const batch: ReportRecord[] = [];
    while (batch.length < RECORDS_PER_BATCH && made < options.fingerprints) {
      const fingerprints: string[] = [];
      for (let i = 0; i < FPS_PER_RECORD && made < options.fingerprints; i++, made++) {
        if (images < options.images && made >= images * every) {
          images++;
          const item = `image:phash256:${Array.from({ length: 8 }, () => hex8(next())).join('')}`;
          if (imageSamples.length < 1000) imageSamples.push(item);
          fingerprints.push(item);
        } else {
          const item = `url:sha256:${hex8(next())}${hex8(next())}${hex8(next())}${hex8(made)}`;
          if (exactSamples.length < 100_000) exactSamples.push(item);
          fingerprints.push(item);
        }
      }
      batch.push({ id: `r${records}`, time, fingerprints, verdict: 'unknown', score: 0, action: records % 50 === 0 ? 'trap' : 'deliver' });
      records++;
    }
    await opened.engine.ingest(`synthetic-${options.seed ?? 0}-${batchNo}-${Date.now()}`, { id: `sensor${batchNo % 20}`, weight: 1 }, batch);
    batchNo++;
  }
  const seconds = (performance.now() - started) / 1000;
  return { fingerprints: made, images, records, seconds, recordsPerSecond: records / seconds, imageSamples, exactSamples };
}

/** Flips `count` distinct bits of a hex string between hex digits [from, to) (deterministically from `next`). */
function flipBits(hex: string, count: number, next: () => number, from: number, to: number): string {
  const digits = hex.split('');
  const used = new Set<number>();
  while (used.size < count) {
    const bit = from * 4 + (next() % ((to - from) * 4));
    if (used.has(bit)) continue;
    used.add(bit);
    const d = Math.floor(bit / 4);
    digits[d] = (parseInt(digits[d]!, 16) ^ (1 << bit % 4)).toString(16);
  }
  return digits.join('');
}

export interface NeighbourFigures {
  /** Mean ms per lookup of a stored hash with 4 DCT + 6 gradient bits flipped. */
  readonly ms: number;
  readonly found: number;
  readonly lookups: number;
  /** Mean ms per lookup of a stored hash flipped exactly at the threshold (20 + 32 bits). */
  readonly thresholdMs: number;
  readonly thresholdFound: number;
  /** Mean ms per lookup of a random hash with no stored neighbour. */
  readonly missMs: number;
  readonly missFalseMatches: number;
}

/**
 * Near-neighbour image lookups, one item per call (as a gateway asks): each sample is
 * perturbed so that it is found only through the index.
 */
export async function measureImageNeighbour(opened: OpenedReputation, samples: readonly string[]): Promise<NeighbourFigures> {
  const next = prng(7);
  const prefix = 'image:phash256:';
  const perturbed = (dct: number, gradient: number) =>
    samples.map((item) => ({ stored: item, probe: `${prefix}${flipBits(flipBits(item.slice(prefix.length), dct, next, 0, 32), gradient, next, 32, 64)}` }));
  const time = async (probes: { stored: string | null; probe: string }[]) => {
    for (const p of probes.slice(0, 20)) await opened.engine.lookup([p.probe]); // warm up
    let hits = 0;
    let matches = 0;
    const started = performance.now();
    for (const p of probes) {
      const [r] = await opened.engine.lookup([p.probe]);
      if (r?.match) matches++;
      if (p.stored !== null && r?.match?.item === p.stored) hits++;
    }
    return { ms: (performance.now() - started) / probes.length, hits, matches };
  };
  const near = await time(perturbed(4, 6));
  const edge = await time(perturbed(20, 32));
  const miss = await time(samples.map(() => ({ stored: null, probe: `${prefix}${Array.from({ length: 8 }, () => hex8(next())).join('')}` })));
  return { ms: near.ms, found: near.hits, lookups: samples.length, thresholdMs: edge.ms, thresholdFound: edge.hits, missMs: miss.ms, missFalseMatches: miss.matches };
}

/** Report ingest as the service gets it: batches of 500 records of 4 stored fingerprints, fresh batch ids. */
export async function measureReports(opened: OpenedReputation, known: readonly string[], total: number): Promise<{ recordsPerSecond: number; batchMs: number }> {
  const next = prng(99);
  const time = new Date().toISOString();
  const batches: ReportRecord[][] = [];
  for (let made = 0; made < total; ) {
    const records: ReportRecord[] = [];
    for (let r = 0; r < REPORT_BATCH_RECORDS && made < total; r++, made++) {
      const fingerprints = Array.from({ length: REPORT_FINGERPRINTS }, () => known[next() % known.length]!);
      const spam = r % 3 === 0;
      records.push({ id: `r${r}`, time, fingerprints, verdict: spam ? 'spam' : 'ham', score: spam ? 9 : 0, action: 'deliver' });
    }
    batches.push(records);
  }
  const started = performance.now();
  for (const [i, records] of batches.entries()) await opened.engine.ingest(`bench-report-${process.pid}-${Date.now()}-${i}`, { id: 'bench-sensor', weight: 1 }, records);
  const seconds = (performance.now() - started) / 1000;
  return { recordsPerSecond: total / seconds, batchMs: (seconds * 1000) / batches.length };
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

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at === -1 ? undefined : args[at + 1];
}

const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits;

async function benchStore(store: 'sqlite' | 'redis', fingerprints: number, images: number, reports: number, progress: (line: string) => void): Promise<Record<string, number>> {
  const { openReputation } = await import('../src/reputation/open.js');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nimbus-bench-engine-'));
  const prefix = `nimbus-bench-engine-${process.pid}:`;
  const options: ReputationStoreOptions = store === 'sqlite' ? { store, path: path.join(dir, 'reputation.sqlite') } : { store, urls: [REDIS_URL], prefix };
  const opened = await openReputation(options);
  try {
    progress(`${store}: loading ${fingerprints} fingerprints (${images} images)`);
    const load = await loadSynthetic(opened, { fingerprints, images });
    progress(`${store}: loaded in ${load.seconds.toFixed(1)} s; image neighbours`);
    // A fresh engine on the loaded store, as after a restart: its first lookup pays any index load.
    await opened.close();
    const reopened = await openReputation(options);
    try {
      const firstStarted = performance.now();
      await reopened.engine.lookup([`image:phash256:${'0'.repeat(64)}`]);
      const firstMs = performance.now() - firstStarted;
      const neighbour = await measureImageNeighbour(reopened, load.imageSamples);
      progress(`${store}: report ingest of ${reports} records`);
      const ingest = await measureReports(reopened, load.exactSamples, reports);
      // The WAL right after the ingest: checkpoints must keep up with it (SQLite only).
      const size = (suffix: string) => (options.store === 'sqlite' && existsSync(options.path + suffix) ? statSync(options.path + suffix).size / 1048576 : 0);
      return {
        fingerprints: load.fingerprints,
        images: load.images,
        load_seconds: round(load.seconds),
        load_records_per_second: Math.round(load.recordsPerSecond),
        first_image_lookup_ms: round(firstMs),
        image_neighbour_ms: round(neighbour.ms, 3),
        image_neighbour_found: neighbour.found / neighbour.lookups,
        image_threshold_ms: round(neighbour.thresholdMs, 3),
        image_threshold_found: neighbour.thresholdFound / neighbour.lookups,
        image_miss_ms: round(neighbour.missMs, 3),
        image_miss_false_matches: neighbour.missFalseMatches,
        reports_per_second: Math.round(ingest.recordsPerSecond),
        report_batch_ms: round(ingest.batchMs),
        ...(store === 'sqlite' ? { sqlite_file_mb: Math.round(size('')), sqlite_wal_mb: Math.round(size('-wal')) } : {}),
      };
    } finally {
      await reopened.close();
    }
  } finally {
    if (store === 'redis') await deleteRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(args: string[]): Promise<number> {
  const fingerprints = Number(option(args, '--fingerprints') ?? 1_000_000);
  const images = Number(option(args, '--images') ?? Math.floor(fingerprints / 5));
  const reports = Number(option(args, '--reports') ?? 50_000);
  const only = option(args, '--store');
  const stores = only ? [only] : ['sqlite', 'redis'];
  if (!stores.every((s) => s === 'sqlite' || s === 'redis') || !(fingerprints > 0) || !(images >= 0 && images <= fingerprints) || !(reports > 0)) {
    process.stderr.write('usage: npm run bench -- reputation-engine [--json] [--store sqlite|redis] [--fingerprints N] [--images N] [--reports N]\n');
    return 64;
  }
  const progress = (line: string) => process.stderr.write(`bench reputation-engine: ${line}\n`);
  const figures: Record<string, unknown> = { date: new Date().toISOString(), cpus: os.cpus().length, load_average_at_start: round(os.loadavg()[0]!, 2), node: process.version };
  for (const store of stores as ('sqlite' | 'redis')[]) {
    try {
      figures[store] = await benchStore(store, fingerprints, images, reports, progress);
    } catch (error) {
      figures[store] = { error: (error as Error).message };
      progress(`${store}: not measured: ${(error as Error).message}`);
    }
  }
  if (args.includes('--json')) process.stdout.write(`${JSON.stringify(figures)}\n`);
  else process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  return 0;
}
