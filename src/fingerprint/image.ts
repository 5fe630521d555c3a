/**
 * `image` fingerprints: SHA-256 of the bytes, and `phash256`, a 256-bit perceptual hash of the
 * decoded pixels: 128 bits from the low frequencies of a DCT (robust to scaling, re-encoding,
 * brightness) followed by 128 bits of a horizontal gradient hash (which adds detail of the
 * layout, so near-identical spam templates with different text are told apart more often).
 * Both come from one decode to a 32×32 greyscale thumbnail, done by sharp in libvips threads,
 * so the event loop is never blocked by pixel work.
 */
import { createHash } from 'node:crypto';
import type { Sharp, SharpOptions } from 'sharp';
import { MIN_IMAGE_SIDE, type FingerprintLimits } from './limits.js';

/**
 * sharp (libvips, ~13 MB resident) is loaded at the first image, not at start: a gateway worker
 * that has seen no image, and every command that never hashes one, does without it. Its
 * operation cache is off: every image a gateway hashes is new to it, so the cache (up to 50 MB
 * per process by default) would only hold memory.
 */
let loadingSharp: Promise<(input: Buffer, options: SharpOptions) => Sharp> | null = null;
function loadSharp(): Promise<(input: Buffer, options: SharpOptions) => Sharp> {
  loadingSharp ??= import('sharp').then(({ default: sharp }) => {
    sharp.cache(false);
    return (input, options) => sharp(input, options);
  });
  return loadingSharp;
}

export const PHASH_ALGORITHM = 'phash256';
export const PHASH_BITS = 256;
const SIDE = 32;
const DCT_KEEP = 12;

export type ImageHashResult =
  | { readonly ok: true; readonly sha256: string; readonly phash: string; readonly width: number; readonly height: number }
  | { readonly ok: false; readonly sha256: string; readonly reason: string; readonly detail: string };

// cos((2x+1)uπ/64) for the first DCT_KEEP frequencies: a constant table, computed once.
const COS = Object.freeze(
  Array.from({ length: DCT_KEEP }, (_, u) => Float64Array.from({ length: SIDE }, (_, x) => Math.cos(((2 * x + 1) * u * Math.PI) / (2 * SIDE)))),
);
// The 128 lowest frequencies except DC (which only says how bright the image is), in zig-zag order.
const DCT_ORDER = Object.freeze(
  Array.from({ length: DCT_KEEP * DCT_KEEP }, (_, i) => [Math.floor(i / DCT_KEEP), i % DCT_KEEP] as const)
    .filter(([u, v]) => u + v > 0)
    .sort((a, b) => a[0] + a[1] - (b[0] + b[1]) || a[0] - b[0])
    .slice(0, 128),
);

function bitsToHex(bits: readonly boolean[]): string {
  let hex = '';
  for (let i = 0; i < bits.length; i += 4) {
    hex += ((bits[i] ? 8 : 0) | (bits[i + 1] ? 4 : 0) | (bits[i + 2] ? 2 : 0) | (bits[i + 3] ? 1 : 0)).toString(16);
  }
  return hex;
}

/** The 256-bit hash of a 32×32 greyscale raster (row-major, one byte per pixel). */
export function perceptualHash(pixels: Uint8Array): string {
  // Separable 2-D DCT restricted to the kept frequencies: rows first, then columns.
  const rows: Float64Array[] = [];
  for (let y = 0; y < SIDE; y++) {
    const row = new Float64Array(DCT_KEEP);
    for (let v = 0; v < DCT_KEEP; v++) {
      let sum = 0;
      for (let x = 0; x < SIDE; x++) sum += pixels[y * SIDE + x]! * COS[v]![x]!;
      row[v] = sum;
    }
    rows.push(row);
  }
  const coefficient = (u: number, v: number): number => {
    let sum = 0;
    for (let y = 0; y < SIDE; y++) sum += rows[y]![v]! * COS[u]![y]!;
    return sum;
  };
  const dct = DCT_ORDER.map(([u, v]) => coefficient(u, v));
  const median = [...dct].sort((a, b) => a - b)[dct.length / 2]!;
  const bits = dct.map((c) => c > median);
  // Gradient hash on a 16×9 grid of cell means: does brightness rise from one cell to the next?
  for (let r = 0; r < 16; r++) {
    const cells: number[] = [];
    for (let c = 0; c < 9; c++) {
      const x0 = Math.floor((c * SIDE) / 9);
      const x1 = Math.floor(((c + 1) * SIDE) / 9);
      let sum = 0;
      for (let y = r * 2; y < r * 2 + 2; y++) for (let x = x0; x < x1; x++) sum += pixels[y * SIDE + x]!;
      cells.push(sum / ((x1 - x0) * 2));
    }
    for (let c = 0; c < 8; c++) bits.push(cells[c]! < cells[c + 1]!);
  }
  return bitsToHex(bits);
}

function classify(error: unknown): { reason: string; detail: string } {
  const detail = error instanceof Error ? error.message : String(error);
  if (/unsupported image format|bad seek|not a known file format/i.test(detail)) return { reason: 'image-unsupported', detail };
  if (/pixel limit/i.test(detail)) return { reason: 'image-too-many-pixels', detail };
  if (/timeout/i.test(detail)) return { reason: 'image-timeout', detail };
  return { reason: 'image-corrupt', detail };
}

/** Hashes one image; hostile or unusable input gives `ok: false` with a reason, never a throw. */
export async function hashImage(bytes: Buffer, limits: FingerprintLimits): Promise<ImageHashResult> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (bytes.length > limits.maxImageBytes) return { ok: false, sha256, reason: 'image-too-large', detail: `${bytes.length} bytes` };
  try {
    return await decodeAndHash(bytes, sha256, limits, 'error');
  } catch (error) {
    const failure = classify(error);
    if (failure.reason !== 'image-corrupt') return { ok: false, sha256, ...failure };
    // Truncated or slightly damaged images (common in image spam) often still decode when
    // libvips is told to carry on: the same bytes then always give the same hash.
    try {
      return await decodeAndHash(bytes, sha256, limits, 'none');
    } catch {
      return { ok: false, sha256, ...failure };
    }
  }
}

async function decodeAndHash(bytes: Buffer, sha256: string, limits: FingerprintLimits, failOn: 'error' | 'none'): Promise<ImageHashResult> {
  // First page only (animated GIF/WebP: the first frame); a pixel cap against decompression
  // bombs; sequential reading since the thumbnail is built in one pass; a time cap per image.
  const input = { limitInputPixels: limits.maxImagePixels, sequentialRead: true, pages: 1, page: 0, failOn } as const;
  const sharp = await loadSharp();
  const meta = await sharp(bytes, input).metadata();
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (width < MIN_IMAGE_SIDE || height < MIN_IMAGE_SIDE) return { ok: false, sha256, reason: 'image-too-small', detail: `${width}x${height}` };
  if (width * height > limits.maxImagePixels) return { ok: false, sha256, reason: 'image-too-many-pixels', detail: `${width}x${height}` };
  const pixels = await sharp(bytes, input)
    .timeout({ seconds: limits.imageTimeoutSeconds })
    .resize(SIDE, SIDE, { fit: 'fill', fastShrinkOnLoad: true })
    // Transparent pixels count as a white background, as a mail client shows them.
    .flatten({ background: '#ffffff' })
    .greyscale()
    .raw()
    .toBuffer();
  if (pixels.length !== SIDE * SIDE) return { ok: false, sha256, reason: 'image-corrupt', detail: `decoded ${pixels.length} bytes` };
  return { ok: true, sha256, phash: perceptualHash(pixels), width, height };
}
