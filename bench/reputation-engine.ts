/**
 * Engine-level measurements used by bench/reputation.ts: a fast synthetic bulk load through
 * the engine's own ingest (big batches), and the near-neighbour image lookup time. Run alone:
 * `npx tsx bench/reputation-engine.ts [sqlite-path]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ReportRecord } from '../src/reputation/api.js';
import type { OpenedReputation } from '../src/reputation/engine-types.js';

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

/** Loads `fingerprints` distinct fingerprints, `images` of them `image:phash256`, through ingest. */
export async function loadSynthetic(opened: OpenedReputation, options: { fingerprints: number; images: number; seed?: number }): Promise<SyntheticLoad> {
  const next = prng(options.seed ?? 20261123);
  const imageSamples: string[] = [];
  const exactSamples: string[] = [];
  const time = new Date().toISOString();
  let made = 0;
  let records = 0;
  let batchNo = 0;
  const started = performance.now();
  while (made < options.fingerprints) {
    const batch: ReportRecord[] = [];
    while (batch.length < RECORDS_PER_BATCH && made < options.fingerprints) {
      const fingerprints: string[] = [];
      for (let i = 0; i < FPS_PER_RECORD && made < options.fingerprints; i++, made++) {
        if (made % Math.max(1, Math.floor(options.fingerprints / Math.max(1, options.images))) === 0 && made / Math.floor(options.fingerprints / Math.max(1, options.images)) < options.images) {
          const value = Array.from({ length: 8 }, () => hex8(next())).join('');
          const item = `image:phash256:${value}`;
          if (imageSamples.length < 1000) imageSamples.push(item);
          fingerprints.push(item);
        } else {
          const item = `url:sha256:${hex8(next())}${hex8(next())}${hex8(next())}${hex8(made)}`;
          if (exactSamples.length < 10_000) exactSamples.push(item);
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
  return { fingerprints: made, images: options.images, records, seconds, recordsPerSecond: records / seconds, imageSamples, exactSamples };
}

/** Flips `count` distinct bits of a hex string (deterministically from `next`). */
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

/**
 * Milliseconds per near-neighbour image lookup (one item per call, as a gateway asks): each
 * sample is perturbed by a few bits in both halves so it is found only through the index.
 * `found` counts lookups that returned the stored neighbour.
 */
export async function measureImageNeighbour(opened: OpenedReputation, samples: readonly string[]): Promise<{ ms: number; found: number; lookups: number }> {
  const next = prng(7);
  const probes = samples.map((item) => {
    const value = item.slice('image:phash256:'.length);
    return { stored: item, probe: `image:phash256:${flipBits(flipBits(value, 4, next, 0, 32), 6, next, 32, 64)}` };
  });
  for (const p of probes.slice(0, 20)) await opened.engine.lookup([p.probe]); // warm up
  let found = 0;
  const started = performance.now();
  for (const p of probes) {
    const [r] = await opened.engine.lookup([p.probe]);
    if (r?.match?.item === p.stored) found++;
  }
  return { ms: (performance.now() - started) / probes.length, found, lookups: probes.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { openReputation } = await import('../src/reputation/open.js');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nimbus-bench-engine-'));
  const file = process.argv[2] ?? path.join(dir, 'reputation.sqlite');
  const opened = await openReputation({ store: 'sqlite', path: file });
  try {
    const load = await loadSynthetic(opened, { fingerprints: Number(process.env.FPS ?? 1_000_000), images: Number(process.env.IMAGES ?? 200_000) });
    const neighbour = await measureImageNeighbour(opened, load.imageSamples);
    const { imageSamples: _i, exactSamples: _e, ...figures } = load;
    process.stdout.write(`${JSON.stringify({ ...figures, image_neighbour_ms: neighbour.ms, found: neighbour.found, lookups: neighbour.lookups })}\n`);
  } finally {
    await opened.close();
    if (process.argv[2] === undefined) rmSync(dir, { recursive: true, force: true });
  }
}
