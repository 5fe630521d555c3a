/**
 * From one raw message to its fingerprints (DESIGN.md, fingerprint table). Pure with respect to
 * the outside world: no lookups, no state kept between messages. Hostile input never throws:
 * whatever cannot be analysed is skipped and the skip recorded with its reason.
 */
import { hash } from 'node:crypto';
import { messageTokens } from '../bayes/tokens.js';
import { hashImage, PHASH_ALGORITHM } from './image.js';
import type { ImageHashCache } from './image-cache.js';
import { ipFingerprints } from './ip.js';
import { handoffFromReceived, type SiteKnowledge } from './received.js';
import { DEFAULT_LIMITS, MIN_ATTACHMENT_BYTES, type FingerprintLimits } from './limits.js';
import { isListLink, mailingListOf, splitListFooter } from './mailing-list.js';
import { parseMessage, rawHeaderValues, unparsedHeaderValues, type ParsedMessage } from './parsed-message.js';
import { bodyMinhash, htmlToText } from './text.js';
import { makeFingerprint, type Fingerprint } from './types.js';
import { extractUrls, urlFingerprints } from './url.js';

export { DEFAULT_LIMITS, type FingerprintLimits } from './limits.js';
export { makeFingerprint, parseFingerprint, type Fingerprint } from './types.js';

export interface FingerprintContext {
  /** The connecting client (or XCLIENT/XFORWARD address); else the hand-off hop of the Received headers (received.ts). */
  readonly clientIp?: string;
  /** What the site says about itself, for reading the hand-off from Received when there is no clientIp. */
  readonly site?: SiteKnowledge;
  /**
   * Attachments (not images) up to this many bytes keep their decoded bytes in `content`, for
   * attachment samples (src/stats/samples.ts); 0 or absent: none are kept.
   */
  readonly keepAttachmentBytes?: number;
  /**
   * Hashes of images decoded before, by SHA-256 (image-cache.ts): a repeat is not decoded again.
   * The fingerprints and skips are the same with or without it.
   */
  readonly imageHashes?: ImageHashCache;
  /** Also give the statistical classifier's token hashes (src/bayes/tokens.ts); absent: none. */
  readonly tokens?: boolean;
}

export interface Skip {
  /** Stable reason, e.g. `image-corrupt`, `attachment-too-small`, `mime-unparseable`. */
  readonly reason: string;
  readonly detail?: string;
}

export interface AttachmentInfo {
  readonly sha256: string;
  readonly type: string;
  readonly size: number;
  /** The file name, if the part has one (local only, like fingerprint labels). */
  readonly name?: string;
  /** The decoded bytes, only when asked for (FingerprintContext.keepAttachmentBytes). */
  readonly content?: Buffer;
}

export interface MessageFingerprints {
  readonly fingerprints: Fingerprint[];
  /** The address the `ip` fingerprints are of (the client given, else the Received one); null: none. */
  readonly clientIp: string | null;
  readonly skips: Skip[];
  readonly urls: string[];
  readonly attachments: AttachmentInfo[];
  /** The mailing list that relayed it (List-Id or Mailing-List, mailing-list.ts); null: none. */
  readonly mailingList: string | null;
  /** The classifier's token hashes of the visible text and Subject, when asked for; else empty. */
  readonly tokens: number[];
}

// JPEG, PNG, GIF, WebP: images sent as application/octet-stream are still images.
const IMAGE_MAGIC: readonly (readonly number[])[] = [[0xff, 0xd8, 0xff], [0x89, 0x50, 0x4e, 0x47], [0x47, 0x49, 0x46, 0x38]];

function looksLikeImage(type: string, bytes: Buffer): boolean {
  if (type.toLowerCase().startsWith('image/')) return true;
  if (bytes.subarray(0, 4).toString('latin1') === 'RIFF' && bytes.subarray(8, 12).toString('latin1') === 'WEBP') return true;
  for (const magic of IMAGE_MAGIC) if (startsWithBytes(bytes, magic)) return true;
  return false;
}

// Loops rather than some/every arrows: arrows made per call are new closures each message, whose
// optimised code V8 drops at each full GC and compiles again (--trace-opt, milter steady state).
function startsWithBytes(bytes: Buffer, magic: readonly number[]): boolean {
  for (let i = 0; i < magic.length; i++) if (bytes[i] !== magic[i]) return false;
  return true;
}

/** The raw values of a header field; of the header block read by hand (unfolded) when the MIME was unparseable. */
function headerValuesOf(parsed: ParsedMessage | null, message: Buffer, name: string): string[] {
  return parsed ? rawHeaderValues(parsed, name) : unparsedHeaderValues(message, name);
}

/**
 * Fingerprints of one message. `raw` may start with an mbox `From ` line; `limits` caps the work
 * spent on one message (see FingerprintLimits).
 */
