/**
 * A raw MIME tree for editing messages without re-serialising what is not edited. Everything is
 * held as latin1 strings (one char per byte), so bytes in any charset or 8-bit encoding survive
 * untouched; an unedited node is written back exactly as read. Only a part whose body or header
 * was changed is written anew, in its own Content-Transfer-Encoding.
 *
 * Line ends are LF (corpus.ts normalises them); message/rfc822 parts are leaves.
 */

export const MAX_DEPTH = 20;

export interface MimeNode {
  /** The header block, lines joined with LF, without the blank line that ends it. */
  header: string;
  /** Whether a blank line separated header and body (a part may be all header). */
  readonly separated: boolean;
  /** Leaf body as written (encoded); for a multipart, the body as read. */
  body: string;
  readonly children: MimeNode[] | null;
  /** Multipart layout, kept verbatim: lines before the first delimiter, the delimiter lines, after the close. */
  readonly layout: { preamble: string[]; delimiters: string[]; close: string | null; epilogue: string[] } | null;
  dirty: boolean;
}

/** The header block with folded lines joined, one field per entry. */
function fields(header: string): string[] {
  const out: string[] = [];
  for (const line of header.split('\n')) {
    if (/^[ \t]/.test(line) && out.length > 0) out[out.length - 1] += `\n${line}`;
    else if (line !== '') out.push(line);
  }
  return out;
}

/** The first field `name`, unfolded, or null. */
export function getHeader(node: Pick<MimeNode, 'header'>, name: string): string | null {
  const prefix = `${name.toLowerCase()}:`;
  for (const field of fields(node.header)) {
    if (field.toLowerCase().startsWith(prefix)) return field.slice(prefix.length).replace(/\n[ \t]+/g, ' ').trim();
  }
  return null;
}

/** Replaces every field `name` by one `name: value` in the place of the first; appends when absent. */
export function setHeader(node: MimeNode, name: string, value: string): void {
  const prefix = `${name.toLowerCase()}:`;
  const out: string[] = [];
  let done = false;
  for (const field of fields(node.header)) {
    if (field.toLowerCase().startsWith(prefix)) {
      if (!done) out.push(`${name}: ${value}`);
      done = true;
    } else {
      out.push(field);
    }
  }
  if (!done) out.push(`${name}: ${value}`);
  node.header = out.join('\n');
  node.dirty = true;
}

/** A parameter of a structured field (`boundary`, `charset`, `name`, `filename`), unquoted. */
export function headerParam(value: string | null, param: string): string | null {
  if (value === null) return null;
  const re = new RegExp(`(?:^|;)\\s*${param}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, 'i');
  const match = re.exec(value);
  if (!match) return null;
  return match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : (match[2] ?? null);
}

/** Sets `param="value"` in field `name`, dropping RFC 2231 forms of it (`param*=`, `param*0*=`). */
export function setHeaderParam(node: MimeNode, name: string, param: string, value: string): boolean {
  const current = getHeader(node, name);
  if (current === null) return false;
  const parts = current.split(/;(?=(?:[^"]*"[^"]*")*[^"]*$)/);
  const kept = parts.filter((part, i) => i === 0 || !new RegExp(`^\\s*${param}(\\*\\d*)?\\*?\\s*=`, 'i').test(part));
  kept.push(` ${param}="${value.replace(/["\\]/g, '\\$&')}"`);
  setHeader(node, headerName(node, name) ?? name, kept.map((part, i) => (i === 0 ? part.trim() : part)).join(';'));
  return true;
}

function headerName(node: MimeNode, name: string): string | null {
  for (const field of fields(node.header)) {
    const colon = field.indexOf(':');
    if (colon > 0 && field.slice(0, colon).toLowerCase() === name.toLowerCase()) return field.slice(0, colon);
  }
  return null;
}

export function contentType(node: Pick<MimeNode, 'header'>, parentDefault = 'text/plain'): string {
  const value = getHeader(node, 'content-type');
  const type = value?.split(';')[0]?.trim().toLowerCase();
  return type && type.includes('/') ? type : parentDefault;
}

export function transferEncoding(node: Pick<MimeNode, 'header'>): string {
  return (getHeader(node, 'content-transfer-encoding') ?? '7bit').trim().toLowerCase();
}

/** The file name from Content-Disposition or Content-Type, or null. */
export function fileName(node: Pick<MimeNode, 'header'>): string | null {
  return headerParam(getHeader(node, 'content-disposition'), 'filename') ?? headerParam(getHeader(node, 'content-type'), 'name')
    ?? (/filename\*/i.test(getHeader(node, 'content-disposition') ?? '') || /name\*/i.test(getHeader(node, 'content-type') ?? '') ? '(rfc2231)' : null);
}

export function isAttachment(node: Pick<MimeNode, 'header'>): boolean {
  return /^\s*attachment/i.test(getHeader(node, 'content-disposition') ?? '');
}

