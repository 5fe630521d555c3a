/**
 * What fingerprinting reads of a message's MIME structure, and where it comes from: the fast path
 * for the common message, text parts, alternatives and attachments under multipart/mixed or
 * related (mime-fast-path.ts), mailparser for everything else. Both give the values mailparser
 * gives, so the fingerprints do not depend on which one parsed.
 */
import { simpleParser, type ParsedMail } from 'mailparser';
import type { FingerprintLimits } from './limits.js';
import { parseCommonMessage } from './mime-fast-path.js';

export interface ParsedAttachment {
  /** The decoded bytes (mailparser's `content`; anything but a Buffer is skipped). */
  readonly content: unknown;
  readonly contentType: string;
  readonly filename?: string | undefined;
}

export interface ParsedMessage {
  /** The header fields as written (name, value, folding), with lower-case keys. */
  readonly headerLines: readonly { readonly key: string; readonly line: string }[];
  /** The Received values as mailparser gives them (decoded, trimmed, empty ones left out). */
  readonly received: readonly string[];
  /** The first non-empty Subject, encoded words decoded; '' when none. */
  readonly subject: string;
  /** mailparser's `text` (its text parts joined); '' when none. */
  readonly text: string;
  /** mailparser's `html`; '' when none. */
  readonly html: string;
  readonly attachments: readonly ParsedAttachment[];
}

/** What parsing gave: the structure, or why mailparser refused the message. */
export type ParseOutcome = { readonly ok: true; readonly parsed: ParsedMessage } | { readonly ok: false; readonly error: string };

/** The message's structure: the fast path's when it is the common shape, else mailparser's. */
export async function parseMessage(message: Buffer, limits: FingerprintLimits): Promise<ParseOutcome> {
  const common = parseCommonMessage(message, limits.maxParts);
  return common === null ? parseWithMailparser(message, limits) : { ok: true, parsed: common };
}

/** mailparser's reading of any message (the fast path's results are compared against this). */
export async function parseWithMailparser(message: Buffer, limits: FingerprintLimits): Promise<ParseOutcome> {
  try {
    const parsed = await simpleParser(message, {
      // Our own HTML-to-text and link extraction; mailparser's are slower and not needed.
      skipHtmlToText: true,
      skipTextToHtml: true,
      skipImageLinks: true,
      skipTextLinks: true,
      keepCidLinks: true,
      checksumAlgo: false,
      maxChildNodes: limits.maxParts,
    });
    return { ok: true, parsed: fromMailparser(parsed) };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

function fromMailparser(parsed: ParsedMail): ParsedMessage {
  const subject = parsed.headers.get('subject');
  return {
    headerLines: parsed.headerLines,
    received: valuesOf(parsed.headers.get('received')),
    subject: valuesOf(subject)[0] ?? '',
    text: parsed.text ?? '',
    html: typeof parsed.html === 'string' ? parsed.html : '',
    attachments: parsed.attachments,
  };
}

function valuesOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  return value === undefined ? [] : [String(value)];
}

/**
 * Values of a header as written (unfolded), from the parsed header lines. mailparser turns
 * List-* headers into a structured `list` entry, so these are read from its raw lines.
 */
export function rawHeaderValues(parsed: ParsedMessage, name: string): string[] {
  return parsed.headerLines.filter((h) => h.key === name).map((h) => h.line.slice(h.line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim());
}

/** A header's values read by hand from a message no parser accepted (unfolded): all the IP needs. */
export function unparsedHeaderValues(raw: Buffer, name: string): string[] {
  const end = raw.indexOf('\n\n');
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 1 << 20) : end).toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  const prefix = `${name.toLowerCase()}:`;
  return head.split(/\r?\n/).filter((line) => line.toLowerCase().startsWith(prefix)).map((line) => line.slice(prefix.length).trim());
}
