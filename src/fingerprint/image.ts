/**
 * `image` fingerprints: SHA-256 of the bytes, and `phash256`, a 256-bit perceptual hash of the
 * decoded pixels: 128 bits from the low frequencies of a DCT (robust to scaling, re-encoding,
 * brightness) followed by 128 bits of a horizontal gradient hash (which adds detail of the
 * layout, so near-identical spam templates with different text are told apart more often).
 * Both come from one decode to a 32×32 thumbnail, done by sharp in libvips threads, so the event
 * loop is never blocked by pixel work (it only turns the thumbnail's 1,024 pixels to grey).
 */
import { hash } from 'node:crypto';
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
  | { readonly ok: true; readonly sha256: string; readonly phash: string }
  | { readonly ok: false; readonly sha256: string; readonly reason: string; readonly detail: string };

// cos((2x+1)uπ/64) for the first DCT_KEEP frequencies, row u at [u * SIDE]: a constant table.
const COS = Float64Array.from({ length: DCT_KEEP * SIDE }, (_, i) => Math.cos(((2 * (i % SIDE) + 1) * Math.floor(i / SIDE) * Math.PI) / (2 * SIDE)));
// The 128 lowest frequencies except DC (which only says how bright the image is), in zig-zag order.
const DCT_ORDER = Object.freeze(
  Array.from({ length: DCT_KEEP * DCT_KEEP }, (_, i) => [Math.floor(i / DCT_KEEP), i % DCT_KEEP] as const)
    .filter(([u, v]) => u + v > 0)
    .sort((a, b) => a[0] + a[1] - (b[0] + b[1]) || a[0] - b[0])
    .slice(0, 128),
);
const DCT_U = Uint8Array.from(DCT_ORDER, ([u]) => u);
const DCT_V = Uint8Array.from(DCT_ORDER, ([, v]) => v);
const GRADIENT_ROWS = 16;
const GRADIENT_CELLS = 9;
// Column bounds of the gradient hash's 9 cells across 32 pixels.
const CELL_X = Uint8Array.from({ length: GRADIENT_CELLS + 1 }, (_, c) => Math.floor((c * SIDE) / GRADIENT_CELLS));

/** The 256-bit hash of a 32×32 greyscale raster (row-major, one byte per pixel). */
export function perceptualHash(pixels: Uint8Array): string {
  // Separable 2-D DCT restricted to the kept frequencies: rows first (rows[y * DCT_KEEP + v]),
  // then columns. Typed arrays and fixed summation order: the same bits on every platform run.
  const rows = new Float64Array(SIDE * DCT_KEEP);
  for (let y = 0; y < SIDE; y++) {
    for (let v = 0; v < DCT_KEEP; v++) {
      let sum = 0;
      for (let x = 0; x < SIDE; x++) sum += pixels[y * SIDE + x]! * COS[v * SIDE + x]!;
      rows[y * DCT_KEEP + v] = sum;
    }
  }
  const dct = new Float64Array(DCT_U.length);
  for (let i = 0; i < dct.length; i++) {
    const u = DCT_U[i]!;
    const v = DCT_V[i]!;
    let sum = 0;
    for (let y = 0; y < SIDE; y++) sum += rows[y * DCT_KEEP + v]! * COS[u * SIDE + y]!;
    dct[i] = sum;
  }
  const median = dct.slice().sort()[dct.length / 2]!;
  const bits = new Uint8Array(PHASH_BITS);
  for (let i = 0; i < dct.length; i++) bits[i] = dct[i]! > median ? 1 : 0;
  // Gradient hash on a 16×9 grid of cell means: does brightness rise from one cell to the next?
  const cells = new Float64Array(GRADIENT_CELLS);
  for (let r = 0; r < GRADIENT_ROWS; r++) {
    for (let c = 0; c < GRADIENT_CELLS; c++) {
      const x0 = CELL_X[c]!;
      const x1 = CELL_X[c + 1]!;
      let sum = 0;
      for (let y = r * 2; y < r * 2 + 2; y++) for (let x = x0; x < x1; x++) sum += pixels[y * SIDE + x]!;
      cells[c] = sum / ((x1 - x0) * 2);
    }
    for (let c = 0; c < GRADIENT_CELLS - 1; c++) bits[dct.length + r * (GRADIENT_CELLS - 1) + c] = cells[c]! < cells[c + 1]! ? 1 : 0;
  }
  let hex = '';
  for (let i = 0; i < bits.length; i += 4) hex += ((bits[i]! << 3) | (bits[i + 1]! << 2) | (bits[i + 2]! << 1) | bits[i + 3]!).toString(16);
  return hex;
}

