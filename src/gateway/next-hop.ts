/**
 * A lockstep SMTP client to the next hop, in the manner of Postfix's before-queue proxy: one
 * command at a time, driven by what the sender does, each reply handed back so it can become the
 * sender's reply.
 *
 * Why not nodemailer's SMTPConnection: its `send()` runs MAIL, every RCPT and DATA as one unit and
 * only reports rejected recipients at the end, so it cannot answer the sender's RCPT with the next
 * hop's reply while the sender is still waiting for it. The protocol subset needed here (EHLO,
 * MAIL, RCPT, DATA, RSET, QUIT) is small enough to speak directly on node:net.
 */
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { HostPort } from '../config/index.js';
import { NimbusError } from '../errors.js';
import { DotStuffing } from './dot-stuffing.js';

/** How long QUIT waits for 221 before the socket is simply closed. */
export const QUIT_TIMEOUT_MS = 5000;

export interface SmtpResponse {
  readonly code: number;
  /** The reply text, continuation lines joined with a space. */
  readonly text: string;
}

/** The next hop could not be used at all: not reachable, timed out, dropped the connection. */
export class NextHopError extends NimbusError {
  constructor(code: 'NEXT_HOP_UNREACHABLE' | 'NEXT_HOP_TIMEOUT' | 'NEXT_HOP_DROPPED' | 'NEXT_HOP_PROTOCOL', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export interface NextHopOptions {
  readonly target: HostPort;
  /** Our name in EHLO. */
  readonly hostname: string;
  /** Limit for connecting and for each reply (DATA: for the final reply after the last byte). */
  readonly timeoutMs: number;
}

export interface MailParams {
  readonly smtpUtf8: boolean;
  readonly eightBitMime: boolean;
  readonly size?: number;
}

/** One SMTP session to the next hop. */
export class NextHopSession {
  #socket: Socket;
  #timeoutMs: number;
  #buffer = '';
  #lines: string[] = [];
  #waiter: { resolve: (r: SmtpResponse) => void; reject: (e: Error) => void } | null = null;
  #failure: NextHopError | null = null;
  #extensions = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  /** No mail transaction open at the next hop: MAIL can follow without RSET (RFC 5321 4.1.4). */
  #clean = true;
  #transactions = 0;
  readonly target: HostPort;

  private constructor(socket: Socket, timeoutMs: number, target: HostPort) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    this.target = target;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', (error) => this.#fail(new NextHopError('NEXT_HOP_DROPPED', `next hop connection error: ${error.message}`, { cause: error })));
    socket.on('close', () => this.#fail(new NextHopError('NEXT_HOP_DROPPED', 'next hop closed the connection')));
  }

  /** Connects, reads the greeting and says EHLO (HELO when EHLO is refused). */
  static async open(options: NextHopOptions): Promise<NextHopSession> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      // No Nagle: the lockstep dialogue is many small writes each waiting for a reply, and the
      // final '.' otherwise sits out a delayed ACK (about 40 ms on every message).
      const s = connect({ host: options.target.host, port: options.target.port, noDelay: true });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new NextHopError('NEXT_HOP_TIMEOUT', `connecting to ${options.target.host}:${options.target.port} timed out`));
      }, options.timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (error) => {
        clearTimeout(timer);
        reject(new NextHopError('NEXT_HOP_UNREACHABLE', `next hop ${options.target.host}:${options.target.port}: ${error.message}`, { cause: error }));
      });
    });
    const session = new NextHopSession(socket, options.timeoutMs, options.target);
    try {
      const greeting = await session.#read();
      if (greeting.code !== 220) throw new NextHopError('NEXT_HOP_PROTOCOL', `next hop greeting: ${greeting.code} ${greeting.text}`);
      const ehlo = await session.command(`EHLO ${options.hostname}`);
      if (ehlo.code === 250) {
        for (const line of session.#lastLines.slice(1)) session.#extensions.add(line.split(/\s+/)[0]!.toUpperCase());
      } else {
        const helo = await session.command(`HELO ${options.hostname}`);
        if (helo.code !== 250) throw new NextHopError('NEXT_HOP_PROTOCOL', `next hop refused HELO: ${helo.code} ${helo.text}`);
      }
    } catch (error) {
      session.close();
      throw error;
    }
    return session;
  }

  #lastLines: string[] = [];

  /** Whether the next hop advertised an EHLO keyword (SMTPUTF8, 8BITMIME, SIZE…). */
  supports(extension: string): boolean {
    return this.#extensions.has(extension.toUpperCase());
  }

  get usable(): boolean {
    return this.#failure === null && !this.#socket.destroyed && !this.#quitting;
  }

  /** Usable, no transaction open and no command pending: fit for another sender's MAIL. */
  get idle(): boolean {
    return this.usable && this.#clean && this.#waiter === null;
  }

  /** Whether a transaction is open (MAIL sent, not yet ended by DATA's final reply or RSET). */
  get inTransaction(): boolean {
    return !this.#clean;
  }

  /** MAIL commands sent on this session so far. */
  get transactions(): number {
    return this.#transactions;
  }

  async mail(from: string, params: MailParams): Promise<SmtpResponse> {
    let line = `MAIL FROM:<${from}>`;
    if (params.eightBitMime && this.supports('8BITMIME')) line += ' BODY=8BITMIME';
    if (params.smtpUtf8 && this.supports('SMTPUTF8')) line += ' SMTPUTF8';
    if (params.size !== undefined && this.supports('SIZE')) line += ` SIZE=${params.size}`;
    this.#clean = false;
    this.#transactions++;
    return this.command(line);
  }

  async rcpt(to: string): Promise<SmtpResponse> {
    return this.command(`RCPT TO:<${to}>`);
  }

  async rset(): Promise<SmtpResponse> {
    const reply = await this.command('RSET');
    if (reply.code === 250) this.#clean = true;
    return reply;
  }

  /**
   * DATA, then the message parts in order, dot-stuffed, then the final dot. Resolves with the next
   * hop's reply to the message (or to DATA itself when that was refused).
   */
  async data(parts: readonly (Buffer | (() => Readable))[]): Promise<SmtpResponse> {
    const go = await this.command('DATA');
    if (go.code !== 354) return go;
    // Written straight to the socket, not through a stream pipeline: a pipeline per message
    // aborts an AbortController when it finishes, and the DOMException that makes (stack trace
    // included) was ~3% of a gateway worker's CPU on the 5 KB mix (CPU profile, bench relay).
    const stuffing = new DotStuffing();
    if (!this.#failure && parts.every((part) => Buffer.isBuffer(part))) {
      // A message held in memory goes out in one writev: a write per part (added headers, header
      // block, body chunks, final dot) was a syscall each, and on loopback each also runs the
      // receiver's TCP work.
      this.#socket.cork();
      for (const part of parts) this.#socket.write(stuffing.stuff(part));
      this.#socket.write(stuffing.end());
      this.#socket.uncork();
      return this.#finishData();
    }
    try {
      for (const part of parts) {
        if (this.#failure) break;
        if (Buffer.isBuffer(part)) await this.#send(stuffing.stuff(part));
        else {
          for await (const chunk of part()) {
            if (this.#failure) break;
            await this.#send(stuffing.stuff(chunk as Buffer));
          }
        }
      }
      if (!this.#failure) await this.#send(stuffing.end());
    } catch (error) {
      this.#fail(new NextHopError('NEXT_HOP_DROPPED', `sending the message failed: ${(error as Error).message}`, { cause: error }));
    }
    return this.#finishData();
  }

  /** The next hop's reply to the message, which ends the transaction whatever its code. */
  async #finishData(): Promise<SmtpResponse> {
    if (this.#failure) throw this.#failure;
    const reply = await this.#read();
    this.#clean = true;
    return reply;
  }

  /** Writes a piece of the message, waiting while the socket's buffer is full (or until it closes). */
  async #send(chunk: Buffer): Promise<void> {
    if (chunk.length === 0 || this.#socket.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  async command(line: string): Promise<SmtpResponse> {
    if (this.#failure) throw this.#failure;
    // Lockstep: one command at a time. A second one would orphan the first reply's waiter.
    if (this.#waiter) throw new NextHopError('NEXT_HOP_PROTOCOL', `command ${line.split(' ')[0]} while another is pending`);
    this.#socket.write(`${line}\r\n`);
    return this.#read();
  }

  /** QUIT politely, without waiting long; the socket is gone afterwards either way. */
  async quit(): Promise<void> {
    if (this.#quitting) return;
    this.#quitting = true;
    if (this.#failure === null && !this.#socket.destroyed && !this.#waiter) {
      // A short wait for 221: a next hop that does not answer QUIT must not hold a shutdown.
      this.#timeoutMs = Math.min(this.#timeoutMs, QUIT_TIMEOUT_MS);
      try {
        await this.command('QUIT');
      } catch {
        // Nothing to do: the session is over anyway.
      }
    }
    this.close();
  }

  #quitting = false;

  close(): void {
    this.#clearTimer();
    this.#socket.destroy();
  }

  #read(): Promise<SmtpResponse> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#timer = setTimeout(() => {
        this.#fail(new NextHopError('NEXT_HOP_TIMEOUT', `next hop did not answer within ${this.#timeoutMs} ms`));
        this.#socket.destroy();
      }, this.#timeoutMs);
      this.#drain();
    });
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    let index: number;
    while ((index = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, index).replace(/\r$/, '');
      this.#buffer = this.#buffer.slice(index + 1);
      this.#lines.push(line);
    }
    this.#drain();
  }

  /** Completes the pending read when a full (possibly multi-line) reply is buffered. */
  #drain(): void {
    if (!this.#waiter) return;
    const last = this.#lines.findIndex((line) => !/^\d{3}-/.test(line));
    if (last < 0) return;
    const lines = this.#lines.splice(0, last + 1);
    const code = Number(lines[0]!.slice(0, 3));
    if (!/^\d{3}/.test(lines[0]!) || !lines.every((l) => l.startsWith(String(code)))) {
      this.#fail(new NextHopError('NEXT_HOP_PROTOCOL', `next hop sent a malformed reply: ${JSON.stringify(lines.join('\n').slice(0, 200))}`));
      this.#socket.destroy();
      return;
    }
    const texts = lines.map((l) => l.slice(4));
    this.#lastLines = texts;
    const waiter = this.#waiter;
    this.#waiter = null;
    this.#clearTimer();
    waiter.resolve({ code, text: texts.join(' ').trim() });
  }

  #fail(error: NextHopError): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#clearTimer();
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.reject(error);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
