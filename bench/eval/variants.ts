/**
 * Realistic copies of one spam message, as a campaign sends them: each copy to another
 * recipient with that recipient's name in the greeting, random tokens (a reference, a few
 * hash-buster words, a tracking parameter on every link), the footer lines shuffled, images
 * re-encoded, resized by 80–120% or given a changed border, attachments renamed, and a new
 * Message-ID. Everything is drawn from `rngFor(seed, 'variant', file, copy)`, so a seed gives
 * the same copy every time.
 *
 * The MIME structure is kept: parts that are not changed are written back byte for byte, and a
 * changed part is written in its own transfer encoding (mime.ts). Text is edited as latin1, one
 * char per byte, so whatever the charset, only the ASCII that is inserted changes.
 *
 * Every change is reported, so tests (and the eval's summary) can check that a copy really
 * differs the way the report says.
 */
import { createHash } from 'node:crypto';
import sharp, { type Sharp } from 'sharp';
import {
  decodeBody,
  fileName,
  getHeader,
  headerParam,
  isAttachment,
  leaves,
  parseMime,
  serialiseMime,
  setBody,
  setHeader,
  setHeaderParam,
  type MimeNode,
} from './mime.js';
import { rngFor, type Rng } from './rng.js';

export interface Recipient {
  /** Display name, e.g. `Anna Kowalski`; the greeting uses the first word. */
  readonly name: string;
  readonly address: string;
}

export interface ImageInfo {
  readonly format: string;
  readonly width: number;
  readonly height: number;
  readonly bytes: number;
  readonly sha256: string;
}

export type ImageOp = 'reencode' | 'resize' | 'border';

export interface ImageChange {
  readonly op: ImageOp;
  readonly before: ImageInfo | null;
  /** Null when the image could not be decoded and was left as it was. */
  readonly after: ImageInfo | null;
  readonly factor?: number;
  readonly border?: number;
  readonly quality?: number;
  readonly error?: string;
}

export interface VariantReport {
  readonly recipient: string;
  readonly messageId: string;
  /** Text parts in which a greeting was replaced or inserted. */
  readonly greeting: { readonly name: string; readonly replaced: number; readonly inserted: number };
  readonly tokens: { readonly reference: string; readonly words: readonly string[]; readonly links: number };
  /** Text parts whose last lines were put in another order. */
  readonly footer: { readonly shuffled: number };
  readonly images: readonly ImageChange[];
  readonly attachments: readonly { readonly from: string; readonly to: string }[];
  readonly textParts: number;
}

export interface Variant {
  readonly bytes: Buffer;
  readonly report: VariantReport;
}

export interface VariantRequest {
  readonly seed: string | number;
  /** The corpus file name: the stream of random numbers is named after it. */
  readonly file: string;
  readonly copy: number;
  readonly recipient: Recipient;
}

/** Images bigger than this many pixels are left alone (no copy would bother; decode cost). */
const MAX_IMAGE_PIXELS = 40_000_000;
const RESIZE_MIN = 0.8;
const RESIZE_MAX = 1.2;
const BORDER_MIN_PX = 1;
const BORDER_MAX_PX = 4;
const FOOTER_LINES = 5;
const VOID_TAGS = new Set(['br', 'img', 'hr', 'input', 'meta', 'link', 'wbr', 'area', 'base', 'col', 'param', 'source']);

const SYLLABLES = ['ba', 'ko', 'ri', 'mel', 'sta', 'vin', 'tor', 'pla', 'qu', 'den', 'lo', 'fre', 'gan', 'shi', 'mu', 'ter', 'zo', 'cal', 'nu', 'ex'];

/** A pronounceable random word, as hash busters use. */
export function pseudoWord(rng: Rng, minSyllables = 2, maxSyllables = 4): string {
  let word = '';
  for (let i = rng.int(minSyllables, maxSyllables); i > 0; i--) word += rng.pick(SYLLABLES);
  return word;
}

