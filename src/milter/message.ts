/**
 * One message as the MTA hands it to the milter (MAIL … end of message), put back together for
 * the scan core: the header fields in order, written as a header block into the same spool the
 * relay uses (memory up to NIMBUS_SPOOL_THRESHOLD, a file above it), then the body chunks.
 * Nothing past NIMBUS_MAX_MESSAGE_SIZE is kept: the scan sees what fits (the MTA enforces its own
 * size limit; the client's address still counts).
 *
 * The header block is byte-exact when the MTA granted HDR_LEADSPC (`Name:` then the value as it
 * was written, blanks and folds included, so DKIM signatures verify as the sender made them).
 * Without it the MTA dropped one space after each colon and Nimbus can only put one back
 * (`Name: value`): a signed field written `Name:value` or `Name:<tab>value` then fails DKIM
 * under simple header canonicalisation (relaxed ignores those blanks).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { MessageSpool } from '../scan/spool.js';
import type { HeaderField, MessageSource } from '../scan/types.js';
import type { MilterRecipient } from './actions.js';

/** 12 upper-case hex digits: the spool file's name, and the queue id when the MTA sends no `{i}`. */
export function newMessageId(): string {
  // The 48 random bits that open a v4 UUID (its version digit comes later). randomUUID draws from
  // node's cache of random bytes; randomBytes(6) called into OpenSSL for each id, two per
  // message (connection and message), ~1.2% of the milter's CPU on the text mix.
  const uuid = randomUUID();
  return `${uuid.slice(0, 8)}${uuid.slice(9, 13)}`.toUpperCase();
}

export class MilterMessage {
  readonly started = Date.now();
  readonly id = newMessageId();
  readonly mailFrom: string;
  readonly recipients: MilterRecipient[] = [];
  readonly headers: HeaderField[] = [];
  /** HDR_LEADSPC granted: each value is exactly what followed the colon. */
  readonly leadingSpace: boolean;
  #spool: MessageSpool;
  #limit: number;
  /** The kept fields as written in the message (#line), made once in addHeader rather than again at the end of headers. */
  #headerLines: string[] = [];
  #headerBytes = 0;
  #headersWritten = false;
  /** Bytes the MTA sent (header block as rebuilt, and body), kept or not. */
  #size = 0;
  #truncated = false;

  constructor(config: Pick<Config, 'dataDir' | 'spoolThreshold' | 'maxMessageSize'>, mailFrom: string, leadingSpace: boolean) {
    this.mailFrom = mailFrom;
    this.leadingSpace = leadingSpace;
    this.#limit = config.maxMessageSize;
    this.#spool = new MessageSpool(join(config.dataDir, 'spool'), `milter-${this.id}`, config.spoolThreshold);
  }

  get size(): number {
    return this.#size;
  }

  /** True when bytes past NIMBUS_MAX_MESSAGE_SIZE were left out of the scan. */
  get truncated(): boolean {
    return this.#truncated;
  }

  get spool(): MessageSpool {
    return this.#spool;
  }

  addHeader(field: HeaderField): void {
    const line = this.#line(field);
    const length = Buffer.byteLength(line);
    this.#headerBytes += length;
    // Fields past the limit are neither kept nor edited: the scan gets what fits.
    if (this.#headerBytes > this.#limit) {
      this.#truncated = true;
      this.#size += length;
      return;
    }
    this.headers.push(field);
    this.#headerLines.push(line);
  }

  /** End of headers (also called before the first body chunk or the end, should EOH not come). */
  async endHeaders(): Promise<void> {
    if (this.#headersWritten) return;
    this.#headersWritten = true;
    this.#headerLines.push('\r\n');
    await this.#write(Buffer.from(this.#headerLines.join(''), 'utf8'));
    this.#headerLines = [];
  }

  /** The field as it is in the message: the MTA sends folds as bare `\n`, the message has CRLF. */
  #line(field: HeaderField): string {
    return `${field.name}:${this.leadingSpace ? '' : ' '}${field.value.replace(/\r?\n/g, '\r\n')}\r\n`;
  }

  async addBody(chunk: Buffer): Promise<void> {
    await this.endHeaders();
    await this.#write(chunk);
  }

  /** Flushes the spool; the message is then readable through `source()`. */
  async finish(): Promise<void> {
    await this.endHeaders();
    await this.#spool.finish();
  }

  source(): MessageSource {
    const spool = this.#spool;
    return { size: spool.size, read: () => spool.readAll(), stream: () => spool.stream(0) };
  }

  dispose(): void {
    this.#spool.dispose();
  }

  async #write(chunk: Buffer): Promise<void> {
    this.#size += chunk.length;
    if (this.#spool.size + chunk.length > this.#limit) {
      this.#truncated = true;
      const room = this.#limit - this.#spool.size;
      if (room > 0) await this.#spool.write(chunk.subarray(0, room));
      return;
    }
    await this.#spool.write(chunk);
  }
}
