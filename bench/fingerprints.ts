/**
 * `npm run bench -- fingerprints [CORPUS_DIR] [--json] [--write]`: robustness and speed of the
 * fingerprints on a corpus of raw messages (default ../shared/corpus, with spam/ and ham/).
 *
 * - Images: every distinct decodable image is transformed (scale, re-encode, format change,
 *   crop, brightness, border, noise); a transform matches when the fuzzy scheme calls the
 *   hashes near. False matches: near pairs among all pairs of distinct images (distinct SHA-256).
 *   Two readings of the false matches, apart from that figure: what an aspect-ratio gate would
 *   remove (and cost in transform matches), and how many near pairs an independent pixel
 *   comparison finds no further apart than the transforms the hash must match (PIXEL_RULE).
 * - Text: each spam's visible text is personalised (greeting and name), 10% of its words are
 *   replaced and a random token appended; it matches when the store would find it (an LSH key in
 *   common) and the scheme calls it near. False matches: ham×spam and ham×ham pairs.
 * - Speed: fingerprintMessage over every file, sequentially in this one process, with libvips
 *   limited to one thread (sharp.concurrency(1)): the "one core" figure.
 * With --write the marked figures block of BENCHMARKS.md's Fingerprints section is replaced.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import sharp, { type Sharp } from 'sharp';
import { simpleParser } from 'mailparser';
import { fingerprintMessage, stripEnvelope } from '../src/fingerprint/index.js';
import { hashImage } from '../src/fingerprint/image.js';
import { DEFAULT_LIMITS } from '../src/fingerprint/limits.js';
import { fuzzySchemeFor } from '../src/fingerprint/fuzzy.js';
import { htmlToText, normalisedWords } from '../src/fingerprint/text.js';
import { minhash } from '../src/fingerprint/minhash.js';
import { writeMarkedBlock } from './benchmarks-block.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Deterministic PRNG (mulberry32) so every run transforms the same way. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface CorpusFile { readonly path: string; readonly name: string; readonly spam: boolean }

function listCorpus(dir: string): CorpusFile[] {
  const out: CorpusFile[] = [];
  for (const [sub, spam] of [['spam', true], ['ham', false]] as const) {
    const folder = join(dir, sub);
    if (!existsSync(folder)) continue;
    for (const name of readdirSync(folder).sort()) out.push({ path: join(folder, name), name, spam });
  }
  return out;
}

const pct = (n: number, d: number): number => (d === 0 ? 0 : (100 * n) / d);

// ---------- speed ----------
interface SpeedGroup { messages: number; bytes: number; seconds: number }
async function speed(files: CorpusFile[], skips: Map<string, number>): Promise<Record<string, SpeedGroup>> {
  const groups: Record<string, SpeedGroup> = {};
  const add = (key: string, bytes: number, seconds: number): void => {
    const g = (groups[key] ??= { messages: 0, bytes: 0, seconds: 0 });
    g.messages++;
    g.bytes += bytes;
    g.seconds += seconds;
  };
  for (const file of files) {
    const raw = readFileSync(file.path);
    const start = process.hrtime.bigint();
    const result = await fingerprintMessage(raw);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    for (const skip of result.skips) skips.set(skip.reason, (skips.get(skip.reason) ?? 0) + 1);
    add('all', raw.length, seconds);
    if (file.name.startsWith('sa_')) add('spamassassin', raw.length, seconds);
    if (file.name.startsWith('trec07p_') && file.spam) add('image_spam', raw.length, seconds);
  }
  return groups;
}

// ---------- images ----------
interface CorpusImage { readonly bytes: Buffer; readonly sha256: string; readonly phash: string; readonly width: number; readonly height: number; readonly spam: boolean; readonly format: string }

async function collectImages(files: CorpusFile[]): Promise<CorpusImage[]> {
  const bySha = new Map<string, CorpusImage>();
  for (const file of files) {
    let parsed;
    try {
      parsed = await simpleParser(stripEnvelope(readFileSync(file.path)), { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, keepCidLinks: true, checksumAlgo: false });
    } catch {
      continue;
    }
    for (const part of parsed.attachments) {
      if (!part.contentType.startsWith('image/')) continue;
      const result = await hashImage(part.content, DEFAULT_LIMITS);
      if (!result.ok) continue;
      const known = bySha.get(result.sha256);
      if (known) {
        if (!file.spam && known.spam) bySha.set(result.sha256, { ...known, spam: false }); // in ham at least once
        continue;
      }
      const meta = await sharp(part.content, { failOn: 'none', pages: 1 }).metadata().catch(() => null);
      const [format, width, height] = [meta?.format ?? 'unknown', meta?.width ?? 0, meta?.pageHeight ?? meta?.height ?? 0];
      bySha.set(result.sha256, { bytes: part.content, sha256: result.sha256, phash: result.phash, width, height, spam: file.spam, format });
    }
  }
  return [...bySha.values()];
}

type Transform = (image: CorpusImage, random: () => number) => Promise<Buffer>;
const firstFrame = (bytes: Buffer) => sharp(bytes, { pages: 1, failOn: 'none' });
const reencode = (pipeline: Sharp, format: string): Promise<Buffer> =>
  format === 'gif' ? pipeline.gif().toBuffer() : format === 'png' ? pipeline.png().toBuffer() : pipeline.jpeg({ quality: 85 }).toBuffer();

const TRANSFORMS: Record<string, Transform> = {
  scale_50: (i) => reencode(firstFrame(i.bytes).resize(Math.max(1, Math.round(i.width / 2))), i.format),
  scale_150: (i) => reencode(firstFrame(i.bytes).resize(Math.round(i.width * 1.5)), i.format),
  jpeg_q40: (i) => firstFrame(i.bytes).flatten({ background: '#ffffff' }).jpeg({ quality: 40 }).toBuffer(),
  jpeg_q85: (i) => firstFrame(i.bytes).flatten({ background: '#ffffff' }).jpeg({ quality: 85 }).toBuffer(),
  // GIF/PNG to JPEG and back; JPEG to PNG and back.
  format_roundtrip: async (i) => {
    const there = i.format === 'jpeg' ? await firstFrame(i.bytes).png().toBuffer() : await firstFrame(i.bytes).flatten({ background: '#ffffff' }).jpeg({ quality: 85 }).toBuffer();
    return reencode(sharp(there), i.format);
  },
  crop_2pct: (i) => reencode(firstFrame(i.bytes).extract({ left: 0, top: 0, width: i.width - Math.max(1, Math.round(i.width * 0.02)), height: i.height }), i.format),
  brightness_10pct: (i) => reencode(firstFrame(i.bytes).modulate({ brightness: 1.1 }), i.format),
  border_1px: (i) => reencode(firstFrame(i.bytes).extend({ top: 1, bottom: 1, left: 1, right: 1, background: '#000000' }), i.format),
  random_pixels: async (i, random) => {
    const { data, info } = await firstFrame(i.bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const pixels = info.width * info.height;
    for (let k = 0; k < 20; k++) {
      const p = Math.floor(random() * pixels) * info.channels;
      for (let c = 0; c < info.channels; c++) data[p + c] = Math.floor(random() * 256);
    }
    return reencode(sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }), i.format);
  },
};

/** How much two aspect ratios differ, as a fraction (0.05 = one is 5% wider for its height). */
const aspectDifference = (a: { width: number; height: number }, b: { width: number; height: number }): number =>
  Math.exp(Math.abs(Math.log(a.width / a.height) - Math.log(b.width / b.height))) - 1;
