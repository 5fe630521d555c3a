/**
 * The common message without mailparser's stream machinery: text parts, alternatives, and
 * attachments (images, files) under multipart/mixed or multipart/related, up to three multipart
 * levels. Every other message is mailparser's, as before.
 *
 * mailparser reads a message through three object-mode streams (mailsplit's splitter, its decoder
 * streams, its own transform) with setImmediate between line groups, and parses every header field
 * (addresses, dates, List-*) whether asked for or not: for a 5 KB single-part message about 100 µs
 * of CPU, and some 77 KB allocated (issue #20), most of it outside the decoding. The fast path
 * calls the parts mailparser is built from, on the message in memory:
 *
 * - mailsplit's MimeNode reads each header block (Content-Type, boundary, charset, transfer
 *   encoding, disposition, filename, format=flowed), so the structure is decided as mailsplit
 *   decides it;
 * - a multipart is split as mailsplit splits it (partsOf), for exact delimiter lines only, the
 *   line break before a delimiter belonging to it;
 * - each leaf is an inline text or an attachment as mailparser classifies it, and decoded as
 *   mailsplit's decoders and mailparser's charset reading decode it (mime-leaf.ts);
 * - the text and HTML are joined as mailparser's getTextContent joins them (textOf);
 * - Received and Subject are decoded as mailparser's processHeaders decodes them (libmime).
 *
 * Anything else (message/rfc822 and other message/* parts, uuencode or another transfer encoding
 * on an attachment, TNEF, a rare charset, base64 padded inside, a header block without its empty
 * line or near mailsplit's size limit, a doubtful delimiter line, a nested multipart closed by its
 * parent's delimiter, deeper nesting, more MIME nodes than maxParts) returns null and mailparser
 * parses the message. test/mime-fast-path.test.ts compares the two on a fixture of each shape; on
 * the corpus the fingerprints and analysis results are the same with and without the fast path
 * (docs/design/fingerprints.md, Parsing).
 */
import MimeNode from '@zone-eu/mailsplit/lib/mime-node.js';
import libmime from 'libmime';
import { readLeaf, type AttachmentLeaf, type TextLeaf } from './mime-leaf.js';
import type { ParsedAttachment, ParsedMessage } from './parsed-message.js';

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
/** mailsplit's limit on one header block is 1 MiB counted its way; the fast path stays well below. */
const MAX_HEADER_COST = 256 * 1024;
/** mailsplit counts every header line as at least this many bytes (HEADER_LINE_MIN_COST). */
const HEADER_LINE_MIN_COST = 64;
/** Multiparts inside multiparts the fast path follows (mixed, related, alternative); deeper is mailparser's. */
const MAX_DEPTH = 3;
/** Parts of one multipart the fast path reads; more are left to mailparser. */
const MAX_CHILDREN = 64;

/** A leaf as mailparser's getTextContent sees it: whether a multipart/alternative is above it. */
interface PlacedLeaf {
  readonly leaf: TextLeaf | AttachmentLeaf;
  readonly underAlternative: boolean;
}

/** The leaves of the message in mailsplit's order, and how many MIME nodes mailsplit would count. */
interface Tree {
  readonly leaves: PlacedLeaf[];
  nodes: number;
}

/**
 * mailparser's reading of `message` (no mbox envelope line), or null: not a shape the fast path reads.
 * `maxParts` is mailparser's limit on MIME nodes: a message with more is left to it, to refuse.
 */
export function parseCommonMessage(message: Buffer, maxParts: number): ParsedMessage | null {
  const headerEnd = endOfHeader(message, 0, message.length);
  if (headerEnd < 0) return null;
  const root = new MimeNode(false, {});
  root.addHeaderChunk(message.subarray(0, headerEnd));
  root.parseHeaders();
  if (root.headers === false) return null;
  const tree: Tree = { leaves: [], nodes: 0 };
  if (!readNode(message, root, headerEnd, message.length, false, 0, tree)) return null;
  if (tree.nodes > maxParts) return null;
  return { ...fieldsOf(root.headers.getList()), ...textOf(tree.leaves, root.multipart === false), attachments: attachmentsOf(tree.leaves) };
}

/**
 * Reads `node`, whose body is [bodyStart, bodyEnd), into `tree`: a leaf as mailparser classifies
 * it, a multipart by its parts. False: a part the fast path leaves to mailparser.
 */
function readNode(message: Buffer, node: MimeNode, bodyStart: number, bodyEnd: number, underAlternative: boolean, depth: number, tree: Tree): boolean {
  tree.nodes++;
  if (node.multipart === false) {
    const leaf = readLeaf(node, message.subarray(bodyStart, bodyEnd), depth === 0);
    if (leaf === null) return false;
    tree.leaves.push({ leaf, underAlternative });
    return true;
  }
  if (depth >= MAX_DEPTH || node._boundary === false) return false;
  const split = partsOf(message, bodyStart, bodyEnd, node._boundary);
  if (split === null) return false;
  const alternative = underAlternative || node.multipart === 'alternative';
  for (const [index, [start, end]] of split.parts.entries()) {
    const runsToEnd = split.open && index === split.parts.length - 1;
    const headerEnd = endOfHeader(message, start, end);
    if (headerEnd < 0) return false;
    const child = new MimeNode(node, {});
    child.addHeaderChunk(message.subarray(start, headerEnd));
    child.parseHeaders();
    if (child.headers === false) return false;
    // The line break before a delimiter belongs to the delimiter, unless it is the whole body:
    // mailsplit then keeps the body as it was (its trimmed group is empty and not re-sliced). A
    // part the message ends in keeps its last line break.
    let childEnd = end;
    if (!runsToEnd && childEnd > headerEnd && message[childEnd - 1] === LF) {
      childEnd--;
      if (childEnd > headerEnd && message[childEnd - 1] === CR) childEnd--;
      if (childEnd === headerEnd) childEnd = end;
    }
    if (!readNode(message, child, headerEnd, childEnd, alternative, depth + 1, tree)) return false;
  }
  return true;
}

