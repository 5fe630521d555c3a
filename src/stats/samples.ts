/**
 * Samples of unknown suspicious attachments (extended participation): which attachments
 * qualify, and what of them leaves the host. The inspector selects with `selectSamples`, the
 * uploader sends `toWireSample`, and `nimbus statement` prints SAMPLE_RULES: one place, so the
 * statement cannot drift from what is sent.
 *
 * An attachment is a sample when all of these hold:
 * 1. participation is `extended` at the moment the message is processed, and
 *    NIMBUS_SAMPLE_MAX_BYTES is not 0 (nothing is captured in `off` or `standard`, so opting in
 *    later never uploads anything from before);
 * 2. it is an attachment in the fingerprint sense (not an image; at least 64 bytes), at most
 *    NIMBUS_SAMPLE_MAX_BYTES;
 * 3. its `attachment:sha256:…` is unknown: neither the gateway's own engine nor the service has
 *    a verdict for it (`unknown`), or the service did not answer;
 * 4. it is suspicious: an executable or script (by content, extension or declared type), in any
 *    message; or a document, archive or HTML file in a message the gateway judged spam.
 * Documents and archives from mail that is not spam are never sampled: they are the files people
 * send each other, and their bytes can hold anything about anyone.
 */
import type { ParticipationMode } from '../config/index.js';
import type { Verdict, SampleUpload } from '../reputation/api.js';

/** At most this many samples from one message: a message with 50 executables is one campaign. */
export const MAX_SAMPLES_PER_MESSAGE = 5;

export type SampleClass = 'executable' | 'document';

const EXECUTABLE_EXTENSIONS = new Set([
  'exe', 'dll', 'scr', 'com', 'pif', 'cpl', 'msi', 'msp', 'msc', 'bat', 'cmd', 'ps1', 'psm1', 'vbs', 'vbe', 'js', 'jse',
  'wsf', 'wsh', 'hta', 'lnk', 'jar', 'apk', 'sh', 'reg', 'scf', 'appx', 'msix', 'xll', 'elf',
]);
const EXECUTABLE_TYPES = new Set([
  'application/x-msdownload', 'application/x-msdos-program', 'application/x-dosexec', 'application/x-executable',
  'application/vnd.microsoft.portable-executable', 'application/x-elf', 'application/x-sharedlib', 'application/x-msi',
  'application/x-ms-installer', 'application/java-archive', 'application/x-java-archive', 'application/vnd.android.package-archive',
  'application/javascript', 'application/x-javascript', 'text/javascript', 'application/x-sh', 'application/x-shellscript',
  'application/x-bat', 'application/x-msbatch', 'text/vbscript', 'application/x-vbscript', 'application/hta', 'application/x-ms-shortcut',
]);
const DOCUMENT_EXTENSIONS = new Set([
  'pdf', 'doc', 'docx', 'docm', 'dot', 'dotm', 'xls', 'xlsx', 'xlsm', 'xlsb', 'xlt', 'xltm', 'ppt', 'pptx', 'pptm', 'ppsm', 'rtf', 'one',
  'zip', 'rar', '7z', 'gz', 'tgz', 'bz2', 'xz', 'tar', 'cab', 'iso', 'img', 'vhd', 'arj', 'lzh', 'ace', 'htm', 'html', 'shtml', 'xhtml',
]);
/** Declared types of documents, archives and HTML (prefixes end with `.` or `-`). */
const DOCUMENT_TYPES = [
  'application/pdf', 'application/msword', 'application/rtf', 'text/rtf', 'application/vnd.ms-', 'application/vnd.openxmlformats-',
  'application/zip', 'application/x-zip', 'application/x-rar', 'application/vnd.rar', 'application/x-7z-compressed', 'application/gzip',
  'application/x-gzip', 'application/x-bzip2', 'application/x-xz', 'application/x-tar', 'application/x-iso9660-image',
  'application/x-cab', 'application/vnd.ms-cab-compressed', 'text/html', 'application/xhtml+xml',
];

/** Leading bytes: what the file is, whatever its name and declared type say. */
const EXECUTABLE_MAGIC = [Buffer.from('MZ'), Buffer.from([0x7f, 0x45, 0x4c, 0x46])];
const DOCUMENT_MAGIC = [
  Buffer.from('%PDF-'),
  Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), // OLE: .doc, .xls, .msg
  Buffer.from([0x50, 0x4b, 0x03, 0x04]), // ZIP, and Office Open XML inside it
  Buffer.from('Rar!'),
  Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]), // 7z
  Buffer.from([0x1f, 0x8b]), // gzip
];

function extensionOf(name: string | undefined): string {
  if (!name) return '';
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1).trim().toLowerCase();
}

