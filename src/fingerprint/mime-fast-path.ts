/**
 * The common message without mailparser's stream machinery: one text part (text/plain or
 * text/html), or a multipart/alternative of such parts, no attachment. Every other message is
 * mailparser's, as before.
 *
 * mailparser reads a message through three object-mode streams (mailsplit's splitter, its decoder
 * streams, its own transform) with setImmediate between line groups, and parses every header field
 * (addresses, dates, List-*) whether asked for or not: for a 5 KB single-part message about 100 µs
 * of CPU, and some 77 KB allocated (issue #20), most of it outside the decoding. The fast path
 * calls the parts mailparser is built from, on the message in memory:
 *
 * - mailsplit's MimeNode reads each header block (Content-Type, boundary, charset, transfer
 *   encoding, disposition, format=flowed), so the structure is decided as mailsplit decides it;
 * - a multipart/alternative is split as mailsplit splits it (alternativesOf), for exact
 *   delimiter lines only;
 * - a body is decoded as mailsplit's decoders decode it: libqp's `decode` (its stream decoder
 *   decodes the whole input at once too), Node's base64 for a body whose only padding ends it
 *   (libbase64's stream decoder then decodes the same quartets), the bytes as they are otherwise;
 * - format=flowed text is unfolded as mailsplit's FlowedDecoder unfolds it (libmime's
 *   `decodeFlowed` on the whole decoded body);
 * - the charset is read as mailparser reads it: UTF-8 for utf-8, us-ascii or none, libmime's
 *   `decode` for a single-byte charset (its stream decoder maps byte for byte, so chunks do not
 *   matter); other charsets are left to mailparser;
 * - Received and Subject are decoded as mailparser's processHeaders decodes them (libmime).
 *
 * Anything else (another multipart, a part that is not inline text, a rare charset, base64 padded
 * inside, a header block without its empty line or near mailsplit's size limit, a doubtful
 * delimiter line) returns null and mailparser parses the message. test/mime-fast-path.test.ts
 * compares the two on a fixture of each shape; on the corpus the fingerprints and analysis results
 * are the same with and without the fast path (docs/design/fingerprints.md, Parsing).
 */
import MimeNode from '@zone-eu/mailsplit/lib/mime-node.js';
import libmime from 'libmime';
import { decode as decodeCharset, normalizeCharset } from 'libmime/lib/charset.js';
import libqp from 'libqp';
import type { ParsedMessage } from './parsed-message.js';

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
/** mailsplit's limit on one header block is 1 MiB counted its way; the fast path stays well below. */
const MAX_HEADER_COST = 256 * 1024;
/** mailsplit counts every header line as at least this many bytes (HEADER_LINE_MIN_COST). */
const HEADER_LINE_MIN_COST = 64;
/** Charsets mailparser reads as UTF-8 without a decoder (its names, lower case, punctuation removed). */
const UTF8_NAMES = new Set(['ascii', 'usascii', 'utf8']);
/** libmime's names of single-byte charsets: a byte is a character, whatever the chunks were. */
const SINGLE_BYTE = /^(?:iso-8859-(?:[1-9]|1[0-5])|windows-125[0-8]|koi8-[ru])$/i;
const BASE64_NOISE = /[^a-zA-Z0-9+/=]/g;

/** Parts of a multipart/alternative the fast path reads; more are left to mailparser. */
const MAX_ALTERNATIVES = 4;

interface TextPart {
  readonly type: 'text/plain' | 'text/html';
  readonly content: string;
}

/**
 * mailparser's reading of `message` (no mbox envelope line), or null: not the common shape.
 * `maxParts` is mailparser's limit on MIME nodes: a message with more is left to it, to refuse.
 */