const ASPECT_GATES = [0.05, 0.1] as const;

// An independent reading of "the same picture", computed from the image bytes and not from the
// hash: greyscale on white, resized to PIXEL_SIDE², brightness and contrast normalised (mean 0,
// standard deviation 1), and the smallest mean absolute difference over shifts of up to
// PIXEL_SHIFT pixels either way (spam campaigns move the content on a jittered canvas). A pair is
// judged the same picture when that difference is within the 99th percentile of the differences
// between the images and their matched transformed copies. It misses campaign copies whose
// canvas changed shape (stretching the content when resized), so it undercounts.
const PIXEL_SIDE = 48;
const PIXEL_SHIFT = 3;
const PIXEL_SAMPLE = 5000;
const PIXEL_RULE = `greyscale ${PIXEL_SIDE}x${PIXEL_SIDE}, mean 0 and deviation 1, best shift within ${PIXEL_SHIFT} px, mean |difference| <= the 99th percentile of image vs matched transformed copy`;

async function pixelRaster(bytes: Buffer): Promise<Float64Array | null> {
  try {
    const grey = await sharp(bytes, { pages: 1, failOn: 'none', limitInputPixels: DEFAULT_LIMITS.maxImagePixels })
      .flatten({ background: '#ffffff' })
      .greyscale()
      .resize(PIXEL_SIDE, PIXEL_SIDE, { fit: 'fill' })
      .raw()
      .toBuffer();
    const px = Float64Array.from(grey.subarray(0, PIXEL_SIDE * PIXEL_SIDE));
    const mean = px.reduce((s, v) => s + v, 0) / px.length;
    const deviation = Math.sqrt(px.reduce((s, v) => s + (v - mean) ** 2, 0) / px.length) || 1;
    return px.map((v) => (v - mean) / deviation);
  } catch {
    return null;
  }
}

