/**
 * The common message without mailparser's stream machinery: one text part (text/plain or
 * text/html), no multipart, no attachment. Every other message is mailparser's, as before.
 *
 * mailparser reads a message through three object-mode streams (mailsplit's splitter, its decoder
 * streams, its own transform), a setImmediate per line group, and parses every header field
 * (addresses, dates, List-*) whether asked for or not. For a 5 KB single-part message that was
 * about 100 us of CPU and 77 KB of garbage, most of it outside the decoding. The fast path calls
 * the same parts mailparser calls, on the message in memory:
 *
 * - mailsplit's MimeNode reads the header block (Content-Type, charset, transfer encoding,
 *   disposition, format=flowed), so the structure is decided as mailsplit decides it;
 * - the body is decoded as mailsplit's decoders decode it: libqp's `decode` (its stream decoder
 *   decodes the whole input at once too), Node's base64 for a body whose only padding ends it
 *   (libbase64's stream decoder then decodes the same quartets), the bytes as they are otherwise;
 * - format=flowed text is unfolded as mailsplit's FlowedDecoder unfolds it (libmime's
 *   `decodeFlowed` on the whole decoded body);
 * - the charset is read as mailparser reads it: UTF-8 for utf-8, us-ascii or none, libmime's
 *   `decode` for a single-byte charset (its stream decoder maps byte for byte, so chunks do not
 *   matter); other charsets are left to mailparser;
 * - Received and Subject are decoded as mailparser's processHeaders decodes them (libmime).
 *
 * It gives a result only for that shape: a header block that ends in an empty line and stays far
 * below mailsplit's size limit, a text/plain or text/html root with no boundary parameter, inline
 * or no disposition, an ordinary charset. Anything else returns null and mailparser parses it.
 * test/mime-fast-path.test.ts compares the two on a fixture of each shape; across the corpus the
 * fingerprints and analysis results are the same with and without the fast path.
 */
import MimeNode from '@zone-eu/mailsplit/lib/mime-node.js';
import libmime from 'libmime';
import { decode as decodeCharset, normalizeCharset } from 'libmime/lib/charset.js';
import libqp from 'libqp';
import type { ParsedMessage } from './parsed-message.js';

const LF = 0x0a;
const CR = 0x0d;
/** mailsplit's limit on one header block is 1 MiB counted its way; the fast path stays well below. */
const MAX_HEADER_COST = 256 * 1024;
/** mailsplit counts every header line as at least this many bytes (HEADER_LINE_MIN_COST). */
const HEADER_LINE_MIN_COST = 64;
/** Charsets mailparser reads as UTF-8 without a decoder (its names, lower case, punctuation removed). */
const UTF8_NAMES = new Set(['ascii', 'usascii', 'utf8']);
/** libmime's names of single-byte charsets: a byte is a character, whatever the chunks were. */
const SINGLE_BYTE = /^(?:iso-8859-(?:[1-9]|1[0-5])|windows-125[0-8]|koi8-[ru])$/i;
const BASE64_NOISE = /[^a-zA-Z0-9+/=]/g;

/** mailparser's reading of `message` (no mbox envelope line), or null: not the common shape. */
export function parseCommonMessage(message: Buffer): ParsedMessage | null {
  const headerEnd = endOfHeader(message);
  if (headerEnd < 0) return null;
  const node = new MimeNode(false, {});
  node.addHeaderChunk(message.subarray(0, headerEnd));
  node.parseHeaders();
  const headers = node.headers;
  if (headers === false || node._boundary !== false) return null;
  if (node.contentType !== 'text/plain' && node.contentType !== 'text/html') return null;
  if (node.disposition !== false && node.disposition !== 'inline') return null;
  let bytes = decodeTransfer(message.subarray(headerEnd), node.encoding);
  if (bytes === null) return null;
  // mailsplit's FlowedDecoder: the whole decoded body unfolded by libmime, as latin1 strings.
  if (node.flowed && bytes.length > 0) bytes = Buffer.from(libmime.decodeFlowed(bytes.toString('binary'), node.delSp), 'binary');
  const content = decodeText(bytes, node.charset || 'utf-8');
  if (content === null) return null;
  const lines = headers.getList();
  const received: string[] = [];
  let subject = '';
  let subjectSeen = false;
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
    if (value && !subjectSeen) {
      subject = value;
      subjectSeen = true;
    }
  }
  // mailparser: a text/html root gives the HTML and an empty text (its HTML-to-text is skipped).
  const html = node.contentType === 'text/html' ? content : '';
  const text = node.contentType === 'text/plain' ? content : '';
  return { headerLines: lines, received, subject, text, html, attachments: [] };
}

/**
 * Where the body starts: after the first line that is empty (LF or CRLF alone), as mailsplit
 * ends the header block; -1 when there is none, or the block costs more than MAX_HEADER_COST.
 */
function endOfHeader(message: Buffer): number {
  let cost = 0;
  let start = 0;
  for (;;) {
    const newline = message.indexOf(LF, start);
    if (newline < 0) return -1;
    const length = newline + 1 - start;
    if (length === 1 || (length === 2 && message[start] === CR)) return newline + 1;
    cost += Math.max(length, HEADER_LINE_MIN_COST);
    if (cost > MAX_HEADER_COST) return -1;
    start = newline + 1;
  }
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