/**
 * Grey levels of raw pixels (1 to 4 channels, 8 bits each) as a mail client shows them: colour
 * weighted by Rec. 601 luma, and transparency as a white background.
 */
export function greyOnWhite(data: Uint8Array, channels: number): Uint8Array {
  const count = data.length / channels;
  const grey = new Uint8Array(count);
  const hasAlpha = channels === 2 || channels === 4;
  for (let i = 0, o = 0; i < count; i++, o += channels) {
    const level = channels >= 3 ? 0.299 * data[o]! + 0.587 * data[o + 1]! + 0.114 * data[o + 2]! : data[o]!;
    const alpha = hasAlpha ? data[o + channels - 1]! / 255 : 1;
    grey[i] = Math.round(level * alpha + 255 * (1 - alpha));
  }
  return grey;
}

function classify(error: unknown): { reason: string; detail: string } {
  const detail = error instanceof Error ? error.message : String(error);
  if (/unsupported image format|bad seek|not a known file format/i.test(detail)) return { reason: 'image-unsupported', detail };
  if (/pixel limit/i.test(detail)) return { reason: 'image-too-many-pixels', detail };
  if (/timeout/i.test(detail)) return { reason: 'image-timeout', detail };
  return { reason: 'image-corrupt', detail };
}

/**
 * Hashes one image; hostile or unusable input gives `ok: false` with a reason, never a throw.
 * `sha256`: the bytes' SHA-256 when the caller has it already (the message walk does).
 */
export async function hashImage(bytes: Buffer, limits: FingerprintLimits, sha256 = hash('sha256', bytes)): Promise<ImageHashResult> {
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
  // One libvips pipeline per image, no separate header read: libvips refuses an image over the
  // pixel cap from its header (limitInputPixels), and since the thumbnail is never enlarged, a
  // side under MIN_IMAGE_SIDE (≤ SIDE) comes out as it went in. It shrinks the picture to 32×32
  // (shrink-on-load for JPEG); the greyscale conversion and the white background are done here
  // on those 1,024 pixels: libvips does both on every pixel of the full-size image, in linear
  // light, which was about a third of the cost of a hash (measured with `npm run bench -- relay`).
  const { data, info } = await sharp(bytes, input)
    .timeout({ seconds: limits.imageTimeoutSeconds })
    .resize(SIDE, SIDE, { fit: 'fill', fastShrinkOnLoad: true, withoutEnlargement: true })
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.width < MIN_IMAGE_SIDE || info.height < MIN_IMAGE_SIDE) {
    return { ok: false, sha256, reason: 'image-too-small', detail: `a side under ${MIN_IMAGE_SIDE} pixels (${info.width}x${info.height} once fitted in ${SIDE}x${SIDE})` };
  }
  if (info.width !== SIDE || info.height !== SIDE || data.length !== SIDE * SIDE * info.channels) {
    return { ok: false, sha256, reason: 'image-corrupt', detail: `decoded ${info.width}x${info.height}x${info.channels}` };
  }
  const pixels = greyOnWhite(data, info.channels);
  return { ok: true, sha256, phash: perceptualHash(pixels) };
}
