/**
 * The message half of a scan: fingerprints, links, attachments and GTUBE. A message above
 * MAX_ANALYSIS_BYTES is not parsed (MIME, images): only the sender's IP and network count, and it
 * is searched for GTUBE as a stream, so a huge message never holds a front.
 */
import { fingerprintMessage, type AttachmentInfo, type Skip } from '../fingerprint/index.js';
import type { ImageHashCache } from '../fingerprint/image-cache.js';
import type { SiteKnowledge } from '../fingerprint/received.js';
import { ipFingerprints } from '../fingerprint/ip.js';
import type { Fingerprint } from '../fingerprint/types.js';
import { GTUBE, streamContainsGtube } from './gtube.js';
import type { MessageSource } from './types.js';

/** Messages above this are not parsed (MIME, images): IP and network reputation only. */
export const MAX_ANALYSIS_BYTES = 10 * 1024 * 1024;

export interface Analysed {
  readonly fingerprints: Fingerprint[];
  /** The sender's address the `ip` fingerprints are of (the client, else from Received); null: none. */
  readonly clientIp: string | null;
  readonly urls: string[];
  /** With their bytes when asked for (samples), else without. */
  readonly attachments: AttachmentInfo[];
  readonly skips: Skip[];
  /** The mailing list that relayed it (List-Id, Mailing-List); null: none, or not parsed. */
  readonly mailingList: string | null;
  readonly gtube: boolean;
  /** The statistical classifier's token hashes, when asked for (AnalyseOptions.tokens); else empty. */
  readonly tokens: readonly number[];
}

export interface AnalyseOptions {
  /** The client address; null: the hand-off hop of the Received headers. */
  readonly clientIp: string | null;
  /** With no client address: what the site says about itself (src/fingerprint/received.ts). */
  readonly site?: SiteKnowledge | undefined;
  /** Attachments up to this many bytes keep their bytes (for samples); 0: none. */
  readonly keepAttachmentBytes: number;
  readonly imageHashes: ImageHashCache | undefined;
  /** Also give the classifier's tokens (only when it has learnt enough to use them). */
  readonly tokens?: boolean;
}

export async function analyseMessage(message: MessageSource, options: AnalyseOptions): Promise<Analysed> {
  if (message.size > MAX_ANALYSIS_BYTES) {
    const fingerprints = options.clientIp === null ? [] : ipFingerprints(options.clientIp);
    return {
      fingerprints,
      clientIp: fingerprints.length > 0 ? options.clientIp : null,
      urls: [],
      attachments: [],
      mailingList: null,
      tokens: [],
      skips: [{ reason: 'message-too-large', detail: `${message.size} bytes > ${MAX_ANALYSIS_BYTES}` }],
      gtube: await streamContainsGtube(message.stream()),
    };
  }
  const raw = await message.read();
  return analyseBytes(raw, options);
}

/** The same for a message already in memory (`nimbus check`, `nimbus report`). */
export async function analyseBytes(raw: Buffer, options: AnalyseOptions): Promise<Analysed> {
  const found = await fingerprintMessage(raw, {
    ...(options.clientIp === null ? {} : { clientIp: options.clientIp }),
    ...(options.site ? { site: options.site } : {}),
    keepAttachmentBytes: options.keepAttachmentBytes,
    ...(options.imageHashes ? { imageHashes: options.imageHashes } : {}),
    ...(options.tokens === true ? { tokens: true } : {}),
  });
  return { ...found, gtube: raw.includes(GTUBE) };
}
