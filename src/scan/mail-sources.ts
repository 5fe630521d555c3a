/**
 * Mail as admins keep it, for `nimbus learn`: a message file, an mbox, a Maildir (`cur/` and
 * `new/`, its `.Folder` subfolders too) or a directory tree of them. Files are listed first (with
 * their sizes, for a progress bar), then read one at a time, each message named `PATH` or
 * `PATH#N` for the N-th of an mbox. What is not mail is named with the reason, never dropped
 * silently.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { splitMessages } from './mbox.js';

export interface MailFile {
  readonly path: string;
  readonly size: number;
}

export interface StoredMessage {
  readonly name: string;
  readonly raw: Buffer;
}

export interface Unreadable {
  readonly name: string;
  readonly reason: string;
}

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() ?? false;
}

async function maildirFiles(dir: string, into: MailFile[]): Promise<void> {
  for (const sub of ['cur', 'new']) {
    const names = await readdir(join(dir, sub)).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const path = join(dir, sub, name);
      const info = await stat(path).catch(() => null);
      if (info?.isFile()) into.push({ path, size: info.size });
    }
  }
}

/**
 * Every file to read under the given paths, in a stable order. A path that does not exist or
 * cannot be listed is in `unreadable`.
 */
export async function listMailFiles(paths: readonly string[]): Promise<{ files: MailFile[]; unreadable: Unreadable[] }> {
  const files: MailFile[] = [];
  const unreadable: Unreadable[] = [];
  const visit = async (path: string): Promise<void> => {
    const info = await stat(path).catch((error: unknown) => error as Error);
    if (info instanceof Error) {
      unreadable.push({ name: path, reason: info.message });
      return;
    }
    if (info.isFile()) {
      files.push({ path, size: info.size });
      return;
    }
    if (!info.isDirectory()) {
      unreadable.push({ name: path, reason: 'not a file or a directory' });
      return;
    }
    const maildir = (await isDir(join(path, 'cur'))) || (await isDir(join(path, 'new')));
    if (maildir) await maildirFiles(path, files);
    let names: string[];
    try {
      names = (await readdir(path)).sort();
    } catch (error) {
      unreadable.push({ name: path, reason: (error as Error).message });
      return;
    }
    for (const name of names) {
      // Inside a Maildir, besides cur/ and new/, only its `.Folder` subfolders hold mail (the rest
      // is tmp/ and the IMAP server's bookkeeping); elsewhere, hidden files and folders are not mail.
      const hidden = name.startsWith('.');
      if (maildir ? hidden && (await isDir(join(path, name))) : !hidden) await visit(join(path, name));
    }
  };
  for (const path of paths) await visit(path);
  return { files, unreadable };
}

const HEADER_LINE = /^[!-9;-~]+:/;

/**
 * Why the bytes are not one whole message, or null when they look like one. `cutOff`: the bytes
 * end a file that may have been cut short (an mbox's last message), so a multipart body that
 * never closes is taken as truncated; elsewhere it is the sender's sloppiness (about 1% of real
 * mail) and the message is still read.
 */
export function notMail(raw: Buffer, cutOff = false): string | null {
  let text = raw.subarray(0, 1 << 20).toString('latin1');
  if (text.startsWith('From ')) text = text.slice(text.indexOf('\n') + 1);
  if (text.trim() === '') return 'empty';
  if (!HEADER_LINE.test(text)) return 'not mail: it does not start with a header field';
  const end = text.search(/\r?\n\r?\n/);
  if (end < 0 && raw.length < 1 << 20) return 'truncated: the header block never ends';
  const head = (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  if (!/^(from|date|subject|message-id|received|to):/im.test(head)) return 'not mail: no From, Date, Subject, Message-ID, Received or To field';
  const boundary = /^content-type:\s*multipart\/[^\n]*boundary=(?:"([^"]+)"|([^\s;]+))/im.exec(head);
  const marker = boundary?.[1] ?? boundary?.[2];
  if (cutOff && marker !== undefined && !raw.includes(`--${marker}--`, end < 0 ? 0 : end)) return `truncated: the multipart body never closes (--${marker}--)`;
  return null;
}

/** The messages of one file: itself, or each message of an mbox; what is not mail as Unreadable. */
export async function readMailFile(file: MailFile): Promise<(StoredMessage | Unreadable)[]> {
  let raw: Buffer;
  try {
    raw = await readFile(file.path);
  } catch (error) {
    return [{ name: file.path, reason: (error as Error).message }];
  }
  const messages = splitMessages(raw);
  const mbox = raw.subarray(0, 5).toString('latin1') === 'From ';
  return messages.map((message, index) => {
    const name = messages.length > 1 ? `${file.path}#${index + 1}` : file.path;
    const reason = notMail(message, mbox && messages.length > 1 && index === messages.length - 1);
    return reason === null ? { name, raw: message } : { name, reason };
  });
}