function pixelDifference(a: Float64Array, b: Float64Array): number {
  const n = PIXEL_SIDE;
  let best = Infinity;
  for (let dy = -PIXEL_SHIFT; dy <= PIXEL_SHIFT; dy++) {
    for (let dx = -PIXEL_SHIFT; dx <= PIXEL_SHIFT; dx++) {
      let sum = 0;
      let count = 0;
      for (let y = Math.max(0, dy); y < Math.min(n, n + dy); y++) {
        for (let x = Math.max(0, dx); x < Math.min(n, n + dx); x++) {
          sum += Math.abs(a[y * n + x]! - b[(y - dy) * n + x - dx]!);
          count++;
        }
      }
      best = Math.min(best, sum / count);
    }
  }
  return best;
}

function popcountHex(a: string, b: string): number {
  let count = 0;
  for (let i = 0; i < a.length; i += 8) {
    let x = (parseInt(a.slice(i, i + 8), 16) ^ parseInt(b.slice(i, i + 8), 16)) >>> 0;
    x -= (x >>> 1) & 0x55555555;
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    count += (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
  }
  return count;
}

async function imageRobustness(images: CorpusImage[]) {
  const scheme = fuzzySchemeFor('image', 'phash256')!;
  const random = prng(42);
  const perTransform: Record<string, { tried: number; matched: number; sha256: number; failed: number }> = {};
  // [DCT-half distance, gradient-half distance] per transformed copy and per pair of images.
  const distances: [number, number][] = [];
  // Of the matched copies: how far their aspect ratio moved, and their pixel difference.
  const matchedAspects: number[] = [];
  const copyPixelDifferences: number[] = [];
  const rasters = new Map<CorpusImage, Promise<Float64Array | null>>();
  const rasterOf = (image: CorpusImage) => rasters.get(image) ?? rasters.set(image, pixelRaster(image.bytes)).get(image)!;
  const halves = (a: string, b: string): [number, number] => [popcountHex(a.slice(0, 32), b.slice(0, 32)), popcountHex(a.slice(32), b.slice(32))];
  for (const image of images) {
    for (const [name, transform] of Object.entries(TRANSFORMS)) {
      const stat = (perTransform[name] ??= { tried: 0, matched: 0, sha256: 0, failed: 0 });
      let bytes: Buffer;
      try {
        bytes = await transform(image, random);
      } catch {
        stat.failed++;
        continue;
      }
      const result = await hashImage(bytes, DEFAULT_LIMITS);
      stat.tried++;
      if (result.sha256 === image.sha256) stat.sha256++;
      if (!result.ok) continue;
      distances.push(halves(image.phash, result.phash));
      if (!scheme.isNear(image.phash, result.phash)) continue;
      stat.matched++;
      const copyMeta = await sharp(bytes, { failOn: 'none', pages: 1 }).metadata().catch(() => null);
      if (copyMeta?.width && copyMeta.height) matchedAspects.push(aspectDifference(image, { width: copyMeta.width, height: copyMeta.pageHeight ?? copyMeta.height }));
      const [original, copy] = [await rasterOf(image), await pixelRaster(bytes)];
      if (original && copy) copyPixelDifferences.push(pixelDifference(original, copy));
    }
  }
  copyPixelDifferences.sort((x, y) => x - y);
  const pixelThreshold = copyPixelDifferences[Math.floor(0.99 * (copyPixelDifferences.length - 1))] ?? 0;
  const tried = Object.values(perTransform).reduce((s, t) => s + t.tried, 0);
  const matched = Object.values(perTransform).reduce((s, t) => s + t.matched, 0);
  // All pairs of distinct images.
  let pairs = 0;
  let near = 0;
  let hamPairs = 0;
  let hamNear = 0;
  let sameSize = 0;
  let hamHamNear = 0;
  let nearlyIdentical = 0;
  const nearPairs: [CorpusImage, CorpusImage][] = [];
  const pairDistances: [number, number][] = [];
  for (let a = 0; a < images.length; a++) {
    for (let b = a + 1; b < images.length; b++) {
      const pair = halves(images[a]!.phash, images[b]!.phash);
      pairDistances.push(pair);
      // Copies differing in at most 4 of the 128 DCT bits: the same picture re-rendered (spam
      // campaigns vary every copy by a few pixels); listed so the false-match figure can be read.
      if (pair[0] <= 4) nearlyIdentical++;
      const isNear = scheme.isNear(images[a]!.phash, images[b]!.phash);
      pairs++;
      if (isNear) near++;
      const withHam = !images[a]!.spam || !images[b]!.spam;
      if (withHam) {
        hamPairs++;
        if (isNear) hamNear++;
        if (isNear && !images[a]!.spam && !images[b]!.spam) hamHamNear++;
      }
      if (isNear && images[a]!.width === images[b]!.width && images[a]!.height === images[b]!.height) sameSize++;
      if (isNear) nearPairs.push([images[a]!, images[b]!]);
    }
  }
  const nearAspects = nearPairs.map(([a, b]) => aspectDifference(a, b));
  const aspectGates = Object.fromEntries(
    ASPECT_GATES.map((gate) => {
      const removed = nearAspects.filter((d) => d > gate).length;
      const lost = matchedAspects.filter((d) => d > gate).length;
      return [`aspect_differs_over_${gate * 100}pct`, { false_match_pairs_removed: removed, false_match_rate: pct(near - removed, pairs), transform_matches_lost: lost, match_rate: pct(matched - lost, tried) }];
    }),
  );
  let samePicture = 0;
  for (const [a, b] of nearPairs) {
    const [ra, rb] = [await rasterOf(a), await rasterOf(b)];
    if (ra && rb && pixelDifference(ra, rb) <= pixelThreshold) samePicture++;
  }
  // The rule's own reading of pairs the hash keeps apart (a fixed sample): how often it calls
  // those the same picture says how loose it is (or how many campaign copies the hash misses).
  const sample = prng(99);
  let otherSampled = 0;
  let otherSame = 0;
  while (otherSampled < PIXEL_SAMPLE && images.length > 1) {
    const [a, b] = [images[Math.floor(sample() * images.length)]!, images[Math.floor(sample() * images.length)]!];
    if (a === b || scheme.isNear(a.phash, b.phash)) continue;
    otherSampled++;
    const [ra, rb] = [await rasterOf(a), await rasterOf(b)];
    if (ra && rb && pixelDifference(ra, rb) <= pixelThreshold) otherSame++;
  }
  const shaMatched = Object.values(perTransform).reduce((s, t) => s + t.sha256, 0);
  // Other thresholds (DCT half, gradient half) for comparison; 128 means "not checked".
  const threshold = (dct: number, gradient: number) => ({
    match_rate: pct(distances.filter(([d, g]) => d <= dct && g <= gradient).length, tried),
    false_match_rate: pct(pairDistances.filter(([d, g]) => d <= dct && g <= gradient).length, pairs),
  });
  const THRESHOLDS: [number, number][] = [[8, 128], [16, 128], [20, 128], [12, 24], [16, 32], [20, 32], [24, 32], [24, 40]];
  return {
    images: images.length,
    image_ham: images.filter((i) => !i.spam).length,
    transformed: tried,
    image_match_rate: pct(matched, tried),
    image_false_match_rate: pct(near, pairs),
    image_false_match_pairs: near,
    image_pairs: pairs,
    image_false_match_same_size_pairs: sameSize,
    image_false_match_rate_with_ham: pct(hamNear, hamPairs),
    image_pairs_with_ham: hamPairs,
    image_false_match_ham_ham_pairs: hamHamNear,
    image_pairs_nearly_identical: nearlyIdentical,
    // Not the target's figure: readings of the false matches above (see the top of this file).
    image_false_match_aspect_gates: aspectGates,
    image_false_match_largest_aspect_difference: Math.max(0, ...nearAspects),
    image_transform_largest_aspect_difference: Math.max(0, ...matchedAspects),
    image_pixel_rule: PIXEL_RULE,
    image_pixel_rule_threshold: pixelThreshold,
    image_false_match_pairs_same_picture: samePicture,
    image_false_match_rate_not_same_picture: pct(near - samePicture, pairs),
    image_pixel_rule_same_in_sampled_other_pairs: otherSame,
    image_pixel_rule_sampled_other_pairs: otherSampled,
    sha256_match_rate: pct(shaMatched, tried),
    sha256_false_match_rate: 0,
    per_transform: Object.fromEntries(Object.entries(perTransform).map(([k, v]) => [k, { match_rate: pct(v.matched, v.tried), tried: v.tried, failed: v.failed }])),
    thresholds: Object.fromEntries(THRESHOLDS.map(([d, g]) => [`dct<=${d},gradient<=${g}`, threshold(d, g)])),
  };
}

// ---------- text ----------
const NAMES = ['Jonathan Miller', 'Maria Garcia', 'Wei Chen', 'Fatima Khan', 'Lars Olsen', 'Aisha Bello'];
function randomWord(random: () => number): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  return Array.from({ length: 3 + Math.floor(random() * 6) }, () => letters[Math.floor(random() * 26)]).join('');
}

