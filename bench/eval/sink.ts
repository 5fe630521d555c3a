/**
 * The next hop of every gateway in the replay: an SMTP server in this process that accepts all
 * mail and keeps, per envelope recipient, the header block as delivered (the gateway's verdict
 * headers are at its top). A delivery that a user will report is also kept whole on disk, since
 * `nimbus report` reads the message the user received. Recipients are unique per planned event,
 * so the recipient names the copy.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';

export interface Delivery {
  /** Header block as delivered, CRLF removed (LF line ends). */
  readonly header: string;
  readonly size: number;
  /** Path of the whole message when it was kept for a report. */
  readonly file: string | null;
}

export interface Sink {
  readonly port: number;
  /** Keep the whole message delivered to `address` (for a report), in `dir`. */
  keepWhole(address: string): void;
  /** The delivery to `address`, removed from the sink; undefined when nothing arrived. */
  take(address: string): Delivery | undefined;
  close(): Promise<void>;
}

export async function startSink(dir: string): Promise<Sink> {
  const deliveries = new Map<string, Delivery>();
  const whole = new Set<string>();
  let counter = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    size: 100 * 1024 * 1024,
    disableReverseLookup: true,
    onData(stream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', (error) => callback(error));
      stream.on('end', () => {
        const bytes = Buffer.concat(chunks);
        const text = bytes.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        const header = (end < 0 ? text : text.slice(0, end)).replace(/\r\n/g, '\n');
        for (const rcpt of session.envelope.rcptTo) {
          const address = rcpt.address.toLowerCase();
          let file: string | null = null;
          if (whole.has(address)) {
            file = join(dir, `delivered-${++counter}.eml`);
            writeFileSync(file, bytes);
            whole.delete(address);
          }
          deliveries.set(address, { header, size: bytes.length, file });
        }
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    keepWhole(rcpt) {
      whole.add(rcpt.toLowerCase());
    },
    take(rcpt) {
      const key = rcpt.toLowerCase();
      const found = deliveries.get(key);
      deliveries.delete(key);
      return found;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