export function parseMime(text: string, depth = 0): MimeNode {
  let header: string;
  let body: string;
  let separated: boolean;
  if (text.startsWith('\n')) {
    header = '';
    body = text.slice(1);
    separated = true;
  } else {
    const at = text.indexOf('\n\n');
    separated = at >= 0;
    header = separated ? text.slice(0, at) : text;
    body = separated ? text.slice(at + 2) : '';
  }
  const node: MimeNode = { header, separated, body, children: null, layout: null, dirty: false };
  const type = contentType(node);
  const boundary = headerParam(getHeader(node, 'content-type'), 'boundary');
  if (!type.startsWith('multipart/') || !boundary || depth >= MAX_DEPTH) return node;
  const lines = body.split('\n');
  const delimiter = `--${boundary}`;
  const preamble: string[] = [];
  const delimiters: string[] = [];
  const partLines: string[][] = [];
  let close: string | null = null;
  const epilogue: string[] = [];
  for (const line of lines) {
    if (close !== null) {
      epilogue.push(line);
      continue;
    }
    const trimmed = line.replace(/[ \t]+$/, '');
    if (trimmed === `${delimiter}--`) {
      close = line;
    } else if (trimmed === delimiter) {
      delimiters.push(line);
      partLines.push([]);
    } else if (partLines.length === 0) {
      preamble.push(line);
    } else {
      partLines[partLines.length - 1]!.push(line);
    }
  }
  if (delimiters.length === 0) return node; // not really multipart: a leaf
  const children = partLines.map((partText) => parseMime(partText.join('\n'), depth + 1));
  return { ...node, children, layout: { preamble, delimiters, close, epilogue } };
}

export function serialiseMime(node: MimeNode): string {
  if (node.children && node.layout) {
    if (!node.dirty && !node.children.some(isDirty)) return joinHeader(node, node.body);
    const { preamble, delimiters, close, epilogue } = node.layout;
    const lines: string[] = [...preamble];
    node.children.forEach((child, i) => {
      lines.push(delimiters[i]!);
      lines.push(serialiseMime(child));
    });
    if (close !== null) lines.push(close, ...epilogue);
    return joinHeader(node, lines.join('\n'));
  }
  return joinHeader(node, node.body);
}

function isDirty(node: MimeNode): boolean {
  return node.dirty || (node.children?.some(isDirty) ?? false);
}

function joinHeader(node: MimeNode, body: string): string {
  if (node.header === '') return node.separated ? `\n${body}` : body;
  return node.separated ? `${node.header}\n\n${body}` : node.header;
}

/** Every leaf, depth first, with its effective content type. */
export function leaves(node: MimeNode, parentDefault = 'text/plain'): { node: MimeNode; type: string }[] {
  const type = contentType(node, parentDefault);
  if (!node.children) return [{ node, type }];
  const childDefault = type === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
  return node.children.flatMap((child) => leaves(child, childDefault));
}

// ---------- transfer encodings ----------

export function decodeQuotedPrintable(text: string): Buffer {
  const unfolded = text.replace(/=[ \t]*\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < unfolded.length; i++) {
    const c = unfolded.charCodeAt(i);
    if (c === 0x3d && /^[0-9a-fA-F]{2}$/.test(unfolded.slice(i + 1, i + 3))) {
      bytes.push(parseInt(unfolded.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** RFC 2045 quoted-printable, soft line breaks at 76 columns, LF line ends kept as hard breaks. */
export function encodeQuotedPrintable(bytes: Buffer): string {
  const lines = bytes.toString('latin1').split('\n');
  return lines
    .map((line) => {
      let encoded = '';
      for (let i = 0; i < line.length; i++) {
        const c = line.charCodeAt(i);
        const last = i === line.length - 1;
        const plain = (c >= 33 && c <= 126 && c !== 61) || ((c === 32 || c === 9) && !last);
        encoded += plain ? line[i] : `=${c.toString(16).toUpperCase().padStart(2, '0')}`;
      }
      const out: string[] = [];
      while (encoded.length > 76) {
        let cut = 75;
        // Never split an =XX escape.
        const eq = encoded.lastIndexOf('=', cut);
        if (eq > cut - 3) cut = eq;
        out.push(`${encoded.slice(0, cut)}=`);
        encoded = encoded.slice(cut);
      }
      out.push(encoded);
      return out.join('\n');
    })
    .join('\n');
}

export function encodeBase64(bytes: Buffer, trailingNewline: boolean): string {
  const text = bytes.toString('base64').replace(/.{76}/g, '$&\n').replace(/\n$/, '');
  return trailingNewline ? `${text}\n` : text;
}

/** The decoded bytes of a leaf. */
export function decodeBody(node: MimeNode): Buffer {
  const cte = transferEncoding(node);
  if (cte === 'base64') return Buffer.from(node.body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (cte === 'quoted-printable') return decodeQuotedPrintable(node.body);
  return Buffer.from(node.body, 'latin1');
}

/** Replaces a leaf's content, encoded in the part's own transfer encoding. */
export function setBody(node: MimeNode, bytes: Buffer): void {
  const cte = transferEncoding(node);
  const trailing = node.body.endsWith('\n');
  if (cte === 'base64') node.body = encodeBase64(bytes, trailing);
  else if (cte === 'quoted-printable') node.body = encodeQuotedPrintable(bytes);
  else node.body = bytes.toString('latin1');
  node.dirty = true;
}