export function parseCommonMessage(message: Buffer, maxParts: number): ParsedMessage | null {
  const headerEnd = endOfHeader(message, 0, message.length);
  if (headerEnd < 0) return null;
  const root = new MimeNode(false, {});
  root.addHeaderChunk(message.subarray(0, headerEnd));
  root.parseHeaders();
  if (root.headers === false) return null;
  let parts: TextPart[];
  if (root.multipart === 'alternative') {
    const alternatives = alternativesOf(message, headerEnd, root);
    if (alternatives === null) return null;
    parts = alternatives;
  } else {
    const part = textPart(root, message.subarray(headerEnd));
    if (part === null) return null;
    parts = [part];
  }
  // mailsplit counts the root as a node too.
  if (root.multipart !== false && 1 + parts.length > maxParts) return null;
  // mailparser's getTextContent for a text root (a text/html root gives an empty text, its
  // HTML-to-text being skipped) and for alternatives: the non-empty texts joined, likewise the HTML.
  const contents = (type: TextPart['type']): string[] => parts.filter((part) => part.type === type && part.content !== '').map((part) => part.content);
  return { ...fieldsOf(root.headers.getList()), text: contents('text/plain').join('\n'), html: contents('text/html').join('<br/>\n'), attachments: [] };
}

/** One leaf part as mailparser's text: null unless it is an inline text/plain or text/html of an ordinary charset. */
function textPart(node: MimeNode, body: Buffer): TextPart | null {
  if (node._boundary !== false) return null;
  if (node.contentType !== 'text/plain' && node.contentType !== 'text/html') return null;
  if (node.disposition !== false && node.disposition !== 'inline') return null;
  let bytes = decodeTransfer(body, node.encoding);
  if (bytes === null) return null;
  // mailsplit's FlowedDecoder: the whole decoded body unfolded by libmime, as latin1 strings.
  if (node.flowed && bytes.length > 0) bytes = Buffer.from(libmime.decodeFlowed(bytes.toString('binary'), node.delSp), 'binary');
  const content = decodeText(bytes, node.charset || 'utf-8');
  return content === null ? null : { type: node.contentType, content };
}

/**
 * The parts of a multipart/alternative as mailsplit splits it: a part runs from its delimiter
 * line to the next, its header block ends in an empty line, and the line break before the next
 * delimiter belongs to the delimiter. Only exact delimiter lines (`--b`, `--b--`, then LF or CRLF)
 * are read here; a line mailsplit might also take for one (trailing blanks, a CR run, a leading
 * CR), a missing close delimiter or a part that is not text leaves the message to mailparser.
 */
function alternativesOf(message: Buffer, bodyStart: number, root: MimeNode): TextPart[] | null {
  const boundary = root._boundary;
  if (boundary === false) return null;
  const parts: TextPart[] = [];
  let partStart = -1;
  for (let start = bodyStart; start < message.length; ) {
    const newline = message.indexOf(LF, start);
    if (newline < 0) return null;
    const next = newline + 1;
    const delimiter = delimiterOf(message, start, next, boundary);
    if (delimiter === 'other') return null;
    if (delimiter !== 'none') {
      if (partStart >= 0) {
        const part = childPart(message, partStart, start, root);
        if (part === null || parts.length >= MAX_ALTERNATIVES) return null;
        parts.push(part);
      } else if (delimiter === 'close') return null;
      // After the close delimiter comes the epilogue, which mailparser ignores.
      if (delimiter === 'close') return parts;
      partStart = next;
    }
    start = next;
  }
  return null;
}

/** What the line [start, end) (its LF included) is to the boundary: a delimiter, no delimiter, or doubtful. */
function delimiterOf(message: Buffer, start: number, end: number, boundary: Buffer): 'next' | 'close' | 'none' | 'other' {
  const dashes = message[start] === CR ? start + 1 : start;
  if (message[dashes] !== DASH || message[dashes + 1] !== DASH) return 'none';
  if (!message.subarray(dashes + 2, dashes + 2 + boundary.length).equals(boundary)) return 'none';
  if (dashes !== start) return 'other';
  let at = start + 2 + boundary.length;
  let kind: 'next' | 'close' = 'next';
  if (message[at] === DASH && message[at + 1] === DASH) {
    kind = 'close';
    at += 2;
  }
  if (message[at] === CR) at++;
  return at === end - 1 ? kind : 'other';
}

