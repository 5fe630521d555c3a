/**
 * The REAL reputation service (src/reputation/service.ts) over the real engine
 * (src/reputation/open.ts, SQLite), with a sensor key, for statistics tests; and a TCP proxy in
 * front of it that can cut or hold the n-th HTTP response (an acknowledgement lost on the way
 * back, or a gateway killed before it arrives), so the service really ingested the batch.
 */
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log.js';
import type { OpenedReputation } from '../../src/reputation/engine-types.js';
import { openReputation } from '../../src/reputation/open.js';
import { startReputationService } from '../../src/reputation/service.js';

export interface RealService {
  readonly url: string;
  readonly token: string;
  readonly opened: OpenedReputation;
  /** How many reports the engine counted for this fingerprint (decayed count, rounded). */
  seen(item: string): Promise<number>;
  close(): Promise<void>;
}

export async function startRealService(dataDir: string): Promise<RealService> {
  const opened = await openReputation({ store: 'sqlite', path: join(dataDir, 'reputation.sqlite') });
  const { token } = await opened.keys.addKey('sensor', 'stats test');
  const config = loadConfig({ NIMBUS_DATA_DIR: dataDir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'silent' });
  const service = await startReputationService(config, createLogger('silent'), opened);
  return {
    url: service.url,
    token,
    opened,
    async seen(item) {
      const [result] = await opened.engine.lookup([item]);
      // The engine decays counters with age; rounding gives the number of records.
      return Math.round(result?.counters.seen ?? 0);
    },
    async close() {
      await service.close();
      await opened.close();
    },
  };
}

export type ProxyDecision = 'forward' | 'cut' | 'hold';

export interface CuttingProxy {
  url: string;
  /** Requests seen (counted at their request line). */
  requests: number;
  /** Every byte the gateway sent through the proxy. */
  readonly sent: Buffer[];
  /** Requests whose client went away before their response was passed on (an abort). */
  clientAborts: number;
  /** The gateway's bytes so far as text. */
  sentText(): string;
  /** Decides what happens to the n-th response (1-based). */
  decide: (n: number) => ProxyDecision;
  close(): Promise<void>;
}

export async function startCuttingProxy(target: string): Promise<CuttingProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let responses = 0;
  const proxy: CuttingProxy = {
    url: '',
    requests: 0,
    sent: [],
    clientAborts: 0,
    sentText: () => Buffer.concat(proxy.sent).toString('utf8'),
    decide: () => 'forward',
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const track = (socket: Socket): Socket => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    return socket;
  };
  const server = createServer((client) => {
    track(client);
    const upstream = track(connect(Number(port), hostname));
    let holding = false;
    // Requests on this connection whose response has not been passed on yet.
    let outstanding = 0;
    client.on('data', (chunk: Buffer) => {
      if (/^(POST|GET|PUT|DELETE) /.test(chunk.subarray(0, 8).toString('latin1'))) {
        proxy.requests++;
        outstanding++;
      }
      proxy.sent.push(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (chunk.subarray(0, 5).toString('latin1') === 'HTTP/') {
        const decision = proxy.decide(++responses);
        if (decision === 'cut') {
          client.destroy();
          upstream.destroy();
          return;
        }
        holding = decision === 'hold';
        if (!holding) outstanding--;
      }
      if (!holding) client.write(chunk);
    });
    client.on('close', () => {
      if (outstanding > 0) proxy.clientAborts++;
      upstream.destroy();
    });
    upstream.on('close', () => {
      if (!holding) client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  proxy.url = `http://127.0.0.1:${address.port}`;
  return proxy;
}