export async function makeVariant(raw: Buffer, request: VariantRequest): Promise<Variant> {
  const rng = rngFor(request.seed, 'variant', request.file, request.copy);
  const tree = parseMime(raw.toString('latin1'));
  const first = request.recipient.name.split(/\s+/)[0] ?? request.recipient.name;

  // Envelope-visible headers of a fresh copy.
  setHeader(tree, 'To', `${request.recipient.name} <${request.recipient.address}>`);
  const idDomain = /@([^>\s]+)>?\s*$/.exec(getHeader(tree, 'message-id') ?? '')?.[1] ?? 'localhost';
  const messageId = `<${rng.token(16)}.${rng.int(1000, 99999)}@${idDomain}>`;
  setHeader(tree, 'Message-ID', messageId);

  const reference = rng.token(10);
  const words = Array.from({ length: rng.int(3, 6) }, () => pseudoWord(rng));
  const linkToken = rng.token(8);
  let replaced = 0;
  let inserted = 0;
  let shuffled = 0;
  let links = 0;
  let textParts = 0;
  const images: ImageChange[] = [];
  const attachments: { from: string; to: string }[] = [];

  for (const { node, type } of leaves(tree)) {
    const name = fileName(node);
    const bytes = decodeBody(node);
    if ((type === 'text/plain' || type === 'text/html') && !isAttachment(node) && editableCharset(node)) {
      textParts++;
      const html = type === 'text/html';
      let text = bytes.toString('latin1');
      const footer = shuffleFooter(rng, text, html);
      if (footer !== null) {
        text = footer;
        shuffled++;
      }
      const greeted = greet(text, first, html);
      text = greeted.text;
      if (greeted.replaced) replaced++;
      else inserted++;
      const tagged = tagLinks(text, linkToken, html);
      text = tagged.text;
      links += tagged.count;
      text = addTokens(text, words, reference, html);
      setBody(node, Buffer.from(text, 'latin1'));
    } else if (looksLikeImage(type, bytes)) {
      const change = await changeImage(rng, bytes);
      images.push(change.change);
      if (change.bytes) {
        setBody(node, change.bytes);
        if (change.type && change.type !== type) setContentType(node, change.type);
      }
    }
    if (name !== null) {
      const renamed = newFileName(rng, name, type);
      if (getHeader(node, 'content-disposition') !== null) setHeaderParam(node, 'Content-Disposition', 'filename', renamed);
      if (headerParam(getHeader(node, 'content-type'), 'name') !== null || /name\*/i.test(getHeader(node, 'content-type') ?? '') || getHeader(node, 'content-disposition') === null) {
        setHeaderParam(node, 'Content-Type', 'name', renamed);
      }
      attachments.push({ from: name, to: renamed });
    }
  }

  return {
    bytes: Buffer.from(serialiseMime(tree), 'latin1'),
    report: {
      recipient: request.recipient.address,
      messageId,
      greeting: { name: first, replaced, inserted },
      tokens: { reference, words, links },
      footer: { shuffled },
      images,
      attachments,
      textParts,
    },
  };
}

/** UTF-16/32 text cannot take ASCII insertions byte-wise; every ASCII-compatible charset can. */
function editableCharset(node: MimeNode): boolean {
  const charset = headerParam(getHeader(node, 'content-type'), 'charset')?.toLowerCase() ?? '';
  return !/^(utf-?16|utf-?32|ucs-?2|ucs-?4)/.test(charset);
}

function setContentType(node: MimeNode, type: string): void {
  const current = getHeader(node, 'content-type');
  const params = current === null ? '' : current.slice(current.split(';')[0]!.length);
  setHeader(node, 'Content-Type', `${type}${params}`);
}

// ---------- text ----------

const GREETING = /(^|\n|>)([ \t]*)(Dear|Hello|Hi|Hey|Greetings|Attention|Attn)([ \t]+)([^\n,:;!<>]{1,40}?)([ \t]*[,:!])/i;

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Replaces the name in an existing greeting, or puts a greeting first. */
export function greet(text: string, name: string, html: boolean): { text: string; replaced: boolean } {
  const safe = html ? escapeHtml(name) : name;
  const match = GREETING.exec(text.slice(0, 4000));
  if (match) {
    const at = match.index + match[1]!.length + match[2]!.length + match[3]!.length + match[4]!.length;
    return { text: `${text.slice(0, at)}${safe}${text.slice(at + match[5]!.length)}`, replaced: true };
  }
  if (!html) return { text: `Dear ${safe},\n\n${text}`, replaced: false };
  const body = /<body\b[^>]*>/i.exec(text);
  const at = body ? body.index + body[0].length : 0;
  return { text: `${text.slice(0, at)}\n<p>Dear ${safe},</p>\n${text.slice(at)}`, replaced: false };
}