/** A child part [start, end): its header block, then its body without the line break before the delimiter. */
function childPart(message: Buffer, start: number, end: number, root: MimeNode): TextPart | null {
  const headerEnd = endOfHeader(message, start, end);
  if (headerEnd < 0) return null;
  const node = new MimeNode(root, {});
  node.addHeaderChunk(message.subarray(start, headerEnd));
  node.parseHeaders();
  let bodyEnd = end;
  if (bodyEnd > headerEnd && message[bodyEnd - 1] === LF) {
    bodyEnd--;
    if (bodyEnd > headerEnd && message[bodyEnd - 1] === CR) bodyEnd--;
  }
  return textPart(node, message.subarray(headerEnd, bodyEnd));
}

/** Received and Subject as mailparser's processHeaders decodes them, and the header lines. */
function fieldsOf(lines: readonly { readonly key: string; readonly line: string }[]): Pick<ParsedMessage, 'headerLines' | 'received' | 'subject'> {
  const received: string[] = [];
  let subject = '';
  for (const { key, line } of lines) {
    if (key !== 'received' && key !== 'subject') continue;
    // processHeaders: the value decoded by libmime, trimmed, its latin1 string read as UTF-8.
    let value = Buffer.from((libmime.decodeHeader(line)?.value ?? '').toString().trim(), 'binary').toString();
    if (key === 'received') {
      if (value) received.push(value);
      continue;
    }
    try {
      value = libmime.decodeWords(value);
    } catch {
      // kept as it is, as mailparser keeps it
    }
    // mailparser keeps the first non-empty Subject.
    if (value && subject === '') subject = value;
  }
  return { headerLines: lines, received, subject };
}

/**
 * Where the body of the part starting at `start` begins: after its first empty line (LF or CRLF
 * alone), as mailsplit ends a header block; -1 when there is none before `end`, or the block
 * costs more than MAX_HEADER_COST.
 */
function endOfHeader(message: Buffer, start: number, end: number): number {
  let cost = 0;
  for (let line = start; line < end; ) {
    const newline = message.indexOf(LF, line);
    if (newline < 0 || newline >= end) return -1;
    const length = newline + 1 - line;
    if (length === 1 || (length === 2 && message[line] === CR)) return newline + 1;
    cost += Math.max(length, HEADER_LINE_MIN_COST);
    if (cost > MAX_HEADER_COST) return -1;
    line = newline + 1;
  }
  return -1;
}

/** The body's bytes as mailsplit's decoder for `encoding` gives them; null: left to mailparser. */
function decodeTransfer(body: Buffer, encoding: string | false): Buffer | null {
  if (encoding === 'quoted-printable') return libqp.decode(body);
  if (encoding !== 'base64') return body;
  const base64 = body.toString('latin1').replace(BASE64_NOISE, '');
  const padding = base64.indexOf('=');
  // Padding only at the end: each of libbase64's quartet-aligned pieces decodes as the whole does.
  if (padding >= 0 && !/^=+$/.test(base64.slice(padding))) return null;
  return Buffer.from(base64, 'base64');
}

/** The text of the part, as mailparser builds it from the decoded bytes; null: left to mailparser. */
function decodeText(bytes: Buffer, charset: string): string | null {
  let text: string;
  if (UTF8_NAMES.has(charset.toLowerCase().replace(/[^a-z0-9]+/g, ''))) text = bytes.toString();
  else if (SINGLE_BYTE.test(normalizeCharset(charset))) text = decodeCharset(bytes, charset);
  else return null;
  return text.replace(/\r?\n/g, '\n');
}
