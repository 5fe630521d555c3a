/**
 * One leaf part of a message as mailparser reads it, for the MIME fast path (mime-fast-path.ts):
 * an inline text part (its decoded text) or an attachment (its decoded bytes, type and name).
 * The node's header block has been read by mailsplit's MimeNode, so the type, disposition,
 * charset, transfer encoding and filename (RFC 2231 parameters and encoded words decoded by
 * libmime) are what mailsplit hands mailparser. A part whose reading is doubtful gives null and
 * the whole message goes to mailparser.
 */
import type MimeNode from '@zone-eu/mailsplit/lib/mime-node.js';
import libmime from 'libmime';
import { decode as decodeCharset, normalizeCharset } from 'libmime/lib/charset.js';
import libqp from 'libqp';
import type { ParsedAttachment } from './parsed-message.js';

/** Charsets mailparser reads as UTF-8 without a decoder (its names, lower case, punctuation removed). */
const UTF8_NAMES = new Set(['ascii', 'usascii', 'utf8']);
/** libmime's names of single-byte charsets: a byte is a character, whatever the chunks were. */
const SINGLE_BYTE = /^(?:iso-8859-(?:[1-9]|1[0-5])|windows-125[0-8]|koi8-[ru])$/i;
const BASE64_NOISE = /[^a-zA-Z0-9+/=]/g;
/** mailparser's text types (message/delivery-status among them); the fast path reads only the first two. */
const TEXT_TYPES = new Set(['text/plain', 'text/html', 'message/delivery-status']);
/**
 * Transfer encodings of an attachment the fast path decodes: none, the identity ones, base64 and
 * quoted-printable. Anything else (x-uuencode, a typo) is mailparser's to judge.
 */
const ATTACHMENT_ENCODINGS = new Set(['', '7bit', '8bit', 'binary', 'base64', 'quoted-printable']);

export interface TextLeaf {
  readonly kind: 'text';
  readonly type: 'text/plain' | 'text/html';
  readonly content: string;
}

export interface AttachmentLeaf {
  readonly kind: 'attachment';
  readonly attachment: ParsedAttachment;
}

/**
 * The leaf `node` with body `body`, classified as mailparser's createNode classifies it: a
 * disposition other than attachment or inline counts as attachment, a part without disposition is
 * inline only if it is a text type, and a part is an attachment unless it is inline text.
 */
export function readLeaf(node: MimeNode, body: Buffer, isRoot: boolean): TextLeaf | AttachmentLeaf | null {
  if (node._boundary !== false) return null;
  // mailparser gives a root without Content-Type text/plain; mailsplit did so for the others.
  const contentType = node.contentType || (isRoot ? 'text/plain' : false);
  // message/* (a forwarded message, a delivery report) and an empty type stay mailparser's.
  if (contentType === false || contentType.startsWith('message/')) return null;
  const inline = TEXT_TYPES.has(contentType) && (node.disposition === false || node.disposition === 'inline');
  if (inline) return textLeaf(node, contentType, body);
  if (contentType === 'application/ms-tnef' || !ATTACHMENT_ENCODINGS.has(node.encoding || '')) return null;
  const content = decodeTransfer(body, node.encoding);
  if (content === null) return null;
  // mailparser names an application/octet-stream by its filename's extension, when it has one.
  const type = contentType === 'application/octet-stream' && node.filename ? libmime.detectMimeType(node.filename) || contentType : contentType;
  return { kind: 'attachment', attachment: { content, contentType: type, ...(node.filename ? { filename: node.filename } : {}) } };
}

/** An inline text part as mailparser's text: null unless text/plain or text/html of an ordinary charset. */
function textLeaf(node: MimeNode, contentType: string, body: Buffer): TextLeaf | null {
  if (contentType !== 'text/plain' && contentType !== 'text/html') return null;
  let bytes = decodeTransfer(body, node.encoding);
  if (bytes === null) return null;
  // mailsplit's FlowedDecoder: the whole decoded body unfolded by libmime, as latin1 strings.
  if (node.flowed && bytes.length > 0) bytes = Buffer.from(libmime.decodeFlowed(bytes.toString('binary'), node.delSp), 'binary');
  const content = decodeText(bytes, node.charset || 'utf-8');
  return content === null ? null : { kind: 'text', type: contentType, content };
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