function variant(text: string, random: () => number): string {
  const words = text.split(/(\s+)/);
  const indices = words.map((w, i) => (/\S/.test(w) ? i : -1)).filter((i) => i >= 0);
  const replace = Math.round(indices.length * 0.1);
  for (let k = 0; k < replace; k++) {
    const at = indices[Math.floor(random() * indices.length)]!;
    words[at] = randomWord(random);
  }
  const name = NAMES[Math.floor(random() * NAMES.length)]!;
  const token = Math.floor(random() * 2 ** 48).toString(36);
  return `Dear ${name},\n\n${words.join('')}\n\n${token}`;
}

async function visibleText(raw: Buffer): Promise<string | null> {
  try {
    const parsed = await simpleParser(stripEnvelope(raw), { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, keepCidLinks: true, checksumAlgo: false });
    return typeof parsed.html === 'string' && parsed.html ? htmlToText(parsed.html) : (parsed.text ?? '');
  } catch {
    return null;
  }
}

async function textRobustness(files: CorpusFile[]) {
  const scheme = fuzzySchemeFor('body', 'minhash64')!;
  const random = prng(7);
  const shareKey = (a: string, b: string): boolean => {
    const keys = new Set(scheme.storeKeys(a));
    return scheme.probeKeys(b).some((k) => keys.has(k));
  };
  let tried = 0;
  let matched = 0;
  const hashes: { hash: string; spam: boolean }[] = [];
  for (const file of files) {
    const text = await visibleText(readFileSync(file.path));
    if (text === null) continue;
    const original = minhash(normalisedWords(text.slice(0, DEFAULT_LIMITS.maxTextChars)));
    if (original === null) continue;
    hashes.push({ hash: original, spam: file.spam });
    if (!file.spam) continue;
    const changed = minhash(normalisedWords(variant(text, random).slice(0, DEFAULT_LIMITS.maxTextChars)));
    tried++;
    if (changed !== null && shareKey(original, changed) && scheme.isNear(original, changed)) matched++;
  }
  // Candidate pairs through the LSH keys (what a store would find), confirmed with isNear.
  const buckets = new Map<string, number[]>();
  hashes.forEach((h, i) => { for (const key of scheme.storeKeys(h.hash)) (buckets.get(key) ?? buckets.set(key, []).get(key)!).push(i); });
  const near = new Set<string>();
  for (const members of buckets.values()) {
    for (let x = 0; x < members.length; x++) for (let y = x + 1; y < members.length; y++) {
      const [a, b] = [members[x]!, members[y]!];
      if (hashes[a]!.spam && hashes[b]!.spam) continue; // spam×spam is not a false match
      const key = `${a}:${b}`;
      if (!near.has(key) && scheme.isNear(hashes[a]!.hash, hashes[b]!.hash)) near.add(key);
    }
  }
  const ham = hashes.filter((h) => !h.spam).length;
  const spam = hashes.length - ham;
  const pairs = ham * spam + (ham * (ham - 1)) / 2;
  return { text_messages: hashes.length, text_variants: tried, text_match_rate: pct(matched, tried), text_false_match_rate: pct(near.size, pairs), text_false_match_pairs: near.size, text_pairs: pairs };
}

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const write = args.includes('--write');
  const dir = resolve(args.find((a) => !a.startsWith('--')) ?? join(here, '..', '..', 'shared', 'corpus'));
  const files = listCorpus(dir);
  if (files.length === 0) {
    process.stderr.write(`bench fingerprints: no messages in ${dir}/spam or ${dir}/ham\n`);
    return 66;
  }
  sharp.concurrency(1); // one libvips thread: the figures are for one core
  const load = loadavg()[0]!;
  const skips = new Map<string, number>();
  const progress = (step: string): void => void process.stderr.write(`bench fingerprints: ${step}\n`);
  progress(`speed over ${files.length} messages`);
  const groups = await speed(files, skips);
  progress('collecting distinct images');
  const imageFiles = files.filter((f) => f.name.startsWith('trec07p_') || f.spam);
  const images = await collectImages(imageFiles);
  progress(`transforming ${images.length} images`);
  const image = await imageRobustness(images);
  progress('text variants and pairs');
  const text = await textRobustness(files);
  const rate = (g: SpeedGroup | undefined) => (g ? { per_second: g.messages / g.seconds, mb_per_second: g.bytes / 1e6 / g.seconds, messages: g.messages } : null);
  const figures = {
    corpus: dir,
    date: new Date().toISOString(),
    cpus: cpus().length,
    load_average_at_start: load,
    messages: files.length,
    messages_per_second: rate(groups.all)?.per_second ?? 0,
    mb_per_second: rate(groups.all)?.mb_per_second ?? 0,
    spamassassin_messages_per_second: rate(groups.spamassassin)?.per_second ?? 0,
    spamassassin_mb_per_second: rate(groups.spamassassin)?.mb_per_second ?? 0,
    image_messages_per_second: rate(groups.image_spam)?.per_second ?? 0,
    image_mb_per_second: rate(groups.image_spam)?.mb_per_second ?? 0,
    image_spam_messages: groups.image_spam?.messages ?? 0,
    skips: Object.fromEntries([...skips.entries()].sort((a, b) => b[1] - a[1])),
    ...image,
    ...text,
  };
  if (json) process.stdout.write(`${JSON.stringify(figures)}\n`);
  else process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  if (write) {
    // Only the marked block of the Fingerprints section: the text around it is written by hand.
    if (!writeMarkedBlock(join(here, '..', 'BENCHMARKS.md'), BEGIN, END, markdown(figures, args))) {
      process.stderr.write(`bench fingerprints: no ${BEGIN} … ${END} block in BENCHMARKS.md, nothing written\n`);
      return 1;
    }
  }
  return 0;
}

const BEGIN = '<!-- bench fingerprints: figures -->';
const END = '<!-- /bench fingerprints -->';

function markdown(f: Record<string, unknown>, args: string[]): string {
  return `\`npm run bench -- fingerprints ${args.join(' ')}\` (${String(f.date)}):\n\n\`\`\`json\n${JSON.stringify(f)}\n\`\`\`\n`;
}
