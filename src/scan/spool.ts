/**
 * Holds one message while it is inspected and relayed: in memory up to the spool threshold, in a
 * file under `dataDir/spool` above it, so a 30 MB message is never held whole in memory by the
 * gateway. The header block (up to the first empty line) is also kept in memory, bounded by
 * MAX_HEADER_BLOCK, because the gateway edits it (strips forged verdict headers, tags the subject)
 * while the body is relayed as the untouched bytes that arrived.
 */
import { createReadStream, createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { makePrivateDir, PRIVATE_FILE_MODE } from '../private-files.js';

/** Header blocks larger than this are not edited (treated as body): a bound on memory. */
export const MAX_HEADER_BLOCK = 1024 * 1024;

export class MessageSpool {
  #threshold: number;
  #dir: string;
  #path: string;
  #chunks: Buffer[] = [];
  #file: WriteStream | null = null;
  #size = 0;
  /** Bytes received while the end of the header block is still unknown. */
  #header = Buffer.alloc(0);
  /** Length of the header block (its last line's newline included), -1 while not found. */
  #headerEnd = -1;
  #headerGaveUp = false;

  constructor(dir: string, name: string, threshold: number) {
    this.#dir = dir;
    this.#path = join(dir, name);
    this.#threshold = threshold;
  }

  get size(): number {
    return this.#size;
  }

  /** Whether the message went to a file (for logs and tests). */
  get onDisk(): boolean {
    return this.#file !== null;
  }

  async write(chunk: Buffer): Promise<void> {
    this.#scanHeader(chunk);
    this.#size += chunk.length;
    if (this.#file) {
      if (!this.#file.write(chunk)) await once(this.#file, 'drain');
      return;
    }
    this.#chunks.push(chunk);
    if (this.#size > this.#threshold) {
      makePrivateDir(this.#dir);
      this.#file = createWriteStream(this.#path, { flags: 'wx', mode: PRIVATE_FILE_MODE });
      const chunks = this.#chunks;
      this.#chunks = [];
      let flushed = true;
      for (const c of chunks) flushed = this.#file.write(c);
      // 'drain' comes only after a write found the buffer full (16 KB): a message that crossed a
      // smaller threshold waited for it forever, and its sender never got a reply.
      if (!flushed) await once(this.#file, 'drain').catch(() => undefined);
    }
  }

  /** Flushes the spool file; call once after the last write. */
  async finish(): Promise<void> {
    // A message of header lines only (no empty line): all of it is the header block.
    if (this.#headerEnd < 0 && !this.#headerGaveUp && this.#header.length === this.#size) this.#headerEnd = this.#size;
    if (this.#file && !this.#file.closed) {
      const file = this.#file;
      await new Promise<void>((resolve, reject) => {
        file.once('error', reject);
        file.end(() => resolve());
      });
    }
  }

  /** The header block as received, ending with its last line's newline; null when not found. */
  headerBlock(): Buffer | null {
    return this.#headerEnd < 0 ? null : this.#header.subarray(0, this.#headerEnd);
  }

  /** Where the body starts (its empty separator line included); 0 when no header block was found. */
  get headerLength(): number {
    return this.#headerEnd < 0 ? 0 : this.#headerEnd;
  }

  /** The bytes from `start` to the end, streamed from memory or the file. */
  stream(start = 0): Readable {
    if (this.#file) return createReadStream(this.#path, { start });
    return Readable.from(sliceChunks(this.#chunks, start));
  }

  /**
   * The bytes from `start` to the end as the chunks held in memory (no copy), or null once the
   * message went to a file: a message under the spool threshold is relayed without a stream.
   */
  chunksFrom(start = 0): Buffer[] | null {
    return this.#file ? null : [...sliceChunks(this.#chunks, start)];
  }

  /** The whole message in memory: for inspectors that need it (bounded by the size limit). */
  async readAll(): Promise<Buffer> {
    if (this.#file) return readFile(this.#path);
    return Buffer.concat(this.#chunks);
  }

  dispose(): void {
    this.#file?.destroy();
    this.#chunks = [];
    if (this.#file) rmSync(this.#path, { force: true });
  }

  /** Finds the empty line ending the header block (LF LF or LF CR LF), across chunks. */
  #scanHeader(chunk: Buffer): void {
    if (this.#headerEnd >= 0 || this.#headerGaveUp) return;
    const previous = this.#header.length;
    const buffer = Buffer.concat([this.#header, chunk]);
    this.#header = buffer;
    if (previous === 0 && (buffer[0] === 0x0a || (buffer[0] === 0x0d && buffer[1] === 0x0a))) {
      this.#headerEnd = 0;
      return;
    }
    for (let i = Math.max(0, previous - 2); i < buffer.length; i++) {
      if (buffer[i] !== 0x0a) continue;
      if (buffer[i + 1] === 0x0a || (buffer[i + 1] === 0x0d && buffer[i + 2] === 0x0a)) {
        this.#headerEnd = i + 1;
        this.#header = Buffer.from(buffer.subarray(0, i + 1));
        return;
      }
    }
    if (buffer.length > MAX_HEADER_BLOCK) {
      this.#headerGaveUp = true;
      this.#header = Buffer.alloc(0);
    }
  }
}

function* sliceChunks(chunks: readonly Buffer[], start: number): Generator<Buffer> {
  let offset = 0;
  for (const chunk of chunks) {
    const end = offset + chunk.length;
    if (end > start) yield start > offset ? chunk.subarray(start - offset) : chunk;
    offset = end;
  }
}
