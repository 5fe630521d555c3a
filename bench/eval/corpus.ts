/**
 * The corpus as the evaluation sees it: `spam/` and `ham/` of raw messages, one per file
 * (`../shared/corpus/README.md`). MANIFEST.tsv is used when present (its `class` and `file`
 * columns); without it every file under `spam/` and `ham/` is taken, in name order, so any corpus
 * in the same layout works unchanged.
 *
 * Messages are kept with LF line ends and without the mbox envelope line (`From addr date`),
 * which is not part of the message; the SMTP client turns LF into CRLF on the wire.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type MessageClass = 'spam' | 'ham';

export interface CorpusEntry {
  readonly class: MessageClass;
  /** Path relative to the corpus directory, e.g. `spam/sa_spam_00001.….eml`: the message's stable name. */
  readonly file: string;
  readonly path: string;
}

export interface CorpusMessage extends CorpusEntry {
  /** LF line ends, no envelope line. */
  readonly raw: Buffer;
  /** From the Date header, else the envelope line; null when neither parses. */
  readonly date: number | null;
}

export class CorpusError extends Error {
  override readonly name = 'CorpusError';
}

export function listCorpus(dir: string): CorpusEntry[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CorpusError(`corpus directory not found: ${dir}`);
  const manifest = join(dir, 'MANIFEST.tsv');
  const entries: CorpusEntry[] = [];
  if (existsSync(manifest)) {
    const [head, ...rows] = readFileSync(manifest, 'utf8').split('\n');
    const columns = (head ?? '').split('\t');
    const classAt = columns.indexOf('class');
    const fileAt = columns.indexOf('file');
    if (classAt < 0 || fileAt < 0) throw new CorpusError(`${manifest}: needs the columns class and file`);
    for (const row of rows) {
      if (row.trim() === '') continue;
      const fields = row.split('\t');
      const cls = fields[classAt];
      const file = fields[fileAt];
      if ((cls !== 'spam' && cls !== 'ham') || !file) continue;
      entries.push({ class: cls, file, path: join(dir, file) });
    }
  } else {
    for (const cls of ['spam', 'ham'] as const) {
      const sub = join(dir, cls);
      if (!existsSync(sub)) continue;
      for (const name of readdirSync(sub).sort()) {
        if (name.startsWith('.')) continue;
        const path = join(sub, name);
        if (statSync(path).isFile()) entries.push({ class: cls, file: `${cls}/${name}`, path });
      }
    }
  }
  entries.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  if (!entries.some((entry) => entry.class === 'spam')) throw new CorpusError(`no spam messages in ${dir} (expected spam/ and ham/ or a MANIFEST.tsv)`);
  return entries;
}

/** Drops the mbox envelope line and turns CRLF into LF. Byte-exact otherwise. */
export function normaliseMessage(bytes: Buffer): Buffer {
  let start = 0;
  if (bytes.subarray(0, 5).toString('latin1') === 'From ') {
    const eol = bytes.indexOf(0x0a);
    start = eol < 0 ? bytes.length : eol + 1;
  }
  const body = bytes.subarray(start);
  if (!body.includes('\r\n')) return Buffer.from(body);
  return Buffer.from(body.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
}

function envelopeDate(bytes: Buffer): number | null {
  if (bytes.subarray(0, 5).toString('latin1') !== 'From ') return null;
  const eol = bytes.indexOf(0x0a);
  const line = bytes.subarray(0, eol < 0 ? Math.min(bytes.length, 200) : eol).toString('latin1');
  // `From addr  Thu Aug 22 13:27:39 2002`: everything after the address.
  const when = Date.parse(line.replace(/^From \S+\s+/, ''));
  return Number.isFinite(when) ? when : null;
}

/** The first value of a header in an LF message (unfolded), or null. */
export function headerValue(raw: Buffer | string, name: string): string | null {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  const end = text.indexOf('\n\n');
  const head = (end < 0 ? text : text.slice(0, end)).replace(/\n[ \t]+/g, ' ');
  const prefix = `${name.toLowerCase()}:`;
  for (const line of head.split('\n')) {
    if (line.toLowerCase().startsWith(prefix)) return line.slice(prefix.length).trim();
  }
  return null;
}

export function readCorpusMessage(entry: CorpusEntry): CorpusMessage {
  const bytes = readFileSync(entry.path);
  const raw = normaliseMessage(bytes);
  const dateHeader = headerValue(raw, 'date');
  const parsed = dateHeader === null ? NaN : Date.parse(dateHeader.replace(/\s+\([^)]*\)\s*$/, ''));
  return { ...entry, raw, date: Number.isFinite(parsed) ? parsed : envelopeDate(bytes) };
}
