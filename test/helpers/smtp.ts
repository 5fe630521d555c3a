/**
 * Real SMTP peers for tests besides swaks (helpers/swaks.ts): smtp-sink or a scripted smtp-server
 * as the next hop, and a raw SMTP client for what swaks cannot express.
 */
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';
import { freePort, waitForPort } from './ports.js';
import { stopProcess } from './processes.js';
import { tempDir } from './temp.js';

export interface SmtpSink {
  readonly port: number;
  readonly dir: string;
  /** Dump files, each `smtp-sink`'s record of one transaction (envelope lines, then the message). */
  files(): string[];
  stop(): Promise<void>;
}

/**
 * Postfix's smtp-sink on a free loopback port, dumping each transaction into its own file under
 * a temp dir (`-d DIR/%M.`). Run as nobody (`-u nobody`): it refuses to run as root.
 */
export async function startSmtpSink(extraArgs: readonly string[] = []): Promise<SmtpSink> {
  const dir = tempDir('nimbus-sink-');
  chmodSync(dir, 0o777);
  const port = await freePort();
  const child = spawn('/usr/sbin/smtp-sink', ['-u', 'nobody', '-d', `${dir}/%M.`, ...extraArgs, `127.0.0.1:${port}`, '64'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await waitForPort(port, 15_000, () => (child.exitCode !== null ? `smtp-sink exited: ${stderr}` : null));
  return {
    port,
    dir,
    files: () => readdirSync(dir).map((name) => join(dir, name)).sort(),
    stop: async () => {
      await stopProcess(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The message inside an smtp-sink dump: smtp-sink writes its envelope lines (X-Client-Addr …
 * X-Rcpt-Args) and its own Received field first, and stores lines with LF endings; compare with
 * `lf(original)`.
 */
export function sinkMessage(dump: Buffer): Buffer {
  const text = dump.toString('latin1');
  let offset = 0;
  const lines = text.split('\n');
  let index = 0;
  while (index < lines.length && /^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):/.test(lines[index]!)) offset += lines[index++]!.length + 1;
  if (index < lines.length && lines[index]!.startsWith('Received: ') && lines[index]!.includes('(smtp-sink)') === false && lines[index + 1]?.includes('(smtp-sink)')) {
    offset += lines[index++]!.length + 1;
    while (index < lines.length && /^[ \t]/.test(lines[index]!)) offset += lines[index++]!.length + 1;
  }
  return dump.subarray(offset);
}

/** CRLF to LF, as smtp-sink stores messages. */
export function lf(bytes: Buffer): Buffer {
  return Buffer.from(bytes.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
}

/** A reply a scripted next hop gives: `{code, text}`; smtp-server adds nothing to the text. */
export interface ScriptedReply {
  readonly code: number;
  readonly text: string;
}

export interface ReceivedMessage {
  readonly mailFrom: string;
  readonly mailArgs: Record<string, unknown>;
  readonly rcptTo: string[];
  readonly bytes: Buffer;
}

export interface ScriptedServerOptions {
  /** Refuse a recipient with this reply (null: accept). */
  rcpt?(address: string): ScriptedReply | null;
  /** What to do once the message is in: accept (default), reply, drop the connection, or wait first. */
  data?(message: ReceivedMessage): Promise<ScriptedReply | 'accept' | 'drop'> | ScriptedReply | 'accept' | 'drop';
  /** Drop the connection after this many bytes of DATA have arrived. */
  dropAfterBytes?: number;
}

export interface ScriptedServer {
  readonly port: number;
  readonly messages: ReceivedMessage[];
  /** Number of DATA commands that started (whether completed or not). */
  readonly dataStarted: number;
  stop(): Promise<void>;
}

/** An smtp-server next hop with scripted replies, recording every accepted message byte for byte. */
export async function startScriptedServer(options: ScriptedServerOptions = {}): Promise<ScriptedServer> {
  const messages: ReceivedMessage[] = [];
  let dataStarted = 0;
  const sockets = new Set<Socket>();
  const error = (reply: ScriptedReply): Error => Object.assign(new Error(reply.text), { responseCode: reply.code });
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    // Replies are scripted word for word, enhanced code included: smtp-server must add none.
    hideENHANCEDSTATUSCODES: true,
    size: 100 * 1024 * 1024,
    onRcptTo(address: SMTPServerAddress, _session: SMTPServerSession, callback) {
      const reply = options.rcpt?.(address.address) ?? null;
      callback(reply ? error(reply) : undefined);
    },
    onData(stream, session, callback) {
      dataStarted++;
      const chunks: Buffer[] = [];
      let bytes = 0;
      let dropped = false;
      stream.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        bytes += chunk.length;
        if (options.dropAfterBytes !== undefined && bytes >= options.dropAfterBytes && !dropped) {
          dropped = true;
          for (const socket of sockets) socket.destroy();
        }
      });
      stream.on('end', () => {
        if (dropped) return;
        const mailFrom = session.envelope.mailFrom;
        const message: ReceivedMessage = {
          mailFrom: mailFrom ? mailFrom.address : '',
          mailArgs: mailFrom ? ((mailFrom.args as unknown as Record<string, unknown>) || {}) : {},
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          bytes: Buffer.concat(chunks),
        };
        Promise.resolve(options.data?.(message) ?? 'accept').then((decision) => {
          if (decision === 'drop') {
            for (const socket of sockets) socket.destroy();
            return;
          }
          if (decision === 'accept') {
            messages.push(message);
            callback(null, 'Ok: queued by scripted next hop');
          } else callback(error(decision));
        }, callback);
      });
    },
  });
  server.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // A client that resets its connection (the gateway ending a pooled session, a test dropping
  // one) is an event a real next hop shrugs off; unhandled, smtp-server's 'error' would crash the test.
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    messages,
    get dataStarted() {
      return dataStarted;
    },
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A minimal SMTP dialogue for what swaks cannot express (MAIL parameters such as SMTPUTF8):
 * sends each command after the previous reply; `DATA` content is a command too (send it with its
 * final `\r\n.`). Returns every reply (multi-line replies joined with `\n`), greeting first.
 * `localAddress` is the client's own address, e.g. 127.0.0.2 to be outside a trusted 127.0.0.1.
 */
export async function smtpDialogue(port: number, commands: readonly string[], host = '127.0.0.1', localAddress?: string): Promise<string[]> {
  const socket = connect({ host, port, ...(localAddress ? { localAddress } : {}) });
  const replies: string[] = [];
  let buffer = '';
  let current: string[] = [];
  let wake: (() => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let index: number;
    while ((index = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, index);
      buffer = buffer.slice(index + 2);
      current.push(line);
      if (!/^\d{3}-/.test(line)) {
        replies.push(current.join('\n'));
        current = [];
        wake?.();
      }
    }
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  const next = async (count: number): Promise<void> => {
    while (replies.length < count) {
      const woke = new Promise<void>((resolve) => (wake = resolve));
      await Promise.race([woke, closed]);
      if (socket.destroyed && replies.length < count) return;
    }
  };
  await next(1);
  for (const [i, command] of commands.entries()) {
    socket.write(`${command}\r\n`);
    await next(i + 2);
  }
  socket.destroy();
  return replies;
}

/**
 * One message over one SMTP session (sender@source.test to rcpt@relay.test, LF line ends made
 * CRLF, no dot-stuffing); resolves with the reply to the final dot, or null when the connection
 * ended before it (e.g. the gateway was killed).
 */
export async function sendOne(port: number, message: string): Promise<string | null> {
  const replies = await smtpDialogue(port, ['EHLO sender.test', 'MAIL FROM:<sender@source.test>', 'RCPT TO:<rcpt@relay.test>', 'DATA', `${message.replace(/\r?\n/g, '\r\n')}\r\n.`, 'QUIT']);
  // Replies: greeting, EHLO, MAIL, RCPT, DATA (354), final dot, QUIT.
  return replies[5] ?? null;
}

export interface Tap {
  /** Where the client connects instead of the server. */
  readonly port: number;
  /** Everything the server has sent towards its clients so far. */
  fromServer(): string;
  stop(): Promise<void>;
}

/**
 * A TCP relay in front of 127.0.0.1:`port` that keeps what the server sends. A server in the
 * test's own process is seen at once: whatever it wrote is here after one turn of the event loop
 * (`setImmediate` runs after the poll for I/O), whatever the client then does with it.
 */
export async function startTap(port: number): Promise<Tap> {
  const sockets = new Set<Socket>();
  let fromServer = '';
  const track = (socket: Socket): Socket => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    return socket;
  };
  const server = createServer((client) => {
    track(client);
    const upstream = track(connect(port, '127.0.0.1'));
    upstream.on('data', (chunk: Buffer) => {
      fromServer += chunk.toString('latin1');
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    fromServer: () => fromServer,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