/**
 * mailparser's getTextContent over the inline text leaves, in order: with skipHtmlToText and
 * skipTextToHtml, a text/plain outside an alternative adds an empty HTML entry when the message
 * has HTML, and a text/html outside one (or a text/html root without text) an empty text entry;
 * an empty part adds nothing.
 */
function textOf(leaves: readonly PlacedLeaf[], isRootLeaf: boolean): Pick<ParsedMessage, 'text' | 'html'> {
  const texts = leaves.flatMap(({ leaf }) => (leaf.kind === 'text' ? [leaf] : []));
  const hasText = texts.some((leaf) => leaf.type === 'text/plain');
  const hasHtml = texts.some((leaf) => leaf.type === 'text/html');
  const text: string[] = [];
  const html: string[] = [];
  for (const { leaf, underAlternative } of leaves) {
    if (leaf.kind !== 'text' || leaf.content === '') continue;
    if (leaf.type === 'text/plain') {
      text.push(leaf.content);
      if (!underAlternative && hasHtml) html.push('');
    } else {
      if ((!underAlternative && hasText) || (isRootLeaf && !hasText)) text.push('');
      html.push(leaf.content);
    }
  }
  return { text: text.join('\n'), html: html.join('<br/>\n') };
}

function attachmentsOf(leaves: readonly PlacedLeaf[]): ParsedAttachment[] {
  return leaves.flatMap(({ leaf }) => (leaf.kind === 'attachment' ? [leaf.attachment] : []));
}

/**
 * The parts of a multipart whose body is [bodyStart, bodyEnd), as mailsplit splits it: a part runs
 * from its delimiter line to the next. Only exact delimiter lines (`--b`, `--b--`, then LF or
 * CRLF) are read here; a line mailsplit might also take for one (trailing blanks, a CR run, a
 * leading CR) or too many parts leaves the message to mailparser. A multipart without its close
 * delimiter is read only when its body runs to the end of the message: mailsplit then ends its
 * last part there, line break and all (`open`); closed by a parent's delimiter, it is mailparser's.
 */
function partsOf(message: Buffer, bodyStart: number, bodyEnd: number, boundary: Buffer): { parts: [number, number][]; open: boolean } | null {
  const parts: [number, number][] = [];
  const atEnd = bodyEnd === message.length;
  let partStart = -1;
  for (let start = bodyStart; start < bodyEnd; ) {
    let lineEnd = message.indexOf(LF, start);
    if (lineEnd < 0 || lineEnd >= bodyEnd) {
      if (atEnd) {
        // The message's last line, without a line break: content, unless it might be a delimiter.
        if (delimiterOf(message, start, bodyEnd, boundary) !== 'none') return null;
        break;
      }
      // A nested multipart's body ends before the line break its last line had (it belongs to
      // the parent's delimiter): that line still ends there.
      if (message[bodyEnd] !== CR && message[bodyEnd] !== LF) return null;
      lineEnd = bodyEnd;
    }
    const next = lineEnd + 1;
    const delimiter = delimiterOf(message, start, lineEnd, boundary);
    if (delimiter === 'other') return null;
    if (delimiter !== 'none') {
      if (partStart >= 0) {
        if (parts.length >= MAX_CHILDREN) return null;
        parts.push([partStart, start]);
      } else if (delimiter === 'close') return null;
      // After the close delimiter comes the epilogue, which mailparser ignores.
      if (delimiter === 'close') return { parts, open: false };
      partStart = next;
    }
    start = next;
  }
  if (!atEnd || partStart < 0 || partStart > bodyEnd || parts.length >= MAX_CHILDREN) return null;
  parts.push([partStart, bodyEnd]);
  return { parts, open: true };
}

/** What the line [start, lineEnd) (lineEnd: its LF, or the end of a nested body) is to the boundary: a delimiter, no delimiter, or doubtful. */
function delimiterOf(message: Buffer, start: number, lineEnd: number, boundary: Buffer): 'next' | 'close' | 'none' | 'other' {
  const dashes = message[start] === CR ? start + 1 : start;
  if (message[dashes] !== DASH || message[dashes + 1] !== DASH) return 'none';
  if (!message.subarray(dashes + 2, dashes + 2 + boundary.length).equals(boundary)) return 'none';
  if (dashes !== start) return 'other';
  let at = start + 2 + boundary.length;
  let kind: 'next' | 'close' = 'next';
  if (at + 1 < lineEnd && message[at] === DASH && message[at + 1] === DASH) {
    kind = 'close';
    at += 2;
  }
  if (at < lineEnd && message[at] === CR) at++;
  return at === lineEnd ? kind : 'other';
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
