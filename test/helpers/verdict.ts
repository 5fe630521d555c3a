/**
 * Helpers for the verdict tests: a gateway process with one worker, messages made sendable by
 * swaks and read back from smtp-sink, header fields, and a hostile "service" that accepts
 * connections and never answers.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { startGatewayProcess, type GatewayProcess } from './nimbus.js';
import { sinkMessage } from './smtp.js';

/** `nimbus gateway` with one worker (the verdict tests read one process's log), stopped at teardown. */
export async function gateway(t: ExecutionContext, env: Record<string, string>): Promise<GatewayProcess> {
  return startGatewayProcess(t, { NIMBUS_WORKERS: '1', ...env });
}

/** smtp-sink ends each dump with an empty line of its own. */
export function relayedMessage(dump: Buffer): Buffer {
  const message = sinkMessage(dump);
  return message.at(-1) === 0x0a && message.at(-2) === 0x0a ? message.subarray(0, -1) : message;
}

/**
 * Writes a message for `swaks --data @FILE`. swaks ends DATA with CRLF . CRLF after the file's
 * content, so the file leaves out the message's own final CRLF: then exactly `message` is sent.
 */
export function dataFile(dir: string, name: string, message: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, message.subarray(-2).toString('latin1') === '\r\n' ? message.subarray(0, -2) : message);
  return path;
}

/** The header fields of a message, unfolded, as name (lower case) and value. */
export function headerFields(message: Buffer | string): { name: string; value: string }[] {
  const text = typeof message === 'string' ? message : message.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const block = end >= 0 ? text.slice(0, end) : text;
  return block
    .replace(/\r?\n[ \t]+/g, ' ')
    .split(/\r?\n/)
    .filter((line) => line.includes(':'))
    .map((line) => ({ name: line.slice(0, line.indexOf(':')).toLowerCase(), value: line.slice(line.indexOf(':') + 1).trim() }));
}

export function header(message: Buffer | string, name: string): string[] {
  return headerFields(message).filter((field) => field.name === name.toLowerCase()).map((field) => field.value);
}

export interface SilentPeer {
  readonly url: string;
  /** How many requests for `path` (e.g. `POST /v1/lookup`) arrived so far. */
  requests(requestLine: string): number;
  stop(): Promise<void>;
}

/**
 * A TCP server that accepts every connection, reads what it is sent and never answers: what a
 * hung reputation service (or a black-holing middlebox) looks like to the gateway.
 */
export async function startSilentPeer(t: ExecutionContext): Promise<SilentPeer> {
  const sockets = new Set<Socket>();
  let received = '';
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
    return stopped;
  };
  t.teardown(stop);
  return {
    url: `http://127.0.0.1:${port}`,
    requests: (requestLine) => received.split(`${requestLine} `).length - 1,
    stop,
  };
}
