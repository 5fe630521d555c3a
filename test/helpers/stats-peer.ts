/**
 * PLACEHOLDER peer for statistics uploads until src/reputation/service.ts exists: a real HTTP
 * server on 127.0.0.1:0 speaking POST /v1/reports (validated with the wire schema), recording
 * every byte received, counting a batch id once (idempotent, as the service must), and able to
 * answer 401, cut the connection after storing a batch (ack lost), or hold the reply.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { reportBatch, type ReportRecord } from '../../src/reputation/api.js';

export type PeerReply = 'ok' | 'cut' | 'hold' | number;

export interface ReportsPeer {
  readonly url: string;
  /** Every request body as received, in order (also rejected and duplicate ones). */
  readonly bodies: string[];
  /** Accepted batches by id (a resent id is not stored twice). */
  readonly batches: Map<string, ReportRecord[]>;
  /** How many requests had a batch id already seen. */
  duplicates: number;
  /** Requests started (counted when the request arrives, before its body is read). */
  started: number;
  /** Held requests whose client went away before the reply (an abort). */
  clientAborts: number;
  /** Decides the reply to the n-th request (1-based). Default: ok. */
  reply: (n: number) => PeerReply;
  /** Releases every held reply (answered ok). */
  release(): void;
  records(): ReportRecord[];
  waitFor(predicate: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReportsPeer(): Promise<ReportsPeer> {
  const sockets = new Set<Socket>();
  let held: (() => void)[] = [];
  const peer: Omit<ReportsPeer, 'url'> & { url: string } = {
    url: '',
    bodies: [],
    batches: new Map(),
    duplicates: 0,
    started: 0,
    clientAborts: 0,
    reply: () => 'ok',
    release() {
      const waiting = held;
      held = [];
      for (const done of waiting) done();
    },
    records() {
      return [...peer.batches.values()].flat();
    },
    async waitFor(predicate, timeoutMs = 60_000) {
      const end = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > end) throw new Error('peer: condition not reached in time');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        peer.release();
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const n = ++peer.started;
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    peer.bodies.push(body);
    if (request.method !== 'POST' || request.url !== '/v1/reports') {
      response.writeHead(404).end();
      return;
    }
    const decision = peer.reply(n);
    if (typeof decision === 'number') {
      response.writeHead(decision, { 'content-type': 'application/json' }).end('{"error":"refused by test"}');
      return;
    }
    const parsed = reportBatch.safeParse(JSON.parse(body));
    if (!parsed.success) {
      response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: parsed.error.message }));
      return;
    }
    const duplicate = peer.batches.has(parsed.data.batchId);
    if (duplicate) peer.duplicates++;
    else peer.batches.set(parsed.data.batchId, parsed.data.records);
    if (decision === 'cut') {
      request.socket.destroy();
      return;
    }
    if (decision === 'hold') response.on('close', () => {
      if (!response.writableFinished) peer.clientAborts++;
    });
    if (decision === 'hold') await new Promise<void>((resolve) => held.push(resolve));
    if (!response.destroyed) response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: duplicate ? 0 : parsed.data.records.length, duplicate }));
  };
  const server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  peer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return peer;
}
