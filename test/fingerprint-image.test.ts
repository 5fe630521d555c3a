import { createHash } from 'node:crypto';
import test from 'ava';
import sharp from 'sharp';
import { hashImage } from '../src/fingerprint/image.js';
import { DEFAULT_LIMITS } from '../src/fingerprint/limits.js';
import { fuzzySchemeFor } from '../src/fingerprint/fuzzy.js';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { ImageHashCache } from '../src/fingerprint/image-cache.js';
import { animatedGif, message, picture, pngBomb } from '../fixtures/fingerprint/factory.js';

const scheme = fuzzySchemeFor('image', 'phash256')!;

async function phash(bytes: Buffer): Promise<string> {
  const result = await hashImage(bytes, DEFAULT_LIMITS);
  if (!result.ok) throw new Error(`expected a hash, got ${result.reason}: ${result.detail}`);
  return result.phash;
}

test('an image gives its SHA-256 and a 256-bit perceptual hash', async (t) => {
  const png = await picture(200, 150, 1);
  const result = await hashImage(png, DEFAULT_LIMITS);
  t.true(result.ok);
  if (!result.ok) return;
  t.is(result.sha256, createHash('sha256').update(png).digest('hex'));
  t.regex(result.phash, /^[0-9a-f]{64}$/);
});

test('the perceptual hash survives rescaling, JPEG re-encoding and brightness, while SHA-256 does not', async (t) => {
  const png = await picture(300, 200, 2);
  const original = await phash(png);
  const variants = [
    await sharp(png).resize(150).png().toBuffer(),
    await sharp(png).resize(450).png().toBuffer(),
    await sharp(png).jpeg({ quality: 40 }).toBuffer(),
    await sharp(png).modulate({ brightness: 1.1 }).png().toBuffer(),
  ];
  for (const variant of variants) {
    t.true(scheme.isNear(original, await phash(variant)));
    t.not((await hashImage(variant, DEFAULT_LIMITS)).sha256, (await hashImage(png, DEFAULT_LIMITS)).sha256);
  }
});

test('different pictures are not near each other', async (t) => {
  const a = await phash(await picture(200, 200, 3));
  const b = await phash(await picture(200, 200, 4));
  t.false(scheme.isNear(a, b));
});

test('images under 32x32 are skipped as too small', async (t) => {
  const result = await hashImage(await picture(16, 40, 5), DEFAULT_LIMITS);
  t.false(result.ok);
  if (!result.ok) t.is(result.reason, 'image-too-small');
});

test('corrupt image data is skipped as corrupt, not thrown', async (t) => {
  const png = await picture(100, 100, 6);
  const garbage = Buffer.concat([png.subarray(0, 40), Buffer.alloc(400, 0xa5)]);
  const result = await hashImage(garbage, DEFAULT_LIMITS);
  t.false(result.ok);
  if (!result.ok) t.is(result.reason, 'image-corrupt');
});

test('a truncated image never throws: it is hashed from what decodes or skipped with a reason', async (t) => {
  const jpeg = await picture(300, 300, 7, 'jpeg');
  const result = await hashImage(jpeg.subarray(0, Math.floor(jpeg.length / 2)), DEFAULT_LIMITS);
  if (!result.ok) t.regex(result.reason, /^image-/);
  else t.regex(result.phash, /^[0-9a-f]{64}$/);
});

test('a decompression bomb is refused by its pixel count before decoding', async (t) => {
  const bomb = await pngBomb(30000, 30000);
  t.true(bomb.length < 10_000);
  const result = await hashImage(bomb, DEFAULT_LIMITS);
  t.false(result.ok);
  if (!result.ok) t.is(result.reason, 'image-too-many-pixels');
});

test('the pixel limit is configurable', async (t) => {
  const result = await hashImage(await picture(200, 200, 8), { ...DEFAULT_LIMITS, maxImagePixels: 10_000 });
  t.false(result.ok);
  if (!result.ok) t.is(result.reason, 'image-too-many-pixels');
});

test('an animated GIF is hashed from its first frame', async (t) => {
  const gif = await animatedGif(96, 96, [9, 10, 11]);
  const animated = await phash(gif);
  const first = await phash(await sharp(await picture(96, 96, 9)).gif().toBuffer());
  const second = await phash(await sharp(await picture(96, 96, 10)).gif().toBuffer());
  t.true(scheme.isNear(animated, first));
  t.false(scheme.isNear(animated, second));
});

test('data in an unsupported format is skipped as unsupported', async (t) => {
  const result = await hashImage(Buffer.from('this is not any image format at all, just text '.repeat(4)), DEFAULT_LIMITS);
  t.false(result.ok);
  if (!result.ok) t.is(result.reason, 'image-unsupported');
});

