/**
 * One leaf part of a message as mailparser reads it, for the MIME fast path (mime-fast-path.ts):
 * an inline text part (its decoded text) or an attachment (its decoded bytes, type and name).
 * The node's header block has been read by mailsplit's MimeNode, so the type, disposition,
 * charset, transfer encoding and filename (RFC 2231 parameters and encoded words decoded by
 * libmime) are what mailsplit hands mailparser. A part whose reading is doubtful gives null and
 * the whole message goes to mailparser.
 */
import { isAscii } from 'node:buffer';
import type MimeNode from '@zone-eu/mailsplit/lib/mime-node.js';
import libmime from 'libmime';
import { decode as decodeCharset, normalizeCharset } from 'libmime/lib/charset.js';
import libqp from 'libqp';
import type { ParsedAttachment } from './parsed-message.js';

/** Charsets mailparser reads as UTF-8 without a decoder (its names, lower case, punctuation removed). */
const UTF8_NAMES = new Set(['ascii', 'usascii', 'utf8']);
/** libmime's names of single-byte charsets: a byte is a character, whatever the chunks were. */
const SINGLE_BYTE = /^(?:iso-8859-(?:[1-9]|1[0-5])|windows-125[0-8]|koi8-[ru])$/i;
/** Data after padding: libbase64 then decodes the runs between padding one by one. */
const BASE64_LETTER = /[a-zA-Z0-9+/]/;
/** mailparser's text types: a delivery report's status is read as text, as text/plain is. */
const TEXT_TYPES: ReadonlySet<string> = new Set<TextType>(['text/plain', 'text/html', 'message/delivery-status']);
type TextType = 'text/plain' | 'text/html' | 'message/delivery-status';
/** The transfer encodings under which mailsplit reads an inline message/rfc822 as a message of its own. */
const IDENTITY_ENCODINGS = new Set(['', '7bit', '8bit', 'binary']);
/**
 * Transfer encodings of an attachment the fast path decodes: none, the identity ones, base64 and
 * quoted-printable. Anything else (x-uuencode, a typo) is mailparser's to judge.
 */
const ATTACHMENT_ENCODINGS = new Set([...IDENTITY_ENCODINGS, 'base64', 'quoted-printable']);

export interface TextLeaf {
  readonly kind: 'text';
  readonly type: TextType;
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
  if (contentType === false) return null;
  // An inline message/rfc822 in an identity encoding is split by mailsplit as a message of its own,
  // and mailparser writes its From, Subject, Date and To into the text: mailparser's. Otherwise it
  // is an attachment like any other part, its bytes as written.
  if (contentType === 'message/rfc822' && node.disposition === 'inline' && IDENTITY_ENCODINGS.has(node.encoding || '')) return null;
  if (isTextType(contentType) && (node.disposition === false || node.disposition === 'inline')) return textLeaf(node, contentType, body);
  if (contentType === 'application/ms-tnef' || !ATTACHMENT_ENCODINGS.has(node.encoding || '')) return null;
  const content = decodeTransfer(body, node.encoding);
  // mailparser names an application/octet-stream by its filename's extension, when it has one.
  const type = contentType === 'application/octet-stream' && node.filename ? libmime.detectMimeType(node.filename) || contentType : contentType;
  return { kind: 'attachment', attachment: { content, contentType: type, ...(node.filename ? { filename: node.filename } : {}) } };
}

function isTextType(contentType: string): contentType is TextType {
  return TEXT_TYPES.has(contentType);
}

/** An inline text part as mailparser's text: null unless of an ordinary charset. */
function textLeaf(node: MimeNode, contentType: TextType, body: Buffer): TextLeaf | null {
  let bytes = decodeTransfer(body, node.encoding);
  // mailsplit's FlowedDecoder: the whole decoded body unfolded by libmime, as latin1 strings.
  if (node.flowed && bytes.length > 0) bytes = Buffer.from(libmime.decodeFlowed(bytes.toString('binary'), node.delSp), 'binary');
  const content = decodeText(bytes, node.charset || 'utf-8');
  return content === null ? null : { kind: 'text', type: contentType, content };
}

/** The body's bytes as mailsplit's decoder for `encoding` gives them. */
function decodeTransfer(body: Buffer, encoding: string | false): Buffer {
  if (encoding === 'quoted-printable') return libqp.decode(body);
  return encoding === 'base64' ? decodeBase64(body) : body;
}

/**
 * A base64 body as libbase64's Decoder gives it to mailsplit: every byte outside the alphabet and
 * `=` dropped, and the rest decoded by Node, run by run when padding is followed by more data
 * (each run between two `=` on its own, as libbase64's decode splits it). The Decoder's chunks are
 * quartet-aligned from the last padding, so the whole body decodes as its chunks did.
 *
 * Node's decoder itself skips whitespace and other bytes outside the alphabet, in quartets of
 * alphabet characters as the cleaned string has them, so the body is not cleaned (a regex replace
 * over a 40 KB image cost a third of the fast path's time). Only `-` and `_` differ: Node reads
 * them as base64url, libbase64 drops them, so they are dropped here.
 */
function decodeBase64(body: Buffer): Buffer {
  const text = body.toString('latin1').replaceAll('-', '').replaceAll('_', '');
  const padding = text.indexOf('=');
  // Node stops at the first `=`: with nothing but padding and noise after it, that is the end.
  if (padding < 0 || !BASE64_LETTER.test(text.slice(padding))) return Buffer.from(text, 'base64');
  return Buffer.concat(text.split('=').map((run) => Buffer.from(run, 'base64')));
}

/**
 * The text of the part, as mailparser builds it from the decoded bytes; null: left to mailparser.
 * Every charset read here maps the ASCII bytes to themselves, so ASCII text skips the decoder.
 */
function decodeText(bytes: Buffer, charset: string): string | null {
  const utf8 = UTF8_NAMES.has(charset.toLowerCase().replace(/[^a-z0-9]+/g, ''));
  if (!utf8 && !SINGLE_BYTE.test(normalizeCharset(charset))) return null;
  let text: string;
  if (isAscii(bytes)) text = bytes.toString('latin1');
  else text = utf8 ? bytes.toString() : decodeCharset(bytes, charset);
  // mailparser's /\r?\n/g → '\n', which changes only CRLF pairs.
  return text.includes('\r') ? text.replaceAll('\r\n', '\n') : text;
}