export async function fingerprintMessage(raw: Buffer, context: FingerprintContext = {}, limits: Partial<FingerprintLimits> = {}): Promise<MessageFingerprints> {
  const caps: FingerprintLimits = { ...DEFAULT_LIMITS, ...limits };
  const skips: Skip[] = [];
  const fingerprints: Fingerprint[] = [];
  const message = stripEnvelope(raw);
  const outcome = await parseMessage(message, caps);
  const parsed: ParsedMessage | null = outcome.ok ? outcome.parsed : null;
  if (!outcome.ok) skips.push({ reason: 'mime-unparseable', detail: outcome.error });
  // Unparseable MIME: the header block read by hand (unfolded), which is all the IP needs.
  const deliveredTo = [...headerValuesOf(parsed, message, 'delivered-to'), ...headerValuesOf(parsed, message, 'x-original-to')];
  const received = parsed ? parsed.received : unparsedHeaderValues(message, 'received');
  const clientIp = context.clientIp ?? handoffFromReceived(received, context.site, deliveredTo)?.ip;
  const ipPrints = clientIp === undefined ? [] : ipFingerprints(clientIp);
  if (ipPrints.length === 0) skips.push({ reason: 'ip-unknown', detail: clientIp ?? 'no public address in Received headers' });
  fingerprints.push(...ipPrints);

  const html = parsed ? parsed.html : '';
  const plain = parsed ? parsed.text : bodyOf(message);
  // What the reader sees: the HTML rendering when there is one, else the plain text.
  let visible = html ? htmlToText(html) : plain;
  const list = mailingListOf(headerValuesOf(parsed, message, 'list-id'), headerValuesOf(parsed, message, 'mailing-list'));
  let footerUrls = new Set<string>();
  if (list) {
    const split = splitListFooter(visible);
    if (split !== null) {
      skips.push({ reason: 'text-list-footer', detail: list.id });
      visible = split.content;
      const plainSplit = html ? splitListFooter(plain) : split;
      footerUrls = new Set([...extractUrls(split.footer, ''), ...(plainSplit ? extractUrls(plainSplit.footer, '') : [])]);
    }
  }
  if (visible.length > caps.maxTextChars) {
    skips.push({ reason: 'text-truncated', detail: `${visible.length} characters` });
    visible = visible.slice(0, caps.maxTextChars);
  }
  // The text the reader sees, list footer left out, as the body hash sees it.
  const tokens = context.tokens === true ? messageTokens(visible, parsed ? parsed.subject : (unparsedHeaderValues(message, 'subject')[0] ?? '')) : [];
  const body = bodyMinhash(visible);
  if (body === null) skips.push({ reason: 'body-too-short' });
  else fingerprints.push(makeFingerprint('body', 'minhash64', body));

  let urls = extractUrls(plain.slice(0, caps.maxTextChars), html.slice(0, caps.maxTextChars * 4));
  // The list's own links first, then the cap: they must not take the places of the author's links.
  if (list) {
    const before = urls.length;
    urls = urls.filter((url) => !(footerUrls.has(url) || isListLink(url, list)));
    const own = before - urls.length;
    if (own > 0) skips.push({ reason: 'url-mailing-list', detail: `${own} link(s) of the list's footer or site (${list.id})` });
  }
  if (urls.length > caps.maxUrls) {
    skips.push({ reason: 'url-over-limit', detail: `${urls.length - caps.maxUrls} of ${urls.length}` });
    urls = urls.slice(0, caps.maxUrls);
  }
  fingerprints.push(...urlFingerprints(urls));

  const attachments: AttachmentInfo[] = [];
  const seenImages = new Set<string>();
  let decoded = 0;
  let hashed = 0;
  for (const part of parsed?.attachments ?? []) {
    const bytes = part.content;
    const type = part.contentType || 'application/octet-stream';
    if (!Buffer.isBuffer(bytes)) continue;
    if (looksLikeImage(type, bytes)) {
      const sha256 = hash('sha256', bytes);
      attachments.push({ sha256, type, size: bytes.length });
      if (seenImages.has(sha256)) continue; // the same picture twice is decoded once
      seenImages.add(sha256);
      fingerprints.push(makeFingerprint('image', 'sha256', sha256, part.filename));
      if (decoded >= caps.maxImages) {
        skips.push({ reason: 'image-over-limit', detail: part.filename ?? type });
        continue;
      }
      decoded++;
      const known = context.imageHashes?.get(sha256);
      if (known !== undefined) {
        fingerprints.push(makeFingerprint('image', PHASH_ALGORITHM, known, part.filename));
        continue;
      }
      const result = await hashImage(bytes, caps, sha256);
      if (result.ok) {
        context.imageHashes?.set(sha256, result.phash);
        fingerprints.push(makeFingerprint('image', PHASH_ALGORITHM, result.phash, part.filename));
      } else skips.push({ reason: result.reason, detail: result.detail });
      continue;
    }
    if (bytes.length < MIN_ATTACHMENT_BYTES) {
      skips.push({ reason: 'attachment-too-small', detail: `${bytes.length} bytes` });
      continue;
    }
    if (hashed >= caps.maxAttachments) {
      skips.push({ reason: 'attachment-over-limit', detail: part.filename ?? type });
      continue;
    }
    hashed++;
    const sha256 = hash('sha256', bytes);
    const keep = bytes.length <= (context.keepAttachmentBytes ?? 0);
    attachments.push({ sha256, type, size: bytes.length, ...(part.filename ? { name: part.filename } : {}), ...(keep ? { content: bytes } : {}) });
    fingerprints.push(makeFingerprint('attachment', 'sha256', sha256, part.filename));
  }

  const unique = [...new Map(fingerprints.map((fingerprint) => [fingerprint.text, fingerprint])).values()];
  return { fingerprints: unique, clientIp: ipPrints.length > 0 ? clientIp! : null, skips, urls, attachments, mailingList: list?.id ?? null, tokens };
}

/** Drops an mbox envelope line (`From addr date`), which is not part of the message. */
export function stripEnvelope(raw: Buffer): Buffer {
  if (raw.subarray(0, 5).toString('latin1') !== 'From ') return raw;
  const end = raw.indexOf(0x0a);
  return end < 0 ? Buffer.alloc(0) : raw.subarray(end + 1);
}

function bodyOf(message: Buffer): string {
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  const start = [crlf < 0 ? -1 : crlf + 4, lf < 0 ? -1 : lf + 2].filter((i) => i >= 0);
  return start.length === 0 ? '' : message.subarray(Math.min(...start)).toString('latin1');
}
