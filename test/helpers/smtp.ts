/**
 * Real SMTP peers for tests: swaks as the sender, smtp-sink or a scripted smtp-server as the next
 * hop, and the gateway itself on port 0. Reusable by any test that needs mail to flow.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';

export function tempDir(prefix = 'nimbus-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A TCP port free on 127.0.0.1 at the time of asking. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `check` returns a value (not undefined/false) or throws after timeoutMs. */
export async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Waits until `dir` holds `count` files (not directories) and returns their paths, sorted. */
export async function waitForFiles(dir: string, count: number, timeoutMs = 30_000): Promise<string[]> {
  return waitFor(`${count} file(s) in ${dir}`, () => {
    if (!existsSync(dir)) return undefined;
    const files = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(dir, e.name)).sort();
    return files.length >= count ? files : undefined;
  }, timeoutMs);
}

export interface SwaksResult {
  readonly exitCode: number;
  readonly output: string;
  /** The server's reply lines (`<-` and `<**` lines), without the arrows. */
  readonly replies: string[];
}

/**
 * Runs swaks against host:port. `args` are swaks options (e.g. `--to`, `--data`, `--from '<>'`);
 * never throws on SMTP failure: the exit code and replies say what happened.
 */
export async function swaks(port: number, args: readonly string[], options: { host?: string; timeoutMs?: number } = {}): Promise<SwaksResult> {
  return new Promise((resolve) => {
    execFile(
      'swaks',
      ['--server', options.host ?? '127.0.0.1', '--port', String(port), '--timeout', '120', '--hide-informational', ...args],
      { timeout: options.timeoutMs ?? 180_000, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        const replies = output
          .split('\n')
          .filter((line) => /^\s*<(-|\*\*)\s/.test(line))
          .map((line) => line.replace(/^\s*<(-|\*\*)\s+/, '').trimEnd());
        const code = error && typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : error ? 1 : 0;
        resolve({ exitCode: code, output, replies });
      },
    );
  });
}

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
  await waitForListening(port, () => (child.exitCode !== null ? `smtp-sink exited: ${stderr}` : null));
  return {
    port,
    dir,
    files: () => readdirSync(dir).map((name) => join(dir, name)).sort(),
    stop: async () => {
      await stopChild(child);
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

async function waitForListening(port: number, failed: () => string | null, timeoutMs = 15_000): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const problem = failed();
    if (problem) throw new Error(problem);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
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
  const sockets = new Set<import('node:net').Socket>();
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
  server.server.on('connection', (socket: import('node:net').Socket) => {
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

/** A message with CRLF line ends, for `swaks --data @file`. */
export function crlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}

export function readBytes(path: string): Buffer {
  return readFileSync(path);
}

/**
 * A minimal SMTP dialogue for what swaks cannot express (MAIL parameters such as SMTPUTF8):
 * sends each command after the previous reply; `DATA` content is a command too (send it with its
 * final `\r\n.`). Returns every reply (multi-line replies joined with `\n`), greeting first.
 * `localAddress` is the client's own address, e.g. 127.0.0.2 to be outside a trusted 127.0.0.1.
 */
export async function smtpDialogue(port: number, commands: readonly string[], host = '127.0.0.1', localAddress?: string): Promise<string[]> {
  const { connect } = await import('node:net');
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