/** What kind of risk an attachment is, or null for the harmless rest (text, calendar, images…). */
export function sampleClass(attachment: { readonly type: string; readonly name?: string; readonly content: Buffer }): SampleClass | null {
  const type = attachment.type.toLowerCase().split(';')[0]!.trim();
  const extension = extensionOf(attachment.name);
  const starts = (magic: Buffer) => attachment.content.subarray(0, magic.length).equals(magic);
  if (EXECUTABLE_MAGIC.some(starts) || EXECUTABLE_EXTENSIONS.has(extension) || EXECUTABLE_TYPES.has(type)) return 'executable';
  if (DOCUMENT_MAGIC.some(starts) || DOCUMENT_EXTENSIONS.has(extension) || DOCUMENT_TYPES.some((prefix) => type === prefix || (/[.-]$/.test(prefix) && type.startsWith(prefix)))) {
    return 'document';
  }
  return null;
}

/** An attachment with its bytes, as the fingerprinter hands it over when asked to keep them. */
export interface SampleCandidate {
  readonly sha256: string;
  readonly type: string;
  readonly size: number;
  /** The file name: used to classify, never stored with the sample nor sent. */
  readonly name?: string;
  readonly content?: Buffer;
}

/** A captured sample: what the sample outbox keeps and the uploader sends. */
export interface Sample {
  readonly sha256: string;
  readonly type: string;
  readonly size: number;
  readonly content: Buffer;
}

/**
 * The samples of one message. `maxBytes` is 0 unless this configuration captures samples
 * (extended, see sampleCapture); `verdictOf` answers for `attachment:sha256:…` texts, undefined
 * when nobody answered.
 */
export function selectSamples(
  attachments: readonly SampleCandidate[],
  verdictOf: (fingerprint: string) => Verdict | undefined,
  messageVerdict: Verdict,
  maxBytes: number,
): Sample[] {
  if (maxBytes <= 0) return [];
  const chosen = new Map<string, Sample>();
  for (const attachment of attachments) {
    if (chosen.size >= MAX_SAMPLES_PER_MESSAGE) break;
    const content = attachment.content;
    if (!content || content.length > maxBytes || chosen.has(attachment.sha256)) continue;
    const known = verdictOf(`attachment:sha256:${attachment.sha256}`);
    if (known !== undefined && known !== 'unknown') continue;
    const risk = sampleClass({ type: attachment.type, content, ...(attachment.name === undefined ? {} : { name: attachment.name }) });
    if (risk === 'executable' || (risk === 'document' && messageVerdict === 'spam')) {
      chosen.set(attachment.sha256, { sha256: attachment.sha256, type: attachment.type, size: content.length, content });
    }
  }
  return [...chosen.values()];
}

/** The largest sample this configuration captures; 0 when it captures none. */
export function sampleCapture(config: { readonly participation: ParticipationMode; readonly acceptStatement: boolean; readonly reputationUrl: string | null; readonly sampleMaxBytes: number }): number {
  if (config.participation !== 'extended' || !config.acceptStatement || config.reputationUrl === null) return 0;
  return config.sampleMaxBytes;
}

/** The upload body of a sample; null when `mode` sends no samples (everything but extended). */
export function toWireSample(sample: Sample, mode: ParticipationMode): SampleUpload | null {
  if (mode !== 'extended') return null;
  return { sha256: sample.sha256, type: sample.type.slice(0, 255) || 'application/octet-stream', size: sample.content.length, content: sample.content.toString('base64') };
}

/** For `nimbus statement`: when a sample is taken and what of it is sent (extended only). */
export const SAMPLE_RULES: readonly string[] = Object.freeze([
  'Attachment samples (POST /v1/samples, one request per sample; extended only) carry the bytes of the attachment',
  '(base64), their SHA-256, the MIME type the message declared and the size. Nothing else: not the file name, not',
  'the message or anything else about it. An attachment is sampled only when all of these hold:',
  '  - participation was extended when the message was processed: nothing is captured in off or standard, so',
  '    opting in later sends no sample of earlier mail, and leaving extended deletes the samples not yet sent;',
  '  - it is at most NIMBUS_SAMPLE_MAX_BYTES (0: no samples at all), at least 64 bytes, and not an image;',
  '  - its SHA-256 is unknown: neither this gateway nor the service has a verdict for it, or the service did not answer;',
  '  - it is an executable or script, in any message: by content (MZ, ELF), by declared type, or by extension:',
  `      ${[...EXECUTABLE_EXTENSIONS].join(' ')}`,
  '    or it is a document, archive or HTML file in a message this gateway judged spam: by content (PDF, OLE, ZIP,',
  '    RAR, 7z, gzip), by declared type, or by extension:',
  `      ${[...DOCUMENT_EXTENSIONS].join(' ')}`,
  `  At most ${MAX_SAMPLES_PER_MESSAGE} samples per message; a SHA-256 once sent is not sent again for NIMBUS_OUTBOX_MAX_AGE_DAYS.`,
  '  The bytes are the attachment itself: an executable, or a document in spam, rarely holds personal data, but it can.',
  '  The service takes samples only from reporter or admin keys; with a sensor key they stay on this host.',
]);