/** A tracking parameter on every http(s) link: the links differ per copy, their domains do not. */
export function tagLinks(text: string, token: string, html: boolean): { text: string; count: number } {
  let count = 0;
  const tag = (url: string): string => {
    const hash = url.indexOf('#');
    const base = hash >= 0 ? url.slice(0, hash) : url;
    const fragment = hash >= 0 ? url.slice(hash) : '';
    count++;
    return `${base}${base.includes('?') ? '&' : '?'}r=${token}${fragment}`;
  };
  if (html) {
    const out = text.replace(/(href\s*=\s*)(["']?)(https?:\/\/[^"'\s>]+)/gi, (_all, prefix: string, quote: string, url: string) => `${prefix}${quote}${tag(url)}`);
    return { text: out, count };
  }
  const out = text.replace(/https?:\/\/[^\s<>"'()[\]]+/gi, (url) => {
    const trail = /[.,;:!?]+$/.exec(url)?.[0] ?? '';
    return `${tag(url.slice(0, url.length - trail.length))}${trail}`;
  });
  return { text: out, count };
}

/** Hash-buster words and a reference line at the end of the text (before `</body>` in HTML). */
export function addTokens(text: string, words: readonly string[], reference: string, html: boolean): string {
  if (!html) {
    const trimmed = text.replace(/\n*$/, '');
    const ending = text.slice(trimmed.length) || '\n';
    return `${trimmed}\n\n${words.join(' ')}\nRef: ${reference}${ending}`;
  }
  const close = text.search(/<\/body\s*>/i);
  const at = close >= 0 ? close : text.length;
  return `${text.slice(0, at)}<p>${words.join(' ')}</p>\n<p>Ref: ${reference}</p>\n${text.slice(at)}`;
}

/** A line that holds whole elements only, so moving it keeps the HTML well formed. */
function selfContained(line: string): boolean {
  if (/^[^<]*>|<[^>]*$/.test(line)) return false; // a tag that starts or ends on another line
  const counts = new Map<string, number>();
  for (const match of line.matchAll(/<(\/?)([a-z][a-z0-9]*)\b[^>]*?(\/?)>/gi)) {
    const tag = match[2]!.toLowerCase();
    if (VOID_TAGS.has(tag) || match[3] === '/') continue;
    counts.set(tag, (counts.get(tag) ?? 0) + (match[1] === '/' ? -1 : 1));
  }
  return [...counts.values()].every((n) => n === 0);
}

/**
 * The last few non-empty lines in another order (for HTML: only lines that hold whole elements,
 * before `</body>`); null when there are fewer than two distinct such lines.
 */
export function shuffleFooter(rng: Rng, text: string, html: boolean): string | null {
  const lines = text.split('\n');
  let end = lines.length;
  if (html) {
    const close = lines.findIndex((line) => /<\/body\s*>/i.test(line));
    if (close >= 0) end = close;
  }
  const picked: number[] = [];
  for (let i = end - 1; i >= 0 && picked.length < FOOTER_LINES; i--) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    if (html && (!selfContained(line) || !/[^\s]/.test(line.replace(/<[^>]*>/g, '')))) break;
    picked.push(i);
  }
  if (new Set(picked.map((i) => lines[i]!.trim())).size < 2) return null;
  const contents = picked.map((i) => lines[i]!);
  let order = rng.shuffled(contents);
  // A shuffle that puts every line back where it was is no change: rotate instead.
  if (order.every((line, i) => line === contents[i])) order = [...contents.slice(1), contents[0]!];
  picked.forEach((index, i) => {
    lines[index] = order[i]!;
  });
  return lines.join('\n');
}

// ---------- images ----------

const IMAGE_MAGIC: readonly (readonly number[])[] = [[0xff, 0xd8, 0xff], [0x89, 0x50, 0x4e, 0x47], [0x47, 0x49, 0x46, 0x38]];

/** The same rule the gateway uses: an image/* type, or image magic bytes under any type. */
export function looksLikeImage(type: string, bytes: Buffer): boolean {
  if (type.startsWith('image/')) return true;
  if (bytes.subarray(0, 4).toString('latin1') === 'RIFF' && bytes.subarray(8, 12).toString('latin1') === 'WEBP') return true;
  return IMAGE_MAGIC.some((magic) => magic.every((byte, i) => bytes[i] === byte));
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

export async function imageInfo(bytes: Buffer): Promise<ImageInfo> {
  const meta = await sharp(bytes, { failOn: 'none', limitInputPixels: MAX_IMAGE_PIXELS }).metadata();
  return { format: meta.format ?? 'unknown', width: meta.width ?? 0, height: meta.pageHeight ?? meta.height ?? 0, bytes: bytes.length, sha256: sha256(bytes) };
}

const OUTPUT_TYPES: Record<string, string> = { jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp' };

function encode(image: Sharp, format: string, rng: Rng, reencode: boolean): { image: Sharp; quality?: number } {
  switch (format) {
    case 'jpeg': {
      const quality = reencode ? rng.int(55, 92) : 85;
      return { image: image.jpeg({ quality }), quality };
    }
    case 'gif':
      return { image: image.gif({ effort: reencode ? rng.int(1, 10) : 7, dither: reencode ? rng.between(0, 1) : 1 }) };
    case 'webp': {
      const quality = reencode ? rng.int(55, 92) : 80;
      return { image: image.webp({ quality }), quality };
    }
    default:
      return { image: image.png({ compressionLevel: reencode ? rng.int(1, 9) : 6, adaptiveFiltering: reencode ? rng.chance(0.5) : false }) };
  }
}

/** One of the three image changes; the bytes always change, or the error says why not. */
export async function changeImage(rng: Rng, bytes: Buffer): Promise<{ change: ImageChange; bytes: Buffer | null; type: string | null }> {
  const op: ImageOp = rng.pick(['reencode', 'resize', 'border'] as const);
  // Drawn before decoding, so a corrupt image does not shift the numbers of the next one.
  const factorDraw = rng.between(RESIZE_MIN, RESIZE_MAX);
  const borderDraw = rng.int(BORDER_MIN_PX, BORDER_MAX_PX);
  const colour = { r: rng.int(0, 255), g: rng.int(0, 255), b: rng.int(0, 255), alpha: 1 };
  const encodeRng = rngFor(rng.token(12), 'encode');
  let before: ImageInfo | null = null;
  try {
    before = await imageInfo(bytes);
    if (before.width < 1 || before.height < 1) throw new Error('no dimensions');
    const format = before.format in OUTPUT_TYPES ? before.format : 'png';
    let image = sharp(bytes, { failOn: 'none', limitInputPixels: MAX_IMAGE_PIXELS });
    let factor: number | undefined;
    let border: number | undefined;
    if (op === 'resize') {
      factor = factorDraw;
      let width = Math.max(1, Math.round(before.width * factor));
      let height = Math.max(1, Math.round(before.height * factor));
      if (width === before.width && height === before.height) {
        width += factor >= 1 ? 1 : -1;
        height += factor >= 1 ? 1 : -1;
      }
      image = image.resize({ width: Math.max(1, width), height: Math.max(1, height), fit: 'fill' });
    } else if (op === 'border') {
      border = borderDraw;
      image = image.extend({ top: border, bottom: border, left: border, right: border, background: colour });
    }
    const encoded = encode(image, format, encodeRng, op === 'reencode');
    let out = await encoded.image.toBuffer();
    if (out.equals(bytes)) {
      // A lossless format at the same settings can give the same bytes back: touch one pixel row.
      out = await encode(sharp(bytes, { failOn: 'none' }).extend({ bottom: 1, background: colour }), format, encodeRng, false).image.toBuffer();
    }
    const after = await imageInfo(out);
    return { change: { op, before, after, factor, border, quality: encoded.quality }, bytes: out, type: OUTPUT_TYPES[format]! };
  } catch (error) {
    return { change: { op, before, after: null, error: error instanceof Error ? error.message : String(error) }, bytes: null, type: null };
  }
}

// ---------- attachments ----------

function extensionOf(name: string, type: string): string {
  const ext = /\.([A-Za-z0-9]{1,5})$/.exec(name)?.[1];
  if (ext) return ext.toLowerCase();
  const sub = type.split('/')[1] ?? 'bin';
  return /^[a-z0-9]{1,5}$/.test(sub) ? sub : 'bin';
}

export function newFileName(rng: Rng, name: string, type: string): string {
  return `${pseudoWord(rng, 1, 3)}_${rng.int(10, 9999)}.${extensionOf(name, type)}`;
}