test('a message with images gives image fingerprints and counts every skipped image with its reason', async (t) => {
  const good = await picture(120, 90, 12, 'jpeg');
  const raw = message({
    parts: [
      { type: 'text/plain', content: 'pictures attached', encoding: '7bit' },
      { type: 'image/jpeg', content: good, filename: 'a.jpg' },
      { type: 'image/jpeg', content: good, filename: 'again.jpg' },
      { type: 'image/png', content: await pngBomb(40000, 40000), filename: 'bomb.png' },
      { type: 'image/png', content: await picture(10, 10, 13), filename: 'tiny.png' },
      { type: 'image/gif', content: Buffer.from('GIF89a-broken-broken-broken-broken-broken-broken-broken-broken'), filename: 'broken.gif' },
    ],
  });
  const result = await fingerprintMessage(raw, {});
  const images = result.fingerprints.filter((f) => f.kind === 'image');
  t.is(images.filter((f) => f.algorithm === 'phash256').length, 1); // the duplicate is decoded once
  t.is(images.filter((f) => f.algorithm === 'sha256').length, 4);
  t.deepEqual(result.skips.map((s) => s.reason).filter((r) => r.startsWith('image-')).sort(), ['image-corrupt', 'image-too-many-pixels', 'image-too-small']);
  t.is(result.attachments.length, 5);
});

test('an image sent as application/octet-stream is recognised by its magic bytes', async (t) => {
  const png = await picture(80, 80, 14);
  const raw = message({ parts: [{ type: 'text/plain', content: 'scan attached', encoding: '7bit' }, { type: 'application/octet-stream', content: png, filename: 'scan.bin' }] });
  const result = await fingerprintMessage(raw, {});
  t.true(result.fingerprints.some((f) => f.kind === 'image' && f.algorithm === 'phash256'));
  t.false(result.fingerprints.some((f) => f.kind === 'attachment'));
});

test('a truncated GIF that libvips can partly decode is hashed, the same way every time', async (t) => {
  const gif = await sharp(await picture(200, 200, 15)).gif().toBuffer();
  const cut = gif.subarray(0, Math.floor(gif.length * 0.7));
  const [a, b] = [await hashImage(cut, DEFAULT_LIMITS), await hashImage(cut, DEFAULT_LIMITS)];
  t.deepEqual(a, b);
  if (!a.ok) t.is(a.reason, 'image-corrupt');
});

test('an image seen before is answered from the hash cache: the same fingerprints and skips as decoding it, and no decode (a planted hash comes back)', async (t) => {
  const jpeg = await picture(120, 90, 16, 'jpeg');
  const sha256 = createHash('sha256').update(jpeg).digest('hex');
  const raw = message({
    parts: [
      { type: 'text/plain', content: 'pictures attached', encoding: '7bit' },
      { type: 'image/jpeg', content: jpeg, filename: 'logo.jpg' },
      { type: 'image/png', content: await picture(10, 10, 17), filename: 'tiny.png' },
    ],
  });
  const cache = new ImageHashCache(100);
  const uncached = await fingerprintMessage(raw, {});
  const first = await fingerprintMessage(raw, { imageHashes: cache });
  const second = await fingerprintMessage(raw, { imageHashes: cache });
  t.deepEqual(first, uncached);
  t.deepEqual(second, uncached);
  t.is(cache.size, 1, 'only the hashed image is kept, not the one skipped as too small');
  t.is(cache.get(sha256), uncached.fingerprints.find((f) => f.algorithm === 'phash256')!.value);
  cache.set(sha256, 'f'.repeat(64));
  const planted = await fingerprintMessage(raw, { imageHashes: cache });
  t.deepEqual(planted.fingerprints.filter((f) => f.algorithm === 'phash256').map((f) => f.value), ['f'.repeat(64)]);
});

test('with the hash cache, images past the per-message cap are skipped exactly as without it', async (t) => {
  const pictures = await Promise.all(Array.from({ length: DEFAULT_LIMITS.maxImages + 2 }, (_, i) => picture(64, 64, 40 + i)));
  const raw = message({ parts: [{ type: 'text/plain', content: 'many pictures', encoding: '7bit' }, ...pictures.map((content, i) => ({ type: 'image/png', content, filename: `${i}.png` }))] });
  const cache = new ImageHashCache(100);
  const uncached = await fingerprintMessage(raw, {});
  await fingerprintMessage(raw, { imageHashes: cache });
  t.deepEqual(await fingerprintMessage(raw, { imageHashes: cache }), uncached);
  t.is(uncached.skips.filter((s) => s.reason === 'image-over-limit').length, 2);
});
