/**
 * A small SMTP client for the replay: one connection per message, `XCLIENT ADDR=` first so the
 * gateway sees the campaign's sending IP (as it would behind Postfix), then one transaction.
 * Written on node:net rather than nodemailer so that each step's reply code is kept and XCLIENT
 * (with its new greeting and second EHLO) is under our control.
 */
import { connect, type Socket } from 'node:net';

export const SMTP_READY = 220;
export const SMTP_OK = 250;
export const SMTP_START_DATA = 354;

export type Stage = 'connect' | 'greeting' | 'ehlo' | 'xclient' | 'ehlo2' | 'mail' | 'rcpt' | 'data' | 'end';

export interface SendRequest {
  readonly port: number;
  readonly host?: string;
  /** Passed with XCLIENT ADDR (and HELO when known). */
  readonly clientIp: string;
  readonly clientHelo: string | null;
  readonly mailFrom: string;
  readonly rcptTo: string;
  /** The message, LF or CRLF line ends; sent with CRLF and dot-stuffing. */
  readonly message: Buffer;
  readonly timeoutMs?: number;
}

export interface SendResult {
  /** The reply that ended the transaction: the end-of-DATA reply, or the first unexpected one. */
  readonly code: number;
  readonly text: string;
  readonly stage: Stage;
}

export class SmtpClientError extends Error {
  override readonly name = 'SmtpClientError';
  constructor(readonly stage: Stage, message: string) {
    super(`${stage}: ${message}`);
  }
}

/** RFC 3461 xtext, as XCLIENT values are written. */
export function xtext(value: string): string {
  return value.replace(/[^\x21-\x7e]|[+=]/g, (c) => `+${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** CRLF line ends, leading dots doubled, a final CRLF, then the terminating dot. */
export function dataBytes(message: Buffer): Buffer {
  let text = message.toString('latin1').replace(/\r?\n/g, '\r\n');
  if (!text.endsWith('\r\n')) text += '\r\n';
  text = text.replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(`${text}.\r\n`, 'latin1');
}

class ReplyReader {
  #buffer = '';
  #lines: string[] = [];
  #waiting: ((reply: { code: number; text: string } | Error) => void) | null = null;
  #error: Error | null = null;

  constructor(socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let at: number;
      while ((at = this.#buffer.indexOf('\n')) >= 0) {
        this.#lines.push(this.#buffer.slice(0, at).replace(/\r$/, ''));
        this.#buffer = this.#buffer.slice(at + 1);
      }
      this.#deliver();
    });
    const fail = (error: Error): void => {
      this.#error ??= error;
      this.#deliver();
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  #deliver(): void {
    if (!this.#waiting) return;
    const end = this.#lines.findIndex((line) => /^\d{3}(?: |$)/.test(line));
    if (end >= 0) {
      const lines = this.#lines.splice(0, end + 1);
      const resolve = this.#waiting;
      this.#waiting = null;
      resolve({ code: Number(lines[end]!.slice(0, 3)), text: lines.map((line) => line.slice(4)).join('\n') });
    } else if (this.#error) {
      const resolve = this.#waiting;
      this.#waiting = null;
      resolve(this.#error);
    }
  }

  next(): Promise<{ code: number; text: string }> {
    return new Promise((resolve, reject) => {
      this.#waiting = (reply) => (reply instanceof Error ? reject(reply) : resolve(reply));
      this.#deliver();
    });
  }
}

export async function sendMessage(request: SendRequest): Promise<SendResult> {
  const socket = connect(request.port, request.host ?? '127.0.0.1');
  socket.setNoDelay(true);
  const timeoutMs = request.timeoutMs ?? 120_000;
  let stage: Stage = 'connect';
  const timer = setTimeout(() => socket.destroy(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
  const reader = new ReplyReader(socket);
  const step = async (next: Stage, line: string | Buffer | null, expect: number): Promise<SendResult | null> => {
    stage = next;
    if (line !== null) socket.write(typeof line === 'string' ? `${line}\r\n` : line);
    const reply = await reader.next();
    return reply.code === expect ? null : { code: reply.code, text: reply.text, stage };
  };
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const helo = request.clientHelo ?? 'unknown';
    const xclient = `XCLIENT ADDR=${request.clientIp} NAME=[UNAVAILABLE]${request.clientHelo ? ` HELO=${xtext(request.clientHelo)}` : ''}`;
    const steps: [Stage, string | Buffer | null, number][] = [
      ['greeting', null, SMTP_READY],
      ['ehlo', 'EHLO eval-harness.localhost', SMTP_OK],
      ['xclient', xclient, SMTP_READY],
      ['ehlo2', `EHLO ${helo}`, SMTP_OK],
      ['mail', `MAIL FROM:<${request.mailFrom}>`, SMTP_OK],
      ['rcpt', `RCPT TO:<${request.rcptTo}>`, SMTP_OK],
      ['data', 'DATA', SMTP_START_DATA],
    ];
    for (const [next, line, expect] of steps) {
      const failed = await step(next, line, expect);
      if (failed) return failed;
    }
    stage = 'end';
    socket.write(dataBytes(request.message));
    const reply = await reader.next();
    socket.end('QUIT\r\n');
    return { code: reply.code, text: reply.text, stage: 'end' };
  } catch (error) {
    throw new SmtpClientError(stage, error instanceof Error ? error.message : String(error));
  } finally {
    clearTimeout(timer);
    socket.on('error', () => undefined);
    if (stage !== 'end') socket.destroy();
  }
}

/** An envelope sender for a corpus message: its Return-Path or From address, else a placeholder. */
export function envelopeSender(headerBlock: string): string {
  for (const name of ['return-path', 'from']) {
    const match = new RegExp(`^${name}:[^\\n]*?([^\\s<>"()\\[\\],;:]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,})`, 'im').exec(headerBlock);
    if (match) return match[1]!;
  }
  return 'sender@unknown.invalid';
}
